"""Photometric augmentations on a batch of crops, each crop with its own random parameters.

torchvision's transforms draw one set of parameters per call, so a per-image pipeline calls
them once per crop (10 calls per image for DINO's 2 + 8 views). Here every function takes a
batch of crops `(n, 3, H, W)` (float, values in [0, 1]) and a tensor of per-crop parameters
`(n,)`, so all crops of one size are augmented in a handful of tensor operations. This is
what makes the course's multi-crop pipeline faster than the per-image PIL pipeline (see
`benchmarks/multicrop_throughput.py`).

The formulas are torchvision's (`torchvision.transforms.v2.functional.adjust_*`): blend with
black (brightness), with the mean grey level (contrast) or with the grey image (saturation),
each followed by clipping to [0, 1]; hue rotation in HSV space. Differences from the PIL
pipeline of the original DINO are named where they are made.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "GRAY_WEIGHTS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "color_jitter",
    "to_grayscale",
    "gaussian_blur",
    "solarize",
]

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL's convert("L") and torchvision
JITTER_OPERATIONS = ("brightness", "contrast", "saturation", "hue")


def _per_crop(factor: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
    """(n,) parameters -> (n, 1, 1, 1) so they broadcast over (n, 3, H, W)."""
    return factor.to(crops.dtype).view(-1, 1, 1, 1)


def to_grayscale(crops: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) -> (n, 1, H, W) luma."""
    r, g, b = crops.unbind(dim=1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def adjust_brightness(crops: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale towards black: factor 0 gives black, 1 leaves the crop unchanged."""
    return (crops * _per_crop(factor, crops)).clamp_(0.0, 1.0)


def adjust_contrast(crops: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the crop's mean grey level: factor 0 gives a flat grey crop."""
    mean = to_grayscale(crops).mean(dim=(-3, -2, -1), keepdim=True)  # (n, 1, 1, 1)
    f = _per_crop(factor, crops)
    return (f * crops + (1.0 - f) * mean).clamp_(0.0, 1.0)


def adjust_saturation(crops: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the grey version of the crop: factor 0 gives a grey crop."""
    f = _per_crop(factor, crops)
    return (f * crops + (1.0 - f) * to_grayscale(crops)).clamp_(0.0, 1.0)


def _mod6(x: torch.Tensor) -> torch.Tensor:
    return x - 6.0 * torch.floor(x / 6.0)  # floor-based modulo: several times faster than torch.remainder on CPU


def _is_max(channel: torch.Tensor, maxc: torch.Tensor) -> torch.Tensor:
    """1.0 where `channel == maxc`, else 0.0, with arithmetic only.

    channel - maxc is 0 or at most about -6e-8 (float32 values in [0, 1]), so scaling by 1e30
    sends every non-maximum far below 0. Comparisons and `torch.where` cost 5-20 times more
    than arithmetic on the CPU builds we measured, and hue rotation needs three of them.
    """
    return torch.clamp((channel - maxc) * 1e30 + 1.0, 0.0, 1.0)


def adjust_hue(crops: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by `factor` turns (in [-0.5, 0.5]), keeping HSV value and saturation.

    Hue H (in sixths of a turn) from the channel that holds the maximum V, with chroma
    C = max - min: (G - B) / C if R is the maximum, 2 + (B - R) / C for G, 4 + (R - G) / C for B.
    Back to RGB with the closed form: channel n is V - C * clamp(min(k, 4 - k), 0, 1) with
    k = (n + H) mod 6 and n = 5, 3, 1 for R, G, B. The same result as torchvision's
    `adjust_hue` (to float rounding), written with arithmetic only, for speed.
    """
    r, g, b = crops.unbind(dim=1)  # (n, H, W) each
    maxc = torch.maximum(torch.maximum(r, g), b)
    chroma = maxc - torch.minimum(torch.minimum(r, g), b)
    inverse = 1.0 / chroma.clamp_min(1e-12)  # grey pixels: every numerator below is 0
    red_is_max = _is_max(r, maxc)
    green_is_max = (1.0 - red_is_max) * _is_max(g, maxc)  # ties go to R, then G, then B
    blue_is_max = 1.0 - red_is_max - green_is_max
    hue6 = (
        red_is_max * _mod6((g - b) * inverse)
        + green_is_max * ((b - r) * inverse + 2.0)
        + blue_is_max * ((r - g) * inverse + 4.0)
    )  # in [0, 6); the three formulas agree where two channels tie, so the sum is exact there
    hue6 = hue6 + 6.0 * factor.to(crops.dtype).view(-1, 1, 1)
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = _mod6(hue6 + n)
        channels.append(maxc - chroma * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(channels, dim=1)


_ADJUST = {"brightness": adjust_brightness, "contrast": adjust_contrast, "saturation": adjust_saturation, "hue": adjust_hue}


def color_jitter(
    crops: torch.Tensor, factors: dict[str, torch.Tensor], order: torch.Tensor, apply: torch.Tensor
) -> torch.Tensor:
    """torchvision's `ColorJitter`, with its own factors and its own random order for each crop.

    Args:
        crops: `(n, 3, H, W)` in [0, 1].
        factors: for each of "brightness", "contrast", "saturation", "hue", a tensor `(n,)`.
        order: `(n, 4)` integer permutations of 0..3 (indices into `JITTER_OPERATIONS`): crop i
            gets its operations in the order `order[i]`, as `ColorJitter` draws a random order.
        apply: `(n,)` bool, which crops are jittered at all (`RandomApply(p=0.8)`).
    """
    out = crops.clone()
    for position in range(len(JITTER_OPERATIONS)):
        for op_index, name in enumerate(JITTER_OPERATIONS):
            chosen = torch.nonzero(apply & (order[:, position] == op_index)).flatten()
            if chosen.numel():
                out[chosen] = _ADJUST[name](out[chosen], factors[name][chosen])
    return out


def gaussian_blur(crops: torch.Tensor, sigma: torch.Tensor, truncate: float = 3.0) -> torch.Tensor:
    """Blur each crop with its own Gaussian of standard deviation `sigma[i]` pixels.

    A separable, sampled Gaussian truncated at `truncate` σ of the largest σ in the batch, with
    edge pixels repeated outside the crop. Differs from the original DINO, which used PIL's
    `ImageFilter.GaussianBlur` (an approximation by three box blurs with the same σ).
    """
    n, channels, height, width = crops.shape
    radius = max(1, math.ceil(truncate * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=crops.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma.to(crops.dtype).view(-1, 1)) ** 2)  # (n, 2r+1)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    kernel = kernel.repeat_interleave(channels, dim=0)  # (n*3, 2r+1), one filter per channel
    x = crops.reshape(1, n * channels, height, width)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(n * channels, 1, 1, -1), groups=n * channels)  # along W
    x = F.conv2d(x, kernel.view(n * channels, 1, -1, 1), groups=n * channels)  # along H
    return x.reshape(n, channels, height, width)


def solarize(crops: torch.Tensor, threshold: float = 128 / 255) -> torch.Tensor:
    """Invert every value at or above `threshold` (PIL's `ImageOps.solarize(image, 128)`)."""
    return torch.where(crops >= threshold, 1.0 - crops, crops)
