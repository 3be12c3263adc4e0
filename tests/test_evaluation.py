"""Hidden checks for Lesson 4.5 (`dino_course/evaluation.py`).

Tolerances: votes are sums of exp(s / 0.07) with s ≤ 1, i.e. up to ~1.2e6; a float32
similarity that differs by one ulp (6e-8) between two correct orders of operations moves a
vote by a relative 6e-8 / 0.07 ≈ 1e-6, so votes are compared with rtol 1e-5. Predictions
and accuracies are integers and must match exactly (golden/README: "exact").
"""

from __future__ import annotations

import pytest
import torch

import solutions.evaluation as ref
from dino_course.grading.hints import expect, expect_close
from dino_course.grading.learner import LearnerModule
from dino_course.vit import ViTConfig, VisionTransformer

ev = LearnerModule("evaluation")
VOTE_TOL = dict(rtol=1e-5, atol=0.0)


def exercise(name: str):
    return pytest.mark.exercise("4.5", name)


def clustered(seed: int, n: int, dim: int, classes: int, noise: float = 0.8, scale: float = 1.0):
    """Features near class prototypes (not unit length unless scale=1), and their labels."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(classes, dim, generator=generator)
    labels = torch.randint(0, classes, (n,), generator=generator)
    features = prototypes[labels] + noise * torch.randn(n, dim, generator=generator)
    return scale * features, labels


GRID = [  # (n_train, n_test, dim, classes, k, T, feature scale)
    (50, 7, 8, 3, 5, 0.07, 1.0),
    (200, 100, 16, 5, 20, 0.07, 3.0),
    (300, 600, 12, 10, 20, 0.07, 0.2),  # more test rows than one chunk of the reference
    (40, 1, 4, 2, 1, 0.5, 1.0),
    (64, 30, 6, 4, 64, 0.1, 1.0),  # every training sample votes
]


# ----------------------------------------------------------------------------- knn_classify


@exercise("knn_classify")
def test_knn_classify_reproduces_the_original_golden_predictions(golden):
    case = golden["knn"]
    predictions, votes = ev.knn_classify(
        case["train_features"], case["train_labels"], case["test_features"], k=20, temperature=0.07, num_classes=5
    )
    expect(
        isinstance(predictions, torch.Tensor) and predictions.shape == (100,),
        "knn_classify must return (predictions (N_test,), votes (N_test, classes))",
    )
    expect_close(
        votes, case["votes"],
        "votes differ from the original's: each of the k most similar training samples adds exp(similarity / T) "
        "to the score of its own label (check the temperature divides, and that you take the *largest* similarities)",
        **VOTE_TOL,
    )
    expect(
        torch.equal(predictions.long(), case["predictions"]),
        "predictions differ from the original's: the prediction is the class with the largest vote (argmax over classes)",
    )


@exercise("knn_classify")
@pytest.mark.parametrize("n_train,n_test,dim,classes,k,temperature,scale", GRID)
def test_knn_classify_matches_the_reference(n_train, n_test, dim, classes, k, temperature, scale):
    train, train_labels = clustered(n_train + dim, n_train, dim, classes, scale=scale)
    test, _ = clustered(n_train + dim, n_test, dim, classes, scale=scale)  # same prototypes (same seed)
    predictions, votes = ev.knn_classify(train, train_labels, test, k=k, temperature=temperature, num_classes=classes)
    expected_predictions, expected_votes = ref.knn_classify(train, train_labels, test, k, temperature, classes)
    expect(votes.shape == (n_test, classes), f"votes must have shape (N_test, num_classes) = {(n_test, classes)}, got {tuple(votes.shape)}")
    expect_close(
        votes, expected_votes,
        "votes differ from the reference: did you L2-normalise both feature sets (the features here are not unit length), "
        "use exp(s / T), and only the k nearest neighbours?",
        **VOTE_TOL,
    )
    expect(torch.equal(predictions.long(), expected_predictions), "predictions must be the argmax of the votes")


@exercise("knn_classify")
def test_knn_classify_invariants_by_hand():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = torch.tensor([0, 1, 1])
    test = torch.tensor([[2.0, 0.0]])  # not unit length: the cosine with train row 0 is 1
    predictions, votes = ev.knn_classify(train, labels, test, k=2, temperature=0.5, num_classes=3)
    # nearest two: row 0 (cos 1) and row 2 (cos 0.6); row 1 (cos 0) does not vote
    expected = torch.tensor([[torch.exp(torch.tensor(2.0)), torch.exp(torch.tensor(1.2)), 0.0]])
    expect_close(
        votes, expected,
        "by hand: votes[c] = sum over the k nearest neighbours with label c of exp(cos / T); the third class got no "
        "neighbour and must score 0",
        rtol=1e-6, atol=0.0,
    )
    expect(predictions.tolist() == [0], "the class with the largest vote wins")
    _, votes_scaled = ev.knn_classify(100 * train, labels, test, k=2, temperature=0.5, num_classes=3)
    expect_close(votes_scaled, expected, "scaling the features must not change the votes: normalise the rows first", rtol=1e-6, atol=0.0)


@exercise("knn_classify")
def test_knn_classify_rejects_bad_input():
    train, labels = clustered(0, 10, 4, 2)
    ev.knn_classify(train, labels, torch.randn(3, 4), k=2)  # a valid call first: a stub must not pass this check
    with pytest.raises(ValueError):
        ev.knn_classify(train, labels, torch.randn(3, 5), k=2)
    with pytest.raises(ValueError):
        ev.knn_classify(train, labels, torch.randn(3, 4), k=11)


# ----------------------------------------------------------------------------- knn_accuracy


@exercise("knn_accuracy")
def test_knn_accuracy_reproduces_the_original_golden_numbers(golden):
    case = golden["knn"]
    top1, top5 = ev.knn_accuracy(
        case["train_features"], case["train_labels"], case["test_features"], case["test_labels"], 20, 0.07, 5
    )
    expect(top1 == case["top1"], f"top-1 {top1} differs from the original's {case['top1']}: top1 = 100 · #correct / N_test")
    expect(top5 == case["top5"], f"top-5 {top5} differs from the original's {case['top5']}")


@exercise("knn_accuracy")
@pytest.mark.parametrize("n_train,n_test,dim,classes,k,temperature,scale", GRID)
def test_knn_accuracy_matches_the_reference(n_train, n_test, dim, classes, k, temperature, scale):
    train, train_labels = clustered(n_train, n_train, dim, classes, noise=1.5, scale=scale)
    test, test_labels = clustered(n_train, n_test, dim, classes, noise=1.5, scale=scale)
    actual = ev.knn_accuracy(train, train_labels, test, test_labels, k, temperature, classes)
    expected = ref.knn_accuracy(train, train_labels, test, test_labels, k, temperature, classes)
    expect(
        tuple(float(a) for a in actual) == expected,
        f"(top1, top5) = {actual}, expected {expected}: top-5 counts a hit when the label is among the min(5, k) best classes",
    )


@exercise("knn_accuracy")
def test_knn_accuracy_top5_uses_at_most_k_classes():
    # 6 classes, k = 2: only the two best-ranked classes can count for "top-5"
    train = torch.eye(6)
    labels = torch.arange(6)
    test = torch.tensor([[1.0, 0.9, 0.8, 0.0, 0.0, 0.0]])
    top1, top5 = ev.knn_accuracy(train, labels, test, torch.tensor([2]), k=2, temperature=0.07, num_classes=6)
    expect((top1, top5) == (0.0, 0.0), f"label 2 ranks third and k = 2: expected (0.0, 0.0), got {(top1, top5)}; use min(5, k)")


# ----------------------------------------------------------------------------- attention maps


def golden_backbone(golden) -> VisionTransformer:
    config = golden["train"]["config"]
    backbone = VisionTransformer(
        ViTConfig(img_size=32, patch_size=config["patch_size"], embed_dim=config["embed_dim"], depth=config["depth"], num_heads=config["num_heads"])
    )
    weights = {k.removeprefix("backbone."): v for k, v in golden["train"]["init_student"].items() if k.startswith("backbone.")}
    backbone.load_state_dict(weights)
    return backbone


@exercise("cls_attention_maps")
def test_cls_attention_maps_reproduce_the_original(golden):
    backbone = golden_backbone(golden)
    images = golden["train"]["inputs"][0][0]
    maps = ev.cls_attention_maps(backbone, images)
    expect(isinstance(maps, torch.Tensor) and maps.shape == (4, 2, 8, 8), f"expected (B, heads, H/P, W/P) = (4, 2, 8, 8), got {getattr(maps, 'shape', maps)}")
    expected = golden["attention"]["attention"][:, :, 0, 1:].reshape(4, 2, 8, 8)
    # golden/README: an independent implementation agrees to 0; 1e-6 leaves room for op order
    expect_close(
        maps, expected,
        "maps differ from the original's CLS attention: take query row 0 (CLS), drop key column 0 (CLS itself), "
        "and reshape the patches row-major to (H/P, W/P)",
        rtol=0.0, atol=1e-6,
    )
    expect(not maps.requires_grad, "compute the maps under torch.no_grad(): they are for looking at, not for training")


@exercise("cls_attention_maps")
@pytest.mark.parametrize("height,width,heads", [(32, 32, 3), (16, 24, 2), (8, 32, 1)])
def test_cls_attention_maps_on_non_square_images(height, width, heads):
    torch.manual_seed(height + width)
    backbone = VisionTransformer(ViTConfig(img_size=32, patch_size=4, embed_dim=12 * heads, depth=2, num_heads=heads))
    images = torch.randn(2, 3, height, width)
    maps = ev.cls_attention_maps(backbone, images)
    expect_close(
        maps, ref.cls_attention_maps(backbone, images),
        "for a non-square image the grid is (H/P rows, W/P columns), patches in row-major order",
        rtol=0.0, atol=1e-6,
    )
    self_attention = backbone.last_attention(images)[:, :, 0, 0]
    expect_close(maps.sum(dim=(-2, -1)) + self_attention, torch.ones(2, heads), "the patch weights plus CLS's self-attention must sum to 1", rtol=0.0, atol=1e-5)


# ----------------------------------------------------------------------------- attention_mass_mask


@exercise("attention_mass_mask")
@pytest.mark.parametrize("shape,mass", [((2, 3, 8, 8), 0.6), ((4, 5), 0.3), ((1, 2, 6, 4), 0.9), ((3, 7, 7), 1.0)])
def test_attention_mass_mask_matches_the_reference(shape, mass):
    generator = torch.Generator().manual_seed(sum(shape))
    maps = torch.rand(shape, generator=generator) ** 3  # skewed, like real attention
    mask = ev.attention_mass_mask(maps, mass)
    expect(isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and mask.shape == maps.shape, "return a bool tensor of the maps' shape")
    expected = ref.attention_mass_mask(maps, mass)
    expect(
        torch.equal(mask, expected),
        "mask differs from the reference: keep a patch when the attention of the patches ranked above it is < mass "
        "(normalise each map to sum 1 first, and put the mask back in patch order, not sorted order)",
    )
    flat_maps, flat_mask = maps.flatten(-2), mask.flatten(-2)
    kept = (flat_maps * flat_mask).sum(-1) / flat_maps.sum(-1)
    expect(bool((kept >= mass - 1e-6).all()), "the kept patches must hold at least `mass` of the attention")


@exercise("attention_mass_mask")
def test_attention_mass_mask_by_hand():
    maps = torch.tensor([[4.0, 1.0, 3.0, 2.0]]).view(1, 2, 2)  # normalised: 0.4, 0.1, 0.3, 0.2
    mask = ev.attention_mass_mask(maps, 0.5)
    expect(mask.view(-1).tolist() == [True, False, True, False], "0.4 alone is < 0.5, so the next best (0.3) is kept too; then 0.7 ≥ 0.5 stops")
    mask = ev.attention_mass_mask(maps, 0.4)
    expect(mask.view(-1).tolist() == [True, False, False, False], "mass above the best patch is 0 (< 0.4); above the second it is 0.4, not < 0.4")
    with pytest.raises(ValueError):
        ev.attention_mass_mask(maps, 1.5)
