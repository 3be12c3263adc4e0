"""The train job's settings rules: what each setting accepts, and the one error that names a bad one.

`TrainConfig` (`dino_course.job.train`) and the Lesson 4.4 demo's `DemoConfig`
(`dino_course.job.demo`) check their fields with `check_settings` when they are made, so a bad
value stops a run before any work starts. Each rule sits in one table, `FIELD_RULES`, one row
per setting; the rules that tie settings together follow in `_cross_field_problems`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from dino_course.data.datasets import DATASETS

__all__ = ["SettingError", "check_settings", "FIELD_RULES", "integer_at_least"]


class SettingError(ValueError):
    """A setting of a run with a value the job cannot use: names the setting, the value and what it expects.

    `str(error)` names the setting as `TrainConfig` spells it (`batch_size must be ...`); the CLI
    names it as the user typed it (`--batch-size must be ...`) with `describe(flag)`.
    """

    def __init__(self, setting: str, value, expected: str) -> None:
        self.setting, self.value, self.expected = setting, value, expected
        super().__init__(self.describe(setting))

    def describe(self, name: str) -> str:
        value = str(self.value) if isinstance(self.value, Path) else self.value
        return f"{name} must be {self.expected}, got {value!r}"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_scale(value) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_number(v) for v in value)
            and 0 < value[0] <= value[1] <= 1)


def _is_rgb(value, positive: bool) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) == 3 and all(_is_number(v) for v in value)
            and (not positive or all(v > 0 for v in value)))


# the forward pass and loss in float32, or under bfloat16 autocast (`TrainConfig.precision`)
PRECISIONS = ("float32", "bfloat16")

# What each TrainConfig field accepts: (test, what the error says is expected). Every field has a row
# (a maintainer check holds that); the checks across fields follow in `_cross_field_problems`.
_POSITIVE_INT = (lambda v: _is_int(v) and v > 0, "a positive integer")
_COUNT = (lambda v: _is_int(v) and v >= 0, "an integer >= 0")
_POSITIVE = (lambda v: _is_number(v) and v > 0, "a finite number > 0")
_NON_NEGATIVE = (lambda v: _is_number(v) and v >= 0, "a finite number >= 0")
_UNIT = (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
_BOOL = (lambda v: isinstance(v, bool), "True or False")
_SCALE = (_is_scale, "a (min, max) pair with 0 < min <= max <= 1")
FIELD_RULES: dict[str, tuple] = {
    "dataset": (lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    "data": (lambda v: v is None or (isinstance(v, str) and v != ""), "a folder path (a str) or None"),
    "download": _BOOL,
    "image_size": (lambda v: _is_int(v) and 8 <= v <= 1024, "an integer number of pixels in [8, 1024]"),
    "test_fraction": (lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)"),
    "pixel_mean": (lambda v: _is_rgb(v, positive=False), "three finite numbers (R, G, B)"),
    "pixel_std": (lambda v: _is_rgb(v, positive=True), "three finite numbers > 0 (R, G, B)"),
    "patch_size": _POSITIVE_INT, "embed_dim": _POSITIVE_INT, "depth": _POSITIVE_INT, "num_heads": _POSITIVE_INT,
    "output_dim": _POSITIVE_INT, "hidden_dim": _POSITIVE_INT, "bottleneck_dim": _POSITIVE_INT,
    "norm_last_layer": _BOOL, "use_bn_in_head": _BOOL,
    "global_size": _POSITIVE_INT, "local_size": _POSITIVE_INT, "n_local": _COUNT,
    "global_scale": _SCALE, "local_scale": _SCALE,
    "flip_p": _UNIT, "jitter_p": _UNIT, "solarize_p": _UNIT,
    "epochs": _POSITIVE_INT, "batch_size": _POSITIVE_INT, "base_lr": _POSITIVE, "min_lr": _NON_NEGATIVE,
    "warmup_epochs": _COUNT, "weight_decay": _NON_NEGATIVE, "weight_decay_end": _NON_NEGATIVE,
    "clip_grad": (_NON_NEGATIVE[0], "a finite number >= 0 (0: no clipping)"), "freeze_last_layer": _COUNT,
    "momentum_teacher": _UNIT, "momentum_teacher_end": _UNIT,
    "warmup_teacher_temp": _POSITIVE, "teacher_temp": _POSITIVE, "warmup_teacher_temp_epochs": _COUNT,
    "student_temp": _POSITIVE, "center_momentum": _UNIT,
    "knn_k": _POSITIVE_INT, "knn_temperature": _POSITIVE, "eval_every": _POSITIVE_INT,
    "precision": (lambda v: v in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
    # threads: at most 256, more than any CPU the course targets; --threads 100000 made the next
    # library import fail ("cannot map zero-fill pages") with a traceback
    "seed": _COUNT, "threads": (lambda v: _is_int(v) and 0 <= v <= 256, "an integer in [0, 256] (0: PyTorch's default)"),
}


def check_settings(settings) -> None:
    """Check each dataclass field of `settings` that has a row in `FIELD_RULES`, then the rules across
    fields; `TrainConfig` and the Lesson 4.4 demo's `DemoConfig` share the names and the rules.

    Raises:
        SettingError: the first setting that breaks its rule.
    """
    for field in dataclasses.fields(settings):
        if field.name in FIELD_RULES:
            accepts, expected = FIELD_RULES[field.name]
            value = getattr(settings, field.name)
            if not accepts(value):
                raise SettingError(field.name, value, expected)
    for problem in _cross_field_problems(settings):
        raise SettingError(*problem)


def _cross_field_problems(config):
    """(setting, value, expected) for each rule that ties one field to another, in the order checked."""
    if config.embed_dim % config.num_heads:
        expected = f"a divisor of embed_dim {config.embed_dim} (each head gets embed_dim / num_heads)"
        yield "num_heads", config.num_heads, expected
    for name in ("global_size", "local_size"):
        if getattr(config, name) % config.patch_size:
            expected = f"a multiple of patch_size {config.patch_size} (the ViT cuts crops into patches)"
            yield name, getattr(config, name), expected
    if hasattr(config, "epochs") and config.warmup_epochs > config.epochs:
        yield "warmup_epochs", config.warmup_epochs, f"at most epochs ({config.epochs})"


def integer_at_least(minimum: int):
    """An argparse `type` for a whole-number flag: the integer, or argparse's one-line refusal
    ("must be a positive integer" for minimum 1, "must be an integer >= N" otherwise)."""
    import argparse

    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return parse
