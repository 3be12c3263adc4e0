"""Checks of the given code of `dino_course/loss.py` (Lesson 4.3): `DINOLoss` refuses bad settings
with one line naming the argument and the value, and refuses non-finite values.

A NaN or infinite network output must raise before the learner's `forward` runs, and a
non-finite loss must raise after the center has been put back: the center never takes in a
non-finite batch (issue 15: one NaN batch used to turn it into NaN for good).
"""

from __future__ import annotations

import math

import pytest
import torch

from dino_course import loss

pytestmark = pytest.mark.maintainer


@pytest.fixture
def criterion(reference_on):
    from dino_course.loss import DINOLoss

    criterion = DINOLoss(8, epochs=2)
    criterion(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)), torch.randn(4, 8), 0)  # a center ≠ 0
    return criterion


def outputs(seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(8, 8, generator=generator), torch.randn(4, 8, generator=generator)  # V = 4 views of B = 2


@pytest.mark.parametrize("name, bad", [("student_output", float("nan")), ("teacher_output", float("nan")),
                                       ("teacher_output", float("inf")), ("student_output", -float("inf"))])
@pytest.mark.parametrize("as_keywords", [False, True])
def test_a_non_finite_output_raises_before_the_center_moves(criterion, name, bad, as_keywords):
    from dino_course.loss import NonFiniteValueError

    student, teacher = outputs()
    (student if name == "student_output" else teacher)[1, 2] = bad
    center = criterion.center.clone()
    with pytest.raises(NonFiniteValueError, match=f"{name} holds"):
        if as_keywords:
            criterion(student_output=student, teacher_output=teacher, epoch=0)
        else:
            criterion(student, teacher, 0)
    assert torch.equal(criterion.center, center)
    assert isinstance(NonFiniteValueError("x"), FloatingPointError)


def test_a_non_finite_loss_of_finite_outputs_puts_the_center_back(criterion):
    from dino_course.loss import NonFiniteValueError

    student, teacher = outputs()
    teacher = teacher * 1e37  # finite, but (teacher - center) / 0.04 overflows float32: the targets are NaN
    center = criterion.center.clone()
    buffer = criterion.center
    with pytest.raises(NonFiniteValueError, match="the loss holds"):
        criterion(student, teacher, 0)
    assert torch.equal(criterion.center, center) and criterion.center is buffer


def test_finite_calls_are_unchanged(criterion):
    from dino_course.loss import dino_loss
    from dino_course.centering import update_center

    student, teacher = outputs(2)
    center = criterion.center.clone()
    loss = criterion(student, teacher, 1)
    assert torch.equal(loss, dino_loss(student, teacher, center, criterion.teacher_temp(1)))
    assert torch.equal(criterion.center, update_center(center, teacher, criterion.center_momentum))


def test_an_updated_center_that_is_not_finite_is_put_back(criterion, monkeypatch):
    """Finite logits whose mean overflows (float32 accumulation, e.g. on a GPU) give a non-finite center."""
    import dino_course.loss as loss_module
    from dino_course.loss import NonFiniteValueError

    monkeypatch.setattr(loss_module, "update_center", lambda center, teacher, momentum: torch.full_like(center, float("inf")))
    center = criterion.center.clone()
    with pytest.raises(NonFiniteValueError, match="the updated center holds 0 NaN and 8 infinite"):
        criterion(*outputs(), 0)
    assert torch.equal(criterion.center, center)


def test_large_finite_outputs_whose_sum_overflows_are_accepted(criterion):
    """The quick test (a finite sum) falls back to checking value by value: no false alarm."""
    student, teacher = (torch.full_like(tensor, 1e37) for tensor in outputs())
    assert not torch.isfinite(student.sum())  # 64 × 1e37 overflows float32
    loss = criterion(student, teacher, 0)
    assert bool(torch.isfinite(loss)) and bool(torch.isfinite(criterion.center).all())


@pytest.mark.parametrize(
    "argument, value, expected",
    [
        ("out_dim", 0, "a positive int"), ("epochs", True, "a positive int"),
        ("teacher_temp", 0.0, "a positive finite number"), ("teacher_temp", math.nan, "a positive finite number"),
        ("warmup_teacher_temp", math.inf, "a positive finite number"), ("warmup_teacher_temp", "0.04", "a positive finite number"),
        ("student_temp", -0.1, "a positive finite number"), ("student_temp", math.inf, "a positive finite number"),
        ("warmup_teacher_temp_epochs", -1, "a non-negative int"), ("warmup_teacher_temp_epochs", True, "a non-negative int"),
        ("center_momentum", 1.5, r"in \[0, 1\]"), ("center_momentum", math.nan, r"in \[0, 1\]"),
        ("center_momentum", "0.9", r"in \[0, 1\]"), ("n_global_views", 0, "a positive int"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(argument, value, expected):
    settings = {"out_dim": 4, "epochs": 3, argument: value}
    with pytest.raises(ValueError, match=rf"^{argument} must be {expected}, got {value!r}$".replace("(", r"\(")):
        loss.DINOLoss(**settings)


def test_the_paper_settings_are_taken():
    criterion = loss.DINOLoss(65536, epochs=100)
    assert criterion.center.shape == (1, 65536) and criterion.n_global_views == 2
