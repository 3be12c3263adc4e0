"""Watching student-teacher dynamics: parameter divergence over training, and its plot.

Given infrastructure for Lesson 3.1 and later lessons. The per-parameter numbers come from
your `parameter_divergence` (Lesson 3.1); this module groups them by layer, records them
over steps and draws them.
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


class DivergenceTracker:
    """Records the per-layer student-teacher divergence at chosen steps.

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


def plot_divergence(trackers: dict[str, DivergenceTracker], *, layers: list[str] | None = None, ax=None):
    """Plot mean (or chosen layers') divergence over steps, one line per tracker (e.g. per momentum)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for label, tracker in trackers.items():
        if layers is None:
            ax.plot(tracker.steps, tracker.mean(), label=label)
        else:
            for layer in layers:
                ax.plot(tracker.steps, tracker.history[layer], label=f"{label}: {layer}")
    ax.set_xlabel("training step")
    ax.set_ylabel("relative distance ‖θ_s − θ_t‖ / ‖θ_s‖")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_layer_divergence(tracker: DivergenceTracker, ax=None):
    """Bar chart of the last recorded divergence of every layer."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    names = list(tracker.history)
    ax.barh(names, [tracker.history[n][-1] for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("relative distance at the last step")
    ax.tick_params(axis="y", labelsize=7)
    return ax
