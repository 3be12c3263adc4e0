"""Public checks of Lesson 3.4, `dino_course/model.py`: no reference solution needed.

They run the docstring examples and check properties every correct implementation has. Passing
them does not mean the hidden checks pass: those also compare values with the reference.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from dino_course.instructor.public_checks import CourseModule, run_documented_examples

LESSON = "3.4"
md = CourseModule("model")
EXERCISES = ["MultiCropNetwork.forward", "measure_forward", "adaptive_head_dims"]


exercise = functools.partial(pytest.mark.exercise, LESSON)  # @exercise("name"): a check of that exercise of the lesson


@pytest.mark.parametrize("name", [pytest.param(n, marks=exercise(n), id=n) for n in EXERCISES])
def test_documented_example(name):
    run_documented_examples(md, f"{LESSON}/{name}")


class Counting(nn.Module):
    """Wraps a module and counts its calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


@exercise("MultiCropNetwork.forward")
def test_one_backbone_pass_per_resolution_and_per_view_results():
    torch.manual_seed(0)
    backbone = Counting(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    head = Counting(nn.Linear(4, 5))
    network = md.MultiCropNetwork(backbone, head)
    views = [torch.randn(2, 3, 16, 16) for _ in range(2)] + [torch.randn(2, 3, 8, 8) for _ in range(3)]
    out = network(views)
    assert out.shape == (10, 5), f"expected (V * B, K) = (10, 5), got {tuple(out.shape)}"
    assert backbone.calls == 2, (
        f"the backbone should run once per run of equal-size views (2), it ran {backbone.calls} times"
    )
    assert head.calls == 1, f"the head should run once on all features, it ran {head.calls} times"
    with torch.no_grad():
        expected = torch.cat([head.inner(backbone.inner(v)) for v in views])
    torch.testing.assert_close(out.detach(), expected, msg="rows must be the per-view results, crop-major")


@exercise("measure_forward")
def test_per_view_measurement_runs_warm_up_repeats_and_profiled_forwards():
    # grouped=False runs the backbone once per view, so this check does not need your MultiCropNetwork.forward
    torch.manual_seed(0)
    backbone = Counting(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    network = md.MultiCropNetwork(backbone, nn.Linear(4, 5))
    views = [torch.randn(2, 3, 16, 16) for _ in range(2)] + [torch.randn(2, 3, 8, 8) for _ in range(3)]
    network.train()
    cost = md.measure_forward(network, views, grouped=False, repeats=3)
    assert backbone.calls == 5 * (1 + 3 + 1), (
        f"expected 5 views x (1 warm-up + 3 timed + 1 profiled) = 25 backbone passes, got {backbone.calls}"
    )
    assert isinstance(cost.seconds, float) and cost.seconds > 0, f"seconds must be a positive float, got {cost.seconds!r}"
    assert isinstance(cost.peak_bytes, int) and cost.peak_bytes >= cost.output.nbytes, (
        f"peak_bytes must be an int of at least the output's {cost.output.nbytes} bytes, got {cost.peak_bytes!r}"
    )
    assert not cost.output.requires_grad, "run the forwards under torch.no_grad()"
    assert network.training, "leave the network in the mode it was in"
    with torch.no_grad():
        expected = network.head(torch.cat([backbone.inner(v) for v in views]))
    torch.testing.assert_close(cost.output, expected, msg="output: the per-view forward's result, crop-major")


@exercise("adaptive_head_dims")
@pytest.mark.parametrize("embed_dim", [1, 3, 64, 96, 100, 384, 500, 4096])
def test_widths_follow_the_rule(embed_dim):
    hidden, bottleneck = md.adaptive_head_dims(embed_dim)
    assert type(hidden) is int and type(bottleneck) is int, "return two Python ints"
    assert hidden & (hidden - 1) == 0 and hidden <= 2048, f"hidden {hidden} must be a power of two, at most 2048"
    assert hidden == 2048 or hidden >= 4 * embed_dim, (
        f"hidden {hidden} must be at least 4 · D = {4 * embed_dim} (or the cap)"
    )
    assert bottleneck == max(1, hidden // 8), f"bottleneck must be hidden // 8 (at least 1), got {bottleneck}"
