"""Hidden checks for Lesson 4.2 (`dino_course/temperature.py`).

Checks run from specific to general, so the first failing one names the mistake: nothing
returned or the wrong kind of value, the wrong shape or dtype, an input changed in place, the
typical mistakes that have their own hint (no max-subtraction, 0 · log 0, a warm-up without its
last value, ...), and only then the comparison with the reference.

Tolerances are derived from the computation (see `sharpen_tolerance`, `entropy_tolerance`,
`schedule_tolerance`): each is a small multiple of the rounding two correct float32 (float64
for the schedule) implementations can differ by, while every real mistake moves values by far
more (a wrong temperature or axis changes probabilities by O(1) relative).
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

import solutions.temperature as ref
from dino_course.grading.hints import FLOAT32_EPS, call_unmutated, expect, expect_close, expect_type
from dino_course.grading.learner import LearnerModule

from float64_close import close  # tests/float64_close.py

st = LearnerModule("temperature")
FLOAT64_EPS = torch.finfo(torch.float64).eps  # 2.2e-16


exercise = functools.partial(pytest.mark.exercise, "4.2")  # @exercise("name"): a check of that exercise of the lesson


def logits(seed: int, shape: tuple[int, ...], scale: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    return (scale * torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)).to(dtype)


# ----------------------------------------------------------------------------- sharpen


def sharpen_tolerance(x: torch.Tensor, temperature: float) -> dict:
    """What two correct float32 softmaxes of x / τ may differ by.

    Each exponent z_k = x_k / τ is rounded to half an ulp (0.5·eps·|z|), and softmax uses the
    differences z_k − z_max: an absolute error of up to eps·max|z| in an exponent is a
    *relative* error of the same size in p_k (x / τ vs x · (1/τ), subtracting the maximum
    before or after dividing, float64 intermediates all differ this way). The exp and the
    normalising sum add a few eps more (pairwise summation: ~log2 K roundings). Hence
    rtol = 4·eps·(max|z| + log2 K + 1), 4× the first-order bound. Probabilities under 1e-12
    are far below anything a mistake changes and sit near float32's underflow, so they are
    compared absolutely (atol 1e-12).
    """
    z = float(x.double().abs().max()) / temperature
    return dict(rtol=4 * FLOAT32_EPS * (z + math.log2(x.shape[-1]) + 1), atol=1e-12)


def sharpen_mistake(x: torch.Tensor, temperature: float, got: torch.Tensor) -> str | None:
    """A hint naming the mistake when `got` is a typical wrong softmax of `x` at `temperature`."""
    tol = sharpen_tolerance(x, temperature)
    z = x.double()
    if close(got, ref.sharpen(x, temperature), tol):
        return None
    if not bool(torch.isfinite(got).all()):
        return ("sharpen gives NaN/inf: exp(logits / τ) overflows float32 for logits / τ > 88; subtract each row's "
                "maximum (max over the last dim, keepdim=True) before exp, or use torch.softmax, which does")
    for dim in range(x.dim() - 1):
        if close(got, torch.softmax(z / temperature, dim=dim), tol):
            return f"take the softmax over the last dimension (dim=-1, the K outputs), not over dim {dim}"
    if not close(got.sum(-1), torch.ones(got.shape[:-1]), dict(rtol=0, atol=1e-4)):
        if bool((got <= 0).all()):
            return "sharpen returned log-probabilities (all ≤ 0): use softmax, not log_softmax"
        return ("the rows of the result do not sum to 1: divide the logits by τ and then take the softmax "
                "(dividing or scaling the probabilities afterwards breaks the normalisation)")
    if temperature != 1.0 and close(got, torch.softmax(z * temperature, dim=-1), tol):
        return "divide the logits by the temperature (g / τ), do not multiply"
    if temperature != 1.0 and close(got, torch.softmax(z, dim=-1), tol):
        return f"the temperature was not applied (τ = {temperature}): the softmax is of logits / τ, not of the logits"
    return None


@exercise("sharpen")
def test_sharpen_returns_probabilities_and_leaves_the_logits_alone():
    x = logits(1, (3, 5))
    got = call_unmutated(st.sharpen, x, 0.5)
    expect_type(got, x, "sharpen")
    expect(got.shape == x.shape, f"sharpen returned shape {tuple(got.shape)} for logits of shape {tuple(x.shape)}: "
           "the probabilities have the logits' shape (a softmax over the last dim, no reduction)")
    expect(got.dtype in (torch.float32, torch.float64), f"sharpen should return float32 probabilities, got {got.dtype}")
    mistake = sharpen_mistake(x, 0.5, got)
    expect(mistake is None, mistake or "")
    expect_close(got, ref.sharpen(x, 0.5), "sharpen(logits, τ=0.5) differs from softmax(logits / τ, dim=-1)",
                 **sharpen_tolerance(x, 0.5))


@exercise("sharpen")
def test_sharpen_is_numerically_stable():
    # rows with maxima far apart: without max-subtraction every row overflows; subtracting the
    # maximum of the *whole* tensor instead of each row's makes the lower rows underflow to 0 / 0
    x = logits(0, (4, 50), scale=1000.0) + torch.tensor([[0.0], [-300.0], [200.0], [-900.0]])
    got = st.sharpen(x, 0.04)
    expect_type(got, x, "sharpen")
    finite = torch.isfinite(got).all(-1)
    expect(bool(finite.any()), "sharpen gives NaN/inf for large logits (1000 / 0.04 = 25 000 is far above "
           "float32's exp limit of 88): subtract each row's maximum before exp (or use torch.softmax, which does)")
    expect(bool(finite.all()), "sharpen gives NaN in some rows only: subtract each row's own maximum "
           "(x.max(dim=-1, keepdim=True)), not one maximum of the whole tensor")
    # every row is one-hot up to float32's underflow: the exponents are 25 000 apart
    expect_close(got.sum(-1), torch.ones(4), "each row of probabilities must sum to 1",
                 rtol=0, atol=4 * 50 * FLOAT32_EPS)
    expect(bool((got.argmax(-1) == x.argmax(-1)).all()), "the most likely dimension must be the largest logit")


@exercise("sharpen")
@pytest.mark.parametrize("shape", [(1, 2), (5, 40), (3, 4, 7), (64, 1000)])
@pytest.mark.parametrize("temperature", [0.04, 0.1, 1.0, 5.0])
def test_sharpen_matches_reference(shape, temperature):
    x = logits(sum(shape), shape)
    got = st.sharpen(x, temperature)
    want = ref.sharpen(x, temperature)
    expect_type(got, want, "sharpen")
    expect(got.shape == want.shape, f"sharpen returned shape {tuple(got.shape)} for logits of shape {tuple(x.shape)}")
    mistake = sharpen_mistake(x, temperature, got)
    expect(mistake is None, mistake or "")
    expect_close(got, want, f"sharpen(τ={temperature}) differs from softmax(logits / τ) over the last dimension",
                 **sharpen_tolerance(x, temperature))


@exercise("sharpen")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_sharpen_of_low_and_high_precision_logits(dtype):
    """Autocast hands bfloat16/float16 logits; the probabilities must be float32 or wider."""
    x = logits(3, (6, 30), scale=2.0, dtype=dtype)
    got = st.sharpen(x, 0.04)
    expect_type(got, x, "sharpen")
    expect(got.dtype in (torch.float32, torch.float64),
           f"sharpen of {dtype} logits returned {got.dtype}: compute in float32 or wider (logits.float() first); "
           "at τ = 0.04 the exponents reach ~100 and half precision keeps only 3 significant digits")
    want = ref.sharpen(x, 0.04)
    if not close(got, want, sharpen_tolerance(x, 0.04)) and dtype != torch.float64:
        low = torch.softmax((x / 0.04).float(), dim=-1)  # divided in half precision, softmax in float32
        expect(not close(got, low, sharpen_tolerance(x, 0.04)),
               f"convert the {dtype} logits to float32 *before* dividing by τ: dividing in half precision "
               "rounds the exponents by ~0.5 at τ = 0.04, which changes the probabilities by ~50 %")
    mistake = sharpen_mistake(x, 0.04, got)
    expect(mistake is None, mistake or "")
    expect_close(got, want, f"sharpen of {dtype} logits differs from softmax(logits.float() / τ, dim=-1)",
                 **sharpen_tolerance(x, 0.04))


@exercise("sharpen")
def test_sharpen_temperature_limits():
    x = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    cold = st.sharpen(x, 0.001)
    expect_type(cold, x, "sharpen")
    hot = st.sharpen(x, 1000.0)
    # τ = 0.001: the runner-up is exp(−1000) below the winner, exactly 0 in float32
    expect_close(cold, torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
                 "a tiny temperature must give a one-hot on the largest logit",
                 atol=4 * FLOAT32_EPS, rtol=0)
    # τ = 1000: p_k = 1/4 · (1 + O(max|x| / τ)) = 1/4 ± 0.001
    expect_close(hot, torch.full((1, 4), 0.25), "a huge temperature must give (nearly) the uniform distribution",
                 atol=1e-3, rtol=0)
    with pytest.raises(ValueError):
        st.sharpen(x, 0.0)


# ----------------------------------------------------------------------------- entropy


def entropy_tolerance(p: torch.Tensor) -> dict:
    """What two correct entropies of the same float32 probabilities may differ by.

    Each term −p log p carries ~2 eps of its own size (log, product), and the terms are at
    most 1/e each, summing to H ≤ log K; the sum over K adds ~log2 K roundings of H's size
    (pairwise; a plain loop's errors grow like sqrt(K) in practice). atol = 4·eps·(log2 K + 2)·(log K + 1)
    covers both 4× for the K used here (log2 K + 2 >= sqrt(K) / 4 up to K = 1000). An ε-clamp
    (log(p.clamp_min(1e-12))) changes a term by at most p·|log ε| for p < ε, i.e. < 3e-11.
    """
    k = p.shape[-1]
    return dict(rtol=0, atol=4 * FLOAT32_EPS * (math.log2(k) + 2) * (math.log(k) + 1))


def entropy_shape_mistake(p: torch.Tensor, got: torch.Tensor) -> str | None:
    want = tuple(p.shape[:-1])
    shape = tuple(got.shape)
    if shape == want:
        return None
    if shape == want + (1,):
        return f"entropy returned shape {shape}, expected {want}: one value per row, sum without keepdim=True"
    if shape == () or got.numel() == 1:
        return (f"entropy returned one number for the whole tensor, expected shape {want}: "
                "sum over the last dim only (dim=-1)")
    if shape == tuple(p.shape[1:]):
        return (f"entropy returned shape {shape}, expected {want}: sum over the last dimension (K, dim=-1), "
                "not over the rows")
    return f"entropy returned shape {shape}, expected {want}: one entropy per row, a sum over the last dimension"


def entropy_mistake(p: torch.Tensor, got: torch.Tensor, want: torch.Tensor) -> str | None:
    tol = entropy_tolerance(p)
    if close(got, want, tol):
        return None
    if bool((torch.isnan(got) & ~torch.isnan(want)).any()):
        return ("entropy gives NaN where a probability is exactly 0: 0 · log 0 is NaN in floating point; take it as 0 "
                "(torch.special.entr, torch.xlogy, or log of p.clamp_min(1e-12))")
    if want.abs().max() > 1e-3:
        if close(got, -want, tol):
            return "the entropy is −Σ p log p: the sign is flipped (it must be ≥ 0)"
        if close(got, want / math.log(2), tol):
            return "the entropy is in nats: use the natural log (torch.log), not log2"
        if close(got, want / math.log(10), tol):
            return "the entropy is in nats: use the natural log (torch.log), not log10"
        if close(got, want / p.shape[-1], tol):
            return "sum the terms −p log p over the last dimension, do not average them (mean divides by K)"
    return None


@exercise("entropy")
def test_entropy_returns_one_value_per_row_and_leaves_the_input_alone():
    p = torch.softmax(logits(2, (6, 40)), dim=-1)
    got = call_unmutated(st.entropy, p)
    expect_type(got, p, "entropy")
    mistake = entropy_shape_mistake(p, got)
    expect(mistake is None, mistake or "")


@exercise("entropy")
def test_entropy_extremes():
    k = 16
    one_hot = torch.zeros(3, k)
    one_hot[torch.arange(3), torch.tensor([0, 5, 15])] = 1.0
    got = call_unmutated(st.entropy, one_hot)
    expect_type(got, one_hot, "entropy")
    expect(bool(torch.isfinite(got).all()), "entropy of a one-hot row is NaN: 0 · log 0 is NaN in floating point; "
           "take it as 0 (torch.special.entr, torch.xlogy, or log of p.clamp_min(1e-12))")
    # each term is exactly 0 (1 · log 1 = 0, 0 · log 0 := 0); an ε-clamp leaves −ε·log(1 + ε) ≈ 1e-12 at most
    expect_close(got, torch.zeros(3), "a one-hot distribution has entropy 0", atol=1e-6, rtol=0)
    uniform = torch.full((2, k), 1 / k)
    got, want = st.entropy(uniform), torch.full((2,), math.log(k))
    mistake = entropy_shape_mistake(uniform, got) or entropy_mistake(uniform, got, want)
    expect(mistake is None, mistake or "")
    expect_close(got, want,
                 "the uniform distribution over K = 16 has entropy log K = 2.77 nats", **entropy_tolerance(uniform))


@exercise("entropy")
@pytest.mark.parametrize("shape", [(1, 2), (6, 40), (2, 3, 9), (4, 1000)])
@pytest.mark.parametrize("temperature", [0.01, 0.1, 1.0])
def test_entropy_matches_reference(shape, temperature):
    # τ = 0.01 makes many probabilities exactly 0 in float32 (exp(−100 and below))
    p = torch.softmax(logits(7 + sum(shape), shape) / temperature, dim=-1)
    got = st.entropy(p)
    want = ref.entropy(p)
    expect_type(got, want, "entropy")
    mistake = entropy_shape_mistake(p, got) or entropy_mistake(p, got, want)
    expect(mistake is None, mistake or "")
    expect_close(got, want, "entropy differs from −Σ_k p_k log p_k (natural log, one value per row)",
                 **entropy_tolerance(p))


@exercise("entropy")
def test_entropy_of_float64_probabilities():
    p = torch.softmax(logits(5, (5, 12), dtype=torch.float64), dim=-1)
    got = st.entropy(p)
    want = -(p * p.log()).sum(-1)
    expect_type(got, want, "entropy")
    mistake = entropy_shape_mistake(p, got) or entropy_mistake(p, got, want)
    expect(mistake is None, mistake or "")
    # float64 input: a float32 computation would be accurate to the float32 tolerance only
    expect_close(got, want, "entropy of float64 probabilities differs from −Σ_k p_k log p_k", **entropy_tolerance(p))


# ----------------------------------------------------------------------------- teacher_temperature_schedule


def schedule_tolerance(*temperatures: float) -> dict:
    """float64 schedules: torch.linspace, a + (b − a)·i/(W − 1) and a·(1 − t) + b·t differ by a few
    ulps of the largest temperature; 32 ulps leaves room, while a float32 computation
    (1e-7 relative) or any real mistake is far outside."""
    return dict(rtol=0, atol=32 * FLOAT64_EPS * max(temperatures))


def call_schedule(*args, **kwargs):
    try:
        return st.teacher_temperature_schedule(*args, **kwargs)
    except ZeroDivisionError:
        raise AssertionError(
            "teacher_temperature_schedule divided by zero: with warmup_epochs = 1 the warm-up is the single value "
            "warmup_teacher_temp (as torch.linspace(a, b, 1) gives), so avoid dividing by W − 1 = 0"
        ) from None


def check_schedule(got, a: float, b: float, warmup: int, epochs: int) -> None:
    """Compare a schedule piece by piece, naming the part that is wrong."""
    what = f"teacher_temperature_schedule({a}, {b}, warmup_epochs={warmup}, epochs={epochs})"
    want = ref.teacher_temperature_schedule(a, b, warmup, epochs)
    if isinstance(got, (list, tuple)) or type(got).__module__ == "numpy":
        raise AssertionError(f"{what} should return a torch.Tensor, got a {type(got).__name__}: "
                             "build it with torch.linspace / torch.full / torch.cat (dtype=torch.float64)")
    expect_type(got, want, what)
    if got.shape != want.shape:
        length = got.numel()
        if length == epochs + warmup and warmup:
            hint = "the warm-up epochs are part of training: W warm-up values, then epochs − W constant ones"
        elif length == warmup and warmup < epochs:
            hint = "the epochs after the warm-up are missing: append epochs − W values of teacher_temp"
        else:
            hint = "one value per epoch: W warm-up values, then epochs − W values of teacher_temp"
        raise AssertionError(f"{what} returned shape {tuple(got.shape)}, expected ({epochs},): {hint}")
    if got.dtype != torch.float64:
        raise AssertionError(
            f"{what} returned {got.dtype}: work in float64 (dtype=torch.float64), as the original does"
        )
    tol = schedule_tolerance(a, b)
    warm, rest = got[:warmup], got[warmup:]
    if warmup:
        if not close(warm, want[:warmup], tol):
            i = torch.arange(warmup, dtype=torch.float64)
            if not bool(torch.isfinite(warm).all()):
                hint = ("the warm-up holds NaN/inf: with warmup_epochs = 1 it is the single value warmup_teacher_temp "
                        "(as torch.linspace(a, b, 1) gives), so avoid dividing by W − 1 = 0")
            elif warmup > 1 and close(warm, a + (b - a) * i / warmup, tol):
                hint = (f"the warm-up must include both ends: epoch W − 1 = {warmup - 1} already has teacher_temp, "
                        "so divide by W − 1, not W (torch.linspace(a, b, W) does this)")
            elif warmup > 1 and close(warm, b + (a - b) * i / (warmup - 1), tol):
                hint = "the warm-up goes the wrong way: it starts at warmup_teacher_temp and ends at teacher_temp"
            elif close(warm, want[:warmup], dict(rtol=1e-6, atol=0)):
                hint = "the warm-up values are float32-rounded: compute them in float64 (dtype=torch.float64)"
            elif not math.isclose(float(warm[0]), a, rel_tol=1e-12):
                hint = f"the warm-up must start at warmup_teacher_temp = {a} in epoch 0, got {float(warm[0])}"
            else:
                hint = (f"the warm-up is not linear from {a} to {b} over the first W = {warmup} epochs, "
                        "both ends included")
            expect_close(warm, want[:warmup], f"{what}: {hint}", **tol)
    if rest.numel():
        if close(rest, torch.full_like(rest, a), tol) and a != b:
            hint = "after the warm-up every epoch uses teacher_temp, not warmup_teacher_temp"
        elif close(rest, want[warmup:], dict(rtol=1e-6, atol=0)):
            hint = "the values after the warm-up are float32-rounded: use dtype=torch.float64"
        else:
            hint = f"after the W = {warmup} warm-up epochs the schedule stays constant at teacher_temp = {b}"
        expect_close(rest, want[warmup:], f"{what}: {hint}", **tol)


@exercise("teacher_temperature_schedule")
def test_teacher_temperature_schedule_is_a_float64_tensor_with_one_value_per_epoch():
    check_schedule(call_schedule(0.04, 0.07, 3, 5), 0.04, 0.07, 3, 5)


@exercise("teacher_temperature_schedule")
@pytest.mark.parametrize("a,b,warmup,epochs", [
    (0.04, 0.07, 1, 4),  # a single warm-up epoch: just warmup_teacher_temp, then teacher_temp
    (0.04, 0.07, 1, 1),
    (0.04, 0.07, 0, 1),
    (0.04, 0.07, 5, 5),  # warm-up over all of training: ends exactly at teacher_temp in the last epoch
    (0.04, 0.07, 30, 100),
    (0.04, 0.07, 2, 9),
    (0.02, 0.05, 4, 7),  # other temperatures: both arguments must be used
    (0.07, 0.04, 3, 6),  # a decreasing "warm-up" is just as linear
    (0.05, 0.05, 2, 4),
    (0.5, 1.5, 10, 12),
])
def test_teacher_temperature_schedule_grid(a, b, warmup, epochs):
    check_schedule(call_schedule(a, b, warmup, epochs), a, b, warmup, epochs)


@exercise("teacher_temperature_schedule")
def test_teacher_temperature_schedule_defaults_are_the_papers():
    got = call_schedule()
    check_schedule(got, ref.WARMUP_TEACHER_TEMP, ref.TEACHER_TEMP, ref.WARMUP_TEACHER_TEMP_EPOCHS, 100)
    got = call_schedule(epochs=40)
    check_schedule(got, ref.WARMUP_TEACHER_TEMP, ref.TEACHER_TEMP, ref.WARMUP_TEACHER_TEMP_EPOCHS, 40)


@exercise("teacher_temperature_schedule")
def test_teacher_temperature_schedule_matches_the_original(golden):
    config = golden["loss"]["config"]
    a, b = config["warmup_teacher_temp"], config["teacher_temp"]
    got = call_schedule(a, b, config["warmup_teacher_temp_epochs"], config["nepochs"])
    check_schedule(got, a, b, config["warmup_teacher_temp_epochs"], config["nepochs"])
    # dino_v1_golden.README.md: an independent float64 implementation agrees to 1.4e-20
    expect_close(got, golden["loss"]["teacher_temp_schedule"], "the schedule differs from the original DINO's",
                 **schedule_tolerance(a, b))
    train = golden["train"]["config"]
    got = call_schedule(train["warmup_teacher_temp"], train["teacher_temp"], 0, train["epochs"])
    check_schedule(got, train["warmup_teacher_temp"], train["teacher_temp"], 0, train["epochs"])
    expect_close(got, golden["train"]["teacher_temp_schedule"], "with warmup_epochs=0 every epoch uses teacher_temp",
                 **schedule_tolerance(train["teacher_temp"]))


@exercise("teacher_temperature_schedule")
def test_teacher_temperature_schedule_rejects_bad_input():
    call_schedule(0.04, 0.07, 2, 3)
    for args in [(0.04, 0.07, 4, 3), (0.04, 0.07, 1, 0), (-0.04, 0.07, 1, 3), (0.04, 0.0, 1, 3)]:
        with pytest.raises(ValueError):
            st.teacher_temperature_schedule(*args)
