"""Public checks of Lesson 4.3 (`dino_course/loss.py`): no reference solution needed.

They run the docstring examples and check properties every correct implementation has. Passing
them does not mean the hidden checks pass: those also compare values with the reference.
"""

from __future__ import annotations

import functools

import pytest
import torch

from dino_course.instructor.public_checks import CourseModule, run_documented_examples

LESSON = "4.3"
ls = CourseModule("loss")
EXERCISES = ["dino_loss", "DINOLoss.forward"]


exercise = functools.partial(pytest.mark.exercise, LESSON)  # @exercise("name"): a check of that exercise of the lesson


def outputs(seed: int = 0, views: int = 4, batch: int = 3, k: int = 5):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(views * batch, k, generator=generator).requires_grad_(True)
    teacher = torch.randn(2 * batch, k, generator=generator).requires_grad_(True)
    center = torch.randn(1, k, generator=generator)
    return student, teacher, center


@pytest.mark.parametrize("name", [pytest.param(n, marks=exercise(n), id=n) for n in EXERCISES])
def test_documented_example(name):
    run_documented_examples(ls, f"{LESSON}/{name}")


@exercise("dino_loss")
def test_loss_is_a_positive_scalar_with_gradient_to_the_student_only():
    student, teacher, center = outputs()
    loss = ls.dino_loss(student, teacher, center, teacher_temp=0.04)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, "return a scalar tensor"
    assert loss.dtype == torch.float32 and float(loss.detach()) > 0, "a cross-entropy: a positive float32 scalar"
    loss.backward()
    assert student.grad is not None, "the loss needs a gradient towards student_output"
    assert teacher.grad is None, "no gradient may reach teacher_output: detach the teacher's probabilities"


@exercise("dino_loss")
def test_center_is_subtracted_and_softmax_shifts_cancel():
    student, teacher, center = outputs(1)
    base = ls.dino_loss(student, teacher, torch.zeros_like(center), teacher_temp=0.04)
    shifted = ls.dino_loss(student, teacher + center, center, teacher_temp=0.04)
    torch.testing.assert_close(
        shifted, base, msg="shifting the teacher logits by the center must cancel: subtract the center"
    )
    row_shift = torch.randn(student.shape[0], 1, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ls.dino_loss(student + row_shift, teacher, center, 0.04),
                               ls.dino_loss(student, teacher, center, 0.04),
                               msg="adding a constant to a row of logits must not change its softmax")


@exercise("DINOLoss.forward")
def test_forward_returns_loss_and_moves_the_center_in_place():
    student, teacher, _ = outputs(3)
    criterion = ls.DINOLoss(out_dim=5, epochs=2)
    buffer = criterion.center
    loss = criterion(student, teacher, epoch=1)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, "return the scalar loss"
    assert criterion.center is buffer, "copy the new center into the buffer in place (self.center.copy_(...))"
    m = criterion.center_momentum
    expected = (1 - m) * teacher.detach().mean(dim=0, keepdim=True)
    torch.testing.assert_close(criterion.center, expected, msg="the center must move with the raw teacher outputs")
    assert not criterion.center.requires_grad, "the center must not require gradients"
