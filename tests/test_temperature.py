"""Hidden checks for Lesson 4.2 (`dino_course/temperature.py`).

Tolerances: softmax and entropy of float32 logits agree between correct implementations to a
few ulps (≈ 1e-7 relative); rtol 1e-5 / atol 1e-6 leaves room for another order of operations
(e.g. an explicit max-subtraction) while any real mistake (wrong dim, wrong temperature use)
moves values by far more. Schedules are float64 and must match the original to 1e-15.
"""

from __future__ import annotations

import math

import pytest
import torch

import solutions.temperature as ref
from dino_course.grading.hints import expect, expect_close
from dino_course.grading.learner import LearnerModule

st = LearnerModule("temperature")
TOL = dict(rtol=1e-5, atol=1e-6)
SCHEDULE_TOL = dict(rtol=0, atol=1e-15)  # golden/README: float64 schedules agree to 1.4e-20


def exercise(name: str):
    return pytest.mark.exercise("4.2", name)


def logits(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- sharpen


@exercise("sharpen")
@pytest.mark.parametrize("shape", [(1, 2), (5, 40), (3, 4, 7), (64, 1000)])
@pytest.mark.parametrize("temperature", [0.04, 0.1, 1.0, 5.0])
def test_sharpen_matches_reference(shape, temperature):
    x = logits(sum(shape), shape)
    got = st.sharpen(x, temperature)
    want = ref.sharpen(x, temperature)
    if isinstance(got, torch.Tensor) and got.shape == want.shape and not torch.allclose(got.float(), want, **TOL):
        if torch.allclose(got.float(), torch.softmax(x * temperature, dim=-1), **TOL):
            raise AssertionError("divide the logits by the temperature (g / τ), do not multiply")
        if x.dim() > 1 and torch.allclose(got.float(), torch.softmax(x / temperature, dim=0), **TOL):
            raise AssertionError("take the softmax over the last dimension (K), not over the batch")
    expect_close(got, want, f"sharpen(τ={temperature}) differs from softmax(logits / τ) over the last dimension", **TOL)


@exercise("sharpen")
def test_sharpen_is_numerically_stable():
    x = logits(0, (4, 50), scale=1000.0)
    got = st.sharpen(x, 0.04)
    expect(bool(torch.isfinite(got).all()), "sharpen gives NaN/inf for large logits: subtract the row maximum first (or use torch.softmax)")
    expect_close(got.sum(-1), torch.ones(4), "each row of probabilities must sum to 1", **TOL)
    expect(bool((got.argmax(-1) == x.argmax(-1)).all()), "the most likely dimension must be the largest logit")


@exercise("sharpen")
def test_sharpen_temperature_limits():
    x = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    cold = st.sharpen(x, 0.001)
    hot = st.sharpen(x, 1000.0)
    expect_close(cold, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), "a tiny temperature must give a one-hot on the largest logit", atol=1e-6, rtol=0)
    expect_close(hot, torch.full((1, 4), 0.25), "a huge temperature must give (nearly) the uniform distribution", atol=1e-3, rtol=0)
    with pytest.raises(ValueError):
        st.sharpen(x, 0.0)


# ----------------------------------------------------------------------------- entropy


@exercise("entropy")
@pytest.mark.parametrize("shape", [(1, 2), (6, 40), (2, 3, 9)])
@pytest.mark.parametrize("temperature", [0.01, 0.1, 1.0])
def test_entropy_matches_reference(shape, temperature):
    p = torch.softmax(logits(7 + sum(shape), shape) / temperature, dim=-1)
    got = st.entropy(p)
    want = ref.entropy(p)
    if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, -want, **TOL) and want.abs().max() > 1e-3:
        raise AssertionError("the entropy is −Σ p log p: the sign is flipped")
    expect_close(got, want, "entropy differs from −Σ_k p_k log p_k (natural log, one value per row)", **TOL)


@exercise("entropy")
def test_entropy_extremes():
    k = 16
    one_hot = torch.zeros(3, k)
    one_hot[torch.arange(3), torch.tensor([0, 5, 15])] = 1.0
    got = st.entropy(one_hot)
    expect(bool(torch.isfinite(got).all()), "entropy of a one-hot row is NaN: treat 0·log 0 as 0 (e.g. torch.special.entr, or clamp)")
    expect_close(got, torch.zeros(3), "a one-hot distribution has entropy 0", atol=1e-6, rtol=0)
    expect_close(st.entropy(torch.full((2, k), 1 / k)), torch.full((2,), math.log(k)), "the uniform distribution has entropy log K", **TOL)


# ----------------------------------------------------------------------------- teacher_temperature_schedule


@exercise("teacher_temperature_schedule")
def test_teacher_temperature_schedule_matches_the_original(golden):
    config = golden["loss"]["config"]
    got = st.teacher_temperature_schedule(
        config["warmup_teacher_temp"], config["teacher_temp"], config["warmup_teacher_temp_epochs"], config["nepochs"]
    )
    want = golden["loss"]["teacher_temp_schedule"]
    got = torch.as_tensor(got)
    expect(got.shape == want.shape, f"one value per epoch: expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    expect(got.dtype == torch.float64, f"return float64 (got {got.dtype}): the original's schedule is float64")
    expect_close(got, want, "the schedule differs from the original: a linear warm-up including both ends, then constant", **SCHEDULE_TOL)
    train = golden["train"]["config"]
    got = torch.as_tensor(st.teacher_temperature_schedule(train["warmup_teacher_temp"], train["teacher_temp"], 0, train["epochs"]))
    expect_close(got, golden["train"]["teacher_temp_schedule"], "with warmup_epochs=0 every epoch uses teacher_temp", **SCHEDULE_TOL)


@exercise("teacher_temperature_schedule")
@pytest.mark.parametrize("warmup,epochs", [(0, 1), (1, 1), (1, 4), (5, 5), (30, 100), (2, 9)])
def test_teacher_temperature_schedule_grid(warmup, epochs):
    got = torch.as_tensor(st.teacher_temperature_schedule(0.04, 0.07, warmup, epochs))
    want = ref.teacher_temperature_schedule(0.04, 0.07, warmup, epochs)
    expect(got.shape == want.shape, f"expected {epochs} values (one per epoch), got shape {tuple(got.shape)}")
    expect_close(got, want, f"teacher_temperature_schedule(0.04, 0.07, warmup_epochs={warmup}, epochs={epochs}) is wrong", **SCHEDULE_TOL)


@exercise("teacher_temperature_schedule")
def test_teacher_temperature_schedule_rejects_bad_input():
    st.teacher_temperature_schedule(0.04, 0.07, 2, 3)
    for args in [(0.04, 0.07, 4, 3), (0.04, 0.07, 1, 0), (-0.04, 0.07, 1, 3), (0.04, 0.0, 1, 3)]:
        with pytest.raises(ValueError):
            st.teacher_temperature_schedule(*args)
