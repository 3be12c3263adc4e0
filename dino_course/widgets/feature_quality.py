"""Given: is a representation healthy or collapsed? A readable report and a picture (Lesson 3.4).

The numbers come from your feature-quality tools in `dino_course/diagnostics.py` (or the
reference where you switched Lesson 3.4 on); this module runs a network to get its outputs,
turns your five metrics into a verdict, and draws them for several models side by side:

    network_outputs(network, images)        backbone features, normalised bottleneck, logits
    feature_quality_report(features, logits) -> FeatureQualityReport; print it for the verdict
    plot_feature_quality({label: (features, logits)})

Not to be confused with the train job's collapse warnings (`dino_course.job.train`), which
watch the teacher during a run with numbers of their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# Verdict thresholds (course choices, justified where they are used in `feature_quality_report`).
MIN_SPREAD = 0.05  # dimension spread below this: the features hardly depend on the input
MIN_EFFECTIVE_RANK = 1.5  # fewer than ~1.5 directions used: the features lie on a line (or a point)
MAX_MEAN_ENTROPY_RATIO = 0.99  # mean H(p) / log K above this: predictions are uniform
MIN_ENTROPY_OF_MEAN_RATIO = 0.5  # H(mean p) / log K below this: a few prototypes take every image


def _check_matrix(name: str, x, min_rows: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < min_rows or x.shape[1] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor (N, D) with N >= {min_rows} rows, got {shape}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


@torch.no_grad()
def network_outputs(network: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Backbone features `(B, D)`, normalised bottleneck `(B, bottleneck)` and logits `(B, K)`.

    `network` is a `MultiCropNetwork`-like module with `.backbone` and a `DINOProjectionHead`
    `.head`. Runs in eval mode (restored afterwards) without gradients.
    """
    was_training = network.training
    network.eval()
    try:
        features = network.backbone(images)
        return {"features": features, "bottleneck": network.head.bottleneck(features), "logits": network.head(features)}
    finally:
        network.train(was_training)


@dataclass(frozen=True)
class FeatureQualityReport:
    """The numbers behind a verdict; `str(report)` is the readable version."""

    n_samples: int
    feature_dim: int
    output_dim: int
    norm_max_deviation: float
    mean_cosine_similarity: float
    dimension_spread: float
    effective_rank: float
    entropy_of_mean: float
    mean_entropy: float
    problems: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        if self.healthy:
            return "healthy: features vary across images and predictions use many prototypes"
        return "COLLAPSED: " + "; ".join(self.problems)

    def __str__(self) -> str:
        log_k = math.log(self.output_dim)
        lines = [
            f"{self.n_samples} images, features D={self.feature_dim}, prototypes K={self.output_dim}",
            f"  L2 norm, max |‖z‖-1|      {self.norm_max_deviation:.4f}",
            f"  mean cosine similarity    {self.mean_cosine_similarity:+.3f}   (near 1: images not told apart)",
            f"  dimension spread          {self.dimension_spread:.3f}    (≈1 isotropic, 0 collapsed; flag < {MIN_SPREAD})",
            f"  effective rank            {self.effective_rank:.2f}     (of at most {min(self.n_samples, self.feature_dim)}; flag < {MIN_EFFECTIVE_RANK})",
            f"  H(mean prediction)/log K  {self.entropy_of_mean / log_k:.3f}    (flag < {MIN_ENTROPY_OF_MEAN_RATIO}: few prototypes used)",
            f"  mean H(prediction)/log K  {self.mean_entropy / log_k:.3f}    (flag > {MAX_MEAN_ENTROPY_RATIO}: uniform predictions)",
            f"verdict: {self.verdict}",
        ]
        return "\n".join(lines)


def feature_quality_report(
    features: torch.Tensor, logits: torch.Tensor, temperature: float | None = None, *, metrics=None
) -> FeatureQualityReport:
    """Measure `features` `(N, D)` (e.g. the normalised bottleneck) and `logits` `(N, K)` and judge.

    Flags, each with the reason it is a sign of collapse:
      - dimension spread < `MIN_SPREAD` or effective rank < `MIN_EFFECTIVE_RANK`: the features
        barely depend on the image (a random-init network already has spread ≈ 0.2–1);
      - mean H(p_i) / log K > `MAX_MEAN_ENTROPY_RATIO`: every prediction is nearly uniform
        (with the student's τ = 0.1 even random cosine scores give ≈ 0.9);
      - H(p̄) / log K < `MIN_ENTROPY_OF_MEAN_RATIO`: a few prototypes win for every image.
    The L2 norm is reported, not judged: only normalised features should be ≈ 1.

    Args:
        features, logits: N rows each, N ≥ 2.
        temperature: τ of the predictions; None keeps `prediction_entropies`' default (the
            student's 0.1).
        metrics: the module whose five metrics are used; None is `dino_course.diagnostics`
            (your code, or the reference where Lesson 3.4 is switched on). A hidden check
            passes the world it grades.
    """
    if metrics is None:
        from dino_course import diagnostics as metrics  # at call time: the switch and your edits apply

    _check_matrix("features", features, min_rows=2)
    _check_matrix("logits", logits, min_rows=2)
    if len(features) != len(logits):
        raise ValueError(f"features and logits must have the same number of rows, got {len(features)} and {len(logits)}")
    spread = metrics.dimension_spread(features)
    rank = metrics.effective_rank(features)
    if temperature is None:
        entropy_of_mean, mean_entropy = metrics.prediction_entropies(logits)
    else:
        entropy_of_mean, mean_entropy = metrics.prediction_entropies(logits, temperature)
    log_k = math.log(logits.shape[1]) if logits.shape[1] > 1 else 1.0
    problems = []
    if spread < MIN_SPREAD or rank < MIN_EFFECTIVE_RANK:
        problems.append(f"features do not depend on the input (spread {spread:.3f}, effective rank {rank:.2f})")
    if mean_entropy / log_k > MAX_MEAN_ENTROPY_RATIO:
        problems.append(f"uniform predictions (mean entropy {mean_entropy / log_k:.3f} · log K)")
    if entropy_of_mean / log_k < MIN_ENTROPY_OF_MEAN_RATIO:
        problems.append(f"a few prototypes take every image (entropy of the mean {entropy_of_mean / log_k:.3f} · log K)")
    return FeatureQualityReport(
        n_samples=len(features),
        feature_dim=features.shape[1],
        output_dim=logits.shape[1],
        norm_max_deviation=float(metrics.l2_norm_consistency(features)["max_deviation"]),
        mean_cosine_similarity=float(metrics.pairwise_cosine_similarities(features).mean()),
        dimension_spread=spread,
        effective_rank=rank,
        entropy_of_mean=entropy_of_mean,
        mean_entropy=mean_entropy,
        problems=tuple(problems),
    )


def plot_feature_quality(
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]], temperature: float | None = None, bins: int = 40
):
    """One row per model: histogram of pairwise cosine similarities, and the collapse metrics.

    Args:
        outputs: `{label: (features (N, D), logits (N, K))}`, e.g. normalised bottleneck and head
            output of a healthy and of a collapsed model.
        temperature: the softmax temperature for the entropies (None: the student's 0.1).
        bins: histogram bins over [-1, 1].

    Returns:
        The matplotlib `Figure` (two panels: histograms overlaid, metrics as grouped bars).
    """
    import matplotlib.pyplot as plt

    from dino_course import diagnostics

    if not isinstance(outputs, dict) or not outputs:
        raise ValueError("outputs must be a non-empty dict {label: (features, logits)}")
    figure, (hist_ax, bar_ax) = plt.subplots(1, 2, figsize=(11, 3.6))
    metric_names = ["dimension spread", "eff. rank / min(N,D)", "H(mean p) / log K", "mean H(p) / log K"]
    width = 0.8 / len(outputs)
    similarities = {label: diagnostics.pairwise_cosine_similarities(features) for label, (features, _) in outputs.items()}
    # Zoom on the occupied range: a network at initialisation already has cosines near 1, and
    # on a [-1, 1] axis a healthy and a collapsed model would look the same.
    low = min(float(s.min()) for s in similarities.values())
    low = max(-1.0, low - 0.05 * (1.0 - low) - 1e-3)
    for index, (label, (features, logits)) in enumerate(outputs.items()):
        hist_ax.hist(similarities[label].numpy(), bins=bins, range=(low, 1.0), alpha=0.55, label=label)
        report = feature_quality_report(features, logits, temperature, metrics=diagnostics)
        log_k = math.log(report.output_dim)
        values = [
            report.dimension_spread,
            report.effective_rank / min(report.n_samples, report.feature_dim),
            report.entropy_of_mean / log_k,
            report.mean_entropy / log_k,
        ]
        positions = [i + (index - (len(outputs) - 1) / 2) * width for i in range(len(values))]
        bar_ax.bar(positions, values, width=width, label=f"{label}: {'healthy' if report.healthy else 'COLLAPSED'}")
    hist_ax.set(xlabel="cosine similarity of two images' features", ylabel="pairs", yscale="log", title="pairwise cosine similarities")
    hist_ax.legend()
    bar_ax.set_xticks(range(len(metric_names)), metric_names, rotation=15)
    bar_ax.set(ylim=(0, 1.1), title="collapse metrics (each in [0, 1])")
    bar_ax.legend(fontsize=9)
    figure.tight_layout()
    return figure
