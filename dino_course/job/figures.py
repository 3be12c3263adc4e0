"""Figures of a training run: loss and k-NN accuracy curves, and CLS attention maps with their mass masks."""

from __future__ import annotations

from pathlib import Path

import torch

from dino_course.files.safe_files import atomic_write_bytes

__all__ = ["plot_training_curves", "plot_attention_figure", "attention_figure"]


def _save(figure, path: str | Path) -> Path:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_training_curves(metrics: dict, path: str | Path) -> Path:
    """Loss per iteration (left) and held-out k-NN top-1 per evaluation (right), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [row["it"] for row in metrics["iterations"]]
    left.plot(steps, [row["loss"] for row in metrics["iterations"]], lw=1)
    left.set(xlabel="iteration", ylabel="DINO loss", title="training loss")
    epochs = [row["epoch"] for row in metrics["evaluations"]]
    right.plot(epochs, [row["knn_top1"] for row in metrics["evaluations"]], "o-", label="DINO teacher features")
    if "raw_pixel_knn_top1" in metrics:
        right.axhline(metrics["raw_pixel_knn_top1"], color="grey", ls="--", label="raw pixels")
    right.set(xlabel="epoch", ylabel="k-NN top-1 (%)", title="held-out k-NN accuracy", ylim=(0, 100))
    right.legend(loc="lower right")
    return _save(figure, path)


def attention_figure(images: torch.Tensor, maps: torch.Tensor, masks: torch.Tensor | None = None):
    """A matplotlib figure: one row per image, the image then each head's map (and its mask outline)."""
    import matplotlib.pyplot as plt

    n_images, n_heads = maps.shape[:2]
    columns = 1 + n_heads
    figure, axes = plt.subplots(n_images, columns, figsize=(1.6 * columns, 1.6 * n_images), squeeze=False)
    side = images.shape[-1]
    for row in range(n_images):
        picture = images[row].permute(1, 2, 0).float()
        picture = (picture - picture.min()) / (picture.max() - picture.min() + 1e-8)
        axes[row, 0].imshow(picture.numpy())
        for head in range(n_heads):
            axis = axes[row, 1 + head]
            upsampled = torch.nn.functional.interpolate(maps[row, head][None, None].float(), size=(side, side), mode="nearest")[0, 0]
            axis.imshow(upsampled.numpy(), cmap="inferno")
            if masks is not None:
                mask = torch.nn.functional.interpolate(masks[row, head][None, None].float(), size=(side, side), mode="nearest")[0, 0]
                axis.contour(mask.numpy(), levels=[0.5], colors="cyan", linewidths=0.8)
            if row == 0:
                axis.set_title(f"head {head}", fontsize=9)
        if row == 0:
            axes[row, 0].set_title("image", fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle("last-block CLS attention per head (cyan: patches holding 60 % of the mass)", fontsize=9)
    return figure


def plot_attention_figure(images: torch.Tensor, maps: torch.Tensor, masks: torch.Tensor | None, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    return _save(attention_figure(images, maps, masks), path)
