"""Pictures of representation quality (Lesson 3.3): cosine-similarity histograms and the
collapse metrics of several models side by side.

The numbers come from `dino_course.diagnostics`, i.e. from the learner's own code when the
lesson's reference switch is off.
"""

from __future__ import annotations

import math

import torch


def plot_feature_quality(outputs: dict[str, tuple[torch.Tensor, torch.Tensor]], temperature: float = 0.1, bins: int = 40):
    """One row per model: histogram of pairwise cosine similarities, and the collapse metrics.

    Args:
        outputs: `{label: (features (N, D), logits (N, K))}`, e.g. normalised bottleneck and head
            output of a healthy and of a collapsed model.
        temperature: the softmax temperature for the entropies (the student's 0.1).
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
        report = diagnostics.diagnose_collapse(features, logits, temperature)
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
    bar_ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
