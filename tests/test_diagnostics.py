"""Hidden checks for Lesson 3.3, the feature-quality tools (`dino_course/diagnostics.py`).

Metrics are compared with the reference on seeded inputs over a grid of shapes, with
hand-computed values, and with their defining properties (scale invariance, bounds, the
values for collapsed inputs). The verdict (given code running on the learner's metrics) must
flag a constant and a uniform-output model and pass a healthy one.

Tolerances: the reference works in float64; a float32 learner implementation of a std, an
entropy or an SVD of O(100) values of size ~1 is accurate to ~1e-6 relative, hence rtol 1e-4
(entropies and ranks compared relative), atol 1e-6.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import solutions.diagnostics as ref
import solutions.heads as ref_heads
import solutions.model as ref_model
from dino_course.grading.hints import expect, expect_close
from dino_course.grading.learner import LearnerModule
from dino_course.vit import ViTConfig, VisionTransformer

dg = LearnerModule("diagnostics")

METRIC_TOL = dict(rtol=1e-4, atol=1e-6)


def exercise(name: str):
    return pytest.mark.exercise("3.3", name)


def features(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * scale


SHAPES = [(2, 3), (10, 4), (64, 16), (7, 100)]


# ----------------------------------------------------------------------------- l2_norm_consistency


@exercise("l2_norm_consistency")
def test_norm_consistency_hand_values():
    stats = dg.l2_norm_consistency(torch.tensor([[3.0, 4.0], [0.6, 0.8], [0.0, 2.0]]))
    expect(isinstance(stats, dict), f"l2_norm_consistency must return a dict, got {type(stats).__name__}")
    missing = {"mean", "std", "min", "max", "max_deviation", "consistent"} - set(stats)
    expect(not missing, f"the result is missing keys {sorted(missing)}")
    expect_close(torch.tensor([stats["mean"], stats["min"], stats["max"]]), torch.tensor([8 / 3, 1.0, 5.0]), "row norms are 5, 1, 2: mean 8/3, min 1, max 5 (norm over each row)", **METRIC_TOL)
    expect(abs(stats["std"] - 2.0816660) < 1e-5, f"std of the norms (5, 1, 2) is 2.0817 (unbiased), got {stats['std']}")
    expect(abs(stats["max_deviation"] - 4.0) < 1e-6 and stats["consistent"] is False, "max |‖z‖ − 1| is 4 here, so not consistent")


@exercise("l2_norm_consistency")
@pytest.mark.parametrize("n,d", SHAPES)
def test_norm_consistency_matches_reference(n, d):
    x = features(n, d, seed=n * d, scale=3.0)
    got, want = dg.l2_norm_consistency(x), ref.l2_norm_consistency(x)
    for key in ("mean", "std", "min", "max", "max_deviation"):
        expect_close(torch.tensor(float(got[key])), torch.tensor(want[key]), f"{key!r} of the row norms differs from the reference", **METRIC_TOL)
    unit = ref_heads.l2_normalize(x)
    result = dg.l2_norm_consistency(unit)
    expect(bool(result["consistent"]) and result["max_deviation"] < 1e-5, "L2-normalised rows must count as consistent")
    expect(bool(dg.l2_norm_consistency(unit * 1.01, tolerance=0.02)["consistent"]), "use the tolerance argument")
    expect(dg.l2_norm_consistency(x[:1])["std"] == 0.0, "one row: std 0, not NaN")


# ----------------------------------------------------------------------------- pairwise_cosine_similarities


@exercise("pairwise_cosine_similarities")
def test_cosine_hand_values():
    got = dg.pairwise_cosine_similarities(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]]))
    want = torch.tensor([1.0, 0.0, -1 / math.sqrt(2), 0.0, -1 / math.sqrt(2), -1 / math.sqrt(2)])
    expect(tuple(got.shape) == (6,), f"4 rows have 4·3/2 = 6 pairs (i < j, no diagonal), got shape {tuple(got.shape)}")
    expect_close(got, want, "pairs in row-major upper-triangle order (0,1), (0,2), (0,3), (1,2), ...; normalise the rows first", **METRIC_TOL)


@exercise("pairwise_cosine_similarities")
@pytest.mark.parametrize("n,d", SHAPES)
def test_cosine_matches_reference_and_is_scale_free(n, d):
    x = features(n, d, seed=n + d)
    got = dg.pairwise_cosine_similarities(x)
    expect_close(got, ref.pairwise_cosine_similarities(x), "cosine similarities differ from the reference", **METRIC_TOL)
    scales = torch.linspace(0.5, 5.0, n).unsqueeze(1)
    expect_close(dg.pairwise_cosine_similarities(x * scales), got, "cosine similarity must not depend on the rows' lengths", **METRIC_TOL)
    expect(bool((got.abs() <= 1 + 1e-6).all()), "cosines lie in [-1, 1]")
    with pytest.raises(ValueError):
        dg.pairwise_cosine_similarities(x[:1])


# ----------------------------------------------------------------------------- dimension_spread


@exercise("dimension_spread")
def test_spread_hand_values():
    expect(abs(dg.dimension_spread(torch.ones(5, 3))) < 1e-7, "identical rows have spread 0")
    got = dg.dimension_spread(torch.eye(4) * 3)
    expect(abs(got - math.sqrt(3) / 2) < 1e-5, f"rows 3·e_i: normalise, then per-dim std sqrt(3/16) (divide by N), mean · √4 = 0.866; got {got}")


@exercise("dimension_spread")
@pytest.mark.parametrize("n,d", SHAPES)
def test_spread_matches_reference(n, d):
    x = features(n, d, seed=3 * n + d, scale=2.0)
    got = dg.dimension_spread(x)
    expect_close(torch.tensor(float(got)), torch.tensor(ref.dimension_spread(x)), "dimension spread differs from the reference (normalise rows, population std per dimension, mean, · √D)", **METRIC_TOL)
    shifted = ref_heads.l2_normalize(x) * torch.linspace(1, 9, n).unsqueeze(1)
    expect(abs(dg.dimension_spread(shifted) - got) < 1e-4, "the spread must be measured on L2-normalised rows (row lengths must not matter)")


@exercise("dimension_spread")
def test_spread_of_isotropic_features_is_about_one():
    x = features(4000, 32, seed=5)
    got = dg.dimension_spread(x)
    # Unit vectors uniform on the sphere: per-dimension std exactly 1/√D in expectation;
    # 4000 samples give a sampling error far below 2 %.
    expect(0.98 < got < 1.02, f"isotropic Gaussian features should have spread ≈ 1, got {got:.3f}: multiply by √D")


# ----------------------------------------------------------------------------- effective_rank


@exercise("effective_rank")
def test_effective_rank_hand_values():
    got = dg.effective_rank(torch.eye(4))
    expect(abs(got - 3.0) < 1e-5, f"the 4 rows of I₄ centred span 3 equal directions: erank 3, got {got} (did you centre?)")
    expect(dg.effective_rank(torch.ones(6, 5)) == 0.0, "identical rows carry no information: return 0.0")
    line = torch.linspace(-1, 1, 10).unsqueeze(1) * torch.tensor([[1.0, 2.0, 3.0]]) + 5
    expect(abs(dg.effective_rank(line) - 1.0) < 1e-4, "points on one line (plus an offset) have effective rank 1")
    two = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    # singular values of the centred matrix: 2·√2 and √2 → p = (2/3, 1/3)
    want = math.exp(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))
    expect(abs(dg.effective_rank(two) - want) < 1e-5, f"normalise the singular values (not their squares) to p_k = σ_k/Σσ: expected {want:.4f}")


@exercise("effective_rank")
@pytest.mark.parametrize("n,d", SHAPES)
def test_effective_rank_matches_reference(n, d):
    x = features(n, d, seed=7 * n + d)
    got = dg.effective_rank(x)
    expect_close(torch.tensor(float(got)), torch.tensor(ref.effective_rank(x)), "effective rank differs from the reference", **METRIC_TOL)
    expect(1.0 - 1e-6 <= got <= min(n, d) + 1e-6, f"effective rank must lie in [1, min(N, D)] = [1, {min(n, d)}], got {got}")


# ----------------------------------------------------------------------------- prediction_entropies


@exercise("prediction_entropies")
def test_entropies_hand_values():
    result = dg.prediction_entropies(torch.zeros(3, 4))
    expect(len(result) == 2, "return (entropy_of_mean, mean_entropy)")
    expect(all(abs(v - math.log(4)) < 1e-6 for v in result), "uniform predictions: both entropies are log K (natural log)")
    one_hot = torch.full((5, 8), -1e4)
    one_hot[:, 3] = 0.0
    entropy_of_mean, mean_entropy = dg.prediction_entropies(one_hot)
    expect(math.isfinite(entropy_of_mean) and math.isfinite(mean_entropy), "probabilities that underflow to 0 must give 0·log 0 = 0, not NaN: use log_softmax")
    expect(abs(entropy_of_mean) < 1e-6 and abs(mean_entropy) < 1e-6, "every image on prototype 3: both entropies 0")
    split = torch.full((4, 2), -1e4)
    split[:2, 0] = 0.0
    split[2:, 1] = 0.0
    entropy_of_mean, mean_entropy = dg.prediction_entropies(split)
    expect(
        abs(entropy_of_mean - math.log(2)) < 1e-6 and abs(mean_entropy) < 1e-6,
        "half the images certain of prototype 0, half of 1: H(mean) = log 2, mean H = 0 (entropy of the mean, not mean of entropies)",
    )


@exercise("prediction_entropies")
@pytest.mark.parametrize("n,k", [(2, 3), (16, 40), (64, 1024)])
@pytest.mark.parametrize("temperature", [0.04, 0.1, 1.0])
def test_entropies_match_reference(n, k, temperature):
    logits = torch.rand(n, k, generator=torch.Generator().manual_seed(n + k)) * 2 - 1  # cosines in [-1, 1]
    got = dg.prediction_entropies(logits, temperature)
    want = ref.prediction_entropies(logits, temperature)
    expect_close(torch.tensor([float(v) for v in got]), torch.tensor(want), f"entropies at τ = {temperature} differ: divide the logits by τ before the softmax", **METRIC_TOL)
    with pytest.raises(ValueError):
        dg.prediction_entropies(logits, 0.0)


# ----------------------------------------------------------------------------- the verdict on models


def tiny_network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    backbone = VisionTransformer(ViTConfig(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2))
    return ref_model.MultiCropNetwork(backbone, ref_heads.DINOProjectionHead(32, output_dim=256, hidden_dim=64, bottleneck_dim=16))


def outputs_of(network: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(48, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = network.backbone(images)
        return network.head.bottleneck(features), network.head(features)


def verdict_of(features: torch.Tensor, logits: torch.Tensor):
    """The given `diagnose_collapse`, running on the learner's metric functions."""
    import dino_course.diagnostics as learner_module  # the learner's metrics (or the reference under --reference)

    dg.dimension_spread(features)  # fail early, with the learner's own error, if a metric is missing
    return learner_module.diagnose_collapse(features, logits)


@exercise("prediction_entropies")
def test_collapse_detector_flags_constant_and_uniform_and_passes_healthy():
    healthy = tiny_network()
    features, logits = outputs_of(healthy)
    report = verdict_of(features, logits)
    expect(report.healthy, f"a freshly initialised network on random images should pass, got: {report.verdict}")

    constant = tiny_network()
    with torch.no_grad():  # the bottleneck ignores the input: last MLP layer zero, bias random
        constant.head.mlp[-1].weight.zero_()
        constant.head.mlp[-1].bias.normal_()
    features, logits = outputs_of(constant)
    report = verdict_of(features, logits)
    expect(not report.healthy and "depend" in report.verdict, f"a network whose output ignores the input must be flagged, got: {report.verdict}")

    uniform = tiny_network()
    with torch.no_grad():  # g = 0: every logit 0, every prediction uniform
        uniform.head.last_layer.weight_g.zero_()
    features, logits = outputs_of(uniform)
    report = verdict_of(features, logits)
    expect(not report.healthy and "uniform" in report.verdict, f"uniform predictions must be flagged, got: {report.verdict}")

    dominant = torch.randn(48, 256) * 0.01
    dominant[:, 7] += 5.0  # one prototype wins for every image
    report = verdict_of(features, dominant)
    expect(not report.healthy and "prototypes" in report.verdict, f"one prototype taking every image must be flagged, got: {report.verdict}")
