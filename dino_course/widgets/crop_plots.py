"""Pictures of multi-crop: where each view comes from, and what each view looks like.

`plot_multicrop(image, sample)` draws the photo with every crop's box on it (global views in
thick lines, local views in thin ones) next to the views themselves, each titled with the
augmentations that fired on it, so the asymmetry between the two global views is visible.
"""

from __future__ import annotations

import math

import torch
from PIL import Image

__all__ = ["describe_view", "plot_multicrop", "view_label", "VIEW_COLOURS"]

VIEW_COLOURS = ("tab:red", "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def view_label(index: int, n_global: int = 2) -> str:
    """'G1', 'G2' for the global views, then 'L1', 'L2', ... for the local ones."""
    return f"G{index + 1}" if index < n_global else f"L{index - n_global + 1}"


def describe_view(sample, index: int) -> str:
    """The augmentations that fired on view `index` of a `MultiCropSample`, in pipeline order."""
    fired = []
    if sample.flipped[index]:
        fired.append("flip")
    if sample.jittered[index]:
        fired.append("jitter")
    if sample.grayscaled[index]:
        fired.append("grey")
    if sample.blur_sigma[index] is not None:
        fired.append(f"blur σ={sample.blur_sigma[index]:.1f}")
    if sample.solarized[index]:
        fired.append("solarise")
    return ", ".join(fired) or "crop only"


def _as_picture(view: torch.Tensor, normalized: bool):
    from dino_course.data.normalization import denormalize

    pixels = denormalize(view) if normalized else view.clamp(0.0, 1.0)
    return pixels.permute(1, 2, 0).numpy()  # (H, W, 3) for imshow


def plot_multicrop(image, sample, *, normalized: bool = True, figure=None, columns: int = 5):
    """Draw `image` with the boxes of `sample` (a `MultiCropSample`) and the views in a grid.

    Args:
        image: the PIL image or uint8 tensor `(3, H, W)` the sample was made from.
        sample: `MultiCropAugmentation.sample(image)`'s result.
        normalized: whether the views are ImageNet-normalised (undone for display).
        figure: a matplotlib `Figure` to draw into (cleared first); a new one if None.
        columns: views per row of the grid.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if isinstance(image, torch.Tensor):
        photo = image.permute(1, 2, 0).numpy()
    elif isinstance(image, Image.Image):
        photo = image.convert("RGB")
    else:
        raise TypeError(f"image must be a PIL image or a uint8 tensor (3, H, W), got {type(image).__name__}")
    n_views = len(sample.views)
    n_global = sum(r.kind == "global" for r in sample.recipes)
    rows = max(1, math.ceil(n_views / columns))
    if figure is None:
        figure = plt.figure(figsize=(4 + 2.0 * columns, max(3.5, 2.1 * rows)))
    figure.clear()
    grid = figure.add_gridspec(rows, columns + 2)
    photo_axes = figure.add_subplot(grid[:, :2])
    photo_axes.imshow(photo)
    photo_axes.set_title("boxes on the photo (G global, L local)", fontsize=9)
    photo_axes.axis("off")
    for index, (top, left, height, width) in enumerate(sample.boxes):
        colour = VIEW_COLOURS[index % len(VIEW_COLOURS)]
        is_global = index < n_global
        photo_axes.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, edgecolor=colour,
                                       linewidth=2.5 if is_global else 1.2, linestyle="-" if is_global else "--"))
        photo_axes.text(left + 2, top + 2, view_label(index, n_global), color="white", fontsize=9, va="top",
                        bbox=dict(facecolor=colour, alpha=0.8, pad=1, edgecolor="none"))
    for index, view in enumerate(sample.views):
        axes = figure.add_subplot(grid[index // columns, 2 + index % columns])
        axes.imshow(_as_picture(view, normalized))
        axes.set_title(f"{view_label(index, n_global)} {view.shape[-1]}px\n{describe_view(sample, index)}", fontsize=9,
                       color=VIEW_COLOURS[index % len(VIEW_COLOURS)])
        axes.axis("off")
    figure.tight_layout()
    return figure
