"""Given: how far the student's parameters are from the teacher's, per layer and over training.

For Lesson 3.1 and later lessons. The per-parameter numbers come from your
`parameter_divergence` (Lesson 3.1: ‖θ_s − θ_t‖ / ‖θ_s‖); this module groups them by layer or by
part of the network (`parameter_divergence_by_part`), records them over steps
(`ParameterDivergenceHistory`) and draws them. It measures parameters, not outputs: for a
collapsed representation see `feature_quality`, for a training run the train job's warnings.
"""

from __future__ import annotations

import re
from collections import defaultdict

import torch
from torch import nn


def layer_of(parameter_name: str) -> str:
    """The layer a parameter belongs to, for grouping: 'backbone.blocks.3.attn.qkv.weight' -> 'backbone.blocks.3'.

    Numbered sub-modules (transformer blocks, MLP layers) keep their number; everything else
    is grouped by its owning module.
    """
    match = re.match(r"^(.*?\.\d+)\.", parameter_name)
    if match:
        return match.group(1)
    return parameter_name.rsplit(".", 1)[0] if "." in parameter_name else parameter_name


def parameter_divergence_by_part(student: nn.Module, teacher: nn.Module) -> dict[str, float]:
    """Lesson 3.1's `parameter_divergence`, summarised: mean and max over all parameters, and
    the mean per top-level part (e.g. `backbone`, `head`). Keys like `"mean"`, `"max"`, `"head"`."""
    # Imported here, not at the top, so the reference switch and your latest edits apply.
    from dino_course.student_teacher import parameter_divergence

    divergence = parameter_divergence(student, teacher)
    values = list(divergence.values())
    summary = {"mean": sum(values) / len(values), "max": max(values)}
    parts: dict[str, list[float]] = {}
    for name, value in divergence.items():
        parts.setdefault(name.split(".")[0], []).append(value)
    summary.update({part: sum(v) / len(v) for part, v in parts.items()})
    return summary


class ParameterDivergenceHistory:
    """Records the per-layer student-teacher parameter divergence at chosen steps.

    The divergence of a layer is the root-mean-square of its parameters' relative
    divergences ‖θ_s − θ_t‖ / ‖θ_s‖ (see `parameter_divergence`).
    """

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.history: dict[str, list[float]] = defaultdict(list)

    def record(self, step: int, student: nn.Module, teacher: nn.Module) -> dict[str, float]:
        # Imported here, not at the top, so the reference switch and your latest edits apply.
        from dino_course.student_teacher import parameter_divergence

        per_parameter = parameter_divergence(student, teacher)
        per_layer: dict[str, list[float]] = defaultdict(list)
        for name, value in per_parameter.items():
            per_layer[layer_of(name)].append(float(value))
        summary = {layer: float(torch.tensor(values).square().mean().sqrt()) for layer, values in per_layer.items()}
        self.steps.append(step)
        for layer, value in summary.items():
            self.history[layer].append(value)
        return summary

    def mean(self) -> list[float]:
        """Average over layers, per recorded step."""
        layers = list(self.history.values())
        return [sum(values[i] for values in layers) / len(layers) for i in range(len(self.steps))]


def plot_divergence(histories: dict[str, ParameterDivergenceHistory], *, layers: list[str] | None = None, ax=None):
    """Plot mean (or chosen layers') divergence over steps, one line per history (e.g. per momentum)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for label, history in histories.items():
        if layers is None:
            ax.plot(history.steps, history.mean(), label=label)
        else:
            for layer in layers:
                ax.plot(history.steps, history.history[layer], label=f"{label}: {layer}")
    ax.set_xlabel("training step")
    ax.set_ylabel("relative distance ‖θ_s − θ_t‖ / ‖θ_s‖")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return ax


def plot_layer_divergence(tracker: ParameterDivergenceHistory, ax=None):
    """Bar chart of the last recorded divergence of every layer."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    names = list(tracker.history)
    ax.barh(names, [tracker.history[n][-1] for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("relative distance at the last step")
    ax.tick_params(axis="y", labelsize=9)
    return ax
