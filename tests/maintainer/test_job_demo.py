"""Lesson 4.4's short training demo on the digits (`dino_course/job/demo.py`; run with
`pytest --reference --maintainer`)."""

from __future__ import annotations

import math

import torch


def test_demo_crops_and_entropies():
    from dino_course.job.demo import digit_images, multicrop_views, teacher_entropies

    images = digit_images(16, limit=10)
    assert images.shape == (10, 3, 16, 16) and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    views = multicrop_views(images[:4], torch.Generator().manual_seed(0), global_size=16, local_size=8, n_local=3)
    assert [tuple(v.shape) for v in views] == [(4, 3, 16, 16)] * 2 + [(4, 3, 8, 8)] * 3
    per_image, of_mean = teacher_entropies(torch.zeros(6, 8), torch.zeros(1, 8), 0.04)
    assert math.isclose(per_image, math.log(8), rel_tol=1e-5) and math.isclose(of_mean, math.log(8), rel_tol=1e-5)


def test_demo_training_runs_and_is_deterministic():
    from dino_course.job.demo import DemoConfig, digit_images, run_demo_training

    config = DemoConfig(steps=3, steps_per_epoch=2, batch_size=8)
    images = digit_images(16, limit=40)
    first = run_demo_training(config, images)
    second = run_demo_training(config, images)
    assert len(first) == 3 and all(math.isfinite(r["loss"]) for r in first)
    assert [r["loss"] for r in first] == [r["loss"] for r in second]
    assert first[0]["lr"] == 0.0  # the warm-up starts at 0
