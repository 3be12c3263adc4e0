"""Hidden checks for Lesson 4.1 (`dino_course/centering.py`).

Tolerances: the center is a float32 mean of O(1) logits; two correct orders of summation
differ by a few ulps of the row sum (≈ 1e-7 relative), hence rtol 1e-6 / atol 1e-6. The
golden centers were reproduced with zero difference by an independent implementation, and
the golden README suggests 1e-6.
"""

from __future__ import annotations

import pytest
import torch

import solutions.centering as ref
from dino_course.grading.hints import expect, expect_close
from dino_course.grading.learner import LearnerModule

st = LearnerModule("centering")
TOL = dict(rtol=1e-6, atol=1e-6)


def exercise(name: str):
    return pytest.mark.exercise("4.1", name)


def inputs(seed: int, rows: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, k, generator=generator), 3 * torch.randn(rows, k, generator=generator) + 1


@exercise("update_center")
@pytest.mark.parametrize("rows,k", [(2, 1), (4, 7), (10, 40), (64, 256)])
@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9, 1.0])
def test_update_center_matches_reference(rows, k, momentum):
    center, teacher_output = inputs(rows * k, rows, k)
    got = st.update_center(center, teacher_output, momentum)
    want = ref.update_center(center, teacher_output, momentum)
    if isinstance(got, torch.Tensor) and got.shape == want.shape and not torch.allclose(got, want, **TOL):
        swapped = momentum * teacher_output.mean(0, keepdim=True) + (1 - momentum) * center
        if torch.allclose(got, swapped, **TOL):
            raise AssertionError("the weights are swapped: the old center keeps `momentum` (0.9), the batch mean gets 1 − momentum")
        if torch.allclose(got, momentum * center + (1 - momentum) * teacher_output.mean(1).mean(), **TOL):
            raise AssertionError("average over the rows (dim 0), one mean per output dimension, not over K")
    expect_close(
        got, want, f"update_center(momentum={momentum}) is wrong: expected m·c + (1 − m)·(mean over the 2B rows), shape (1, K)", **TOL
    )


@exercise("update_center")
def test_update_center_reproduces_the_original(golden):
    for index, call in enumerate(golden["loss"]["calls"]):
        got = st.update_center(call["center_before"], call["teacher_output"], golden["loss"]["config"]["center_momentum"])
        expect_close(
            got,
            call["center_after"],
            f"call {index}: the center differs from the original DINO's; use the raw teacher logits (not centred or sharpened)",
            **TOL,
        )


@exercise("update_center")
def test_update_center_is_outside_autograd_and_leaves_inputs_alone():
    center, teacher_output = inputs(1, 6, 5)
    teacher_output.requires_grad_(True)
    center_before, teacher_before = center.clone(), teacher_output.detach().clone()
    got = st.update_center(center, teacher_output, 0.9)
    expect(
        not got.requires_grad and got.grad_fn is None,
        "the new center is part of the autograd graph: compute it under torch.no_grad() (or from teacher_output.detach())",
    )
    expect(torch.equal(center, center_before), "update_center modified the center it was given: return a new tensor")
    expect(torch.equal(teacher_output.detach(), teacher_before), "update_center modified teacher_output")
    expect(got is not center, "return a new tensor, not the input center")


@exercise("update_center")
def test_update_center_accepts_bfloat16_logits():
    center, teacher_output = inputs(2, 8, 16)
    got = st.update_center(center, teacher_output.bfloat16(), 0.9)
    want = ref.update_center(center, teacher_output.bfloat16(), 0.9)
    expect(got.dtype == torch.float32, f"the center must stay float32 when autocast gives bfloat16 logits, got {got.dtype}")
    expect_close(got, want, "update_center on bfloat16 logits differs: average them in float32 (.float())", **TOL)


@exercise("update_center")
def test_update_center_averages_over_all_processes(monkeypatch):
    """A fake 2-process group in which the other process holds the same batch: the mean must not change."""
    center, teacher_output = inputs(3, 8, 12)
    single = ref.update_center(center, teacher_output, 0.9)
    calls = []

    def fake_all_reduce(tensor, *args, **kwargs):
        calls.append(tuple(tensor.shape))
        tensor.mul_(2)  # both processes contribute the same tensor

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: 2)
    monkeypatch.setattr(torch.distributed, "all_reduce", fake_all_reduce)
    got = st.update_center(center, teacher_output, 0.9)
    expect(
        bool(calls),
        "under torch.distributed the batch statistic must be summed over processes: use sum_across_processes (all_reduce)",
    )
    expect_close(
        got,
        single,
        "with 2 processes holding the same batch the center must not change: divide the all-reduced sum by "
        "len(teacher_output) * world_size()",
        **TOL,
    )


@exercise("update_center")
def test_update_center_rejects_bad_shapes():
    center, teacher_output = inputs(4, 4, 3)
    st.update_center(center, teacher_output, 0.9)
    with pytest.raises(ValueError):
        st.update_center(torch.zeros(3), teacher_output, 0.9)
    with pytest.raises(ValueError):
        st.update_center(center, teacher_output, 1.5)
