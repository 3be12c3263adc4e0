"""Public checks of Lesson 4.5 (`dino_course/evaluation.py`): no reference solution needed.

They run the docstring examples and check properties every correct implementation has. Passing
them does not mean the hidden checks pass: those also compare values with the reference.
"""

from __future__ import annotations

import functools

import pytest
import torch

from dino_course.instructor.public_checks import CourseModule, run_documented_examples

LESSON = "4.5"
ev = CourseModule("evaluation")
EXERCISES = ["knn_classify", "knn_accuracy", "cls_attention_maps", "attention_mass_mask", "pca_project"]


exercise = functools.partial(pytest.mark.exercise, LESSON)  # @exercise("name"): a check of that exercise of the lesson


def clusters(seed: int = 0, per_class: int = 6, classes: int = 3, dim: int = 4):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=generator) * 5
    labels = torch.arange(classes).repeat_interleave(per_class)
    features = centres[labels] + 0.1 * torch.randn(len(labels), dim, generator=generator)
    return features, labels


@pytest.mark.parametrize("name", [pytest.param(n, marks=exercise(n), id=n) for n in EXERCISES])
def test_documented_example(name):
    run_documented_examples(ev, f"{LESSON}/{name}")


@exercise("knn_classify")
def test_knn_types_and_scale_invariance():
    train, labels = clusters()
    test, test_labels = clusters(seed=0)
    predictions, votes = ev.knn_classify(train, labels, test * 7.0, k=3, num_classes=5)
    assert predictions.dtype == torch.int64 and predictions.shape == (18,), "predictions: int64 (N_test,)"
    assert votes.dtype == torch.float32 and votes.shape == (18, 5), "votes: float32 (N_test, num_classes)"
    assert torch.equal(predictions, test_labels), (
        "well separated clusters (features normalised first) must be classified right"
    )
    assert torch.equal(predictions, votes.argmax(dim=1)), "the prediction is the class with the most votes"


@exercise("knn_accuracy")
def test_accuracies_are_percentages():
    train, labels = clusters()
    top1, top5 = ev.knn_accuracy(train, labels, train, labels, k=3)
    assert type(top1) is float and type(top5) is float, "return two Python floats"
    assert top1 == 100.0 and top5 == 100.0
    wrong = (labels + 1) % 3
    low1, low5 = ev.knn_accuracy(train, labels, train, wrong, k=3)
    assert 0.0 <= low1 <= low5 <= 100.0 and low1 == 0.0, "top-1 of all-wrong labels is 0, and top-5 >= top-1"


@exercise("cls_attention_maps")
def test_maps_are_non_negative_and_sum_below_one():
    from dino_course.networks.vit import vit_tiny_cpu

    torch.manual_seed(0)
    maps = ev.cls_attention_maps(vit_tiny_cpu(), torch.randn(2, 3, 16, 32))
    assert maps.shape == (2, 3, 4, 8), f"expected (B, heads, H/P, W/P) = (2, 3, 4, 8), got {tuple(maps.shape)}"
    assert not maps.requires_grad, "run without gradients"
    assert bool((maps >= 0).all()) and bool((maps.sum(dim=(-1, -2)) <= 1 + 1e-5).all()), (
        "attention weights are >= 0 and the patches' share is at most 1"
    )


@exercise("attention_mass_mask")
def test_kept_patches_hold_the_mass():
    maps = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    mask = ev.attention_mass_mask(maps, mass=0.6)
    assert mask.dtype == torch.bool and mask.shape == maps.shape, "a bool tensor of the maps' shape"
    share = (maps * mask).sum(dim=(-1, -2)) / maps.sum(dim=(-1, -2))
    assert bool((share >= 0.6 - 1e-6).all()), "the kept patches must hold at least `mass` of each map"
    smallest_kept = torch.where(mask, maps, torch.inf).amin(dim=(-1, -2))
    largest_dropped = torch.where(mask, -torch.inf, maps).amax(dim=(-1, -2))
    assert bool((smallest_kept >= largest_dropped).all()), "keep the highest-weighted patches first"


@exercise("pca_project")
def test_pca_coordinates_are_centred_uncorrelated_and_ordered():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(50, 6, generator=generator) * torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.2]) + 10.0
    before = features.clone()
    projected, ratio = ev.pca_project(features, n_components=3)
    assert torch.equal(features, before), "leave the features unchanged"
    assert isinstance(projected, torch.Tensor) and projected.shape == (50, 3), "projected: a tensor (N, n_components)"
    assert isinstance(ratio, torch.Tensor) and ratio.shape == (3,), "explained_variance_ratio: a tensor (n_components,)"
    assert projected.mean(dim=0).abs().max() < 1e-4, "the coordinates have mean 0: centre the features first"
    variances = projected.var(dim=0)
    assert bool((variances[:-1] > variances[1:]).all()), "the direction of largest variance comes first"
    covariance = projected.T @ projected / 49
    off_diagonal = covariance - torch.diag(covariance.diagonal())
    assert off_diagonal.abs().max() < 1e-3 * variances[0], "coordinates along different directions are uncorrelated"
    assert bool((ratio[:-1] >= ratio[1:]).all()) and 0 < float(ratio.sum()) <= 1 + 1e-6, (
        "the ratios are descending and sum to at most 1"
    )
