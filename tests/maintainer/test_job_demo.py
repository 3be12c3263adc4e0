"""Lesson 4.4's short training demo on the digits (`dino_course/job/demo.py`; run with
`pytest --reference --maintainer`)."""

from __future__ import annotations

import math

import pytest
import torch


def test_demo_crops_and_entropies():
    from dino_course.data.datasets import load_digits
    from dino_course.job.demo import DemoConfig, build_demo_augmentation, teacher_entropies

    images = load_digits(16).train_images[:4]
    augment = build_demo_augmentation(DemoConfig(global_size=16, local_size=8, n_local=3))
    views = augment.views_of_batch(images, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(4, 3, 16, 16)] * 2 + [(4, 3, 8, 8)] * 3
    assert augment.recipes[0].flip_p == 0.0  # mirrored digits are not digits
    per_image, of_mean = teacher_entropies(torch.zeros(6, 8), torch.zeros(1, 8), 0.04)
    assert math.isclose(per_image, math.log(8), rel_tol=1e-5) and math.isclose(of_mean, math.log(8), rel_tol=1e-5)


def test_demo_training_runs_and_is_deterministic():
    from dino_course.data.datasets import load_digits
    from dino_course.job.demo import DemoConfig, run_demo_training

    config = DemoConfig(steps=3, steps_per_epoch=2, batch_size=8)
    images = load_digits(16).train_images[:40]
    first = run_demo_training(config, images)
    second = run_demo_training(config, images)
    assert len(first) == 3 and all(math.isfinite(r["loss"]) for r in first)
    assert [r["loss"] for r in first] == [r["loss"] for r in second]
    assert first[0]["lr"] == 0.0  # the warm-up starts at 0


@pytest.mark.parametrize(
    "field, value", [("steps", 0), ("steps_per_epoch", True), ("batch_size", -1), ("teacher_temp", 0.0),
                     ("use_bn_in_head", "no"), ("num_heads", 3), ("local_scale", (0.5, 0.1))],
)
def test_a_bad_demo_setting_is_refused_naming_it(field, value):
    from dino_course.job.demo import DemoConfig
    from dino_course.job.settings import SettingError

    with pytest.raises(SettingError, match=rf"^{field} must be .*, got {value!r}$".replace("(", r"\(").replace(")", r"\)")):
        DemoConfig(**{field: value})
