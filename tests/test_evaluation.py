"""Hidden checks for Lesson 4.5 (`dino_course/evaluation.py`).

The expected values are computed here in float64 from the definitions (the "truth"), and a
learner's float32 result is compared with the truth within a bound on float32 rounding, so a
loop, a one-hot product, `F.normalize` or `x / x.norm()`, `torch.cdist`, float64
intermediates and the reference all pass. The bounds (eps = 2^-23 ≈ 1.19e-7):

- k-NN similarity. For unit vectors Σ|x_i y_i| ≤ 1 (Cauchy-Schwarz), so a float32 dot product
  is off by at most D·eps/2, and each L2 normalisation (a sum of D squares, a sqrt, a
  division) moves s by at most (D/2 + 2)·eps/2 per side: |Δs| ≤ (D + 2)·eps; we allow
  (D + 4)·eps for an extra rounding of a reciprocal. A vote exp(s / T) is then off by a
  relative |Δs| / T, plus the rounding of the division, of exp and of a sum of k positive
  terms: VOTE_RTOL = (D + 4)·eps / T + (k + 2)·eps / 2 (3.5e-5 for D = 16, T = 0.07, k = 20).
  Zero votes (classes no neighbour has) are exactly 0 in every formulation.
- Test rows whose k-th and (k+1)-th similarities are closer than twice |Δs|, or whose best
  two classes' votes are closer than twice VOTE_RTOL, are left out: there any correct
  implementation may pick either neighbour or class.
- Accuracies are 100·count/n. The count is exact; a float32 mean rounds once in the division
  and once in the ×100 (each a relative eps/2), so ACCURACY_ATOL = 100 · 2·eps (2.4e-5) accepts
  `100 * hits.float().mean()` (49.000000953674316 for 49) and is far below one sample's 100/n.
- Mass masks: normalising and a cumulative sum over n patches are off by at most (n + 2)·eps;
  maps where the mass above some patch is within twice that of `mass`, or where the last kept
  and first dropped weights are that close, are left out. Exact cases use dyadic weights
  (sums of powers of two), where every formulation is exact.
- Attention maps: the learner indexes the same `last_attention` tensor, so the maps are
  bit-identical; 1e-6 (dino_v1_golden.README.md) leaves room for another batching of the images.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F

import solutions.evaluation as ref
from dino_course.grading.errors import ExerciseNotStarted
from dino_course.grading.hints import FLOAT32_EPS as EPS
from dino_course.grading.hints import call_unmutated, expect, expect_close, expect_raises, expect_type
from dino_course.grading.learner import LearnerModule
from dino_course.networks.vit import ViTConfig, VisionTransformer

ev = LearnerModule("evaluation")
ACCURACY_ATOL = 100 * 2 * EPS  # see the module docstring: two float32 roundings of a value ≤ 100
ATTENTION_ATOL = 1e-6  # dino_v1_golden.README.md: an independent implementation agrees to 0


exercise = functools.partial(pytest.mark.exercise, "4.5")  # @exercise("name"): a check of that exercise of the lesson


def similarity_error(dim: int) -> float:
    """Bound on |Δs| of a float32 cosine of L2-normalised D-vectors (module docstring)."""
    return (dim + 4) * EPS


def vote_rtol(dim: int, k: int, temperature: float) -> float:
    """Bound on the relative float32 error of a vote (module docstring)."""
    return similarity_error(dim) / temperature + (k + 2) * EPS / 2


def clustered(seed: int, sizes, dim: int, classes: int, noise: float = 0.8, scale: float = 1.0):
    """For each size n, (features, labels): features near shared class prototypes (not unit length unless
    scale=1). `sizes` may be one int."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(classes, dim, generator=generator)
    sets = []
    for n in [sizes] if isinstance(sizes, int) else sizes:
        labels = torch.randint(0, classes, (n,), generator=generator)
        features = prototypes[labels] + noise * torch.randn(n, dim, generator=generator)
        sets.append((scale * features, labels))
    return sets[0] if isinstance(sizes, int) else sets


# ----------------------------------------------------------------------------- float64 truth and the usual mistakes


def knn_votes64(
    train, labels, test, k, temperature, num_classes, *,
    weight=lambda s, t: torch.exp(s / t), skip=0, extra=0, largest=True, normalise=(True, True), per_row=False,
):
    """The votes in float64, from the definition; the keyword arguments make the usual mistakes."""
    train, test = train.double(), test.double()
    if normalise[0]:
        train = F.normalize(train, dim=1)
    if normalise[1]:
        test = F.normalize(test, dim=1)
    similarity = test @ train.T
    count = min(k + skip + extra, train.shape[0])
    top, index = similarity.topk(count, dim=1, largest=largest)
    top, index = top[:, skip:], index[:, skip:]
    votes = torch.zeros(test.shape[0], num_classes, dtype=torch.float64)
    votes.scatter_add_(1, labels.long()[index], weight(top, temperature))
    return votes / votes.sum(dim=1, keepdim=True) if per_row else votes


def knn_mistakes(k: int):
    """(votes64 keyword arguments, hint) for the usual mistakes, most specific first."""
    normalise_both = "normalise the rows of both sets (F.normalize(x, dim=1))"
    mistakes = [
        (dict(weight=lambda s, t: torch.exp(s)), "the temperature is missing: each vote weighs exp(s / T), not exp(s)"),
        (dict(weight=lambda s, t: torch.exp(s * t)), "the temperature multiplies: each vote weighs exp(s / T)"),
        (
            dict(weight=lambda s, t: torch.exp(-s / t)),
            "the sign of the exponent is flipped: each vote weighs exp(+s / T), so the most similar neighbours "
            "weigh most",
        ),
        (dict(weight=lambda s, t: torch.ones_like(s)), "each neighbour counts 1: weight its vote by exp(s / T)"),
        (dict(weight=lambda s, t: s), "the vote weighs the similarity itself: weight it by exp(s / T)"),
        (dict(weight=lambda s, t: s / t), "the vote weighs s / T: weight it by exp(s / T)"),
        (
            dict(skip=1),
            "the nearest neighbour does not vote: the test samples are not in the training set, so the k most similar "
            "training samples all vote (no skipping the first)",
        ),
        (dict(extra=1), "k + 1 neighbours vote: take exactly k (topk(k))"),
        (
            dict(largest=False),
            "the k *least* similar training samples vote: take the largest similarities (topk(k, largest=True))",
        ),
        (
            dict(normalise=(False, False)),
            f"the features are not L2-normalised: {normalise_both} so the dot product is the cosine",
        ),
        (dict(normalise=(True, False)), f"the test features are not L2-normalised: {normalise_both}"),
        (dict(normalise=(False, True)), f"the training features are not L2-normalised: {normalise_both}"),
        (dict(per_row=True), "the votes are normalised to sum 1: return the raw sums of exp(s / T)"),
    ]
    if k > 1:
        mistakes.insert(7, (dict(extra=-1), "k − 1 neighbours vote: take exactly k (topk(k))"))
    return mistakes


def unambiguous_rows(train, labels, test, k, temperature, num_classes, test_labels=None):
    """Test rows where every correct float32 implementation picks the same neighbours and class
    (and, given `test_labels`, counts the same top-1 and top-min(5, k) hits)."""
    similarity = F.normalize(test.double(), dim=1) @ F.normalize(train.double(), dim=1).T
    keep = torch.ones(test.shape[0], dtype=torch.bool)
    if k < train.shape[0]:
        top = similarity.topk(k + 1, dim=1).values
        keep &= top[:, k - 1] - top[:, k] > 2 * similarity_error(test.shape[1])
    votes = knn_votes64(train, labels, test, k, temperature, num_classes)
    tol = 2 * vote_rtol(test.shape[1], k, temperature)
    best = votes.topk(min(2, num_classes), dim=1).values
    if num_classes > 1:
        keep &= best[:, 0] - best[:, 1] > tol * best[:, 0]
    if test_labels is not None:
        for m in (1, min(5, k)):
            keep &= hits64(votes, test_labels, m, tol) >= 0
    return keep


def hits64(votes, test_labels, m, tol):
    """Per row: 1 if the label is surely among the m best classes, 0 if surely not, -1 if a near tie decides."""
    label_votes = votes.gather(1, test_labels.long().view(-1, 1))
    others = votes.scatter(1, test_labels.long().view(-1, 1), float("-inf"))
    surely_above = (others > label_votes * (1 + tol)).sum(dim=1)
    maybe_above = (others >= label_votes * (1 - tol)).sum(dim=1)
    return torch.where(maybe_above < m, 1, torch.where(surely_above >= m, 0, -1))


def accuracies64(votes, test_labels, k, *, top5_classes=None, descending=True, divide_by=None):
    """(top1, top5) from float64 votes; keywords make the usual mistakes."""
    m5 = min(5, k) if top5_classes is None else top5_classes
    order = votes.argsort(dim=1, descending=descending, stable=True)
    hits = order == test_labels.long().view(-1, 1)
    n = test_labels.shape[0] if divide_by is None else divide_by
    return 100.0 * hits[:, :1].sum().item() / n, 100.0 * hits[:, :m5].sum().item() / n


def clean_knn_case(seed, n_train, n_test, dim, classes, k, temperature, scale=1.0, noise=0.8, with_labels=False):
    """Training and test data (sharing prototypes) with the ambiguous test rows left out."""
    sets = clustered(seed, (n_train, n_test), dim, classes, noise=noise, scale=scale)
    (train, train_labels), (test, test_labels) = sets
    keep = unambiguous_rows(train, train_labels, test, k, temperature, classes, test_labels if with_labels else None)
    assert keep.sum() >= max(1, 0.6 * keep.numel()), "test data: too many near ties (maintainers: pick another seed)"
    return train, train_labels, test[keep], test_labels[keep]


def expect_votes(votes, train, labels, test, k, temperature, num_classes, *, expected=None, rtol=None, what="votes"):
    """The learner's votes against the float64 truth, naming the mistake where one fits."""
    truth = knn_votes64(train, labels, test, k, temperature, num_classes)
    rtol = vote_rtol(test.shape[1], k, temperature) if rtol is None else rtol
    expected = truth if expected is None else expected
    expect_type(votes, expected, "knn_classify's votes")
    expect(
        votes.shape == expected.shape,
        f"votes must have shape (N_test, num_classes) = {tuple(expected.shape)}, got {tuple(votes.shape)}: one row "
        "per test sample, one column per class (use num_classes for the width)",
    )
    votes = votes.detach()
    if torch.allclose(votes.double(), expected.double(), rtol=rtol, atol=0.0):
        return
    if not torch.isfinite(votes).all():
        raise AssertionError(
            "some votes are inf or nan: exp(s / T) overflows when s is not a cosine; L2-normalise both feature sets "
            "(F.normalize(x, dim=1)) so that s ≤ 1"
        )
    for keywords, hint in knn_mistakes(k):
        mistaken = knn_votes64(train, labels, test, k, temperature, num_classes, **keywords)
        if torch.isfinite(mistaken).all() and torch.allclose(votes.double(), mistaken, rtol=1e-3, atol=1e-12):
            raise AssertionError(f"{what}: {hint}")
    expect_close(
        votes, expected,
        f"{what} differ: votes[i, c] is the sum, over the k training samples most similar to test sample i that have "
        "label c, of exp(s / T), with s the cosine of the L2-normalised features",
        rtol=rtol, atol=0.0,
    )


def expect_predictions(predictions, votes, expected_votes):
    """Predictions: the argmax over classes of the votes (checked on rows without near ties)."""
    expect_type(predictions, expected_votes, "knn_classify's predictions")
    expected = expected_votes.argmax(dim=1)
    expect(
        predictions.shape == expected.shape,
        f"predictions must have shape (N_test,) = {tuple(expected.shape)}, got {tuple(predictions.shape)}: "
        "take the argmax over the classes (dim=1)",
    )
    if torch.equal(predictions.long(), expected):
        return
    if torch.equal(predictions.long(), expected_votes.argmin(dim=1)):
        raise AssertionError(
            "predictions are the classes with the *fewest* votes: take the argmax over classes (dim=1)"
        )
    raise AssertionError("predictions must be the class with the largest vote in each row: votes.argmax(dim=1)")


def check_knn_output(result, n_test, num_classes):
    """None, the pair, the order, tensor types, dtypes and shapes of knn_classify's result."""
    expect(result is not None, "knn_classify returned None: did you forget `return predictions, votes`?")
    expect(
        isinstance(result, (tuple, list)) and len(result) == 2,
        f"knn_classify must return a pair (predictions, votes), got {type(result).__name__}",
    )
    predictions, votes = result
    expect(
        isinstance(predictions, torch.Tensor) and isinstance(votes, torch.Tensor),
        "knn_classify must return two tensors (predictions, votes)",
    )
    expect(
        not (predictions.dim() == 2 and votes.dim() == 1),
        "the pair is swapped: return (predictions, votes), predictions first",
    )
    expect(
        votes.shape == (n_test, num_classes),
        f"votes must have shape (N_test, num_classes) = {(n_test, num_classes)}, got {tuple(votes.shape)}: one row per "
        "test sample, one column per class (use num_classes for the width)",
    )
    expect(
        predictions.shape == (n_test,),
        f"predictions must have shape (N_test,) = {(n_test,)}, got {tuple(predictions.shape)}: take the argmax over "
        "the classes (dim=1)",
    )
    expect(
        predictions.dtype == torch.int64,
        f"predictions must be int64 class indices (argmax gives them), got {predictions.dtype}",
    )
    expect(votes.dtype == torch.float32, f"votes must be float32, got {votes.dtype}: convert with .float()")
    return predictions, votes


# ----------------------------------------------------------------------------- knn_classify


@exercise("knn_classify")
def test_knn_classify_returns_predictions_and_votes():
    train, labels, test, _ = clean_knn_case(3, 24, 9, 6, 4, 3, 0.5, scale=2.0)
    result = ev.knn_classify(train.clone(), labels.clone(), test.clone(), k=3, temperature=0.5, num_classes=4)
    check_knn_output(result, test.shape[0], 4)
    call_unmutated(ev.knn_classify, train.clone(), labels.clone(), test.clone(), k=3, temperature=0.5, num_classes=4)


@exercise("knn_classify")
def test_knn_classify_by_hand():
    # classes 0 (x axis) and 1 (y axis) and an empty class 2; no feature has unit length
    lengths = torch.tensor([[2.0], [0.5], [1.5], [1.0], [3.0]])
    train = lengths * torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0, 0])
    test = torch.tensor([[2.0, 0.0], [0.0, -3.0]])
    predictions, votes = ev.knn_classify(
        train.clone(), labels.clone(), test.clone(), k=2, temperature=0.5, num_classes=3
    )
    # row 0: nearest two are train 0 (cos 1) and train 3 (cos 0.8), both class 0; train 2 (cos 0.6) does not vote
    # row 1: cosines 0, -1, -0.8, -0.6, 0: the nearest two are train 0 and train 4 (cos 0), both class 0
    e = torch.exp
    expected = torch.tensor(
        [[e(torch.tensor(2.0)) + e(torch.tensor(1.6)), 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64
    )
    expect_votes(votes, train, labels, test, 2, 0.5, 3, expected=expected, rtol=vote_rtol(2, 2, 0.5))
    expect_predictions(predictions, votes, expected)
    # every feature scaled by 100: the cosines, and so the votes, stay the same
    _, votes_scaled = ev.knn_classify(100 * train, labels.clone(), 0.01 * test, k=2, temperature=0.5, num_classes=3)
    expect_votes(votes_scaled, train, labels, test, 2, 0.5, 3, expected=expected, rtol=vote_rtol(2, 2, 0.5),
                 what="with every feature scaled, the votes")


@exercise("knn_classify")
def test_knn_classify_mixed_neighbours_by_hand():
    # k = 3 at T = 0.25: the votes of two classes, so weighting, k and temperature each change the winner or the sums
    angles = torch.tensor([0.0, 0.3, 0.5, 0.9, 1.4, 2.0])
    train = torch.stack([angles.cos(), angles.sin()], dim=1)
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    test = torch.tensor([[1.0, 0.05], [0.3, 1.0]])
    predictions, votes = ev.knn_classify(
        train.clone(), labels.clone(), test.clone(), k=3, temperature=0.25, num_classes=2
    )
    expected = knn_votes64(train, labels, test, 3, 0.25, 2)
    expect_votes(votes, train, labels, test, 3, 0.25, 2)
    expect_predictions(predictions, votes, expected)


@exercise("knn_classify")
def test_knn_classify_reproduces_the_original_golden_votes(golden):
    case = golden["knn"]
    train, labels, test = case["train_features"], case["train_labels"], case["test_features"]
    predictions, votes = check_knn_output(
        ev.knn_classify(train.clone(), labels.clone(), test.clone(), k=20, temperature=0.07, num_classes=5), 100, 5
    )
    # the golden votes and the learner's are each within vote_rtol of the exact value: 2x between them
    expect_votes(votes, train, labels, test, 20, 0.07, 5, expected=case["votes"], rtol=2 * vote_rtol(16, 20, 0.07),
                 what="votes (against the original DINO's)")
    expect_predictions(predictions, votes, case["votes"])


GRID = [  # (n_train, n_test, dim, classes, k, T, feature scale)
    (50, 7, 8, 3, 5, 0.07, 1.0),
    (200, 100, 16, 5, 20, 0.07, 3.0),
    (300, 600, 12, 10, 20, 0.07, 0.2),  # more test rows than one chunk of the reference
    (40, 3, 4, 2, 1, 0.5, 1.0),
    (64, 30, 6, 4, 64, 0.1, 1.0),  # every training sample votes
    (30, 20, 5, 6, 7, 1.0, 1.0),
]


@exercise("knn_classify")
@pytest.mark.parametrize("n_train,n_test,dim,classes,k,temperature,scale", GRID)
def test_knn_classify_matches_the_definition(n_train, n_test, dim, classes, k, temperature, scale):
    train, labels, test, _ = clean_knn_case(n_train + dim, n_train, n_test, dim, classes, k, temperature, scale=scale)
    result = ev.knn_classify(
        train.clone(), labels.clone(), test.clone(), k=k, temperature=temperature, num_classes=classes
    )
    predictions, votes = check_knn_output(result, test.shape[0], classes)
    expect_votes(votes, train, labels, test, k, temperature, classes)
    expect_predictions(predictions, votes, knn_votes64(train, labels, test, k, temperature, classes))


@exercise("knn_classify")
def test_knn_classify_num_classes():
    train, labels, test, _ = clean_knn_case(5, 40, 10, 6, 3, 5, 0.2)
    # more classes than the labels show: the extra columns get no vote
    result = ev.knn_classify(train.clone(), labels.clone(), test.clone(), k=5, temperature=0.2, num_classes=6)
    predictions, votes = check_knn_output(result, test.shape[0], 6)
    expect_votes(votes, train, labels, test, 5, 0.2, 6)
    # the default: labels.max() + 1 classes
    result = ev.knn_classify(train.clone(), labels.clone(), test.clone(), k=5, temperature=0.2)
    _, votes = check_knn_output(result, test.shape[0], 3)
    expect_votes(votes, train, labels, test, 5, 0.2, 3)


@exercise("knn_classify")
def test_knn_classify_defaults_are_the_papers():
    train, labels, test, _ = clean_knn_case(11, 80, 12, 8, 4, 20, 0.07)
    _, votes = check_knn_output(ev.knn_classify(train.clone(), labels.clone(), test.clone()), test.shape[0], 4)
    expect_votes(votes, train, labels, test, 20, 0.07, 4, what="with the defaults k = 20, T = 0.07, the votes")


@exercise("knn_classify")
def test_knn_classify_accepts_any_float_dtype():
    train, labels, test, _ = clean_knn_case(7, 30, 8, 5, 3, 4, 0.1)
    try:
        result = ev.knn_classify(train.double(), labels, test.double(), k=4, temperature=0.1, num_classes=3)
    except ExerciseNotStarted:
        raise
    except RuntimeError as exc:
        raise AssertionError(
            f"with float64 features knn_classify raised {type(exc).__name__} ({str(exc).splitlines()[0][:80]}): the "
            "features may come in any float dtype; convert them with .float() first"
        ) from None
    _, votes = check_knn_output(result, test.shape[0], 3)
    expect_votes(votes, train, labels, test, 4, 0.1, 3)


@exercise("knn_classify")
def test_knn_classify_rejects_bad_input():
    train, labels = clustered(0, 10, 4, 2)
    ev.knn_classify(train, labels, torch.randn(3, 4), k=2)  # a valid call first: a stub must not pass this check
    hint = "knn_classify must check its inputs (the given check_knn_inputs call at the top)"
    expect_raises(ValueError, hint, ev.knn_classify, train, labels, torch.randn(3, 5), k=2)
    expect_raises(ValueError, hint, ev.knn_classify, train, labels, torch.randn(3, 4), k=11)
    expect_raises(ValueError, hint, ev.knn_classify, train, labels, torch.randn(3, 4), k=2, temperature=0.0)


# ----------------------------------------------------------------------------- knn_accuracy


def accuracy_mistakes(votes, test_labels, k, n_train):
    """(top1, top5) of the usual mistakes, with their hints, most specific first."""
    right = accuracies64(votes, test_labels, k)
    n_test = test_labels.shape[0]
    return [
        ((right[0] / 100, right[1] / 100), "the accuracies are fractions: return percentages, 100 · #hits / N_test"),
        ((right[1], right[0]), "the pair is swapped: return (top1, top5)"),
        (
            accuracies64(votes, test_labels, k, top5_classes=5),
            "top-5 must count the min(5, k) best classes: with k < 5 only k classes can have votes",
        ),
        (accuracies64(votes, test_labels, k, top5_classes=k), "top-5 counts the min(5, k) best classes, not k"),
        (
            accuracies64(votes, test_labels, k, descending=False),
            "the classes are ranked from the fewest votes up: rank them by decreasing votes (descending=True)",
        ),
        ((right[0] * n_test / 100, right[1] * n_test / 100), "these are counts: divide by N_test and multiply by 100"),
        (
            accuracies64(votes, test_labels, k, divide_by=n_train),
            "divide by the number of *test* samples, not of training samples",
        ),
        ((100 - right[0], 100 - right[1]), "these are error rates: return the share of hits, 100 · #correct / N_test"),
    ]


def expect_accuracies(
    actual, train, train_labels, test, test_labels, k, temperature, num_classes, *, expected=None, what=""
):
    """(top1, top5): a pair of Python floats equal to the truth within ACCURACY_ATOL, naming the mistake if one fits."""
    votes = knn_votes64(train, train_labels, test, k, temperature, num_classes)
    truth = accuracies64(votes, test_labels, k)
    expected = truth if expected is None else expected
    expect(actual is not None, "knn_accuracy returned None: did you forget `return top1, top5`?")
    expect(
        isinstance(actual, (tuple, list)) and len(actual) == 2,
        f"knn_accuracy must return a pair (top1, top5), got {type(actual).__name__}",
    )
    for name, value in zip(("top1", "top5"), actual):
        expect_type(value, 0.0, f"knn_accuracy's {name}")
        expect(
            isinstance(value, float),
            f"knn_accuracy's {name} should be a Python float, got {value!r} ({type(value).__name__}): "
            "use / (not //) for 100 · #correct / N_test",
        )
    if all(abs(a - e) <= ACCURACY_ATOL for a, e in zip(actual, expected)):
        return
    mistakes = accuracy_mistakes(votes, test_labels, k, train.shape[0])
    if ref.KNN_K <= train.shape[0]:
        votes_default_k = knn_votes64(train, train_labels, test, ref.KNN_K, temperature, num_classes)
        for top5_k in (k, ref.KNN_K):  # the top-5 rule with the given k, or with 20 too
            mistakes.append((
                accuracies64(votes_default_k, test_labels, top5_k),
                "this is the accuracy with k = 20 whatever k is: pass k (and temperature, num_classes) on to "
                "knn_classify",
            ))
    votes_default_temperature = knn_votes64(train, train_labels, test, k, ref.KNN_TEMPERATURE, num_classes)
    mistakes.append((
        accuracies64(votes_default_temperature, test_labels, k),
        "this is the accuracy with T = 0.07 whatever the temperature is: pass temperature (and k, num_classes) on to "
        "knn_classify",
    ))
    for wrong, hint in mistakes:
        if hint and wrong != truth and all(abs(a - w) <= ACCURACY_ATOL for a, w in zip(actual, wrong)):
            raise AssertionError(f"{what}{hint} (got {tuple(actual)}, expected {expected})")
    raise AssertionError(
        f"{what}(top1, top5) = {tuple(actual)}, expected {expected}: a test sample counts for top-1 when its label has "
        "the most votes and for top-5 when it is among the min(5, k) classes with the most votes; each is "
        "100 · #hits / N_test"
    )


def clean_accuracy_case(seed, n_train, n_test, dim, classes, k, temperature, scale=1.0, noise=1.5):
    return clean_knn_case(
        seed, n_train, n_test, dim, classes, k, temperature, scale=scale, noise=noise, with_labels=True
    )


@exercise("knn_accuracy")
def test_knn_accuracy_returns_two_percentages():
    train, train_labels, test, test_labels = clean_accuracy_case(2, 40, 40, 6, 8, 7, 0.1)
    actual = ev.knn_accuracy(train.clone(), train_labels.clone(), test.clone(), test_labels.clone(), 7, 0.1, 8)
    expect_accuracies(actual, train, train_labels, test, test_labels, 7, 0.1, 8)
    call_unmutated(ev.knn_accuracy, train.clone(), train_labels.clone(), test.clone(), test_labels.clone(), 7, 0.1, 8)


@exercise("knn_accuracy")
def test_knn_accuracy_passes_k_and_temperature_on():
    # with k = 3 and T = 1 the winner differs from the one with k = 20 or T = 0.07 on some rows
    train, train_labels, test, test_labels = clean_accuracy_case(29, 60, 60, 8, 6, 3, 1.0, noise=1.2)
    actual = ev.knn_accuracy(train, train_labels, test, test_labels, k=3, temperature=1.0, num_classes=6)
    expect_accuracies(actual, train, train_labels, test, test_labels, 3, 1.0, 6)


@exercise("knn_accuracy")
def test_knn_accuracy_top5_counts_the_min_5_k_best_classes():
    # 4 classes, k = 2: the label of the test sample (class 2) got no vote, so it is not among the 2 best
    train = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    labels = torch.arange(4)
    test = torch.tensor([[1.0, 0.9, 0.2, 0.0], [1.0, 0.2, 0.0, 0.0]])
    test_labels = torch.tensor([2, 1])
    actual = ev.knn_accuracy(train, labels, test, test_labels, k=2, temperature=0.07, num_classes=4)
    expect_accuracies(actual, train, labels, test, test_labels, 2, 0.07, 4, expected=(0.0, 50.0))
    # 7 classes, k = 7: the label ranks 6th of the 7 classes with votes, so it is not among the 5 best
    train = torch.eye(7)
    test = torch.tensor([[1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7]])
    actual = ev.knn_accuracy(train, torch.arange(7), test, torch.tensor([5]), k=7, temperature=0.5, num_classes=7)
    expect_accuracies(actual, train, torch.arange(7), test, torch.tensor([5]), 7, 0.5, 7, expected=(0.0, 0.0))


@exercise("knn_accuracy")
def test_knn_accuracy_reproduces_the_original_golden_numbers(golden):
    case = golden["knn"]
    actual = ev.knn_accuracy(
        case["train_features"], case["train_labels"], case["test_features"], case["test_labels"], 20, 0.07, 5
    )
    expect_accuracies(
        actual, case["train_features"], case["train_labels"], case["test_features"], case["test_labels"], 20, 0.07, 5,
        expected=(case["top1"], case["top5"]), what="top-1/top-5 differ from the original's: ",
    )


@exercise("knn_accuracy")
def test_knn_accuracy_with_fewer_classes_than_min_5_k():
    # 3 classes, k = 6: every class is among the "5 best", so top-5 is 100 %
    train, train_labels, test, test_labels = clean_accuracy_case(17, 30, 20, 4, 3, 6, 0.2)
    try:
        actual = ev.knn_accuracy(train, train_labels, test, test_labels, k=6, temperature=0.2, num_classes=3)
    except ExerciseNotStarted:
        raise
    except RuntimeError as exc:
        raise AssertionError(
            f"with 3 classes and k = 6 knn_accuracy raised {type(exc).__name__} ({str(exc).splitlines()[0][:60]}): "
            "with fewer classes than min(5, k), every class is among the best; take at most as many as there are "
            "(e.g. slicing a sorted ranking, or topk(min(5, k, num_classes)))"
        ) from None
    expect_accuracies(actual, train, train_labels, test, test_labels, 6, 0.2, 3)


@exercise("knn_accuracy")
@pytest.mark.parametrize("n_train,n_test,dim,classes,k,temperature,scale", GRID)
def test_knn_accuracy_matches_the_definition(n_train, n_test, dim, classes, k, temperature, scale):
    case = clean_accuracy_case(n_train, n_train, n_test, dim, classes, k, temperature, scale)
    train, train_labels, test, test_labels = case
    actual = ev.knn_accuracy(train, train_labels, test, test_labels, k, temperature, classes)
    expect_accuracies(actual, train, train_labels, test, test_labels, k, temperature, classes)


@exercise("knn_accuracy")
def test_knn_accuracy_with_the_defaults():
    train, train_labels, test, test_labels = clean_accuracy_case(13, 80, 50, 10, 7, 20, 0.07)
    actual = ev.knn_accuracy(train, train_labels, test, test_labels)
    expect_accuracies(actual, train, train_labels, test, test_labels, 20, 0.07, int(train_labels.max()) + 1,
                      what="with the defaults k = 20, T = 0.07: ")


@exercise("knn_accuracy")
def test_knn_accuracy_rejects_bad_labels():
    train = torch.eye(3)
    ev.knn_accuracy(train, torch.arange(3), train, torch.arange(3), k=1)  # a valid call first
    expect_raises(
        ValueError, "knn_accuracy must reject test_labels without one label per test row (the given check at the top)",
        ev.knn_accuracy, train, torch.arange(3), train, torch.arange(2), k=1,
    )


# ----------------------------------------------------------------------------- cls_attention_maps


def make_backbone(seed: int, heads: int, patch: int = 4, depth: int = 2) -> VisionTransformer:
    torch.manual_seed(seed)
    config = ViTConfig(img_size=32, patch_size=patch, embed_dim=8 * heads, depth=depth, num_heads=heads)
    return VisionTransformer(config)


def golden_backbone(golden) -> VisionTransformer:
    config = golden["train"]["config"]
    shape = {name: config[name] for name in ("patch_size", "embed_dim", "depth", "num_heads")}
    backbone = VisionTransformer(ViTConfig(img_size=32, **shape))
    student = golden["train"]["init_student"]
    weights = {k.removeprefix("backbone."): v for k, v in student.items() if k.startswith("backbone.")}
    backbone.load_state_dict(weights)
    return backbone


def map_mistakes(attention, rows, cols):
    """(maps, hint) of the usual mistakes, from last_attention's (B, heads, 1 + N, 1 + N)."""
    b, h = attention.shape[:2]
    row = attention[:, :, 0, 1:]
    return [
        (attention[:, :, 1:, 0].reshape(b, h, rows, cols),
         "these are column 0 (how much each patch attends to CLS): take row 0, what CLS attends to, "
         "attention[:, :, 0, 1:]"),
        (row.reshape(b, h, cols, rows).transpose(-1, -2),
         "the patches are in row-major order (row by row): reshape to (H/P, W/P) directly, without a transpose"),
        (attention[:, :, 0, :-1].reshape(b, h, rows, cols),
         "drop key 0 (CLS attending to itself), not the last patch: attention[:, :, 0, 1:]"),
        ((row / row.sum(-1, keepdim=True)).reshape(b, h, rows, cols),
         "keep the weights as they are (they sum to 1 minus CLS's self-attention): do not renormalise them"),
        (row.softmax(-1).reshape(b, h, rows, cols),
         "the attention is already probabilities: do not apply softmax again"),
        (attention[:, :, 0, 1:].mean(1, keepdim=True).expand(b, h, -1).reshape(b, h, rows, cols),
         "every head got the same map (the mean over heads): keep one map per head"),
    ]


def expect_maps(maps, backbone, images):
    patch = backbone.cfg.patch_size
    rows, cols = images.shape[-2] // patch, images.shape[-1] // patch
    with torch.no_grad():
        attention = backbone.last_attention(images)
    b, h = attention.shape[:2]
    expected = attention[:, :, 0, 1:].reshape(b, h, rows, cols)
    expect_type(maps, expected, "cls_attention_maps")
    shape, want = tuple(maps.shape), f"(B, heads, H/P, W/P) = {tuple(expected.shape)}"
    expect(
        shape not in ((b, rows, cols), (b, 1, rows, cols)) or h == 1,
        f"returned shape {shape}: keep one map per head, {want}; do not average the heads",
    )
    expect(shape != (b, h, rows * cols), f"returned shape {shape}: reshape the patch weights to the grid {want}")
    expect(
        shape != (b, h, cols, rows) or rows == cols,
        f"returned shape {shape}: the grid has H/P rows and W/P columns, {want}",
    )
    expect(shape == tuple(expected.shape), f"returned shape {shape}, expected {want}")
    expect(not maps.requires_grad, "compute the maps under torch.no_grad(): they are for looking at, not for training")
    if torch.allclose(maps, expected, rtol=0.0, atol=ATTENTION_ATOL):
        return
    for wrong, hint in map_mistakes(attention, rows, cols):
        if torch.allclose(maps.double(), wrong.double(), rtol=0.0, atol=ATTENTION_ATOL):
            raise AssertionError(hint)
    expect_close(
        maps, expected,
        "the maps differ from the CLS attention: take query row 0 (CLS), drop key column 0 (CLS itself), and reshape "
        "the patches row-major to (H/P, W/P)",
        rtol=0.0, atol=ATTENTION_ATOL,
    )


@exercise("cls_attention_maps")
def test_cls_attention_maps_one_map_per_head():
    backbone = make_backbone(1, heads=3)
    images = torch.randn(2, 3, 16, 24)  # a 4 x 6 grid: rows and columns differ
    maps = call_unmutated(ev.cls_attention_maps, backbone, images)
    expect_maps(maps, backbone, images)


@exercise("cls_attention_maps")
def test_cls_attention_maps_reproduce_the_original(golden):
    backbone = golden_backbone(golden)
    images = golden["train"]["inputs"][0][0]
    maps = ev.cls_attention_maps(backbone, images)
    expect_maps(maps, backbone, images)
    expected = golden["attention"]["attention"][:, :, 0, 1:].reshape(4, 2, 8, 8)
    expect_close(maps, expected, "the maps differ from the original's CLS attention", rtol=0.0, atol=ATTENTION_ATOL)


@exercise("cls_attention_maps")
@pytest.mark.parametrize("height,width,heads,patch", [(32, 32, 3, 4), (16, 24, 2, 4), (8, 32, 1, 4), (24, 16, 2, 8)])
def test_cls_attention_maps_on_other_shapes(height, width, heads, patch):
    backbone = make_backbone(height + width, heads=heads, patch=patch)
    images = torch.randn(2, 3, height, width)
    maps = ev.cls_attention_maps(backbone, images)
    expect_maps(maps, backbone, images)
    with torch.no_grad():
        self_attention = backbone.last_attention(images)[:, :, 0, 0]
    # a sum of N ≤ 64 float32 probabilities: off by at most N·eps ≈ 8e-6
    expect_close(
        maps.sum(dim=(-2, -1)) + self_attention, torch.ones(2, heads),
        "the patch weights plus CLS's self-attention must sum to 1", rtol=0.0, atol=1e-5,
    )


@exercise("cls_attention_maps")
def test_cls_attention_maps_rejects_other_models():
    backbone = make_backbone(0, heads=1)
    ev.cls_attention_maps(backbone, torch.randn(1, 3, 8, 8))  # a valid call first
    expect_raises(TypeError, "cls_attention_maps must reject a model without .last_attention (the given check)",
                  ev.cls_attention_maps, torch.nn.Linear(3, 3), torch.randn(1, 3, 8, 8))


# ----------------------------------------------------------------------------- attention_mass_mask


def mass_mask64(maps, mass, *, above=True, strict=True, order="descending", normalise="map", scatter=True):
    """The mask in float64 from the definition; the keywords make the usual mistakes."""
    weights = maps.double()
    if normalise == "map":
        weights = weights / weights.sum(dim=(-2, -1), keepdim=True)
    elif normalise in ("row", "row+map"):
        weights = weights / weights.sum(dim=-1, keepdim=True)
        if normalise == "row+map":
            weights = weights / weights.sum(dim=(-2, -1), keepdim=True)
    elif normalise == "all":
        weights = weights / weights.sum()
    flat = weights.flatten(-2)
    if order == "none":
        ordered, index = flat, torch.arange(flat.shape[-1]).expand_as(flat)
    else:
        ordered, index = flat.sort(dim=-1, descending=order == "descending", stable=True)
    cumulative = ordered.cumsum(dim=-1) - (ordered if above else 0)
    keep_sorted = cumulative < mass if strict else cumulative <= mass
    keep = torch.zeros_like(keep_sorted).scatter_(-1, index, keep_sorted) if scatter else keep_sorted
    return keep.view(maps.shape)


_CROSSING = (
    "the patch that crosses `mass` must be kept too: compare the mass *above* each patch (cumulative sum minus its "
    "own weight) with mass"
)
_PER_ROW = "each row of a map was normalised on its own: normalise over the last two dimensions together, the whole map"
MASK_MISTAKES = [
    (
        dict(strict=False),
        "the inequality is strict: keep a patch only while the mass *above* it is < mass (with exactly `mass` above "
        "it, it is not kept)",
    ),
    (dict(above=False), _CROSSING),
    (dict(above=False, strict=False), _CROSSING),
    (
        dict(order="none"),
        "the cumulative mass runs over the patches unsorted: rank them from the highest weight down first (sort "
        "descending)",
    ),
    (dict(order="ascending"), "the patches are ranked from the lowest weight up: sort them descending"),
    (
        dict(scatter=False),
        "the mask is in sorted order: put each patch's verdict back at its own position (scatter with the sort "
        "indices)",
    ),
    (dict(normalise="none"), "the maps are not normalised: divide each map by its sum (the last two dimensions) first"),
    (dict(normalise="row"), _PER_ROW),
    (dict(normalise="row+map"), _PER_ROW),
    (dict(normalise="all"), "all maps were normalised together: normalise each map (last two dimensions) on its own"),
]


def expect_mask(mask, maps, mass, keep=None):
    """The learner's mask against the float64 definition (on the maps `keep` selects), naming the mistake."""
    expected = mass_mask64(maps, mass)
    expect_type(mask, expected, "attention_mass_mask")
    expect(
        mask.dtype == torch.bool,
        f"attention_mass_mask must return a bool tensor (e.g. `mass_above < mass`), got {mask.dtype}",
    )
    expect(
        mask.shape == maps.shape,
        f"the mask must have the maps' shape {tuple(maps.shape)}, got {tuple(mask.shape)}: reshape it back to "
        "(..., h, w)",
    )
    if keep is None:
        keep = torch.ones(maps.shape[:-2], dtype=torch.bool)
    if torch.equal(mask[keep], expected[keep]):
        return
    for keywords, hint in MASK_MISTAKES:
        wrong = mass_mask64(maps, mass, **keywords)
        if not torch.equal(wrong[keep], expected[keep]) and torch.equal(mask[keep], wrong[keep]):
            raise AssertionError(hint)
    flat_maps, flat_mask = maps.double().flatten(-2)[keep], mask.flatten(-2)[keep]
    kept = (flat_maps * flat_mask).sum(-1) / flat_maps.sum(-1)
    expect(
        bool((kept >= mass * (1 - 1e-9)).all()),
        f"the kept patches must hold at least `mass` = {mass} of each map's attention",
    )
    raise AssertionError(
        f"the mask differs (mass = {mass}): normalise each map to sum 1, rank its patches from the highest weight "
        "down, and keep a patch while the weight of the patches ranked above it is < mass"
    )


def unambiguous_maps(maps, mass):
    """Maps where float32 rounding cannot change the mask (module docstring)."""
    flat = maps.double().flatten(-2)
    flat = flat / flat.sum(-1, keepdim=True)
    ordered = flat.sort(dim=-1, descending=True).values
    above = ordered.cumsum(-1) - ordered
    delta = 2 * (flat.shape[-1] + 2) * EPS
    kept = (above < mass).sum(-1, keepdim=True)
    last_kept = ordered.gather(-1, kept - 1)
    first_dropped = ordered.gather(-1, kept.clamp(max=flat.shape[-1] - 1))
    boundary_clear = (kept == flat.shape[-1]) | (last_kept - first_dropped > delta)
    return ((above - mass).abs() > delta).all(-1) & boundary_clear.squeeze(-1)


# weights 8, 4, 2, 1, 1, 0, 0, 0 (sum 16) in no particular order: normalised they are exact in any float format
DYADIC = torch.tensor([[2.0, 0.0, 8.0, 1.0], [0.0, 4.0, 1.0, 0.0]])


@exercise("attention_mass_mask")
def test_attention_mass_mask_returns_a_bool_mask():
    maps = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0)) ** 3
    mask = call_unmutated(ev.attention_mass_mask, maps.clone(), 0.6)
    expect_mask(mask, maps, 0.6, unambiguous_maps(maps, 0.6))


@exercise("attention_mass_mask")
@pytest.mark.parametrize("mass", [0.5, 0.7, 0.8, 1.0, 0.25])
def test_attention_mass_mask_by_hand(mass):
    # two maps of different totals (16 and 48), the second a transposed copy: each is normalised on its own
    maps = torch.stack([DYADIC, 3 * DYADIC.flip(-1).flip(-2)])
    mask = ev.attention_mass_mask(maps.clone(), mass)
    # mass 0.5: 8/16 alone reaches 0.5, so the 4 (with 0.5 above it) is not kept: the inequality is strict
    # mass 0.7: 0.5 < 0.7 above the 4, so it is kept; 0.75 above the 2 stops. mass 1: every weight > 0 is kept
    expected = {0.5: [8], 0.7: [8, 4], 0.8: [8, 4, 2], 1.0: [8, 4, 2, 1], 0.25: [8]}[mass]
    expected = torch.isin(maps / maps.sum(dim=(-2, -1), keepdim=True) * 16, torch.tensor(expected, dtype=torch.float32))
    assert torch.equal(expected, mass_mask64(maps, mass))  # the hand values agree with the definition
    expect_mask(mask, maps, mass)


@exercise("attention_mass_mask")
@pytest.mark.parametrize(
    "shape,mass", [((2, 3, 8, 8), 0.6), ((4, 5), 0.3), ((1, 2, 6, 4), 0.9), ((3, 7, 7), 1.0), ((5, 1, 9), 0.45)]
)
def test_attention_mass_mask_matches_the_definition(shape, mass):
    generator = torch.Generator().manual_seed(sum(shape))
    maps = torch.rand(shape, generator=generator) ** 3  # skewed, like real attention
    if mass == 1.0:
        maps = maps + 0.05  # at mass 1 every patch is kept; tiny weights would make that a matter of rounding
    keep = unambiguous_maps(maps, mass)
    assert keep.float().mean() >= 0.8, "test data: too many near ties (maintainers: pick another seed)"
    mask = ev.attention_mass_mask(maps.clone(), mass)
    expect_mask(mask, maps, mass, keep)


@exercise("attention_mass_mask")
def test_attention_mass_mask_default_mass_is_the_papers():
    maps = torch.rand(4, 2, 8, 8, generator=torch.Generator().manual_seed(42)) ** 3
    mask = ev.attention_mass_mask(maps.clone())
    expect_mask(mask, maps, 0.6, unambiguous_maps(maps, 0.6))


@exercise("attention_mass_mask")
def test_attention_mass_mask_rejects_bad_input():
    maps = DYADIC.clone()
    ev.attention_mass_mask(maps, 0.5)  # a valid call first
    hint = "attention_mass_mask must check its arguments (the given checks at the top)"
    expect_raises(ValueError, hint, ev.attention_mass_mask, maps, 1.5)
    expect_raises(ValueError, hint, ev.attention_mass_mask, maps, 0.0)
    expect_raises(ValueError, hint, ev.attention_mass_mask, torch.rand(5), 0.5)


# ----------------------------------------------------------------------------- pca_project
#
# Truth: the float64 SVD of the centred features. Each principal direction is defined up to its sign,
# so the learner's columns are compared after flipping each to agree with the truth's. Tolerance
# (pca_tolerances), with eps the machine epsilon of the features' dtype and ‖X‖_F their Frobenius norm:
# - a backward-stable SVD (or the mean's rounding when centring) perturbs the matrix by at most
#   ΔX = (N + D)·eps·‖X‖_F; by Weyl a singular value moves by ≤ ΔX and by Davis–Kahan direction j turns
#   by ≤ ΔX / gap_j, gap_j the distance of s_j to its nearest neighbour among the singular values;
# - the covariance route (`eigh` of X̃ᵀX̃) rounds X̃ᵀX̃ by (N + D)·eps·s_1², so direction j turns by
#   ≤ that / gap²_j, gap²_j the same distance between the squares;
# - a coordinate z_ij = x̃_i · v_j then moves by ≤ ‖x̃_i‖·(angle_j + D·eps) ≤ s_1·(angle_j + D·eps);
# - ratio_j = s_j² / Σ s²: each s_j² moves by ≤ 2·s_1·ΔX, or by (N + D)·eps·s_1² for eigh; the total by
#   D times that, so |Δratio_j| ≤ (2·s_1·ΔX + (N + D)·eps·s_1²)·(D + 1) / Σ s².
# The data have well separated singular values, so the bounds stay far below what every mistake changes.


def pca64(features, k, *, centre=True, coordinates="projection", prepare=None):
    """(projected, ratio) in float64 from the definition; the keywords make the usual mistakes."""
    x = features.double()
    if prepare == "rows":
        x = F.normalize(x, dim=1)
    elif prepare == "columns":
        x = (x - x.mean(0)) / x.std(0)
    if centre:
        x = x - x.mean(dim=0, keepdim=True)
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    if coordinates == "projection":
        projected = x @ vh[:k].T
    elif coordinates == "u":
        projected = u[:, :k]
    else:  # "vh columns": Vᵀ read as V
        projected = x @ vh[:, :k]
    return projected, s[:k].square() / s.square().sum()


def order_mistake(projected, features, k):
    """A hint when the columns' lengths ‖z_j‖ (= s_j for the right directions) show the wrong directions or order.
    Read from the lengths, not the coordinates: the directions of the smallest variance are the noise's, which no
    two implementations need agree on."""
    s = torch.linalg.svdvals(features.double() - features.double().mean(0))
    lengths = projected.double().norm(dim=0)
    if k > 1 and torch.allclose(lengths, s[:k].flip(0), rtol=1e-3, atol=0.0):
        return "the components are in reverse order: the direction of largest variance comes first"
    if bool((lengths < s[k - 1] * (1 - 1e-3)).all()) and (k == 1 or bool((lengths[1:] >= lengths[:-1]).all())):
        return (
            "the directions of *smallest* variance come out: keep the largest singular values (eigh sorts ascending, "
            "so flip its order)"
        )
    return None


PCA_MISTAKES = [
    (dict(centre=False), "the features are not centred: subtract the mean row (features.mean(dim=0)) first"),
    (
        dict(coordinates="vh columns"),
        "the directions are the columns of Vᵀ: torch.linalg.svd returns Vᵀ (vh), whose *rows* are the principal "
        "directions, so project onto vh[:k].T (or take V = vh.T and its first k columns)",
    ),
    (
        dict(coordinates="u"),
        "the coordinates are U's columns, unscaled: the projection is X̃ V[:, :k] = U[:, :k]·diag(s_1..s_k)",
    ),
    (
        dict(prepare="rows"),
        "the features were L2-normalised first: PCA takes them as they are (only centred), with no rescaling",
    ),
    (
        dict(prepare="columns"),
        "each column was scaled to unit variance: PCA takes the features as they are (only centred), with no "
        "rescaling",
    ),
]


def low_rank_features(seed, n, dim, scales, offset=3.0, noise=0.01, dtype=torch.float32):
    """N points with variance along len(scales) random orthogonal directions (scales, descending), plus
    a little isotropic noise and a mean far from 0."""
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, len(scales), generator=generator, dtype=torch.float64))
    latent = torch.randn(n, len(scales), generator=generator, dtype=torch.float64)
    latent = (latent - latent.mean(0)) / latent.std(0) * torch.tensor(scales, dtype=torch.float64)
    features = latent @ basis.T + noise * torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return (features + offset * torch.randn(dim, generator=generator, dtype=torch.float64)).to(dtype)


def pca_tolerances(features, k):
    """(per-component coordinate atol (k,), ratio atol): see the bound above."""
    eps = torch.finfo(features.dtype).eps
    n, dim = features.shape
    x = features.double()
    s = torch.linalg.svdvals(x - x.mean(0))
    perturbation = (n + dim) * eps * float(x.norm())
    neighbours = torch.cat([s.new_tensor([math.inf]), s, s.new_tensor([-math.inf])])
    gap = torch.minimum(neighbours[:-2] - s, s - neighbours[2:])[:k]
    squares = torch.cat([s.new_tensor([math.inf]), s.square(), s.new_tensor([-math.inf])])
    gap_squared = torch.minimum(squares[:-2] - s.square(), s.square() - squares[2:])[:k]
    angle = perturbation / gap + (n + dim) * eps * s[0] ** 2 / gap_squared
    coordinate_atol = s[0] * (angle + dim * eps)
    ratio_atol = (2 * s[0] * perturbation + (n + dim) * eps * s[0] ** 2) * (dim + 1) / s.square().sum()
    return coordinate_atol, float(ratio_atol)


def aligned(projected, truth):
    """`projected` (float64) with each column's sign flipped to agree with the truth's column."""
    signs = torch.sign((projected.double() * truth).sum(dim=0))
    return projected.double() * torch.where(signs == 0, 1.0, signs)


def close_up_to_sign(projected, truth, atol):
    return projected.shape == truth.shape and bool(((aligned(projected, truth) - truth).abs() <= atol).all())


def check_pca_output(result, features, k):
    """The pair, tensor types, dtype and shapes of pca_project's result."""
    expect(result is not None, "pca_project returned None: did you forget `return projected, ratio`?")
    expect(
        isinstance(result, (tuple, list)) and len(result) == 2,
        f"pca_project must return a pair (projected, explained_variance_ratio), got {type(result).__name__}",
    )
    projected, ratio = result
    for what, value in (("projected", projected), ("explained_variance_ratio", ratio)):
        expect(
            isinstance(value, torch.Tensor),
            f"pca_project's {what} must be a torch tensor, got {type(value).__module__}.{type(value).__name__}: "
            "stay in torch (torch.linalg.svd), no numpy",
        )
    expect(
        not (projected.dim() == 1 and ratio.dim() == 2),
        "the pair is swapped: return (projected, explained_variance_ratio), the coordinates first",
    )
    n, dim = features.shape
    expect(
        projected.shape != (n, min(n, dim)) or k == min(n, dim),
        f"projected has shape {tuple(projected.shape)}: keep only the first n_components = {k} directions",
    )
    expect(
        projected.shape == (n, k),
        f"projected must have shape (N, n_components) = {(n, k)}, got {tuple(projected.shape)}: one row per sample, "
        "one column per kept direction (centred features @ directions.T, directions of shape (k, D))",
    )
    expect(
        ratio.shape == (k,),
        f"explained_variance_ratio must have shape (n_components,) = {(k,)}, got {tuple(ratio.shape)}",
    )
    for what, value in (("projected", projected), ("explained_variance_ratio", ratio)):
        expect(
            value.dtype == features.dtype,
            f"pca_project's {what} must have the features' dtype {features.dtype}, got {value.dtype}",
        )
    return projected.detach(), ratio.detach()


def expect_pca(result, features, k):
    """The learner's PCA against the float64 truth, up to the sign of each component, naming the mistake."""
    projected, ratio = check_pca_output(result, features, k)
    truth, truth_ratio = pca64(features, k)
    coordinate_atol, ratio_atol = pca_tolerances(features, k)
    if not close_up_to_sign(projected, truth, coordinate_atol):
        expect(bool(torch.isfinite(projected).all()), "projected holds NaN or inf values")
        for keywords, hint in PCA_MISTAKES:
            wrong, _ = pca64(features, k, **keywords)
            if close_up_to_sign(projected, wrong, 1e-3 * float(wrong.abs().max())):
                raise AssertionError(hint)
        hint = order_mistake(projected, features, k)
        expect(hint is None, hint)
        expect_close(
            aligned(projected, truth), truth,
            "projected differs from the principal coordinates (compared up to the sign of each column): centre the "
            "features, take the SVD X̃ = U S Vᵀ and project onto the first n_components rows of Vᵀ",
            rtol=0.0, atol=float(coordinate_atol.max()),
        )
    if torch.allclose(ratio.double(), truth_ratio, rtol=0.0, atol=ratio_atol):
        return
    _, s, _ = torch.linalg.svd(features.double() - features.double().mean(0), full_matrices=False)
    ratio_mistakes = [
        (s[:k].square() / s[:k].square().sum(), "the ratios sum to 1 over the kept directions only: divide s_j² by "
         "the sum over *all* singular values, the total variance"),
        (s[:k] / s.sum(), "the ratio uses the singular values: the variance along direction j is s_j², so the ratio "
         "is s_j² / Σ s_i²"),
        (s[:k].square(), "explained_variance_ratio holds the variances themselves: divide by the total, Σ s_i²"),
        (s[:k].square() / (features.shape[0] - 1), "explained_variance_ratio holds the variances themselves: divide "
         "by the total, Σ s_i²"),
    ]
    for wrong, hint in ratio_mistakes:
        if torch.allclose(ratio.double(), wrong, rtol=1e-3, atol=0.0):
            raise AssertionError(hint)
    expect_close(
        ratio.double(), truth_ratio,
        "explained_variance_ratio differs: ratio_j = s_j² / Σ_i s_i² over all singular values of the centred "
        "features",
        rtol=0.0, atol=ratio_atol,
    )


@exercise("pca_project")
def test_pca_project_returns_coordinates_and_ratios():
    features = low_rank_features(0, 60, 8, [5.0, 3.0, 1.5])
    result = call_unmutated(ev.pca_project, features, 2)
    expect_pca(result, features, 2)


@exercise("pca_project")
def test_pca_project_by_hand():
    # a rhombus: x varies twice as far as y around the mean (2, 1), so the first direction is ±x with 80 % of the
    # variance (4 + 4 vs 1 + 1), the second ±y with 20 %
    points = torch.tensor([[0.0, 1.0], [4.0, 1.0], [2.0, 2.0], [2.0, 0.0]])
    projected, ratio = check_pca_output(ev.pca_project(points.clone(), 2), points, 2)
    expected = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    # exact values of size ≤ 4 from a 2 x 2 problem: a few ulps
    if not close_up_to_sign(projected, expected.double(), 8 * 4 * EPS):
        expect_pca((projected, ratio), points, 2)  # names the mistake
    expect_close(ratio.double(), torch.tensor([0.8, 0.2], dtype=torch.float64),
                 "explained_variance_ratio of the rhombus must be (0.8, 0.2): s_j² / Σ s_i²", rtol=0.0, atol=8 * EPS)


PCA_GRID = [  # (seed, N, D, scales, n_components, dtype)
    (1, 60, 8, [5.0, 3.0, 1.5], 1, torch.float32),
    (2, 60, 8, [5.0, 3.0, 1.5], 3, torch.float32),
    (3, 200, 16, [4.0, 2.0, 1.0, 0.5], 2, torch.float32),
    (4, 12, 20, [6.0, 3.0, 1.0], 2, torch.float32),  # fewer samples than dimensions
    (5, 80, 10, [5.0, 2.5, 1.2], 3, torch.float64),
    (6, 40, 6, [3.0, 2.0, 1.0, 0.5, 0.25], 4, torch.float32),
]


@exercise("pca_project")
@pytest.mark.parametrize("seed,n,dim,scales,k,dtype", PCA_GRID)
def test_pca_project_matches_the_definition(seed, n, dim, scales, k, dtype):
    features = low_rank_features(seed, n, dim, scales, dtype=dtype)
    expect_pca(ev.pca_project(features.clone(), k), features, k)


@exercise("pca_project")
def test_pca_project_default_keeps_two_components():
    features = low_rank_features(7, 50, 8, [4.0, 2.0, 1.0])
    expect_pca(ev.pca_project(features.clone()), features, 2)


@exercise("pca_project")
def test_pca_project_coordinates_are_centred_and_uncorrelated():
    features = low_rank_features(8, 100, 12, [5.0, 2.0, 1.0])
    n, k = features.shape[0], 3
    projected, ratio = check_pca_output(ev.pca_project(features.clone(), k), features, k)
    s = torch.linalg.svdvals(features.double() - features.double().mean(0))
    atol = float(pca_tolerances(features, k)[0].max())  # each coordinate's bound (above)
    # Z = U S: each column sums to 0, and Zᵀ Z = diag(s²). With every coordinate within atol of the truth, a column
    # sum is within N·atol of 0, and an entry of Zᵀ Z within 2·s_1·√N·atol + N·atol² (Cauchy–Schwarz, ‖z_j‖ = s_j)
    expect(bool((projected.double().sum(dim=0).abs() <= n * atol).all()),
           "the coordinates must have mean 0 along each direction: centre the features (subtract the mean row)")
    gram = projected.double().T @ projected.double()
    expect_close(gram, torch.diag(s[:k].square()),
                 "the coordinates along different directions must be uncorrelated, and column j's squares must sum to "
                 "s_j²: project the centred features onto orthonormal principal directions",
                 rtol=0.0, atol=2 * float(s[0]) * math.sqrt(n) * atol + n * atol**2)
    # ratios: each within the ratio bound of its truth, so their order and their sum ≤ 1 hold within k times it
    ratio_atol = pca_tolerances(features, k)[1]
    expect(bool((ratio[:-1] >= ratio[1:] - 2 * ratio_atol).all()) and float(ratio.sum()) <= 1 + k * ratio_atol,
           "the ratios must be in descending order and sum to at most 1")


@exercise("pca_project")
def test_pca_project_rejects_bad_input():
    features = low_rank_features(9, 10, 4, [2.0, 1.0])
    ev.pca_project(features.clone(), 2)  # a valid call first
    hint = "pca_project must check its arguments (the given check_pca_inputs at the top)"
    expect_raises(ValueError, hint, ev.pca_project, features, 0)
    expect_raises(ValueError, hint, ev.pca_project, features, 5)
    expect_raises(ValueError, hint, ev.pca_project, features[0], 1)
