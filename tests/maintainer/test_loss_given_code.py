"""The loss module's given constructor (`loss.DINOLoss.__init__`) refuses bad settings with one line
naming the argument and the value."""

from __future__ import annotations

import math

import pytest

from dino_course import loss

pytestmark = pytest.mark.maintainer


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
