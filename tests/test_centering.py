"""Hidden checks for Lesson 4.1 (`dino_course/centering.py`).

Checks run from specific to general, so the first failing one names the mistake: nothing
returned, the wrong shape or dtype, an input changed in place, a center still attached to the
autograd graph, the typical wrong formulas (swapped weights, a sum instead of a mean, the
mean over the wrong axis, centred logits, ...), and only then the comparison with the
reference and with the original DINO's numbers.

Tolerance (`center_tolerance`): a float32 mean of n rows is accurate to about
sqrt(n)·eps·max|x| (n roundings of partial sums up to n·max|x|, of random sign, divided by n),
whichever order the rows are summed in (torch.sum, a Python loop, float64); the EMA step adds
a few eps of |c|. Every real mistake moves the center by a visible fraction of its size.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

import solutions.centering as ref
from dino_course.grading.hints import FLOAT32_EPS, call_unmutated, expect, expect_close, expect_type
from dino_course.grading.learner import LearnerModule

from float64_close import close  # tests/float64_close.py

st = LearnerModule("centering")


exercise = functools.partial(pytest.mark.exercise, "4.1")  # @exercise("name"): a check of that exercise of the lesson


def inputs(seed: int, rows: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, k, generator=generator), 3 * torch.randn(rows, k, generator=generator) + 1


def center_tolerance(center: torch.Tensor, teacher_output: torch.Tensor) -> dict:
    """4× the rounding two correct float32 centers may differ by (see the module docstring)."""
    rows = teacher_output.shape[0]
    largest = float(teacher_output.detach().float().abs().max())
    return dict(rtol=0, atol=4 * FLOAT32_EPS * (math.sqrt(rows) * largest + float(center.abs().max()) + 1))


def check_shape(got, center: torch.Tensor, teacher_output: torch.Tensor) -> None:
    expect_type(got, center, "update_center")
    k = teacher_output.shape[1]
    shape = tuple(got.shape)
    if shape == (1, k):
        return
    if shape == (k,):
        hint = "keep the center's shape (1, K): take the mean with keepdim=True (or reshape it)"
    elif shape[:1] == (teacher_output.shape[0],) or shape == (1, 1):
        hint = "average over the rows (dim 0), one mean per output dimension, not over the K outputs (dim 1)"
    else:
        hint = "the new center has the old center's shape (1, K): m·c + (1 − m)·(mean over the rows, keepdim=True)"
    raise AssertionError(f"update_center returned shape {shape}, expected (1, {k}): {hint}")


def center_mistake(
    got: torch.Tensor, center: torch.Tensor, teacher_output: torch.Tensor, momentum: float
) -> str | None:
    """A hint naming the mistake when `got` is one of the typical wrong centers."""
    c, x, m = center.double(), teacher_output.detach().double(), momentum
    mean = x.mean(0, keepdim=True)
    want = m * c + (1 - m) * mean
    tol = center_tolerance(center, teacher_output)
    candidates = [
        (m * mean + (1 - m) * c,
         f"the weights are swapped: the old center keeps `momentum` (m = {m}), the batch mean gets 1 − m"),
        (m * c + (1 - m) * x.mean(1).mean().expand_as(c),
         "average over the rows (dim 0), one mean per output dimension, not over the K outputs"),
        (m * c + (1 - m) * x.sum(0, keepdim=True),
         "divide the sum of the rows by their number: the center moves towards the batch *mean*"),
        (m * c + (1 - m) * x.sum(0, keepdim=True) / x.shape[1],
         "divide by the number of rows len(teacher_output) (2B), not by the number of outputs K"),
        (m * c + (1 - m) * (x - c).mean(0, keepdim=True),
         "average the raw teacher logits, not the centred ones (x − c): the center is a mean of g_t(x)"),
        (m * c + mean, "the batch mean is weighted by 1 − m: c ← m·c + (1 − m)·mean"),
        (c + (1 - m) * mean, "the old center is weighted by m: c ← m·c + (1 − m)·mean"),
        (0.9 * c + 0.1 * mean, f"use the `momentum` argument (here {m}), not a fixed 0.9"),
        (mean, "the new center is not only the batch mean: keep m·c of the old center"),
        (c, "the center did not move: return m·c + (1 − m)·(mean of the rows)"),
    ]
    for candidate, hint in candidates:
        if close(got, candidate, tol) and not close(want, candidate, tol):
            return hint
    return None


@exercise("update_center")
def test_update_center_returns_a_new_float32_center_and_leaves_its_inputs_alone():
    center, teacher_output = inputs(1, 6, 5)
    got = call_unmutated(st.update_center, center, teacher_output, 0.9)
    check_shape(got, center, teacher_output)
    expect(got.dtype == torch.float32, f"the center must stay float32, got {got.dtype}")
    expect(got is not center, "return a new tensor, not the input center")
    mistake = center_mistake(got, center, teacher_output, 0.9)
    expect(mistake is None, mistake or "")
    expect_close(
        got, ref.update_center(center, teacher_output, 0.9),
        "update_center(momentum=0.9) is wrong: expected m·c + (1 − m)·(mean over the 2B rows), shape (1, K)",
        **center_tolerance(center, teacher_output),
    )


@exercise("update_center")
def test_update_center_is_outside_autograd():
    center, features = inputs(1, 6, 5)
    weight = torch.ones(1, 5, requires_grad=True)
    teacher_output = features * weight  # part of a graph, as the teacher's logits would be without no_grad
    got = st.update_center(center, teacher_output, 0.9)
    check_shape(got, center, teacher_output)
    expect(
        not got.requires_grad and got.grad_fn is None,
        "the new center is part of the autograd graph: compute it under torch.no_grad() "
        "(or from teacher_output.detach())",
    )


@exercise("update_center")
@pytest.mark.parametrize("rows,k", [(2, 1), (4, 7), (10, 40), (64, 256)])
@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9, 1.0])
def test_update_center_matches_reference(rows, k, momentum):
    center, teacher_output = inputs(rows * k, rows, k)
    got = st.update_center(center, teacher_output, momentum)
    check_shape(got, center, teacher_output)
    mistake = center_mistake(got, center, teacher_output, momentum)
    expect(mistake is None, mistake or "")
    expect_close(
        got, ref.update_center(center, teacher_output, momentum),
        f"update_center(momentum={momentum}) is wrong: expected m·c + (1 − m)·(mean over the 2B rows), "
        "shape (1, K)",
        **center_tolerance(center, teacher_output),
    )


@exercise("update_center")
def test_update_center_default_momentum_is_the_papers():
    center, teacher_output = inputs(5, 8, 6)
    got = st.update_center(center, teacher_output)
    check_shape(got, center, teacher_output)
    expect_close(got, ref.update_center(center, teacher_output, ref.CENTER_MOMENTUM),
                 "update_center(center, teacher_output) without a momentum must use the default m = 0.9",
                 **center_tolerance(center, teacher_output))


@exercise("update_center")
def test_update_center_accepts_bfloat16_logits():
    center, teacher_output = inputs(2, 8, 16)
    low = teacher_output.bfloat16()
    got = call_unmutated(st.update_center, center, low, 0.9)
    check_shape(got, center, low)
    expect(got.dtype == torch.float32,
           f"the center must stay float32 when autocast gives bfloat16 logits, got {got.dtype}")
    want = ref.update_center(center, low, 0.9)
    tol = center_tolerance(center, low)
    if not close(got, want, tol):
        mistake = center_mistake(got, center, low, 0.9)
        expect(mistake is None, mistake or "")
        # bfloat16 keeps 8 significant bits: a mean taken in bfloat16 is off by up to 2^-8 of its size
        expect(not close(got, want, dict(rtol=2.0**-7, atol=0)),
               "average the bfloat16 logits in float32 (teacher_output.float()): a bfloat16 mean keeps only "
               "~3 significant digits")
    expect_close(got, want, "update_center on bfloat16 logits differs: average them in float32 (.float())", **tol)


@exercise("update_center")
@pytest.mark.parametrize("processes", [2, 4])
def test_update_center_averages_over_all_processes(monkeypatch, processes):
    """A fake process group in which every other process holds the same batch: the mean must not change."""
    center, teacher_output = inputs(3, 8, 12)
    single = ref.update_center(center, teacher_output, 0.9)
    calls = []

    def fake_all_reduce(tensor, *args, **kwargs):
        calls.append(tuple(tensor.shape))
        tensor.mul_(processes)  # all processes contribute the same tensor

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: processes)
    monkeypatch.setattr(torch.distributed, "all_reduce", fake_all_reduce)
    got = call_unmutated(st.update_center, center, teacher_output, 0.9)
    check_shape(got, center, teacher_output)
    expect(
        bool(calls),
        "under torch.distributed the batch statistic must be summed over processes: use sum_across_processes "
        "(all_reduce)",
    )
    tol = center_tolerance(center, teacher_output)
    mean = teacher_output.double().mean(0, keepdim=True)
    expect(not close(got, 0.9 * center + 0.1 * processes * mean, tol),
           f"with {processes} processes the all-reduced sum holds {processes}× the rows: divide it by "
           "len(teacher_output) * world_size(), not by len(teacher_output) alone")
    expect_close(
        got,
        single,
        f"with {processes} processes holding the same batch the center must not change: divide the all-reduced sum by "
        "len(teacher_output) * world_size()",
        **tol,
    )


@exercise("update_center")
def test_update_center_reproduces_the_original(golden):
    momentum = golden["loss"]["config"]["center_momentum"]
    for index, call in enumerate(golden["loss"]["calls"]):
        got = st.update_center(call["center_before"], call["teacher_output"], momentum)
        check_shape(got, call["center_before"], call["teacher_output"])
        expect_close(
            got,
            call["center_after"],
            f"call {index}: the center differs from the original DINO's; use the raw teacher logits "
            "(not centred or sharpened)",
            **center_tolerance(call["center_before"], call["teacher_output"]),
        )


@exercise("update_center")
def test_update_center_rejects_bad_shapes():
    center, teacher_output = inputs(4, 4, 3)
    st.update_center(center, teacher_output, 0.9)
    with pytest.raises(ValueError):
        st.update_center(torch.zeros(3), teacher_output, 0.9)
    with pytest.raises(ValueError):
        st.update_center(center, teacher_output, 1.5)
