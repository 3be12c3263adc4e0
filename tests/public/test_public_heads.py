"""Public checks of Lesson 3.3, `dino_course/heads.py`: no reference solution needed.

They run the docstring examples and check properties every correct implementation has. Passing
them does not mean the hidden checks pass: those also compare values with the reference.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from dino_course.instructor.public_checks import CourseModule, run_documented_examples

LESSON = "3.3"
hd = CourseModule("heads")
EXERCISES = [
    "build_mlp", "init_linear_weights", "l2_normalize", "WeightNormalizedLinear.effective_weight",
    "DINOProjectionHead.forward", "cancel_last_layer_gradients",
]


exercise = functools.partial(pytest.mark.exercise, LESSON)  # @exercise("name"): a check of that exercise of the lesson


@pytest.mark.parametrize("name", [pytest.param(n, marks=exercise(n), id=n) for n in EXERCISES])
def test_documented_example(name):
    run_documented_examples(hd, f"{LESSON}/{name}")


@exercise("build_mlp")
def test_mlp_layouts():
    with_bn = hd.build_mlp(8, 16, 4, nlayers=3, use_bn=True)
    layers = ["Linear", "BatchNorm1d", "GELU", "Linear", "BatchNorm1d", "GELU", "Linear"]
    assert [type(m).__name__ for m in with_bn] == layers
    one = hd.build_mlp(8, 16, 4, nlayers=1)
    assert isinstance(one, nn.Sequential) and [type(m).__name__ for m in one] == ["Linear"], (
        "nlayers=1: one Linear in a Sequential"
    )
    assert (one[0].in_features, one[0].out_features) == (8, 4)
    deep = hd.build_mlp(8, 16, 4, nlayers=4)
    assert deep(torch.zeros(3, 8)).shape == (3, 4) and sum(isinstance(m, nn.Linear) for m in deep) == 4


@exercise("init_linear_weights")
def test_init_touches_linear_layers_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 300), nn.BatchNorm1d(300), nn.Linear(300, 10, bias=False))
    model.apply(hd.init_linear_weights)
    std = float(model[0].weight.detach().std())
    assert 0.019 < std < 0.021, f"weights should have std 0.02, got {std:.4f}"
    assert float(model[0].bias.detach().abs().max()) == 0.0, "biases start at 0"
    assert bool((model[1].weight == 1).all()) and bool((model[1].bias == 0).all()), "BatchNorm must be left as it is"


@exercise("l2_normalize")
def test_rows_become_unit_vectors():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, requires_grad=True)
    before = x.detach().clone()
    z = hd.l2_normalize(x)
    assert z.shape == x.shape, f"shape must stay {tuple(x.shape)}, got {tuple(z.shape)}"
    torch.testing.assert_close(torch.linalg.vector_norm(z, dim=-1), torch.ones(2, 5))
    assert torch.equal(x.detach(), before), "l2_normalize changed its input in place"
    z.sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()), "the result must be differentiable"
    zero = hd.l2_normalize(torch.zeros(1, 3))
    assert bool((zero == 0).all()), "an all-zero row must stay zero (no NaN): divide by max(norm, eps)"


@exercise("WeightNormalizedLinear.effective_weight")
def test_rows_have_norm_g():
    torch.manual_seed(0)
    layer = hd.WeightNormalizedLinear(5, 3)
    with torch.no_grad():
        layer.weight_g.copy_(torch.tensor([[2.0], [0.5], [1.0]]))
    weight = layer.effective_weight()
    assert weight.shape == (3, 5), f"expected (out_features, in_features) = (3, 5), got {tuple(weight.shape)}"
    torch.testing.assert_close(torch.linalg.vector_norm(weight, dim=1), torch.tensor([2.0, 0.5, 1.0]))
    weight.sum().backward()
    assert layer.weight_g.grad is not None and layer.weight_v.grad is not None, "differentiable in both g and v"
    with torch.no_grad():
        layer.weight_v.mul_(10)
    torch.testing.assert_close(layer.effective_weight(), weight.detach(), msg="scaling v must not change the weight")


@exercise("DINOProjectionHead.forward")
def test_head_scores_are_cosines():
    torch.manual_seed(0)
    head = hd.DINOProjectionHead(in_dim=6, output_dim=5, hidden_dim=12, bottleneck_dim=4)
    x = torch.randn(7, 6)
    scores = head(x)
    assert scores.shape == (7, 5), f"expected (B, K) = (7, 5), got {tuple(scores.shape)}"
    bottleneck = torch.nn.functional.normalize(head.mlp(x), dim=-1)
    torch.testing.assert_close(scores, head.last_layer(bottleneck), msg="h(x) = last_layer(l2_normalize(mlp(x)))")


@exercise("cancel_last_layer_gradients")
def test_only_last_layer_gradients_go_and_only_while_frozen():
    torch.manual_seed(0)
    head = hd.DINOProjectionHead(in_dim=4, output_dim=3, hidden_dim=8, bottleneck_dim=2, norm_last_layer=False)
    head(torch.randn(5, 4)).sum().backward()
    grads = {n: p.grad.clone() for n, p in head.named_parameters()}
    hd.cancel_last_layer_gradients(head, epoch=1, freeze_last_layer=1)
    assert all(torch.equal(p.grad, grads[n]) for n, p in head.named_parameters()), (
        "from epoch freeze_last_layer on, do nothing"
    )
    hd.cancel_last_layer_gradients(head, epoch=0, freeze_last_layer=1)
    for name, parameter in head.named_parameters():
        if "last_layer" in name:
            assert parameter.grad is None, f"{name}.grad must be None (not zero) while frozen"
        else:
            assert torch.equal(parameter.grad, grads[name]), f"{name} is not in the last layer: keep its gradient"
