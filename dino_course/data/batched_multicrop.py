"""Multi-crop augmentation for a whole batch at once: the train job's fast data path.

Lesson 3.2's `MultiCropAugmentation` augments one image at a time, which is the clearest way
to learn it. On a 2-core CPU that per-image Python loop would cost more than the ViT itself,
so the train job draws the same kinds of random views for a whole batch with a few tensor
operations: random resized crops as one `grid_sample` per view, horizontal flips folded into
the same sampling grid, brightness/contrast jitter and solarisation as elementwise ops.

Deviations from the DINO recipe (Caron et al. 2021, Appendix, after BYOL), named here:
  - no Gaussian blur: on 16-32 px crops of digits it erases the strokes;
  - no hue/saturation jitter or random grey: the default images are grey already;
  - horizontal flip probability is a parameter (0.5 in the paper; the digits preset turns it
    off, because a mirrored 2, 3, 7 or 9 is not a digit);
  - solarisation (p = 0.2) on the second global view, as in the paper.
  - the normalisation is a parameter: ImageNet's mean and std by default, as in the paper; the
    digits preset divides by the digits' std with no mean subtracted (see `train_job.PRESETS`).

Randomness comes from an explicit `torch.Generator`, and the parameters of a whole global
batch are drawn before a process takes its shard, so a run split over N processes sees
exactly the views of a single-process run (see `dino_course.job.distributed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["BatchedMultiCrop", "IMAGENET_MEAN", "IMAGENET_STD", "normalize_uint8"]

# The normalisation of the original (ImageNet channel statistics), also used by Lesson 3.2.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_channel_stats(mean, std) -> None:
    for name, value in (("mean", mean), ("std", std)):
        numbers = isinstance(value, (tuple, list)) and all(isinstance(v, (int, float)) for v in value)
        if not numbers or len(value) != 3:
            raise ValueError(f"{name} must be three numbers, one per channel, got {value!r}")
    if not all(v > 0 for v in std):
        raise ValueError(f"std must be positive, got {std!r}")


def normalize_uint8(
    images: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """uint8 `(B, 3, H, W)` → float32, scaled to [0, 1], then `(x - mean) / std` per channel
    (ImageNet's statistics unless given; the evaluation input)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a tensor of shape (B, 3, H, W), got {getattr(images, 'shape', images)}")
    _check_channel_stats(mean, std)
    return _standardize(images.float() / 255.0, mean, std)


def _standardize(pixels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """float `(B, 3, H, W)` in [0, 1] → `(x - mean) / std` per channel (the statistics already checked)."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (pixels - mean_t) / std_t


@dataclass(frozen=True)
class BatchedMultiCrop:
    """2 global views and `n_local` local views of every image of a uint8 batch `(B, 3, S, S)`."""

    global_size: int = 32
    local_size: int = 16
    n_local: int = 6
    global_scale: tuple[float, float] = (0.4, 1.0)  # share of the image area (paper: 0.4-1)
    local_scale: tuple[float, float] = (0.05, 0.4)  # paper: 0.05-0.4
    flip_p: float = 0.5
    jitter_p: float = 0.8  # paper: colour jitter with p = 0.8, strength 0.4 for brightness and contrast
    jitter_strength: float = 0.4
    solarize_p: float = 0.2  # paper: second global view only
    mean: tuple[float, ...] = IMAGENET_MEAN  # per-channel normalisation of the views (paper: ImageNet's)
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        for name in ("global_size", "local_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(self.n_local, bool) or not isinstance(self.n_local, int) or self.n_local < 0:
            raise ValueError(f"n_local must be a non-negative int, got {self.n_local!r}")
        for name in ("global_scale", "local_scale"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high <= 1.0:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high <= 1, got {(low, high)}")
        _check_channel_stats(self.mean, self.std)

    @property
    def n_views(self) -> int:
        return 2 + self.n_local

    def _boxes(self, n: int, scale: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
        """Affine matrices `(n, 2, 3)` mapping output coordinates to a random box of the source."""
        area = torch.empty(n).uniform_(*scale, generator=generator)
        log_ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
        ratio = log_ratio.exp()
        width = (area * ratio).sqrt().clamp(max=1.0)  # fractions of the image side
        height = (area / ratio).sqrt().clamp(max=1.0)
        centre_x = (1 - width) * torch.rand(n, generator=generator) + width / 2
        centre_y = (1 - height) * torch.rand(n, generator=generator) + height / 2
        flip = torch.where(torch.rand(n, generator=generator) < self.flip_p, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = width * flip
        theta[:, 0, 2] = 2 * centre_x - 1
        theta[:, 1, 1] = height
        theta[:, 1, 2] = 2 * centre_y - 1
        return theta

    def _photometric(self, n: int, solarize_p: float, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        jitter = torch.rand(n, generator=generator) < self.jitter_p
        strength = self.jitter_strength
        brightness = torch.where(jitter, torch.empty(n).uniform_(1 - strength, 1 + strength, generator=generator), 1.0)
        contrast = torch.where(jitter, torch.empty(n).uniform_(1 - strength, 1 + strength, generator=generator), 1.0)
        solarize = torch.rand(n, generator=generator) < solarize_p
        return brightness, contrast, solarize

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator, shard: slice = slice(None)
    ) -> list[torch.Tensor]:
        """The views of `images[shard]`, with random parameters drawn for all of `images`.

        Args:
            images: uint8 `(B, 3, S, S)`, the whole global batch.
            generator: source of randomness (same state on every process).
            shard: which rows this process keeps (default: all).

        Returns:
            `2 + n_local` float32 tensors, normalised with `mean` and `std`: 2 global views `(b, 3, G, G)`
            then the local views `(b, 3, L, L)`, where b is the shard's size.
        """
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.dtype != torch.uint8:
            raise ValueError(f"images must be a uint8 tensor (B, 3, S, S), got {getattr(images, 'dtype', type(images))}")
        n = images.shape[0]
        plans = []
        for view in range(self.n_views):
            is_global = view < 2
            theta = self._boxes(n, self.global_scale if is_global else self.local_scale, generator)
            photometric = self._photometric(n, self.solarize_p if view == 1 else 0.0, generator)
            plans.append((is_global, theta, photometric))
        pixels = images[shard].float() / 255.0
        views = []
        for is_global, theta, (brightness, contrast, solarize) in plans:
            size = self.global_size if is_global else self.local_size
            theta = theta[shard]
            grid = F.affine_grid(theta, [pixels.shape[0], 3, size, size], align_corners=False)
            view = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
            view = view * brightness[shard].view(-1, 1, 1, 1)
            mean = view.mean(dim=(1, 2, 3), keepdim=True)
            view = ((view - mean) * contrast[shard].view(-1, 1, 1, 1) + mean).clamp(0, 1)
            view = torch.where(solarize[shard].view(-1, 1, 1, 1) & (view >= 0.5), 1.0 - view, view)
            views.append(view)
        return [_standardize(view, self.mean, self.std).contiguous() for view in views]
