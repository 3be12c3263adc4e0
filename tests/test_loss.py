"""Hidden checks for Lesson 4.3 (`dino_course/loss.py`).

Tolerances, and why
-------------------
A float32 DINO loss is, per pair and image, a q-weighted average of L_k = −log p_k. Correct
implementations round differently (log_softmax or an explicit logsumexp, a loop over pairs or an
einsum, x/τ or x·(1/τ), float64 intermediates, F.cross_entropy with probability targets):

- teacher: q_k = exp(x_k − lse(x)) with x = (t − c)/τ_t. An error of a few ulps of |x_k| (x reaches
  ~100 for τ_t = 0.04) is a *relative* error of q_k, and moves the pair's cross-entropy H by
  Σ_k q_k δx_k (L_k − H);
- student: log p_k = y_k − lse(y) with y = s/τ_s carries an absolute error of a few ulps of |y_k| + |lse(y)|;
- the sums over K, B and the pairs: a few ulps of the loss (all terms are ≥ 0, so no cancellation).

`loss_tolerance` evaluates this first-order bound on the check's own data in float64, × 8 for the
several roundings of each element, plus 16 ulps of the loss. Measured: the logsumexp formulation
lands 1.5e-5 from the golden loss 22.16 (0.7 ppm; the 1e-6 relative that
tests/dino_v1_golden.README.md suggests is too tight for it) where the bound gives 1.0e-4 (5 ppm).
The bound is 1-9 ppm of the loss on the checks' inputs, while the mistakes diagnosed below move it
by 0.15 % or more (a mistake is named only where it lies 10 times its own rounding away from the
correct loss, see `is_mistake`).
Gradients: ∂L/∂s = (p − q)/(#pairs·B·τ_s) summed over the teacher views paired with s, so their
rounding is the same relative error of q and p, taken element by element (`gradient_tolerance`).
Centers: m·c + (1 − m)·mean of 2B rows; a mean of n float32 numbers is exact to n ulps of the
largest, hence `center_tolerance`.
"""

from __future__ import annotations

import functools

import pytest
import torch

import solutions.loss as ref
from dino_course.grading import ExerciseNotStarted
from dino_course.grading.hints import FLOAT32_EPS, call_unmutated, expect, expect_close, expect_type
from dino_course.grading.learner import LearnerModule

st = LearnerModule("loss")
U = FLOAT32_EPS


exercise = functools.partial(pytest.mark.exercise, "4.3")  # @exercise("name"): a check of that exercise of the lesson


def outputs(seed: int, n_views: int, batch: int, k: int, n_global: int = 2, scale: float = 1.0):
    """Seeded crop-major student logits (V·B, K), teacher logits (n_global·B, K) and a center (1, K)."""
    generator = torch.Generator().manual_seed(seed)
    student = scale * torch.randn(n_views * batch, k, generator=generator)
    teacher = scale * torch.randn(n_global * batch, k, generator=generator)
    center = 0.3 * torch.randn(1, k, generator=generator)
    return student, teacher, center


# ----------------------------------------------------------------------------- tolerances


def _split(student, teacher, center, teacher_temp, student_temp, n_global):
    s, t, c = (a.detach().double() for a in (student, teacher, center))
    batch = t.shape[0] // n_global
    x = ((t - c) / teacher_temp).view(n_global, batch, -1)
    y = (s / student_temp).view(s.shape[0] // batch, batch, -1)
    return x, y, x.logsumexp(-1, keepdim=True), y.logsumexp(-1, keepdim=True)


def loss_tolerance(student, teacher, center, teacher_temp, student_temp=0.1, n_global=2) -> dict:
    """rtol/atol for comparing float32 DINO losses: the first-order rounding bound of the module docstring."""
    x, y, lse_x, lse_y = _split(student, teacher, center, teacher_temp, student_temp, n_global)
    q, minus_log_p = (x - lse_x).exp(), lse_y - y
    terms = []
    for t in range(len(x)):
        for s in range(len(y)):
            if s != t:
                h = (q[t] * minus_log_p[s]).sum(-1, keepdim=True)
                teacher_part = (q[t] * (x[t].abs() + lse_x[t].abs()) * (minus_log_p[s] - h).abs()).sum(-1)
                student_part = (q[t] * (y[s].abs() + lse_y[s].abs())).sum(-1)
                terms.append((teacher_part + student_part).mean())
    return dict(rtol=16 * U, atol=8 * U * torch.stack(terms).mean().item())


def gradient_tolerance(student, teacher, center, teacher_temp, student_temp=0.1, n_global=2) -> dict:
    """Per element (δq + δp)/(#pairs·B·τ_s), δq ≈ ulps(|x| + |lse x|)·q, δp ≈ ulps(|y| + |lse y|)·p; × 8."""
    x, y, lse_x, lse_y = _split(student, teacher, center, teacher_temp, student_temp, n_global)
    q, p = (x - lse_x).exp(), (y - lse_y).exp()
    n_pairs, batch = len(x) * (len(y) - 1), x.shape[1]
    bound = torch.zeros_like(y)
    for t in range(len(x)):
        for s in range(len(y)):
            if s != t:
                bound[s] += q[t] * (x[t].abs() + lse_x[t].abs()) + p[s] * (y[s].abs() + lse_y[s].abs())
    return dict(rtol=16 * U, atol=8 * U * bound.max().item() / (n_pairs * batch * student_temp))


def center_tolerance(center, teacher_output) -> dict:
    """A mean of n = 2B float32 rows is exact to ~n ulps of the largest entry; the momentum mix adds a few ulps."""
    scale = center.abs().max().item() + teacher_output.detach().abs().max().item()
    return dict(rtol=0, atol=(len(teacher_output) + 4) * U * scale)


# ----------------------------------------------------------------------------- recognising mistakes


def variant_loss(student, teacher, center, teacher_temp, student_temp, n_global, *, pairs="others", center_sign=1.0,
                 center_after_temp=False, teacher_layout="crop", student_layout="crop", teacher_rows=None,
                 student_rows=None):
    """The loss in float64, written as a double loop, with one semantic changed (to recognise a mistake).

    `*_layout="image"`: view v read as rows b·V + v (image-major) instead of v·B … v·B + B − 1;
    `*_rows="all"` / `"view"`: softmax over the rows (dim 0) of the whole output / of each view, instead of over K.
    """
    s, t, c = (a.detach().double() for a in (student, teacher, center))
    batch = t.shape[0] // n_global
    n_views = s.shape[0] // batch
    x = t / teacher_temp - center_sign * c if center_after_temp else (t - center_sign * c) / teacher_temp
    y = s / student_temp

    def views(values, n, layout, rows, function):
        if rows == "all":
            values = function(values, dim=0)
        parts = values.split(batch) if layout == "crop" else [values[i::n] for i in range(n)]
        return [function(part, dim=0 if rows == "view" else -1) if rows != "all" else part for part in parts]

    q_views = views(x, n_global, teacher_layout, teacher_rows, torch.softmax)
    log_p_views = views(y, n_views, student_layout, student_rows, torch.log_softmax)
    keep = {
        "others": lambda i, v: v != i,
        "all": lambda i, v: True,
        "locals": lambda i, v: v >= n_global,
    }[pairs]
    terms = [(-q_views[i] * log_p_views[v]).sum(-1).mean()
             for i in range(n_global) for v in range(n_views) if keep(i, v)]
    return torch.stack(terms).mean() if terms else torch.tensor(float("nan"), dtype=torch.float64)


def mistakes(student, teacher, center, teacher_temp, student_temp, n_global):
    """(hint, float64 loss) of each recognised mistake, most specific first."""
    args = (student, teacher, center)
    batch = teacher.shape[0] // n_global
    n_views, k = student.shape[0] // batch, student.shape[1]
    n_pairs = n_global * (n_views - 1)
    correct = variant_loss(*args, teacher_temp, student_temp, n_global)
    found = [
        (f"the loss ignores its `teacher_temp` argument (it used {default}): divide by the teacher_temp you are given",
         variant_loss(*args, default, student_temp, n_global)) for default in (0.04, 0.07) if teacher_temp != default
    ] + [
        ("the loss ignores its `student_temp` argument (it used 0.1): divide by the student_temp you are given",
         variant_loss(*args, teacher_temp, 0.1, n_global)) for _ in [0] if student_temp != 0.1
    ] + [
        ("a view is paired with itself: skip the pair (teacher view t, student view t); there are "
         "n_global_views·(V − 1) pairs", variant_loss(*args, teacher_temp, student_temp, n_global, pairs="all")),
        ("only a view with itself is skipped: the teacher's global view 0 must still be compared with the student's "
         "global view 1 (and 1 with 0), not only with the local views",
         variant_loss(*args, teacher_temp, student_temp, n_global, pairs="locals")),
        ("the center is added instead of subtracted: q = softmax((teacher_output − center) / teacher_temp)",
         variant_loss(*args, teacher_temp, student_temp, n_global, center_sign=-1.0)),
        ("the center is not used: subtract it from the teacher's logits before sharpening, "
         "q = softmax((teacher_output − center) / teacher_temp)",
         variant_loss(student, teacher, torch.zeros_like(center), teacher_temp, student_temp, n_global)),
        ("the center is subtracted after dividing by teacher_temp: centre first, then sharpen, "
         "q = softmax((teacher_output − center) / teacher_temp)",
         variant_loss(*args, teacher_temp, student_temp, n_global, center_after_temp=True)),
        ("the temperatures are swapped: the teacher's logits are divided by teacher_temp (sharper), "
         "the student's by student_temp", variant_loss(*args, student_temp, teacher_temp, n_global)),
        ("the teacher's logits are divided by student_temp: sharpen the teacher with teacher_temp",
         variant_loss(*args, student_temp, student_temp, n_global)),
        ("the student's logits are divided by teacher_temp: the student uses student_temp",
         variant_loss(*args, teacher_temp, teacher_temp, n_global)),
        ("the student's logits are not divided by student_temp: log p = log_softmax(student_output / student_temp)",
         variant_loss(*args, teacher_temp, 1.0, n_global)),
        ("the teacher's logits are not divided by teacher_temp: "
         "q = softmax((teacher_output − center) / teacher_temp)",
         variant_loss(*args, 1.0, student_temp, n_global)),
    ]
    crop_major = ("the outputs are crop-major: view v is rows v·B … v·B + B − 1 "
                  "(e.g. output.chunk(number of views)), not every V-th row")
    for layouts in (dict(teacher_layout="image", student_layout="image"), dict(student_layout="image"),
                    dict(teacher_layout="image")):
        found.append((crop_major, variant_loss(*args, teacher_temp, student_temp, n_global, **layouts)))
    over_k = "softmax / log_softmax must run over the K prototypes (dim=-1), not over the rows"
    for rows in (dict(teacher_rows="all"), dict(teacher_rows="view"), dict(student_rows="all"),
                 dict(student_rows="view"), dict(teacher_rows="all", student_rows="all"),
                 dict(teacher_rows="view", student_rows="view")):
        found.append((over_k, variant_loss(*args, teacher_temp, student_temp, n_global, **rows)))
    return correct, found + [
        ("the loss has the wrong sign: the cross-entropy is −Σ_k q_k · log p_k, which is positive", -correct),
        ("the loss is summed over the pairs: average the pair losses (divide by the number of pairs)",
         correct * n_pairs),
        ("the loss is divided by n_global_views·V: only n_global_views·(V − 1) pairs are used (a view is never "
         "paired with itself), divide by that", correct * n_pairs / (n_global * n_views)),
        ("the loss is summed over the images: average each pair's cross-entropy over the B images", correct * batch),
        ("the cross-entropy is averaged over the K prototypes: sum −q·log p over K, average only over the images "
         "and the pairs", correct / k),
    ]


def is_mistake(value: float, wrong: float, correct: float, tol: dict) -> bool:
    """`value` is the mistake's loss `wrong`, which is clearly apart from the `correct` loss.

    A mistake computed in float32 rounds like the correct loss does (within `tol`, its first-order
    bound); it is recognised when `value` is within 4 such bounds of it and it lies 10 times as far
    from the correct loss, so a correct result is never taken for a mistake.
    """
    if wrong != wrong:  # a mistake that gives NaN (e.g. a mean over no pair at all)
        return value != value
    match = 4 * (tol["atol"] + tol["rtol"] * abs(wrong))
    return abs(wrong - correct) > 10 * match and abs(value - wrong) <= match


def diagnose(got, student, teacher, center, teacher_temp, student_temp=0.1, n_global=2) -> None:
    """Raise the hint of a recognised mistake when `got` (not the correct loss) matches one."""
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        return
    value = got.detach().double().reshape(())
    tol = loss_tolerance(student, teacher, center, teacher_temp, student_temp, n_global)
    correct = variant_loss(student, teacher, center, teacher_temp, student_temp, n_global)
    if torch.isclose(value, correct, rtol=tol["rtol"], atol=tol["atol"]):
        return  # (the mistakes are computed only for a wrong loss)
    correct, candidates = mistakes(student, teacher, center, teacher_temp, student_temp, n_global)
    for hint, wrong in candidates:
        if is_mistake(value.item(), wrong.item(), correct.item(), tol):
            raise AssertionError(hint)


def check_loss(got, student, teacher, center, teacher_temp, student_temp, n_global, where: str) -> None:
    """The learner's loss against the reference's: type, dtype, shape, a recognised mistake, then the value."""
    want = ref.dino_loss(student, teacher, center, teacher_temp, student_temp, n_global_views=n_global)
    expect_type(got, want, "dino_loss")
    expect(got.dim() == 0, f"dino_loss must return a scalar (0-dim) tensor, got shape {tuple(got.shape)}: average over "
                           "the pairs and the images")
    expect(got.dtype == torch.float32, f"dino_loss must return a float32 tensor, got {got.dtype}: compute in float32 "
                                       "(or convert the result with .float())")
    diagnose(got, student, teacher, center, teacher_temp, student_temp, n_global)
    expect_close(got.detach(), want, f"dino_loss differs from the reference ({where}): check the crop-major split "
                 "(view v is rows v·B … v·B+B−1), which pairs are used and the averaging",
                 **loss_tolerance(student, teacher, center, teacher_temp, student_temp, n_global), what="dino_loss")


# ----------------------------------------------------------------------------- dino_loss


@exercise("dino_loss")
def test_dino_loss_returns_a_float32_scalar_and_leaves_its_inputs_alone():
    student, teacher, center = outputs(1, 4, 3, 10)
    got = call_unmutated(st.dino_loss, student, teacher, center, 0.04)
    want = ref.dino_loss(student, teacher, center, 0.04)
    expect_type(got, want, "dino_loss")
    expect(got.dim() == 0, f"dino_loss must return a scalar (0-dim) tensor, got shape {tuple(got.shape)}: average over "
                           "the pairs and the images")
    expect(got.dtype == torch.float32, f"dino_loss must return a float32 tensor, got {got.dtype}: compute in float32 "
                                       "(or convert the result with .float())")


@exercise("dino_loss")
@pytest.mark.parametrize("n_views,batch,k", [(2, 1, 3), (4, 4, 64), (10, 3, 40), (6, 5, 40)])
def test_dino_loss_matches_the_reference(n_views, batch, k):
    student, teacher, center = outputs(n_views * 100 + k, n_views, batch, k)
    got = st.dino_loss(student, teacher, center, 0.04)
    check_loss(got, student, teacher, center, 0.04, 0.1, 2, f"V={n_views}, B={batch}, K={k}, τ_t=0.04")


@exercise("dino_loss")
def test_dino_loss_reproduces_the_original(golden):
    config = golden["loss"]["config"]
    for index, call in enumerate(golden["loss"]["calls"]):
        args = (call["student_output"], call["teacher_output"], call["center_before"], call["teacher_temp"],
                config["student_temp"])
        # clones: the golden data stay intact whatever the learner's code does to its inputs
        got = st.dino_loss(*(a.clone() if isinstance(a, torch.Tensor) else a for a in args))
        expect_type(got, torch.zeros(()), "dino_loss")
        diagnose(got, *args)
        expect_close(got.detach().double(), torch.tensor(call["loss"], dtype=torch.float64),
                     f"call {index}: the loss differs from the original DINO's ({call['loss']:.7g})",
                     **loss_tolerance(*args), what="dino_loss")


@exercise("dino_loss")
@pytest.mark.parametrize("teacher_temp,student_temp", [(0.07, 0.1), (0.05, 0.2), (1.0, 0.5)])
def test_dino_loss_uses_both_temperatures(teacher_temp, student_temp):
    student, teacher, center = outputs(21, 5, 3, 24)
    got = st.dino_loss(student, teacher, center, teacher_temp, student_temp)
    check_loss(got, student, teacher, center, teacher_temp, student_temp, 2,
               f"teacher_temp={teacher_temp}, student_temp={student_temp}")


@exercise("dino_loss")
@pytest.mark.parametrize("n_views,batch,k,n_global", [(5, 2, 8, 1), (3, 2, 16, 3), (6, 3, 12, 4)])
def test_dino_loss_uses_n_global_views(n_views, batch, k, n_global):
    student, teacher, center = outputs(31 + n_global, n_views, batch, k, n_global)
    try:
        got = st.dino_loss(student, teacher, center, 0.04, n_global_views=n_global)
    except ExerciseNotStarted:
        raise
    except (RuntimeError, ValueError, IndexError) as exc:
        raise AssertionError(
            f"dino_loss failed with n_global_views={n_global} (the teacher saw {n_global} view(s), "
            f"{n_global}·B rows): use the n_global_views argument, not a fixed 2 ({type(exc).__name__}: {exc})"
        ) from None
    check_loss(got, student, teacher, center, 0.04, 0.1, n_global,
               f"V={n_views}, B={batch}, n_global_views={n_global}: use the n_global_views argument, not a fixed 2")


@exercise("dino_loss")
def test_dino_loss_is_numerically_stable():
    student, teacher, center = outputs(9, 4, 3, 32, scale=300.0)
    got = st.dino_loss(student, teacher, center, 0.04)
    expect_type(got, torch.zeros(()), "dino_loss")
    expect(bool(torch.isfinite(got.detach()).all()),
           "the loss is NaN/inf for confident networks: use log_softmax for the student (log(softmax) underflows to "
           "log 0 = −inf) and softmax for the teacher (exp of large logits overflows)")
    want = variant_loss(student, teacher, center, 0.04, 0.1, 2)
    expect_close(got.detach().double(), want, "the loss of large logits differs from a float64 computation: use "
                 "log_softmax and softmax, which subtract the row maximum",
                 **loss_tolerance(student, teacher, center, 0.04))


@exercise("dino_loss")
@pytest.mark.parametrize("n_views,batch,k", [(4, 3, 16), (6, 2, 40)])
def test_dino_loss_gradients_flow_to_the_student_only(n_views, batch, k):
    student, teacher, center = outputs(5, n_views, batch, k)
    student_got, teacher_got = student.clone().requires_grad_(True), teacher.clone().requires_grad_(True)
    loss = st.dino_loss(student_got, teacher_got, center, 0.04)
    expect_type(loss, torch.zeros(()), "dino_loss")
    expect(loss.requires_grad, "the loss carries no gradient: return the tensor itself (not loss.item(), a detached "
                               "copy or a new torch.tensor(...)) and keep the student's path differentiable")
    loss.backward()
    expect(teacher_got.grad is None or not teacher_got.grad.any(),
           "gradients reached the teacher's outputs: detach the teacher's logits (teacher_output.detach()); the "
           "teacher learns only by EMA")
    expect(student_got.grad is not None,
           "no gradient reached the student's outputs: keep the student's path differentiable")
    student_want = student.clone().requires_grad_(True)
    ref.dino_loss(student_want, teacher, center, 0.04).backward()
    expect_close(student_got.grad, student_want.grad, "the gradient with respect to the student's outputs differs from "
                 "the reference", **gradient_tolerance(student, teacher, center, 0.04))


@exercise("dino_loss")
def test_dino_loss_accepts_bfloat16_outputs():
    student, teacher, center = outputs(11, 4, 4, 32)
    student, teacher = student.bfloat16(), teacher.bfloat16()
    got = st.dino_loss(student, teacher, center, 0.04)
    expect_type(got, torch.zeros(()), "dino_loss")
    expect(got.dtype == torch.float32, f"for bfloat16 outputs (as under autocast) the loss must still be float32, got "
                                       f"{got.dtype}: convert the outputs with .float() first")
    want = ref.dino_loss(student.float(), teacher.float(), center, 0.04)
    expect_close(got, want, "the loss of bfloat16 outputs differs from the float32 loss of the same numbers: convert "
                 "them with .float() before the softmax", **loss_tolerance(student, teacher, center, 0.04))


@exercise("dino_loss")
def test_dino_loss_stays_float32_inside_autocast():
    student, teacher, center = outputs(12, 4, 4, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = st.dino_loss(student, teacher, center, 0.04)
    expect_type(got, torch.zeros(()), "dino_loss")
    expect(
        got.dtype == torch.float32,
        f"inside torch.autocast the loss came out as {got.dtype}: matrix products (einsum, @) run in bfloat16 there; "
        "wrap the computation in torch.autocast(device_type=..., enabled=False) or use elementwise products",
    )
    want = ref.dino_loss(student, teacher, center, 0.04)
    expect_close(got, want, "inside torch.autocast the loss must equal the float32 loss: a matrix product (einsum, @) "
                 "ran in bfloat16; disable autocast for the loss or use elementwise products",
                 **loss_tolerance(student, teacher, center, 0.04))


@exercise("dino_loss")
def test_dino_loss_invariants():
    student, teacher, center = outputs(13, 4, 3, 10)
    base = st.dino_loss(student, teacher, center, 0.04)
    expect_type(base, torch.zeros(()), "dino_loss")
    row_shift = torch.randn(6, 1, generator=torch.Generator().manual_seed(0))
    shifted = st.dino_loss(student + 5.0, teacher + row_shift, center, 0.04)  # one constant per row
    tol = loss_tolerance(student + 5.0, teacher + row_shift, center, 0.04)
    expect_close(shifted, base, "adding a constant to the logits of a row must not change the loss (softmax is "
                 "shift-invariant)", rtol=tol["rtol"], atol=2 * tol["atol"], what="dino_loss")
    uniform = st.dino_loss(torch.zeros(8, 6), torch.zeros(4, 6), torch.zeros(1, 6), 0.04)
    expect_close(uniform, torch.tensor(6.0).log(), "uniform student and teacher must give log K (here log 6)",
                 rtol=16 * U, atol=0, what="dino_loss")
    # every pair's cross-entropy is −Σ q log p ≥ 0
    expect(bool(base.detach() > 0), "the cross-entropy −Σ q log p is positive: check the sign")


@exercise("dino_loss")
def test_dino_loss_rejects_bad_inputs():
    student, teacher, center = outputs(14, 3, 2, 6)
    st.dino_loss(student, teacher, center, 0.04)  # a valid call first
    with pytest.raises(ValueError):
        st.dino_loss(torch.zeros(7, 6), torch.zeros(4, 6), torch.zeros(1, 6), 0.04)
    with pytest.raises(ValueError):
        st.dino_loss(student, teacher, center, 0.0)
    with pytest.raises(ValueError):
        st.dino_loss(student, teacher, center, 0.04, student_temp=-0.1)
    with pytest.raises(ValueError):
        st.dino_loss(student[:2], teacher, center, 0.04)  # one view only: every pair would be a view with itself


# ----------------------------------------------------------------------------- DINOLoss.forward


def golden_criterion(module, config):
    return module.DINOLoss(
        config["out_dim"],
        epochs=config["nepochs"],
        warmup_teacher_temp=config["warmup_teacher_temp"],
        teacher_temp=config["teacher_temp"],
        warmup_teacher_temp_epochs=config["warmup_teacher_temp_epochs"],
        student_temp=config["student_temp"],
        center_momentum=config["center_momentum"],
    )


def center_mistakes(center, teacher_output, momentum, student_output=None):
    """(hint, wrong center after one call) of each recognised mistake."""
    t = teacher_output.detach().double()
    c = center.double()
    mean = t.mean(0, keepdim=True)
    wrong_source = [] if student_output is None else [
        ("the center moved towards the student's outputs: it is the running mean of the *teacher's* raw logits",
         momentum * c + (1 - momentum) * student_output.detach().double().mean(0, keepdim=True)),
    ]
    return wrong_source + [
        ("the center did not move: after the loss, set self.center to update_center(self.center, teacher_output, "
         "self.center_momentum)", c),
        ("the center moved from the centred teacher logits: update it from the *raw* teacher_output",
         momentum * c + (1 - momentum) * (t - c).mean(0, keepdim=True)),
        ("the center moved with momentum 0.9 instead of the criterion's own: pass self.center_momentum to "
         "update_center", 0.9 * c + 0.1 * mean),
        ("the center was updated twice in one call: update it once, after the loss",
         momentum * (momentum * c + (1 - momentum) * mean) + (1 - momentum) * mean),
        ("the center weights are swapped: c ← m·c + (1 − m)·mean, with m = self.center_momentum",
         (1 - momentum) * c + momentum * mean),
    ]


def diagnose_center(got, center_before, teacher_output, momentum, student_output=None) -> None:
    want = momentum * center_before.double() + (1 - momentum) * teacher_output.detach().double().mean(0, keepdim=True)
    tol = center_tolerance(center_before, teacher_output)["atol"]
    got = got.detach().double()
    if (got - want).abs().max() <= tol:
        return
    for hint, wrong in center_mistakes(center_before, teacher_output, momentum, student_output):
        if (wrong - want).abs().max() > 40 * tol and (got - wrong).abs().max() <= 4 * tol:
            raise AssertionError(hint)


def diagnose_forward_loss(got, student, teacher, center_before, center_after, criterion, epoch) -> None:
    """Raise a specific hint when the learner's loss is the loss of a recognised mistake."""
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        return
    value = got.detach().double().reshape(())
    temps = [float(v) for v in criterion.teacher_temp_schedule]
    tau, tau_s, n_global = temps[epoch], criterion.student_temp, criterion.n_global_views
    want = ref.dino_loss(student, teacher, center_before, tau, tau_s, n_global).double()
    tol = loss_tolerance(student, teacher, center_before, tau, tau_s, n_global)
    if abs(value - want) <= tol["atol"] + tol["rtol"] * abs(want):
        return
    candidates = [
        ("the loss was computed with the center already updated: compute the loss with the current center first, "
         "then update the center", dict(center=center_after)),
        ("the loss ignores the criterion's student_temp: pass self.student_temp to dino_loss", dict(student_temp=0.1)),
    ]
    candidates += [(f"epoch {epoch} used τ_t = {other:g} instead of this epoch's {tau:g}: use "
                    "self.teacher_temp(epoch)", dict(teacher_temp=other))
                   for other in sorted(set(temps) | {0.04, 0.07})]
    for hint, change in candidates:
        settings = {"center": center_before, "teacher_temp": tau, "student_temp": tau_s, **change}
        wrong = ref.dino_loss(student, teacher, settings["center"], settings["teacher_temp"], settings["student_temp"],
                              n_global).double()
        if is_mistake(value.item(), wrong.item(), want.item(), tol):
            raise AssertionError(hint)


@exercise("DINOLoss.forward")
def test_forward_returns_the_loss_and_updates_its_center_buffer_in_place():
    criterion = st.DINOLoss(12, epochs=3, warmup_teacher_temp_epochs=2)
    buffer = criterion.center
    student, teacher, _ = outputs(17, 4, 3, 12)
    student.requires_grad_(True)
    teacher.requires_grad_(True)  # a teacher that (wrongly) carries a graph must not leak into the center
    loss = call_unmutated(criterion, student, teacher, 1)
    expect_type(loss, torch.zeros(()), "DINOLoss.forward")
    expect(loss.dim() == 0, f"DINOLoss.forward must return the scalar loss, got shape {tuple(loss.shape)}")
    expect(loss.requires_grad, "the returned loss carries no gradient: return the tensor dino_loss gave (not "
                               "loss.item() or a detached copy), so that loss.backward() trains the student")
    expect(criterion.center is buffer, "self.center was replaced by a new tensor: copy the new values into the buffer "
                                       "in place (self.center.copy_(...)), so the buffer object stays the same")
    expect("center" in criterion.state_dict(), "the center must stay a registered buffer, so checkpoints save it")
    expect(not criterion.center.requires_grad,
           "the center buffer now requires gradients: update it without autograd (update_center does, or use "
           "torch.no_grad() and teacher_output.detach())")
    diagnose_center(criterion.center, torch.zeros(1, 12), teacher, criterion.center_momentum, student)
    want = ref.update_center(torch.zeros(1, 12), teacher.detach(), 0.9)
    expect_close(criterion.center, want,
                 "after one call from a zero center, center = 0.1 · mean of the teacher's logits",
                 **center_tolerance(torch.zeros(1, 12), teacher), what="DINOLoss.forward")


@exercise("DINOLoss.forward")
def test_forward_reproduces_three_successive_calls_of_the_original(golden):
    config = golden["loss"]["config"]
    criterion = golden_criterion(st, config)
    for index, call in enumerate(golden["loss"]["calls"]):
        args = (call["student_output"], call["teacher_output"])
        loss = criterion(*(a.clone() for a in args), call["epoch"])  # clones: the golden data stay intact
        expect_type(loss, torch.zeros(()), "DINOLoss.forward")
        diagnose_forward_loss(loss, *args, call["center_before"], call["center_after"], criterion, call["epoch"])
        expect_close(
            loss.detach().double(),
            torch.tensor(call["loss"], dtype=torch.float64),
            f"call {index} (epoch {call['epoch']}): the loss differs from the original's; "
            "compute it with the center *before* updating it, and τ_t = self.teacher_temp(epoch)",
            **loss_tolerance(*args, call["center_before"], call["teacher_temp"]), what="DINOLoss.forward",
        )
        diagnose_center(criterion.center, call["center_before"], call["teacher_output"], config["center_momentum"],
                        args[0])
        expect_close(
            criterion.center,
            call["center_after"],
            f"call {index}: the center after the call differs from the original's: update it after the loss, from the "
            "raw teacher logits",
            **center_tolerance(call["center_before"], call["teacher_output"]), what="DINOLoss.forward",
        )


@exercise("DINOLoss.forward")
@pytest.mark.parametrize("setting", ["student_temp", "center_momentum", "n_global_views"])
def test_forward_uses_the_criterion_settings(setting):
    kwargs = {"student_temp": dict(student_temp=0.25), "center_momentum": dict(center_momentum=0.6),
              "n_global_views": dict(n_global_views=1)}[setting]
    n_global = kwargs.get("n_global_views", 2)
    got_criterion = st.DINOLoss(16, epochs=4, warmup_teacher_temp_epochs=2, **kwargs)
    want_criterion = ref.DINOLoss(16, epochs=4, warmup_teacher_temp_epochs=2, **kwargs)
    start = 0.2 * torch.randn(1, 16, generator=torch.Generator().manual_seed(3))
    got_criterion.center.copy_(start)
    want_criterion.center.copy_(start)
    student, teacher, _ = outputs(41, 4, 3, 16, n_global)
    try:
        loss = got_criterion(student, teacher, 1)
    except ExerciseNotStarted:
        raise
    except ValueError as exc:
        if setting != "n_global_views":
            raise
        raise AssertionError(f"DINOLoss(n_global_views={n_global}) raised ValueError: pass self.n_global_views to "
                             f"dino_loss ({exc})") from None
    want = want_criterion(student, teacher, 1)
    expect_type(loss, want, "DINOLoss.forward")
    diagnose_forward_loss(loss, student, teacher, start, want_criterion.center, want_criterion, 1)
    tol = loss_tolerance(student, teacher, start, want_criterion.teacher_temp(1), want_criterion.student_temp, n_global)
    expect_close(loss.detach(), want, f"with {setting}={kwargs[setting]} the loss differs from the reference: pass "
                 f"self.{setting} on", **tol, what="DINOLoss.forward")
    diagnose_center(got_criterion.center, start, teacher, want_criterion.center_momentum, student)
    expect_close(got_criterion.center, want_criterion.center,
                 f"with {setting}={kwargs[setting]} the center differs from the reference",
                 **center_tolerance(start, teacher), what="DINOLoss.forward")


# ----------------------------------------------------------------------------- integration: your whole chain


@exercise("DINOLoss.forward")
@pytest.mark.integration("dino_loss", "4.1/update_center", "4.2/sharpen", "4.2/teacher_temperature_schedule")
def test_integration_your_loss_chain_reproduces_the_original(golden):
    """Integration check: your DINOLoss.forward with your own dino_loss (4.3), update_center (4.1), sharpen and
    teacher temperature schedule (4.2) reproduces the original's three successive calls. It runs only once each
    of those exercises passes its own checks."""
    test_forward_reproduces_three_successive_calls_of_the_original(golden)
