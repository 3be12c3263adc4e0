"""Public checks of Lesson 4.1 (`dino_course/centering.py`): no reference solution needed.

They run the docstring examples and check properties every correct implementation has. Passing
them does not mean the hidden checks pass: those also compare values with the reference.
"""

from __future__ import annotations

import functools

import pytest
import torch

from dino_course.instructor.public_checks import CourseModule, run_documented_examples

LESSON = "4.1"
ce = CourseModule("centering")


exercise = functools.partial(pytest.mark.exercise, LESSON)  # @exercise("name"): a check of that exercise of the lesson


@exercise("update_center")
def test_documented_example():
    run_documented_examples(ce, f"{LESSON}/update_center")


@exercise("update_center")
@pytest.mark.parametrize("momentum", [0.0, 0.9, 1.0])
def test_center_is_a_running_mean(momentum):
    generator = torch.Generator().manual_seed(0)
    center = torch.randn(1, 5, generator=generator)
    teacher_output = torch.randn(6, 5, generator=generator, requires_grad=True)
    before = center.clone()
    new = ce.update_center(center, teacher_output, momentum)
    assert isinstance(new, torch.Tensor) and new.shape == (1, 5), "return a new (1, K) tensor"
    assert not new.requires_grad, "no gradient may flow into the center: compute it under torch.no_grad() or detach"
    assert torch.equal(center, before), "update_center changed its input `center`: return a new tensor"
    expected = momentum * before + (1 - momentum) * teacher_output.detach().mean(dim=0, keepdim=True)
    torch.testing.assert_close(new, expected, msg=f"c_new = m·c + (1 − m)·(batch mean) at m = {momentum}")
