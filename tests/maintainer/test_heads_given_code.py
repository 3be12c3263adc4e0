"""The head's given constructor (`heads.DINOProjectionHead.__init__`) refuses bad settings with one
line naming the argument, before any learner code (`build_mlp`) runs."""

from __future__ import annotations

import pytest

from dino_course import heads

pytestmark = pytest.mark.maintainer

SMALL = dict(in_dim=8, output_dim=5, hidden_dim=16, bottleneck_dim=4)


@pytest.mark.parametrize(
    "argument, value",
    [("use_bn", "no"), ("use_bn", 0), ("use_bn", None), ("norm_last_layer", "False"), ("norm_last_layer", 1.0)],
)
def test_a_switch_that_is_not_a_bool_is_refused(argument, value):
    """'no' is truthy: taken as it is, `use_bn='no'` would silently build BatchNorm."""
    with pytest.raises(ValueError, match=rf"^{argument} must be True or False, got {value!r}$"):
        heads.DINOProjectionHead(**SMALL, **{argument: value})


@pytest.mark.parametrize(
    "argument, value",
    [("in_dim", 0), ("in_dim", 8.0), ("output_dim", -1), ("hidden_dim", True), ("bottleneck_dim", "4"), ("nlayers", 0)],
)
def test_a_width_that_is_not_a_positive_int_is_refused(argument, value):
    with pytest.raises(ValueError, match=rf"^{argument} must be a positive int, got {value!r}$"):
        heads.DINOProjectionHead(**{**SMALL, argument: value})


@pytest.mark.parametrize("use_bn", [True, False])
@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_both_values_of_each_switch_are_taken(reference_on, use_bn, norm_last_layer):
    head = heads.DINOProjectionHead(**SMALL, use_bn=use_bn, norm_last_layer=norm_last_layer)
    assert any(type(m).__name__ == "BatchNorm1d" for m in head.mlp) == use_bn
    assert head.last_layer.weight_g.requires_grad == (not norm_last_layer)
