"""Given code around Lesson 3.4's diagnostics: model outputs, the divergence by part, the
feature-quality report and figure (`dino_course/widgets/`), on the reference."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

import solutions.diagnostics as diagnostics  # noqa: E402
from dino_course.networks import dino_models  # noqa: E402
from dino_course.widgets.feature_quality import (  # noqa: E402
    feature_quality_report,
    network_outputs,
    plot_feature_quality,
)
from dino_course.widgets.parameter_divergence_history import parameter_divergence_by_part  # noqa: E402


def test_network_outputs_and_divergence_by_part():
    torch.manual_seed(0)
    dino = dino_models.dino_tiny_cpu(output_dim=64, epochs=1, steps_per_epoch=2, depth=1)
    dino.student.train()
    outputs = network_outputs(dino.student, torch.randn(8, 3, 32, 32))
    assert dino.student.training  # mode restored
    assert outputs["features"].shape == (8, 96) and outputs["bottleneck"].shape == (8, 64) and outputs["logits"].shape == (8, 64)
    assert diagnostics.l2_norm_consistency(outputs["bottleneck"])["consistent"]
    summary = parameter_divergence_by_part(dino.student, dino.teacher)
    assert summary["max"] == 0.0 and set(summary) >= {"mean", "max", "backbone", "head"}
    with torch.no_grad():
        for p in dino.student.head.parameters():
            p.mul_(1.5)
    summary = parameter_divergence_by_part(dino.student, dino.teacher)
    assert summary["backbone"] == 0.0 and summary["head"] > 0.1


def test_feature_quality_figure_renders():
    features = torch.randn(20, 8)
    logits = torch.randn(20, 16)
    figure = plot_feature_quality({"healthy": (features, logits), "constant": (torch.ones(20, 8), logits)})
    assert len(figure.axes) == 2
    labels = [t.get_text() for t in figure.axes[1].get_legend().get_texts()]
    assert labels == ["healthy: healthy", "constant: COLLAPSED"]


def test_report_text_is_readable():
    report = feature_quality_report(torch.ones(10, 4), torch.zeros(10, 8))
    text = str(report)
    assert "COLLAPSED" in text and "uniform" in text and "depend" in text
