"""Hidden checks for Lesson 4.3 (`dino_course/loss.py`).

Tolerances: the loss is a float32 mean of B·K products per pair; a double loop and the
vectorised reference sum in different orders and differ by a few ulps of the loss (the golden
losses, ≈ 20, were matched to 1.9e-6 absolute, 1e-7 relative). rtol 1e-5 / atol 1e-6 accepts any
order of summation while every semantic mistake below moves the loss by > 1e-3 relative.
Gradients are compared with rtol 1e-4 / atol 1e-7 for the same reason (they are tiny: 1/(#pairs·B)).
"""

from __future__ import annotations

import pytest
import torch

import solutions.loss as ref
from dino_course.grading.hints import expect, expect_close
from dino_course.grading.learner import LearnerModule

st = LearnerModule("loss")
TOL = dict(rtol=1e-5, atol=1e-6)
GRAD_TOL = dict(rtol=1e-4, atol=1e-7)
GOLDEN_TOL = dict(rtol=1e-6, atol=0)  # golden/README: "1e-6 (relative for the loss)"
CENTER_TOL = dict(rtol=0, atol=1e-6)


def exercise(name: str):
    return pytest.mark.exercise("4.3", name)


def outputs(seed: int, n_views: int, batch: int, k: int, n_global: int = 2, scale: float = 1.0):
    generator = torch.Generator().manual_seed(seed)
    student = scale * torch.randn(n_views * batch, k, generator=generator)
    teacher = scale * torch.randn(n_global * batch, k, generator=generator)
    center = 0.3 * torch.randn(1, k, generator=generator)
    return student, teacher, center


def loop_loss(student, teacher, center, teacher_temp, student_temp, n_global, skip_same=True, center_sign=1.0):
    """An independent double-loop version, used to recognise common mistakes."""
    batch = teacher.shape[0] // n_global
    q = torch.softmax((teacher - center_sign * center) / teacher_temp, dim=-1).chunk(n_global)
    log_p = torch.log_softmax(student / student_temp, dim=-1).chunk(student.shape[0] // batch)
    terms = [(-q[t] * log_p[s]).sum(-1).mean() for t in range(n_global) for s in range(len(log_p)) if not (skip_same and s == t)]
    return torch.stack(terms).mean()


def diagnose(got: torch.Tensor, student, teacher, center, teacher_temp, student_temp, n_global) -> None:
    """Raise the hint of a recognised mistake, if `got` matches one."""
    mistakes = {
        "pairs of a view with itself are included: skip student view s when it is the teacher's view t": loop_loss(
            student, teacher, center, teacher_temp, student_temp, n_global, skip_same=False
        ),
        "the center is added instead of subtracted: q = softmax((teacher − center) / τ_t)": loop_loss(
            student, teacher, center, teacher_temp, student_temp, n_global, center_sign=-1.0
        ),
        "the center is not used: the teacher logits must be centred before sharpening": loop_loss(
            student, teacher, torch.zeros_like(center), teacher_temp, student_temp, n_global
        ),
        "the temperatures are swapped: the teacher uses teacher_temp (sharper), the student student_temp": loop_loss(
            student, teacher, center, student_temp, teacher_temp, n_global
        ),
    }
    n_views = student.shape[0] * n_global // teacher.shape[0]
    correct = loop_loss(student, teacher, center, teacher_temp, student_temp, n_global)
    n_pairs = n_global * (n_views - 1)
    mistakes["the loss is summed over pairs: average the pair losses (divide by the number of pairs)"] = correct * n_pairs
    mistakes["the loss is summed over the batch: average each pair's cross-entropy over the B images"] = correct * (
        teacher.shape[0] // n_global
    )
    for hint, value in mistakes.items():
        if not torch.allclose(value, correct, **TOL) and torch.allclose(got.detach().float(), value, **TOL):
            raise AssertionError(hint)


# ----------------------------------------------------------------------------- dino_loss


@exercise("dino_loss")
@pytest.mark.parametrize("n_views,batch,k,n_global", [(2, 1, 3, 2), (4, 4, 64, 2), (10, 3, 40, 2), (6, 5, 40, 2), (5, 2, 8, 1), (3, 2, 16, 3)])
@pytest.mark.parametrize("teacher_temp,student_temp", [(0.04, 0.1), (0.07, 0.1), (1.0, 0.5)])
def test_dino_loss_matches_reference(n_views, batch, k, n_global, teacher_temp, student_temp):
    student, teacher, center = outputs(n_views * 100 + k, n_views, batch, k, n_global)
    got = st.dino_loss(student, teacher, center, teacher_temp, student_temp, n_global_views=n_global)
    want = ref.dino_loss(student, teacher, center, teacher_temp, student_temp, n_global_views=n_global)
    expect(isinstance(got, torch.Tensor) and got.dim() == 0, f"dino_loss must return a scalar tensor, got {got!r:.80}")
    if not torch.allclose(got.detach().float(), want, **TOL):
        diagnose(got, student, teacher, center, teacher_temp, student_temp, n_global)
    expect_close(
        got,
        want,
        f"dino_loss differs from the reference (V={n_views}, B={batch}, K={k}, {n_global} global views): "
        "check the crop-major split (view v is rows v·B … v·B+B−1) and the averaging",
        **TOL,
    )


@exercise("dino_loss")
def test_dino_loss_reproduces_the_original(golden):
    config = golden["loss"]["config"]
    for index, call in enumerate(golden["loss"]["calls"]):
        got = st.dino_loss(call["student_output"], call["teacher_output"], call["center_before"], call["teacher_temp"], config["student_temp"])
        if not torch.allclose(torch.as_tensor(got).float(), torch.tensor(call["loss"]), rtol=1e-6, atol=0):
            diagnose(torch.as_tensor(got), call["student_output"], call["teacher_output"], call["center_before"], call["teacher_temp"], config["student_temp"], 2)
        expect_close(torch.as_tensor(got).double(), torch.tensor(call["loss"], dtype=torch.float64), f"call {index}: the loss differs from the original DINO's", **GOLDEN_TOL)


@exercise("dino_loss")
@pytest.mark.parametrize("n_views,batch,k", [(4, 3, 16), (6, 2, 40)])
def test_dino_loss_gradients_flow_to_the_student_only(n_views, batch, k):
    student, teacher, center = outputs(5, n_views, batch, k)
    student_got, teacher_got = student.clone().requires_grad_(True), teacher.clone().requires_grad_(True)
    st.dino_loss(student_got, teacher_got, center, 0.04).backward()
    student_want = student.clone().requires_grad_(True)
    ref.dino_loss(student_want, teacher, center, 0.04).backward()
    expect(
        teacher_got.grad is None or not teacher_got.grad.any(),
        "gradients reached the teacher's outputs: detach the teacher probabilities (the teacher learns only by EMA)",
    )
    expect(student_got.grad is not None, "no gradient reached the student's outputs: keep the student's path differentiable")
    expect_close(student_got.grad, student_want.grad, "the gradient with respect to the student's outputs differs from the reference", **GRAD_TOL)


@exercise("dino_loss")
def test_dino_loss_is_numerically_stable():
    student, teacher, center = outputs(9, 4, 3, 32, scale=300.0)
    got = st.dino_loss(student, teacher, center, 0.04)
    expect(
        bool(torch.isfinite(got)),
        "the loss is NaN/inf for confident networks: use log_softmax for the student (log(softmax) underflows to log 0)",
    )
    want = loop_loss(student.double(), teacher.double(), center.double(), 0.04, 0.1, 2)
    expect_close(got.double(), want, "the loss of large logits differs from a float64 computation", rtol=1e-5, atol=1e-3)


@exercise("dino_loss")
def test_dino_loss_accepts_bfloat16_outputs():
    student, teacher, center = outputs(11, 4, 4, 32)
    got = st.dino_loss(student.bfloat16(), teacher.bfloat16(), center, 0.04)
    want = ref.dino_loss(student.bfloat16(), teacher.bfloat16(), center, 0.04)
    expect(got.dtype == torch.float32, f"compute the loss in float32 even for bfloat16 outputs (autocast), got {got.dtype}")
    expect_close(got, want, "the loss of bfloat16 outputs differs: convert them with .float() first", **TOL)


@exercise("dino_loss")
def test_dino_loss_invariants():
    student, teacher, center = outputs(13, 4, 3, 10)
    base = st.dino_loss(student, teacher, center, 0.04)
    shifted = st.dino_loss(student + 5.0, teacher + torch.randn(6, 1), center, 0.04)  # one constant per row
    expect_close(shifted, base, "adding a constant to the logits of every row must not change the loss (softmax is shift-invariant)", **TOL)
    uniform = st.dino_loss(torch.zeros(8, 6), torch.zeros(4, 6), torch.zeros(1, 6), 0.04)
    expect_close(uniform, torch.tensor(1.791759), "uniform student and teacher must give log K", **TOL)
    with pytest.raises(ValueError):
        st.dino_loss(torch.zeros(7, 6), torch.zeros(4, 6), torch.zeros(1, 6), 0.04)


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


@exercise("DINOLoss.forward")
def test_dino_loss_module_reproduces_three_successive_calls(golden):
    config = golden["loss"]["config"]
    criterion = golden_criterion(st, config)
    for index, call in enumerate(golden["loss"]["calls"]):
        loss = criterion(call["student_output"], call["teacher_output"], call["epoch"])
        expect_close(
            torch.as_tensor(loss).double(),
            torch.tensor(call["loss"], dtype=torch.float64),
            f"call {index} (epoch {call['epoch']}): the loss differs from the original's; "
            "compute it with the center *before* updating it, and τ_t of this epoch",
            **GOLDEN_TOL,
        )
        expect_close(
            criterion.center,
            call["center_after"],
            f"call {index}: the center after the call differs from the original's: update it after the loss, from the raw teacher logits",
            **CENTER_TOL,
        )


@exercise("DINOLoss.forward")
def test_dino_loss_module_keeps_its_center_buffer():
    criterion = st.DINOLoss(12, epochs=3, warmup_teacher_temp_epochs=2)
    buffer = criterion.center
    student, teacher, _ = outputs(17, 4, 3, 12)
    teacher.requires_grad_(True)
    criterion(student.requires_grad_(True), teacher, 1)
    expect(criterion.center is buffer, "replace the center's values in place (self.center.copy_(...)): the buffer object must stay the same")
    expect("center" in criterion.state_dict(), "the center must stay a registered buffer, so checkpoints save it")
    expect(not criterion.center.requires_grad, "the center buffer must not require gradients")
    want = ref.update_center(torch.zeros(1, 12), teacher.detach(), 0.9)
    expect_close(criterion.center, want, "after one call from a zero center, center = 0.1 · mean of the teacher logits", **CENTER_TOL)
