"""Public checks of Lesson 3.2 (`dino_course/multicrop.py`): no reference solution needed.

They run the docstring examples and check properties every correct implementation has. Passing
them does not mean the hidden checks pass: those also compare values with the reference.
"""

from __future__ import annotations

import functools

import pytest
import torch

from dino_course.instructor.public_checks import CourseModule, run_documented_examples

LESSON = "3.2"
mc = CourseModule("multicrop")
EXERCISES = ["view_recipes", "sample_crop_box", "group_by_resolution", "collate_multicrop"]


exercise = functools.partial(pytest.mark.exercise, LESSON)  # @exercise("name"): a check of that exercise of the lesson


@pytest.mark.parametrize("name", [pytest.param(n, marks=exercise(n), id=n) for n in EXERCISES])
def test_documented_example(name):
    run_documented_examples(mc, f"{LESSON}/{name}")


@exercise("view_recipes")
def test_one_recipe_per_view_solarise_only_global_view_2():
    recipes = mc.view_recipes(32, 16, n_local_crops=3, flip_p=0.0, jitter_p=0.5, solarize_p=0.3)
    assert isinstance(recipes, list) and len(recipes) == 5, "one recipe per view: 2 global + n_local_crops local"
    assert [r.kind for r in recipes] == ["global", "global", "local", "local", "local"], "global views first"
    assert [r.size for r in recipes] == [32, 32, 16, 16, 16], "global views global_size, local views local_size"
    assert [r.solarize_p for r in recipes] == [0.0, 0.3, 0.0, 0.0, 0.0], "only global view 2 is solarised, p = solarize_p"
    assert all(r.flip_p == 0.0 and r.jitter_p == 0.5 for r in recipes), "flip_p and jitter_p come from the arguments"


@exercise("sample_crop_box")
@pytest.mark.parametrize("height, width, scale", [(100, 200, (0.4, 1.0)), (32, 32, (0.05, 0.4)), (7, 300, (0.08, 1.0))])
def test_boxes_fit_and_are_reproducible(height, width, scale):
    boxes = []
    for seed in range(40):
        box = mc.sample_crop_box(height, width, scale=scale, generator=torch.Generator().manual_seed(seed))
        assert isinstance(box, tuple) and len(box) == 4, f"return (top, left, crop_height, crop_width), got {box!r}"
        assert all(type(v) is int for v in box), f"the box must hold Python ints, got {[type(v).__name__ for v in box]}"
        top, left, h, w = box
        assert h >= 1 and w >= 1 and 0 <= top and top + h <= height and 0 <= left and left + w <= width, (
            f"box {box} does not fit in a {height}x{width} image"
        )
        again = mc.sample_crop_box(height, width, scale=scale, generator=torch.Generator().manual_seed(seed))
        assert again == box, "the same seed must give the same box: draw every random number from `generator`"
        boxes.append(box)
    if height >= 32:  # (a 7 x 300 image mostly falls back to its one centred box)
        assert len(set(boxes)) > 1, "40 seeds gave one box: are the random numbers drawn from `generator`?"


@exercise("group_by_resolution")
def test_only_consecutive_views_are_grouped():
    views = [torch.zeros(2, 3, s, s) for s in (32, 32, 16, 16, 32)]
    assert mc.group_by_resolution(views) == [(0, 2), (2, 4), (4, 5)], "sizes 32, 32, 16, 16, 32 make three runs"
    assert mc.group_by_resolution([]) == [], "no views: an empty list"
    assert mc.group_by_resolution([torch.zeros(1, 1, 4, 5), torch.zeros(1, 1, 5, 4)]) == [(0, 1), (1, 2)], (
        "a view is the same size only when both H and W agree"
    )


@exercise("collate_multicrop")
def test_views_are_stacked_view_major_with_labels():
    torch.manual_seed(0)
    items = [([torch.randn(3, 8, 8), torch.randn(3, 8, 8), torch.randn(3, 4, 4)], label) for label in (2, 0, 1)]
    views, labels = mc.collate_multicrop(items)
    assert len(views) == 3, f"one tensor per view: expected 3, got {len(views)}"
    for v, view in enumerate(views):
        for b, (crops, _) in enumerate(items):
            assert torch.equal(view[b], crops[v]), f"views[{v}][{b}] must be crop {v} of image {b}"
    assert labels.dtype == torch.int64 and labels.tolist() == [2, 0, 1], "labels: an int64 tensor (B,), in batch order"
