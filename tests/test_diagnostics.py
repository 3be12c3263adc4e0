"""Hidden checks for Lesson 3.4, the feature-quality tools (`dino_course/diagnostics.py`).

For each exercise, from specific to general: what it returns (None, a tensor where a Python
float is asked for, the shape), that its input is left as it was, the values of small
hand-built cases in which each typical mistake gives its own number (so the hint can name
it), the documented boundary cases (one row, identical rows, exact zeros, `<=` thresholds),
every argument varied, and finally agreement with the reference over a grid of shapes. The
given verdict (`feature_quality_report` of `dino_course/widgets/feature_quality.py`) runs on all
five of the learner's metrics in an integration check.

Tolerances. The reference works in float64; a learner may work in float32, loop or
vectorise, so each comparison allows the rounding of a float32 computation of that quantity,
bounded from the computation (eps = 1.19e-7, one float32 ulp at 1), never relative to a value
that may be 0:

- a norm of a D-vector: relative (D/2 + 1) eps (sum of D squares, then a square root); the
  statistics of N norms add N eps, std at most √2 times the norms' error;
- a cosine of two D-vectors: absolute (D + 4) eps per normalisation and dot product;
- a dimension spread: each normalised entry is off by (D/2 + 2) eps, a std of N of them by N
  eps more (the textbook E[z²] − E[z]² by up to √(2N eps) when the true std is 0), times √D;
- an entropy of K probabilities: eps (range of the scaled logits + log K + 1) per log-probability
  (log_softmax or the log of a softmax), times (2 + log K), plus K eps log K for the sum;
- an effective rank: the singular values may come from an SVD or from the eigenvalues of the
  Gram matrix (error (N + D) eps ‖X‖² on each σ², i.e. up to √eps on a σ that is 0);
  `effective_rank_range` turns that into the interval of ranks it allows (entropy bounded
  term by term), so the tolerance follows the spectrum's conditioning.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

import solutions.diagnostics as ref
import solutions.heads as ref_heads
import solutions.model as ref_model
from dino_course.grading.hints import FLOAT32_EPS, call_unmutated, expect, expect_close, expect_raises, expect_type
from dino_course.grading.learner import LearnerModule
from dino_course.networks.vit import ViTConfig, VisionTransformer
from dino_course.widgets.feature_quality import feature_quality_report

dg = LearnerModule("diagnostics")

EPS = FLOAT32_EPS


exercise = functools.partial(pytest.mark.exercise, "3.4")  # @exercise("name"): a check of that exercise of the lesson


def features(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * scale


def name_the_mistake(
    got: float, want: float, tol: float, mistakes: dict[str, float], hint: str, *, ok: bool | None = None
) -> None:
    """Pass if `got` is within `tol` of `want` (or if `ok` says so); otherwise fail with the hint
    of the typical mistake whose value `got` matches (each mistake's value is computed in
    float64 on the same input, and only counts when it is far from `want`), or with `hint`."""
    if (abs(got - want) <= tol) if ok is None else ok:
        return
    for message, value in mistakes.items():
        # A mistake counts when its value is clearly outside the tolerance, and `got` matches it
        # as a float32 computation of it would (10 tol, 1e-6 relative), closer than to `want`.
        separation = abs(value - want)
        matches = abs(got - value) <= min(10 * tol + 1e-6 * abs(value), separation / 3)
        if math.isfinite(value) and separation > 2 * tol and matches:
            raise AssertionError(f"{message} (expected {want:.6g}, got {got:.6g})")
    raise AssertionError(f"{hint} (expected {want:.6g}, got {got:.6g})")


def expect_python_float(value, what: str) -> None:
    expect_type(value, 0.0, what)
    expect(not isinstance(value, bool), f"{what} should be a Python float, got a bool")


SHAPES = [(2, 3), (10, 4), (64, 16), (7, 100)]


# ----------------------------------------------------------------------------- l2_norm_consistency

NORM_KEYS = ("mean", "std", "min", "max", "max_deviation")
HAND_ROWS = torch.tensor([[3.0, 4.0], [0.6, 0.8], [0.0, 2.0]])  # row norms 5, 1, 2


def norm_tol(x: torch.Tensor) -> float:
    """Rounding of a float32 computation of the statistics of the row norms of `x`."""
    n, d = x.shape
    return (d + n + 4) * EPS * float(torch.linalg.vector_norm(x.double(), dim=1).max())


@exercise("l2_norm_consistency")
def test_norm_consistency_returns_python_floats_and_a_bool():
    stats = dg.l2_norm_consistency(HAND_ROWS.clone())
    expect_type(stats, {}, "l2_norm_consistency")
    expect(isinstance(stats, dict), f"l2_norm_consistency must return a dict, got {type(stats).__name__}")
    keys = (*NORM_KEYS, "consistent")
    missing = [key for key in keys if key not in stats]
    expect(not missing, f"the result is missing the keys {missing} (keys: {', '.join(keys)})")
    for key in NORM_KEYS:
        expect(
            isinstance(stats[key], (float, int)) and not isinstance(stats[key], bool),
            f"stats[{key!r}] should be a Python float, got {type(stats[key]).__name__}"
            + (": convert it with float(...) or .item()" if isinstance(stats[key], torch.Tensor) else ""),
        )
    expect(
        isinstance(stats["consistent"], bool),
        f"stats['consistent'] should be a Python bool (True/False), got {type(stats['consistent']).__name__}: "
        "compare Python floats, or convert with bool(...)",
    )


@exercise("l2_norm_consistency")
def test_norm_consistency_leaves_its_input_untouched():
    call_unmutated(dg.l2_norm_consistency, features(6, 5, seed=1, scale=2.0))
    call_unmutated(dg.l2_norm_consistency, features(6, 5, seed=2), tolerance=0.5)


@exercise("l2_norm_consistency")
def test_norm_consistency_hand_values():
    x = HAND_ROWS.clone()
    stats = dg.l2_norm_consistency(x)
    tol = norm_tol(x)
    column_norms = torch.linalg.vector_norm(x.double(), dim=0)
    squared = "‖z‖ is the square root of the sum of squares (torch.linalg.vector_norm)"
    by_column = "take the norm of each row (dim=1), one per sample, not of each column"
    for key, want, mistakes in [
        ("max", 5.0, {squared: 25.0, by_column: float(column_norms.max())}),
        ("min", 1.0, {by_column: float(column_norms.min())}),
        ("mean", 8 / 3, {squared: 10.0, by_column: float(column_norms.mean())}),
    ]:
        name_the_mistake(
            float(stats[key]), want, tol,
            {f"stats[{key!r}]: {message}": value for message, value in mistakes.items()},
            f"stats[{key!r}] of the row norms 5, 1, 2 is wrong: norm over each row (dim=1)",
        )
    unbiased = "stats['std']: use the unbiased std (divide by N − 1, torch.std's default), not the population std"
    name_the_mistake(
        float(stats["std"]), 2.0816659994661326, tol,
        {unbiased: 1.699673171197595},
        "stats['std'] of the row norms 5, 1, 2 is 2.0817 (unbiased std over the N norms)",
    )
    of_the_mean = "max_deviation is the largest deviation of any row, |‖z_i‖ − 1|, not the deviation of the mean norm"
    name_the_mistake(
        float(stats["max_deviation"]), 4.0, tol,
        {of_the_mean: 5 / 3},
        "max_deviation is max_i |‖z_i‖ − 1|: 4 for the norms 5, 1, 2",
    )
    expect(stats["consistent"] is False, "norms 5, 1, 2 are not consistent: consistent must be False")

    # every norm below 1: the largest deviation is 1 − 0.25, which only the absolute value finds
    short = torch.tensor([[0.0, 0.25], [1.5, 0.0], [0.0, -0.875]])
    deviation = float(dg.l2_norm_consistency(short)["max_deviation"])
    name_the_mistake(
        deviation, 0.75, norm_tol(short),
        {
            "max_deviation is the largest |‖z_i‖ − 1|: rows shorter than 1 count too (take the absolute value)": 0.5,
            of_the_mean: abs(2.625 / 3 - 1),
        },
        "max_deviation of the norms 0.25, 1.5, 0.875 is 0.75 (max_i |‖z_i‖ − 1|)",
    )


@exercise("l2_norm_consistency")
def test_norm_consistency_single_row_has_std_zero():
    row = torch.tensor([[0.0, 3.0, 4.0]])
    stats = dg.l2_norm_consistency(row)
    std = float(stats["std"])
    expect(math.isfinite(std), "one row: the std of a single norm is 0.0 (the docstring's choice), not NaN")
    expect(std == 0.0, f"one row: std must be 0.0, got {std}")
    values = [float(stats[key]) for key in ("mean", "min", "max")]
    expect(all(abs(v - 5.0) <= norm_tol(row) for v in values), f"one row of norm 5: mean = min = max = 5, got {values}")


@exercise("l2_norm_consistency")
def test_norm_consistency_uses_the_tolerance_argument():
    unit = ref_heads.l2_normalize(features(8, 6, seed=3))
    got = dg.l2_norm_consistency(unit)
    expect(bool(got["consistent"]), "L2-normalised rows must count as consistent with the default tolerance 1e-3")
    # max deviation 0.01 ± rounding: consistent for tolerance 0.02, not for 0.005 nor the default 1e-3
    stretched = unit * 1.01
    expect(
        bool(dg.l2_norm_consistency(stretched, tolerance=0.02)["consistent"]),
        "use the tolerance argument: norms 1.01 are within tolerance=0.02",
    )
    expect(
        not dg.l2_norm_consistency(stretched, tolerance=0.005)["consistent"],
        "use the tolerance argument: norms 1.01 are not within tolerance=0.005",
    )
    expect(not dg.l2_norm_consistency(stretched)["consistent"], "norms 1.01 are not within the default tolerance 1e-3")
    # the documented threshold is inclusive: deviation exactly 0.5 (norms 1.5 and 0.5 are exact in float)
    edge = torch.tensor([[1.5, 0.0], [0.0, -0.5]])
    expect(
        dg.l2_norm_consistency(edge, tolerance=0.5)["consistent"] is True,
        "consistent is max_deviation <= tolerance: a deviation equal to the tolerance still counts as consistent "
        "(<=, not <)",
    )


@exercise("l2_norm_consistency")
@pytest.mark.parametrize("n,d", SHAPES)
def test_norm_consistency_matches_reference(n, d):
    x = features(n, d, seed=n * d, scale=3.0)
    got, want = dg.l2_norm_consistency(x), ref.l2_norm_consistency(x)
    tol = norm_tol(x)  # each statistic is built from N float32 norms of D-vectors (module docstring)
    for key in NORM_KEYS:
        value = float(got[key])
        expect(
            abs(value - want[key]) <= tol,
            f"stats[{key!r}] of the row norms differs from the reference: expected {want[key]:.6g}, got {value:.6g}",
        )
    expect(bool(got["consistent"]) == want["consistent"], f"consistent should be {want['consistent']}")
    expect_raises(ValueError, "features of shape (N,) must be rejected", dg.l2_norm_consistency, x[0])


# ----------------------------------------------------------------------------- pairwise_cosine_similarities


def cosine_tol(d: int) -> float:
    """Rounding of a float32 cosine of two D-vectors (two normalisations and a dot product)."""
    return 4 * (d + 4) * EPS


# rows 0 and 1 are short and parallel: their unnormalised dot product (0.125) is not their cosine (1)
COSINE_ROWS = torch.tensor([[0.5, 0.0], [0.25, 0.0], [0.0, 3.0], [-1.0, -1.0]])
COSINE_WANT = torch.tensor([1.0, 0.0, -1 / math.sqrt(2), 0.0, -1 / math.sqrt(2), -1 / math.sqrt(2)])


@exercise("pairwise_cosine_similarities")
def test_cosine_returns_one_value_per_pair():
    got = dg.pairwise_cosine_similarities(COSINE_ROWS.clone())
    expect_type(got, torch.zeros(1), "pairwise_cosine_similarities")
    n, shape = 4, tuple(got.shape)
    if got.numel() == n * n:
        hint = (
            "return only the pairs i < j as a 1-D tensor, not the (N, N) matrix: "
            "index it with torch.triu_indices(N, N, offset=1)"
        )
    elif got.numel() == n * (n + 1) // 2:
        hint = "the diagonal (i = j, always 1) is included: take the pairs i < j only (offset=1)"
    elif got.numel() == n * (n - 1):
        hint = "each unordered pair once (i < j), not both (i, j) and (j, i)"
    else:
        hint = "return the N (N − 1) / 2 pairs i < j as a 1-D tensor"
    expect(shape == (6,), f"{hint}: 4 rows have 6 pairs, got shape {shape}")


@exercise("pairwise_cosine_similarities")
def test_cosine_leaves_its_input_untouched():
    call_unmutated(dg.pairwise_cosine_similarities, features(5, 3, seed=4, scale=2.0))


@exercise("pairwise_cosine_similarities")
def test_cosine_hand_values():
    got = dg.pairwise_cosine_similarities(COSINE_ROWS.clone()).detach().double()
    tol = cosine_tol(2)
    expect(
        abs(float(got[0]) - 1.0) <= tol,
        f"rows (0.5, 0) and (0.25, 0) point the same way, so their cosine is 1, got {float(got[0]):.4f}: "
        "divide each row by its own length (norm over dim=1) before the dot products",
    )
    if not torch.allclose(got, COSINE_WANT.double(), rtol=0, atol=tol) and torch.allclose(
        got.sort().values, COSINE_WANT.double().sort().values, rtol=0, atol=tol
    ):
        raise AssertionError(
            "the right values in the wrong order: pairs in row-major order of the upper triangle, "
            "(0,1), (0,2), (0,3), (1,2), (1,3), (2,3) (torch.triu_indices(N, N, offset=1))"
        )
    expect_close(
        got, COSINE_WANT.double(),
        "cos(z_i, z_j) = z_i · z_j / (‖z_i‖ ‖z_j‖) for the pairs (0,1), (0,2), (0,3), (1,2), ...",
        rtol=0, atol=tol,
    )


@exercise("pairwise_cosine_similarities")
def test_cosine_stays_within_minus_one_and_one():
    # parallel and antiparallel rows of many lengths: rounding puts an unclamped cosine an ulp past ±1
    direction = features(1, 16, seed=1)  # here F.normalize, x / ‖x‖ and F.cosine_similarity all overshoot
    x = direction * torch.cat([torch.linspace(0.3, 7.0, 12), -torch.linspace(0.5, 3.0, 4)]).unsqueeze(1)
    got = dg.pairwise_cosine_similarities(x).detach()
    expect_close(got.abs(), torch.ones(len(got)), "parallel rows have cosine ±1", rtol=0, atol=cosine_tol(16))
    expect(
        bool((got.abs() <= 1).all()),
        f"cosines must lie in [−1, 1] as the docstring promises, got up to {float(got.abs().max()):.9f}: rounding "
        "pushes the cosine of parallel rows just past ±1, so clamp the result (.clamp(-1.0, 1.0))",
    )


@exercise("pairwise_cosine_similarities")
def test_cosine_of_an_all_zero_row_is_zero():
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0], [-3.0, 1.0]])
    got = dg.pairwise_cosine_similarities(x).detach()
    expect(
        bool(torch.isfinite(got).all()),
        "an all-zero row gave NaN: it must count as cosine 0 with every row, as with l2_normalize's eps: "
        "clamp the norms before dividing (e.g. .clamp_min(1e-12), or F.normalize)",
    )
    want = torch.tensor([0.0, -1 / math.sqrt(50), 0.0])
    expect_close(
        got, want, "an all-zero row has cosine 0 with every row (pairs (0,1), (0,2), (1,2))", rtol=0, atol=cosine_tol(2)
    )


@exercise("pairwise_cosine_similarities")
@pytest.mark.parametrize("n,d", SHAPES)
def test_cosine_matches_reference(n, d):
    x = features(n, d, seed=n + d) * torch.linspace(0.5, 5.0, n).unsqueeze(1)  # rows of different lengths
    got = dg.pairwise_cosine_similarities(x)
    # absolute: a cosine near 0 is only known to the rounding of its two normalisations and dot product
    want = ref.pairwise_cosine_similarities(x)
    expect_close(got, want, "cosine similarities differ from the reference", rtol=0, atol=cosine_tol(d))
    expect_raises(ValueError, "fewer than 2 rows must be rejected", dg.pairwise_cosine_similarities, x[:1])


# ----------------------------------------------------------------------------- dimension_spread


def spread_tol(n: int, d: int) -> float:
    """Rounding of a float32 dimension spread of (N, D) features whose spread is not 0 (docstring)."""
    return 2 * EPS * (math.sqrt(d) * (d + n + 8) + n * d)


def zero_spread_tol(n: int, d: int) -> float:
    """Noise of a float32 spread whose true value is 0 (E[z²] − E[z]² may leave √(2N eps) per dimension)."""
    return math.sqrt(d) * math.sqrt(2 * n * EPS) + spread_tol(n, d)


def spread64(
    x: torch.Tensor, *, normalise_dim: int | None = 1, std_dim: int = 0, unbiased: bool = False,
    factor: float | None = None, reduce: str = "mean",
) -> float:
    """The dimension spread in float64, and the typical mistakes by their options."""
    z = x.double()
    if normalise_dim is not None:
        z = z / torch.linalg.vector_norm(z, dim=normalise_dim, keepdim=True)
    std = z.std(dim=std_dim, unbiased=unbiased)
    total = std.sum() if reduce == "sum" else std.mean()
    return float(total * (math.sqrt(x.shape[1]) if factor is None else factor))


def spread_mistakes(x: torch.Tensor) -> dict[str, float]:
    d = x.shape[1]
    mistakes = [
        ("use the population std (divide by N: unbiased=False or correction=0), not the unbiased one",
         dict(unbiased=True)),
        ("multiply the mean per-dimension std by √D (the spread of isotropic unit vectors is then ≈ 1)",
         dict(factor=1.0)),
        ("multiply by √D, not by D", dict(factor=d)),
        ("average the per-dimension stds over the D dimensions (mean, not sum), then multiply by √D",
         dict(reduce="sum")),
        ("take the std of each dimension over the N rows (dim=0), not of each row over its dimensions",
         dict(std_dim=1)),
        ("L2-normalise each row (norm over dim=1), not each column", dict(normalise_dim=0)),
        ("L2-normalise the rows (divide each by its norm over dim=1) before taking the stds", dict(normalise_dim=None)),
    ]
    return {message: spread64(x, **options) for message, options in mistakes}


@exercise("dimension_spread")
def test_spread_returns_a_python_float():
    expect_python_float(dg.dimension_spread(features(5, 3, seed=6)), "dimension_spread")


@exercise("dimension_spread")
def test_spread_leaves_its_input_untouched():
    call_unmutated(dg.dimension_spread, features(6, 4, seed=7, scale=2.0))


@exercise("dimension_spread")
def test_spread_of_one_direction_is_zero():
    identical = torch.ones(5, 3)
    same_direction = features(1, 3, seed=8) * torch.linspace(0.5, 4.0, 6).unsqueeze(1)  # one direction, 6 lengths
    spreads = [dg.dimension_spread(identical), dg.dimension_spread(same_direction)]
    expect(
        all(math.isfinite(got) for got in spreads),
        "rows pointing the same way gave NaN: with E[z²] − E[z]² the variance can round below 0; use "
        "torch.std(..., unbiased=False) or clamp the variance at 0 before the square root",
    )
    expect(abs(spreads[0]) <= zero_spread_tol(5, 3), f"identical rows have spread 0, got {spreads[0]:.3g}")
    name_the_mistake(
        spreads[1], 0.0, zero_spread_tol(6, 3), spread_mistakes(same_direction),
        "rows pointing the same way (different lengths) have spread 0: L2-normalise each row (divide by its norm "
        "over dim=1) before taking the stds",
    )


@exercise("dimension_spread")
def test_spread_hand_values():
    eye = torch.eye(4) * 3
    name_the_mistake(
        dg.dimension_spread(eye), math.sqrt(3) / 2, spread_tol(4, 4), spread_mistakes(eye),
        "rows 3·e_i: normalise, per-dimension std √(3/16) (divide by N), mean · √4 = 0.866",
    )
    x = torch.tensor([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0], [2.0, 2.0, 1.0], [0.0, 1.0, -3.0], [1.0, 1.0, 1.0]])
    n, d = x.shape
    name_the_mistake(
        dg.dimension_spread(x), spread64(x), spread_tol(n, d), spread_mistakes(x),
        "spread = √D · mean over the D dimensions of std over the N rows (population) of the L2-normalised rows",
    )


@exercise("dimension_spread")
@pytest.mark.parametrize("n,d", SHAPES)
def test_spread_matches_reference(n, d):
    x = features(n, d, seed=3 * n + d, scale=2.0) * torch.linspace(1.0, 9.0, n).unsqueeze(1)
    got = dg.dimension_spread(x)
    want = ref.dimension_spread(x)
    expect(
        abs(got - want) <= spread_tol(n, d),
        f"dimension spread differs from the reference: expected {want:.6g}, got {got:.6g}",
    )
    expect_raises(ValueError, "fewer than 2 rows must be rejected", dg.dimension_spread, x[:1])


@exercise("dimension_spread")
def test_spread_of_isotropic_features_is_about_one():
    got = dg.dimension_spread(features(4000, 32, seed=5))
    # Unit vectors uniform on the sphere: per-dimension std 1/√D in expectation; 4000 samples
    # give a sampling error far below 2 %.
    expect(0.98 < got < 1.02, f"isotropic Gaussian features should have spread ≈ 1, got {got:.3f}: multiply by √D")


# ----------------------------------------------------------------------------- effective_rank


def _entropy_term(p: float) -> float:
    return -p * math.log(p) if p > 0 else 0.0


def effective_rank_range(x: torch.Tensor) -> tuple[float, float]:
    """The interval of effective ranks a correct float32 implementation may return for `x`.

    Each of the min(N, D) singular values σ_k may be off by the centring's rounding (4 eps ‖X‖)
    and, when it comes from an eigenvalue of the Gram matrix XᵀX or XXᵀ, by an error of
    δλ = 4 (N + D) eps ‖X_c‖_F² in σ_k²: σ'_k ∈ [√((σ_k − s)² − δλ), √((σ_k + s)² + δλ)].
    Then p'_k = σ'_k / Σσ' lies between its smallest (σ'_k low, the others high) and largest
    value, and the entropy between the sums of each term's extremes over its interval (−p log p
    is concave). Plus 8 min(N, D) eps relative for the entropy's own sum and exp.
    """
    x64 = x.detach().double()
    n, d = x64.shape
    centred = x64 - x64.mean(dim=0, keepdim=True)
    sigma = torch.linalg.svdvals(centred).tolist()
    shift = 4 * EPS * float(torch.linalg.vector_norm(x64))
    delta = 4 * (n + d) * EPS * float(torch.linalg.vector_norm(centred)) ** 2
    low = [math.sqrt(max(0.0, max(0.0, s - shift) ** 2 - delta)) for s in sigma]
    high = [math.sqrt((s + shift) ** 2 + delta) for s in sigma]
    entropy_low = entropy_high = 0.0
    for k in range(len(sigma)):
        p_low = low[k] / (low[k] + sum(high) - high[k]) if low[k] > 0 else 0.0
        p_high = high[k] / (high[k] + sum(low) - low[k])
        a, b = _entropy_term(p_low), _entropy_term(p_high)
        entropy_low += min(a, b)
        entropy_high += 1 / math.e if p_low < 1 / math.e < p_high else max(a, b)
    slack = 8 * len(sigma) * EPS
    return math.exp(entropy_low) * (1 - slack), math.exp(entropy_high) * (1 + slack)


def erank64(
    x: torch.Tensor, *, centre_dim: int | None = 0, power: float = 1.0, log=math.log, exponentiate=True, normalise="sum"
) -> float:
    """The effective rank in float64, and the typical mistakes by their options."""
    z = x.double()
    if centre_dim is not None:
        z = z - z.mean(dim=centre_dim, keepdim=True)
    sigma = torch.linalg.svdvals(z) ** power
    p = torch.softmax(sigma, 0) if normalise == "softmax" else sigma / sigma.sum()
    entropy = -sum(float(v) * log(float(v)) for v in p if v > 0)
    return math.exp(entropy) if exponentiate else entropy


def expect_effective_rank(got, x: torch.Tensor, hint: str, near_miss: str | None = None) -> None:
    """`got` must lie in `effective_rank_range(x)`; otherwise name the mistake."""
    expect_python_float(got, "effective_rank")
    expect(
        math.isfinite(got),
        "effective_rank returned NaN: a singular value of 0 gives p_k log p_k = 0 · log 0 (NaN in torch), which "
        "counts as 0: drop the zero p_k (p[p > 0]) or use torch.special.entr / xlogy; square roots of eigenvalues "
        "need a clamp at 0 first",
    )
    low, high = effective_rank_range(x)
    want = ref.effective_rank(x)
    mistakes = [
        (
            "centre the features first: subtract the mean row (features.mean(dim=0)), a shared offset is not "
            "a direction",
            dict(centre_dim=None),
        ),
        ("subtract the mean row (the mean over the N rows, dim=0), not each row's own mean", dict(centre_dim=1)),
        (
            "normalise the singular values themselves, p_k = σ_k / Σσ, not their squares (the eigenvalues of XᵀX)",
            dict(power=2.0),
        ),
        ("p_k = σ_k / Σσ: divide by the sum, not a softmax", dict(normalise="softmax")),
        ("exponentiate the entropy: erank = exp(−Σ p_k log p_k)", dict(exponentiate=False)),
        ("use the natural log with exp (or log2 with 2 ** H): exp of a base-2 entropy is wrong", dict(log=math.log2)),
    ]
    name_the_mistake(
        got, want, max(high - want, want - low),
        {message: erank64(x, **options) for message, options in mistakes},
        near_miss if near_miss and abs(got - want) < 0.05 * want else hint,
        ok=low <= got <= high,
    )


@exercise("effective_rank")
def test_effective_rank_returns_a_python_float():
    expect_python_float(dg.effective_rank(features(6, 3, seed=9)), "effective_rank")


@exercise("effective_rank")
def test_effective_rank_leaves_its_input_untouched():
    call_unmutated(dg.effective_rank, features(6, 4, seed=10) + 3.0)
    call_unmutated(dg.effective_rank, features(5, 7, seed=11) - 1.0, eps=1e-6)


@exercise("effective_rank")
def test_effective_rank_hand_values():
    eye = torch.eye(4)
    expect_effective_rank(dg.effective_rank(eye), eye, "the 4 rows of I₄, centred, span 3 equal directions: erank 3")
    # an exact zero singular value (third column), then σ = 2√2 and √2: p = (2/3, 1/3); plus an offset to centre away
    two = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, -2.0, 0.0]])
    two = two + torch.tensor([0.5, 1.0, 2.0])
    expect_effective_rank(
        dg.effective_rank(two), two,
        "σ = 2√2, √2, 0 after centring: p = (2/3, 1/3), erank = exp(−Σ p log p) = 1.89",
    )
    line = torch.linspace(-1, 1, 10).unsqueeze(1) * torch.tensor([[1.0, 2.0, 3.0]]) + 5
    expect_effective_rank(dg.effective_rank(line), line, "points on one line (plus an offset) have effective rank 1")


@exercise("effective_rank")
def test_effective_rank_of_identical_rows_is_zero():
    # dyadic values: the mean row is exact in float32 too, so the centred matrix is exactly 0
    rows = torch.tensor([[0.5, -1.25, 3.0, 2.0]]).repeat(6, 1)
    got = dg.effective_rank(rows)
    expect(
        not (isinstance(got, float) and math.isnan(got)),
        "identical rows gave NaN (0 / 0): when the singular values sum to less than eps, return 0.0 before normalising",
    )
    expect(
        got == 0.0,
        f"identical rows carry no information: return 0.0 when the singular values sum to less than eps, got {got!r}",
    )
    expect(dg.effective_rank(torch.ones(6, 5)) == 0.0, "identical rows (all ones) carry no information: return 0.0")


@exercise("effective_rank")
def test_effective_rank_uses_the_eps_argument():
    # a tiny spread around one row: singular values ≈ 1e-3, summing to ≈ 1e-2, all far above 1e-12
    base = torch.tensor([[0.5, -1.25, 3.0, 2.0]]).repeat(8, 1)
    x = base + 1e-3 * features(8, 4, seed=12)
    got = dg.effective_rank(x)
    expect(
        got > 1.0,
        f"singular values far above the default eps (1e-12) count: expected an effective rank above 1, got {got!r}",
    )
    sigma = torch.linalg.svdvals((x - x.mean(0)).double())
    # eps = 1: every singular value and their sum are below it (no ambiguity between the two readings)
    expect(
        dg.effective_rank(x, eps=1.0) == 0.0,
        f"use the eps argument: with eps=1.0 the singular values (sum {float(sigma.sum()):.2g}) count as none, "
        "return 0.0",
    )
    # eps below the smallest singular value: nothing counts as none
    eps = float(sigma.min()) / 2
    expect_effective_rank(
        dg.effective_rank(x, eps=eps), x,
        f"with eps={eps:.2g} below every singular value, the effective rank must not change",
    )


@exercise("effective_rank")
@pytest.mark.parametrize("n,d", [*SHAPES, (100, 7), (30, 30)])
def test_effective_rank_matches_reference(n, d):
    x = features(n, d, seed=7 * n + d) + torch.linspace(-3.0, 3.0, d)  # an offset: centring must matter
    expect_effective_rank(
        dg.effective_rank(x), x, "the effective rank differs from the reference",
        near_miss=(
            "the effective rank is close to the reference but further off than rounding explains: if your singular "
            "values come from the eigenvalues of a float32 Gram/covariance matrix larger than min(N, D), its zero "
            "directions come out as √eps noise; use torch.linalg.svdvals (or float64)"
        ),
    )
    expect_raises(ValueError, "fewer than 2 rows must be rejected", dg.effective_rank, x[:1])


# ----------------------------------------------------------------------------- prediction_entropies


def entropy_tol(logits: torch.Tensor, temperature: float) -> float:
    """Rounding of a float32 entropy of softmax(logits / τ) (module docstring)."""
    n, k = logits.shape
    z = logits.double() / temperature
    spread = float((z.max(dim=1).values - z.min(dim=1).values).max())
    return EPS * ((4 * (spread + math.log(k) + 1) + n) * (2 + math.log(k)) + 2 * k * math.log(k))


def entropies64(
    logits: torch.Tensor, temperature: float, *, dim: int = -1, mean_logits: bool = False
) -> tuple[float, float]:
    """(entropy_of_mean, mean_entropy) in float64, and the typical mistakes by their options."""
    z = logits.double() / temperature
    p = torch.softmax(z, dim=dim)
    mean_entropy = -torch.special.xlogy(p, p).sum(-1).mean()
    p_mean = torch.softmax(z.mean(0), -1) if mean_logits else p.mean(0)
    return float(-torch.special.xlogy(p_mean, p_mean).sum()), float(mean_entropy)


def entropy_mistakes(logits: torch.Tensor, temperature: float, index: int) -> dict[str, float]:
    """Output `index` (0: entropy_of_mean, 1: mean_entropy) of the typical mistakes."""
    want = entropies64(logits, temperature)
    mistakes = [
        (f"use the temperature argument (τ = {temperature} here), not a fixed 0.1: p_i = softmax(logits_i / τ)",
         0.1, {}),
        (f"divide the logits by the temperature argument (τ = {temperature} here): p_i = softmax(logits_i / τ)",
         1.0, {}),
        ("divide the logits by τ, not multiply", 1 / temperature, {}),
        ("softmax over the K prototypes of each image (dim=-1), not over the images", temperature, dict(dim=0)),
        ("p̄ is the mean of the probabilities p_i, not the softmax of the mean logits",
         temperature, dict(mean_logits=True)),
    ]
    return {
        "the pair is swapped: return (entropy_of_mean, mean_entropy), in that order": want[1 - index],
        **{message: entropies64(logits, tau, **options)[index] for message, tau, options in mistakes},
    }


def expect_entropy_pair(result) -> tuple[float, float]:
    expect_type(result, (), "prediction_entropies")
    expect(
        isinstance(result, (tuple, list)) and len(result) == 2,
        f"prediction_entropies must return the pair (entropy_of_mean, mean_entropy), got {type(result).__name__}"
        + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""),
    )
    for name, value in zip(("entropy_of_mean", "mean_entropy"), result):
        expect_python_float(value, f"prediction_entropies' {name}")
    return float(result[0]), float(result[1])


@exercise("prediction_entropies")
def test_entropies_return_a_pair_of_python_floats():
    expect_entropy_pair(dg.prediction_entropies(features(4, 5, seed=13)))


@exercise("prediction_entropies")
def test_entropies_leave_their_input_untouched():
    call_unmutated(dg.prediction_entropies, features(4, 5, seed=14))
    call_unmutated(dg.prediction_entropies, features(3, 6, seed=15), temperature=0.5)


@exercise("prediction_entropies")
def test_entropies_of_certain_predictions_are_zero_not_nan():
    one_hot = torch.full((5, 8), -1e4)
    one_hot[:, 3] = 0.0  # every image certain of prototype 3: the other probabilities underflow to exactly 0
    entropy_of_mean, mean_entropy = expect_entropy_pair(dg.prediction_entropies(one_hot))
    expect(
        math.isfinite(mean_entropy),
        "mean_entropy is NaN: probabilities that underflow to 0 give 0 · log 0; take the log-probabilities from "
        "torch.log_softmax(logits / τ, dim=-1), not log(softmax(...))",
    )
    expect(
        math.isfinite(entropy_of_mean),
        "entropy_of_mean is NaN: prototypes no image uses have p̄_k = 0, and 0 · log 0 must count as 0 "
        "(torch.where(p̄ > 0, p̄.log(), 0), torch.special.xlogy or entr)",
    )
    # probabilities exactly 0 and 1 in float32 (exp(−1e5) underflows): every implementation gets log 1 = 0, to an ulp
    for index, value in enumerate((entropy_of_mean, mean_entropy)):
        mistakes = entropy_mistakes(one_hot, ref.STUDENT_TEMP, index)
        name_the_mistake(value, 0.0, 1e-6, mistakes, "every image certain of prototype 3: both entropies 0")


@exercise("prediction_entropies")
def test_entropies_hand_values():
    uniform = torch.zeros(3, 4)
    entropy_of_mean, mean_entropy = expect_entropy_pair(dg.prediction_entropies(uniform))
    log4 = math.log(4)
    for value in (entropy_of_mean, mean_entropy):
        name_the_mistake(
            value, log4, entropy_tol(uniform, ref.STUDENT_TEMP),
            {
                "use the natural log (entropies in nats, at most log K), not log2": math.log2(4),
                "the entropy is −Σ p log p (mind the sign)": -log4,
                "sum −p log p over the K prototypes (then average over the N images), not a mean over both": log4 / 4,
            },
            "uniform predictions over K = 4 prototypes: both entropies are log 4 = 1.386",
        )
    split = torch.full((4, 2), -1e4)
    split[:2, 0] = 0.0
    split[2:, 1] = 0.0  # half the images certain of prototype 0, half of prototype 1
    entropy_of_mean, mean_entropy = expect_entropy_pair(dg.prediction_entropies(split))  # exact 0s and 1s again
    expect(
        not (abs(entropy_of_mean) < 1e-6 and abs(mean_entropy - math.log(2)) < 1e-6),
        "the pair is swapped: return (entropy_of_mean, mean_entropy), in that order",
    )
    expect(
        abs(entropy_of_mean - math.log(2)) < 1e-6,
        "half the images certain of prototype 0, half of 1: the mean prediction is (½, ½), H(p̄) = log 2, "
        f"got {entropy_of_mean:.4g}; average the probabilities over the images (dim=0), then take the entropy",
    )
    expect(
        abs(mean_entropy) < 1e-6, f"every image is certain of its prototype: mean H(p_i) = 0, got {mean_entropy:.4g}"
    )


@exercise("prediction_entropies")
@pytest.mark.parametrize("temperature", [0.5, 3.0])
def test_entropies_use_the_temperature(temperature):
    logits = features(6, 5, seed=16)
    got = expect_entropy_pair(dg.prediction_entropies(logits, temperature))
    want = entropies64(logits, temperature)
    tol = entropy_tol(logits, temperature)
    for index, name in enumerate(("entropy_of_mean", "mean_entropy")):
        name_the_mistake(
            got[index], want[index], tol, entropy_mistakes(logits, temperature, index),
            f"{name} at τ = {temperature} is wrong: p_i = softmax(logits_i / τ), p̄ = mean of the p_i",
        )


@exercise("prediction_entropies")
def test_entropies_default_temperature_is_the_students():
    logits = features(6, 5, seed=17) * 0.3
    got = expect_entropy_pair(dg.prediction_entropies(logits))
    want = entropies64(logits, ref.STUDENT_TEMP)
    tol = entropy_tol(logits, ref.STUDENT_TEMP)
    expect(
        abs(got[0] - want[0]) <= tol and abs(got[1] - want[1]) <= tol,
        f"without a temperature argument, use τ = temperature's default 0.1 (the student's): expected {want}, "
        f"got {got}",
    )


@exercise("prediction_entropies")
@pytest.mark.parametrize("n,k", [(2, 3), (16, 40), (64, 1024)])
@pytest.mark.parametrize("temperature", [0.04, 0.1, 1.0])
def test_entropies_match_reference(n, k, temperature):
    logits = torch.rand(n, k, generator=torch.Generator().manual_seed(n + k)) * 2 - 1  # cosines in [-1, 1]
    got = expect_entropy_pair(dg.prediction_entropies(logits, temperature))
    want = ref.prediction_entropies(logits, temperature)
    tol = entropy_tol(logits, temperature)
    for name, g, w in zip(("entropy_of_mean", "mean_entropy"), got, want):
        expect(
            abs(g - w) <= tol, f"{name} at τ = {temperature} differs from the reference: expected {w:.6g}, got {g:.6g}"
        )
        expect(
            -tol <= g <= math.log(k) + tol, f"{name} must lie in [0, log K] = [0, {math.log(k):.4g}], got {g:.6g}"
        )
    expect_raises(ValueError, "τ ≤ 0 must be rejected", dg.prediction_entropies, logits, 0.0)
    expect_raises(ValueError, "logits of shape (K,) must be rejected", dg.prediction_entropies, logits[0])


# ----------------------------------------------------------------------------- the verdict on models


def tiny_network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    backbone = VisionTransformer(ViTConfig(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2))
    head = ref_heads.DINOProjectionHead(32, output_dim=256, hidden_dim=64, bottleneck_dim=16)
    return ref_model.MultiCropNetwork(backbone, head)


def outputs_of(network: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(48, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = network.backbone(images)
        return network.head.bottleneck(features), network.head(features)


@exercise("prediction_entropies")
@pytest.mark.integration("l2_norm_consistency", "pairwise_cosine_similarities", "dimension_spread", "effective_rank")
def test_collapse_detector_flags_constant_and_uniform_and_passes_healthy():
    """The given `feature_quality_report`, running on all five of the learner's metrics."""
    healthy = tiny_network()
    features, logits = outputs_of(healthy)
    report = feature_quality_report(features, logits, metrics=dg)
    expect(report.healthy, f"a freshly initialised network on random images should pass, got: {report.verdict}")

    constant = tiny_network()
    with torch.no_grad():  # the bottleneck ignores the input: last MLP layer zero, bias random
        constant.head.mlp[-1].weight.zero_()
        constant.head.mlp[-1].bias.normal_()
    report = feature_quality_report(*outputs_of(constant), metrics=dg)
    expect(
        not report.healthy and "depend" in report.verdict,
        f"a network whose output ignores the input must be flagged, got: {report.verdict}",
    )

    uniform = tiny_network()
    with torch.no_grad():  # g = 0: every logit 0, every prediction uniform
        uniform.head.last_layer.weight_g.zero_()
    report = feature_quality_report(*outputs_of(uniform), metrics=dg)
    expect(
        not report.healthy and "uniform" in report.verdict,
        f"uniform predictions must be flagged, got: {report.verdict}",
    )

    dominant = torch.randn(48, 256, generator=torch.Generator().manual_seed(2)) * 0.01
    dominant[:, 7] += 5.0  # one prototype wins for every image
    report = feature_quality_report(features, dominant, metrics=dg)
    expect(
        not report.healthy and "prototypes" in report.verdict,
        f"one prototype taking every image must be flagged, got: {report.verdict}",
    )
