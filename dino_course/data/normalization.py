"""Pixel normalisation: one definition of each dataset's channel statistics, used everywhere.

A network sees a uint8 image as float `(x / 255 - mean) / std` per channel. ImageNet's
statistics are the original DINO's (and torchvision's) default and are defined here, once; the
digits' statistics live next to their loader (`dino_course.data.datasets.DIGITS_MEAN`).
"""

from __future__ import annotations

import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "check_channel_stats", "standardize", "normalize_uint8", "denormalize"]

# The normalisation of the original (ImageNet's channel statistics), the paper's default.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_channel_stats(mean, std) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """`(mean, std)` as tuples of three floats; a clear `ValueError` for anything else."""
    for name, value in (("mean", mean), ("std", std)):
        numbers = isinstance(value, (tuple, list)) and all(isinstance(v, (int, float)) for v in value)
        if not numbers or len(value) != 3:
            raise ValueError(f"{name} must be three numbers, one per channel, got {value!r}")
    if not all(v > 0 for v in std):
        raise ValueError(f"std must be positive, got {std!r}")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def standardize(pixels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """float `(B, 3, H, W)` in [0, 1] -> `(x - mean) / std` per channel (statistics already checked)."""
    mean_t = torch.tensor(mean, dtype=pixels.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=pixels.dtype).view(1, 3, 1, 1)
    return (pixels - mean_t) / std_t


def normalize_uint8(
    images: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """uint8 `(B, 3, H, W)` -> float32, scaled to [0, 1], then `(x - mean) / std` per channel
    (ImageNet's statistics unless given; the evaluation input)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a tensor of shape (B, 3, H, W), got {getattr(images, 'shape', images)}")
    mean, std = check_channel_stats(mean, std)
    return standardize(images.float() / 255.0, mean, std)


def denormalize(
    view: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """Undo the normalisation of a view `(3, H, W)` (or `(B, 3, H, W)`): values back in [0, 1]."""
    mean_t = torch.tensor(mean, dtype=view.dtype).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=view.dtype).view(3, 1, 1)
    return (view * std_t + mean_t).clamp(0.0, 1.0)
