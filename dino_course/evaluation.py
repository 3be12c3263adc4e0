# Your exercises for Lesson 4.5: replace each `raise ExerciseNotStarted(...)` line with your code.
# Grade them with `pytest` (or `check("4.5")` in the lesson notebook).
# Maintainers: this file is generated from solutions/evaluation.py by `dino-course stubs`;
# edit the solution there and regenerate instead of editing this copy.
"""Lesson 4.5: evaluating self-supervised features, k-NN on frozen features and attention maps.

DINO learns without labels, so how do we know it learnt anything? Two ways, both from the
paper (Caron et al. 2021, Sections 4.1 and 4.2, Figure 3):

1. **Weighted k-NN on frozen features.** Run the frozen backbone over a labelled training set
   and a test set, L2-normalise the CLS features, and classify each test image by a vote of
   its k most similar training images, each vote weighted by exp(similarity / T)
   (k = 20, T = 0.07, as in the paper, following Wu et al. 2018). No training, no
   hyperparameter search: if similar images get similar features, k-NN accuracy is high.

2. **Attention maps.** The CLS token of the last block attends to the patches it needs; for
   a DINO-trained ViT each head focuses on an object or a part of one. Keeping, per head, the
   smallest set of patches that holds a fixed share (e.g. 60 %) of the attention mass gives the
   paper's segmentation-like masks.

A quirk of the original, named here and not copied: its `knn_classifier` splits the test set
into 100 chunks of `floor(n_test / 100)` samples, so with fewer than 100 test samples the chunk
size is 0 and it fails (Python's `range` rejects a step of 0). The course's classifier processes
the test set in chunks of a fixed number of samples and works for any size.

3. **The feature space, seen in 2-D** (a course addition, not in the paper). Projecting the
   CLS features onto their two principal directions (PCA) and colouring each point by its
   class shows the clusters DINO formed without ever seeing a label.

Exercises (each marked in its docstring):
    knn_classify, knn_accuracy, cls_attention_maps, attention_mass_mask, pca_project
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)

LESSON = "4.5"
LESSON_TITLE = "Evaluation: k-NN on frozen features and attention maps"
LESSON_NOTEBOOK = "lessons/module4/4.5_evaluation.ipynb"

KNN_K = 20  # paper: 20 nearest neighbours (Section 4.1, after Wu et al. 2018)
KNN_TEMPERATURE = 0.07  # paper: T = 0.07 in the vote weights exp(s / T)
ATTENTION_MASS = 0.6  # the paper's Figure 3 keeps 60 % of each head's attention mass
KNN_CHUNK = 256  # test samples per similarity block; bounds memory at 256 x n_train floats


# --------------------------------------------------------------------------------------------
# Given: input checks and feature extraction
# --------------------------------------------------------------------------------------------


def check_knn_inputs(
    train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor, k: int, temperature: float
) -> None:
    """Raise `ValueError`/`TypeError` naming the argument when the k-NN inputs do not fit together."""
    for name, value in (("train_features", train_features), ("test_features", test_features)):
        if not isinstance(value, torch.Tensor) or value.dim() != 2 or not value.is_floating_point():
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{name} must be a float tensor of shape (N, D), got {shape}")
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).any(dim=1).sum())
            raise ValueError(
                f"{name} holds NaN or infinite values in {bad} of its {value.shape[0]} rows: the network that made "
                "them has diverged (a non-finite loss?), and no neighbour vote would mean anything"
            )
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train_features and test_features must have the same width D, got {train_features.shape[1]} "
            f"and {test_features.shape[1]}"
        )
    if (
        not isinstance(train_labels, torch.Tensor)
        or train_labels.dim() != 1
        or train_labels.dtype not in (torch.int64, torch.int32)
        or train_labels.shape[0] != train_features.shape[0]
    ):
        raise ValueError(
            f"train_labels must be an integer tensor of shape ({train_features.shape[0]},), one label per training row"
        )
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= train_features.shape[0]:
        raise ValueError(f"k must be an int between 1 and the number of training samples {train_features.shape[0]}, got {k!r}")
    if not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")


@torch.no_grad()
def extract_features(backbone: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised CLS features `(B, D)` of a frozen backbone, computed in eval mode without gradients.

    The backbone's train/eval mode is restored afterwards. Images `(B, C, H, W)`.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a tensor of shape (B, C, H, W)")
    was_training = backbone.training
    backbone.eval()
    try:
        features = [backbone(images[start : start + batch_size]) for start in range(0, images.shape[0], batch_size)]
    finally:
        backbone.train(was_training)
    return F.normalize(torch.cat(features).float(), dim=1)


# --------------------------------------------------------------------------------------------
# Weighted k-NN
# --------------------------------------------------------------------------------------------


def knn_classify(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 4.5 · weighted k-NN: each test sample's class by a vote of its k nearest training samples.

    With features normalised to unit length, the similarity of test sample i and training
    sample j is the cosine s_ij = x_i · y_j. Take the k training samples with the highest
    similarity, N_k(i); each adds exp(s_ij / T) to the score of its own label c_j:

        votes[i, c] = Σ_{j ∈ N_k(i), c_j = c} exp(s_ij / T),     prediction_i = argmax_c votes[i, c]

    Normalise the rows of both feature sets first (`F.normalize(x, dim=1)`): then the dot
    product is the cosine, whatever scale the backbone's features have. Process the test
    set in chunks of `KNN_CHUNK` rows so that the similarity block stays small.

    Args:
        train_features: `(N_train, D)` float features of the labelled set.
        train_labels: `(N_train,)` int64 labels in [0, num_classes).
        test_features: `(N_test, D)` float features to classify.
        k: neighbours that vote (paper: 20).
        temperature: T in exp(s / T) (paper: 0.07); small T lets the closest neighbours dominate.
        num_classes: number of classes; default `train_labels.max() + 1`.

    Returns:
        `(predictions, votes)`: int64 `(N_test,)` and float32 `(N_test, num_classes)`.

    Raises:
        ValueError: shapes that do not fit, NaN or infinite features, k outside [1, N_train],
            T ≤ 0, labels outside [0, num_classes).

    Example:
        >>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> predictions, votes = knn_classify(train, torch.tensor([0, 0, 1]), torch.tensor([[0.2, 1.0]]), k=2)
        >>> predictions
        tensor([1])
    """
    check_knn_inputs(train_features, train_labels, test_features, k, temperature)
    if train_labels.numel() and int(train_labels.min()) < 0:
        raise ValueError(f"train_labels must be class indices >= 0, got {int(train_labels.min())}")
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int or None, got {num_classes!r}")
    elif train_labels.numel() and int(train_labels.max()) >= num_classes:
        raise ValueError(
            f"train_labels must lie in [0, num_classes) = [0, {num_classes}), got a label {int(train_labels.max())}"
        )
    raise ExerciseNotStarted("4.5", "knn_classify")


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None,
) -> tuple[float, float]:
    """Exercise 4.5 · top-1 and top-5 accuracy (in percent) of the weighted k-NN classifier.

    Classify with `knn_classify`. A test sample counts for top-1 when its label is the class
    with the most votes, and for top-5 when its label is among the `min(5, k)` classes with
    the most votes (the original's rule: with k < 5 only k classes can have received votes).

        top1 = 100 · #correct / N_test

    Args:
        train_features, train_labels, test_features: as for `knn_classify`.
        test_labels: `(N_test,)` int64 true labels.
        k, temperature, num_classes: as for `knn_classify`.

    Returns:
        `(top1, top5)` as Python floats in [0, 100].

    Raises:
        ValueError: `test_labels` does not have one label per test row, or the inputs of `knn_classify` are bad.

    Example:
        >>> train = torch.eye(3)
        >>> knn_accuracy(train, torch.tensor([0, 1, 2]), train, torch.tensor([0, 1, 2]), k=1)
        (100.0, 100.0)
    """
    if not isinstance(test_labels, torch.Tensor) or test_labels.shape != (test_features.shape[0],):
        raise ValueError(f"test_labels must be a tensor of shape ({test_features.shape[0]},), one label per test row")
    raise ExerciseNotStarted("4.5", "knn_accuracy")


# --------------------------------------------------------------------------------------------
# Attention maps
# --------------------------------------------------------------------------------------------


def cls_attention_maps(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Exercise 4.5 · what the CLS token looks at: the last block's attention per head, as images.

    `backbone.last_attention(images)` gives the last block's attention probabilities
    `(B, heads, 1 + N, 1 + N)`: row q, column t is how much token q attends to token t, and
    token 0 is CLS. Take the CLS row (query 0), drop the CLS column (key 0), and reshape the
    N = (H/P)·(W/P) patch weights row-major to the patch grid. Run without gradients.

    Args:
        backbone: a `VisionTransformer` (with `.last_attention` and `.cfg.patch_size`).
        images: `(B, C, H, W)`, H and W multiples of the patch size P.

    Returns:
        `(B, heads, H/P, W/P)` float tensor; each map's entries are ≥ 0 and sum to 1 minus the
        attention CLS pays to itself.

    Example:
        >>> from dino_course.networks.vit import vit_tiny_cpu
        >>> cls_attention_maps(vit_tiny_cpu(), torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 3, 8, 8])
    """
    if not hasattr(backbone, "last_attention"):
        raise TypeError(f"backbone must be a VisionTransformer with .last_attention, got {type(backbone).__name__}")
    raise ExerciseNotStarted("4.5", "cls_attention_maps")


def attention_mass_mask(maps: torch.Tensor, mass: float = ATTENTION_MASS) -> torch.Tensor:
    """Exercise 4.5 · per map, the smallest set of patches that holds `mass` of its attention.

    Normalise each map (the last two dimensions) to sum to 1. Rank its patches from the
    highest weight down and keep a patch when the weight of the patches ranked *above* it
    sums to less than `mass`: the kept set is the top of the ranking up to and including the
    patch that crosses `mass` (the DINO paper's Figure 3 masks, with mass 0.6).

    Args:
        maps: `(..., h, w)` non-negative weights, e.g. `(B, heads, H/P, W/P)` from `cls_attention_maps`.
        mass: share of the attention to keep, in (0, 1].

    Returns:
        bool tensor of the same shape as `maps`, True for kept patches.

    Raises:
        ValueError: mass outside (0, 1], or maps with fewer than 2 dimensions.

    Example:
        >>> attention_mass_mask(torch.tensor([[0.5, 0.1], [0.3, 0.1]]), mass=0.7)
        tensor([[ True, False],
                [ True, False]])
    """
    if not isinstance(mass, (int, float)) or not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must be a number in (0, 1], got {mass!r}")
    if not isinstance(maps, torch.Tensor) or maps.dim() < 2:
        raise ValueError("maps must be a tensor of shape (..., h, w)")
    raise ExerciseNotStarted("4.5", "attention_mass_mask")


# --------------------------------------------------------------------------------------------
# Feature space in two dimensions
# --------------------------------------------------------------------------------------------


def check_pca_inputs(features: torch.Tensor, n_components: int) -> None:
    """Raise `ValueError` naming the argument when `pca_project`'s inputs do not fit."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or not features.is_floating_point():
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a float tensor of shape (N, D), got {shape}")
    if features.shape[0] < 2:
        raise ValueError(f"features must have at least 2 rows (N >= 2) for a variance, got N = {features.shape[0]}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features holds NaN or infinite values: the network that made them has diverged")
    largest = min(features.shape)
    if isinstance(n_components, bool) or not isinstance(n_components, int) or not 1 <= n_components <= largest:
        raise ValueError(f"n_components must be an int between 1 and min(N, D) = {largest}, got {n_components!r}")


def pca_project(features: torch.Tensor, n_components: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 4.5 · principal component analysis: the features' coordinates along their top directions.

    Centre the features (subtract the mean row μ), then take the singular value decomposition
    of the centred matrix. Its right singular vectors (the columns of V) are the principal
    directions, ordered by singular value s_1 ≥ s_2 ≥ …; the variance along direction j is
    s_j² / (N − 1):

        X̃ = X − 1 μᵀ,     X̃ = U S Vᵀ (`torch.linalg.svd(X̃, full_matrices=False)` returns U, s, Vᵀ),
        Z = X̃ V[:, :k]   (= U[:, :k] · diag(s_1..s_k)),     ratio_j = s_j² / Σ_i s_i²

    Each direction is defined only up to its sign (v and −v span the same line), so any sign
    per component is correct. Do not rescale the features or their columns: PCA looks at the
    variance the features have. Leave `features` unchanged.

    Args:
        features: `(N, D)` float features, e.g. the CLS features of `extract_features`; N ≥ 2.
        n_components: k, the number of directions to keep, in [1, min(N, D)].

    Returns:
        `(projected, explained_variance_ratio)`: `(N, k)` coordinates, largest variance first,
        and `(k,)` the share of the total variance each direction holds (each in [0, 1],
        descending, summing to at most 1), both torch tensors of `features`' dtype.

    Raises:
        ValueError: `features` not a finite float `(N, D)` tensor with N ≥ 2, or `n_components`
            outside [1, min(N, D)].

    Example:
        >>> points = torch.tensor([[0.0, 1.0], [4.0, 1.0], [2.0, 2.0], [2.0, 0.0]])
        >>> projected, ratio = pca_project(points, n_components=1)
        >>> projected.abs().flatten(), ratio
        (tensor([2., 2., 0., 0.]), tensor([0.8000]))
    """
    check_pca_inputs(features, n_components)
    raise ExerciseNotStarted("4.5", "pca_project")
