"""The k-NN's given input checks (`evaluation.check_knn_inputs` and the prologue of `knn_classify`)
stop bad input with one line naming the argument, before any learner code runs."""

from __future__ import annotations

import pytest
import torch

from dino_course import evaluation

pytestmark = pytest.mark.maintainer

FEATURES = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("argument", ["train_features", "test_features"])
def test_non_finite_features_are_refused_by_name(argument, bad):
    features = {"train_features": FEATURES.clone(), "test_features": FEATURES.clone()}
    features[argument][2, 1] = bad
    with pytest.raises(ValueError, match=rf"^{argument} holds NaN or infinite values in 1 of its 6 rows"):
        evaluation.knn_classify(features["train_features"], LABELS, features["test_features"], k=3)


def test_labels_outside_the_classes_are_refused_by_name():
    with pytest.raises(ValueError, match=r"train_labels must lie in \[0, num_classes\) = \[0, 2\), got a label 2"):
        evaluation.knn_classify(FEATURES, LABELS, FEATURES, k=3, num_classes=2)
    with pytest.raises(ValueError, match=r"train_labels must be class indices >= 0, got -1"):
        evaluation.knn_classify(FEATURES, LABELS - 1, FEATURES, k=3)
    with pytest.raises(ValueError, match=r"num_classes must be a positive int or None, got 0"):
        evaluation.knn_classify(FEATURES, LABELS, FEATURES, k=3, num_classes=0)


def test_knn_accuracy_passes_the_same_checks_on():
    features = FEATURES.clone()
    features[0, 0] = float("nan")
    with pytest.raises(ValueError, match="^test_features holds NaN"):
        evaluation.knn_accuracy(FEATURES, LABELS, features, LABELS, k=3)


def test_good_input_still_classifies():
    predictions, votes = evaluation.knn_classify(FEATURES, LABELS, FEATURES, k=1, num_classes=4)
    assert torch.equal(predictions, LABELS) and votes.shape == (6, 4)
