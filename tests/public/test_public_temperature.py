"""Public checks of Lesson 4.2 (`dino_course/temperature.py`): no reference solution needed.

They run the docstring examples and check properties every correct implementation has. Passing
them does not mean the hidden checks pass: those also compare values with the reference.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from dino_course.instructor.public_checks import CourseModule, run_documented_examples

LESSON = "4.2"
tp = CourseModule("temperature")
EXERCISES = ["sharpen", "entropy", "teacher_temperature_schedule"]


exercise = functools.partial(pytest.mark.exercise, LESSON)  # @exercise("name"): a check of that exercise of the lesson


@pytest.mark.parametrize("name", [pytest.param(n, marks=exercise(n), id=n) for n in EXERCISES])
def test_documented_example(name):
    run_documented_examples(tp, f"{LESSON}/{name}")


@exercise("sharpen")
def test_rows_are_distributions_even_for_huge_logits():
    x = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(0))
    before = x.clone()
    p = tp.sharpen(x, 0.5)
    assert p.shape == x.shape, f"shape must stay {tuple(x.shape)}, got {tuple(p.shape)}"
    torch.testing.assert_close(p.sum(-1), torch.ones(3, 4), msg="each row (last dimension) must sum to 1")
    assert torch.equal(x, before), "sharpen changed its input in place"
    huge = tp.sharpen(torch.tensor([[1000.0, 999.0, -1000.0]]), 0.04)
    assert bool(torch.isfinite(huge).all()), (
        "logits of 1000 at τ = 0.04 must not give inf or NaN: subtract the row maximum"
    )
    assert float(tp.sharpen(x, 0.1).max()) > float(p.max()), "a lower temperature must sharpen (larger top probability)"


@exercise("entropy")
def test_entropy_bounds():
    uniform = torch.full((2, 5), 0.2)
    torch.testing.assert_close(tp.entropy(uniform), torch.full((2,), math.log(5)), msg="uniform over K: log K")
    one_hot = torch.eye(4)
    h = tp.entropy(one_hot)
    assert h.shape == (4,) and bool((h == 0).all()), "one-hot rows: exactly 0 (0 · log 0 = 0, not NaN)"
    assert tp.entropy(torch.full((2, 3, 4), 0.25)).shape == (2, 3), "one entropy per row of the last dimension"


@exercise("teacher_temperature_schedule")
def test_warm_up_then_constant():
    schedule = tp.teacher_temperature_schedule(0.02, 0.06, warmup_epochs=5, epochs=8)
    assert isinstance(schedule, torch.Tensor) and schedule.dtype == torch.float64 and schedule.shape == (8,), (
        "return a float64 tensor with one value per epoch"
    )
    assert abs(float(schedule[0]) - 0.02) < 1e-12 and abs(float(schedule[4]) - 0.06) < 1e-12, "warm-up ends included"
    assert bool((schedule[4:] == schedule[4]).all()), "after the warm-up the temperature is constant"
    flat = tp.teacher_temperature_schedule(0.02, 0.06, warmup_epochs=0, epochs=3)
    assert bool((flat == 0.06).all()), "no warm-up: teacher_temp everywhere"
