"""Public checks of Lesson 3.4, `dino_course/diagnostics.py`: no reference solution needed.

They run the docstring examples and check properties every correct implementation has. Passing
them does not mean the hidden checks pass: those also compare values with the reference.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from dino_course.instructor.public_checks import CourseModule, run_documented_examples

LESSON = "3.4"
dg = CourseModule("diagnostics")
EXERCISES = [
    "l2_norm_consistency", "pairwise_cosine_similarities", "dimension_spread", "effective_rank", "prediction_entropies",
]


exercise = functools.partial(pytest.mark.exercise, LESSON)  # @exercise("name"): a check of that exercise of the lesson


def features(seed: int = 0, n: int = 12, d: int = 6) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", [pytest.param(n, marks=exercise(n), id=n) for n in EXERCISES])
def test_documented_example(name):
    run_documented_examples(dg, f"{LESSON}/{name}")


@exercise("l2_norm_consistency")
def test_unit_rows_are_consistent():
    unit = torch.nn.functional.normalize(features(), dim=1)
    stats = dg.l2_norm_consistency(unit)
    assert set(stats) == {"mean", "std", "min", "max", "max_deviation", "consistent"}, f"keys: {sorted(stats)}"
    assert stats["consistent"] is True and abs(stats["mean"] - 1) < 1e-5 and stats["max_deviation"] < 1e-5
    assert dg.l2_norm_consistency(unit[:1])["std"] == 0.0, "one row: std 0"


@exercise("pairwise_cosine_similarities")
def test_pairs_are_scale_free_cosines():
    x = features()
    sims = dg.pairwise_cosine_similarities(x)
    assert sims.shape == (12 * 11 // 2,), f"one value per pair i < j: expected (66,), got {tuple(sims.shape)}"
    assert bool((sims.abs() <= 1 + 1e-6).all()), "cosines lie in [-1, 1]"
    scaled = x * torch.linspace(0.5, 3.0, 12)[:, None]
    torch.testing.assert_close(
        dg.pairwise_cosine_similarities(scaled), sims, msg="scaling a row must not change its cosines"
    )


@exercise("dimension_spread")
def test_spread_is_scale_free_and_zero_when_collapsed():
    x = features()
    spread = dg.dimension_spread(x)
    assert isinstance(spread, float) and spread >= 0, f"return a float >= 0, got {spread!r}"
    scaled = x * torch.linspace(0.5, 3.0, 12)[:, None]
    assert abs(dg.dimension_spread(scaled) - spread) < 1e-5, "rows are normalised first: scaling a row changes nothing"
    assert dg.dimension_spread(torch.ones(4, 3) * torch.tensor([[1.0], [2.0], [3.0], [4.0]])) < 1e-6, "one direction: 0"


@exercise("effective_rank")
def test_rank_bounds_and_translation():
    x = features(n=20, d=5)
    rank = dg.effective_rank(x)
    assert isinstance(rank, float) and 1.0 <= rank <= 5.0 + 1e-6, f"1 <= erank <= min(N, D) = 5, got {rank!r}"
    shifted = x + torch.randn(1, 5, generator=torch.Generator().manual_seed(9)) * 10
    assert abs(dg.effective_rank(shifted) - rank) < 1e-3, "features are centred first: a shared offset changes nothing"
    line = torch.linspace(-1, 1, 10)[:, None] * torch.tensor([[1.0, 2.0, 3.0]])
    assert abs(dg.effective_rank(line) - 1.0) < 1e-4, "rows on one line: erank 1"


@exercise("prediction_entropies")
def test_entropies_lie_between_zero_and_log_k():
    logits = features(d=8) * 5
    entropy_of_mean, mean_entropy = dg.prediction_entropies(logits)
    assert isinstance(entropy_of_mean, float) and isinstance(mean_entropy, float), "return two floats"
    assert 0 <= mean_entropy <= entropy_of_mean + 1e-6 <= math.log(8) + 2e-6, (
        "expected 0 <= mean H(p_i) <= H(mean p) <= log K (the entropy of an average is at least the average entropy)"
    )
    confident = torch.full((4, 8), -1000.0)
    confident[:, 3] = 1000.0
    e_mean, m_entropy = dg.prediction_entropies(confident)
    assert e_mean < 1e-6 and m_entropy < 1e-6 and not math.isnan(e_mean), "one-hot predictions: both 0, no NaN"
