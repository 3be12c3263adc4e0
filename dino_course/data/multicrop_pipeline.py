"""Given: the course's one multi-crop data path (Lesson 3.2's recipe), used by every job.

Lesson 3.2 draws the views, the train job (`dino-course train`) and the Lesson 4.4 demo train on
them, the crop explorer shows them: all through `MultiCropAugmentation`, whose per-view recipe
is *your* `view_recipes`, whose crop boxes come from *your* `sample_crop_box` and whose batches
are assembled by *your* `collate_multicrop` (`dino_course/multicrop.py`); the model then groups
the views with your `group_by_resolution`.
Your functions are looked up in `dino_course.multicrop` when they are called, so the reference
switch (`DINO_COURSE_REFERENCE`) and a notebook's `%autoreload` reach them.

Two ways in, one recipe (the same `ViewRecipe`s, probabilities, boxes and normalisation):

- `MultiCropAugmentation.views_of_batch(images, generator, shard)`, a uint8 batch
  `(B, 3, S, S)` of equal-size images, is what the train job and the demo call: every random
  number of the whole global batch is drawn first, from an explicit `torch.Generator`, then a
  process keeps its `shard` (so N processes see the views of one; `dino_course.job.distributed`).
  Each view is one float, bilinear `grid_sample` over the batch (the integer boxes turned into
  exact affine maps), then brightness/contrast jitter, grey, blur and solarisation as batched
  tensor operations.
- `MultiCropAugmentation(image)`, `.sample(image)`, `.sample_batch(images)` and
  `MultiCropDataset` take images of any size (PIL or uint8 tensors), one at a time or a
  DataLoader batch: what the lesson, the crop explorer and DataLoader workers use. The crop is
  resized as PIL's `RandomResizedCrop` does (bicubic with antialiasing), and the full colour
  jitter (saturation, hue, random order) is applied (`dino_course.data.photometric`).

Differences from the original DINO pipeline (Caron et al. 2021, Appendix, after BYOL) are named
where they are made: in `MultiCropAugmentation` and `views_of_batch`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dino_course.data import photometric
from dino_course.data.normalization import IMAGENET_MEAN, IMAGENET_STD, check_channel_stats, standardize

__all__ = [
    "AUGMENTATIONS", "ViewRecipe", "MultiCropSample", "MultiCropAugmentation", "MultiCropDataset",
    "MULTICROP_PRESETS", "JITTER_STRENGTH", "BLUR_SIGMA", "image_to_uint8_tensor", "resized_crop", "box_to_affine",
]

AUGMENTATIONS = ("flip", "color_jitter", "grayscale", "blur", "solarize")  # names the crop explorer toggles


def _lesson():
    """Lesson 3.2's module as it is *now*: yours, or the reference when switched on.

    Looked up in `sys.modules` at every call (not bound at import, and not as the package's
    attribute, which `use_reference` cannot reset), so switching the reference and `%autoreload`
    take effect on the next batch.
    """
    return importlib.import_module("dino_course.multicrop")


def _check_scale(value, name: str) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a (min, max) pair, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (0.0 < lo <= hi <= 1.0):
        raise ValueError(f"{name} must be (min, max) with 0 < min <= max <= 1, got {value!r}")
    return lo, hi


def _check_probability(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ViewRecipe:
    """How one view is made; the defaults are the paper's (BYOL's) values.

    Lesson 3.2's `view_recipes` lists one per view; `MultiCropAugmentation` makes the views
    they describe. Frozen, so one recipe can be shared by every local view without one view's
    change leaking into the others.
    """

    kind: str  # "global" or "local"
    size: int  # output side in pixels: 224 global, 96 local in the paper
    scale: tuple[float, float]  # area fraction of the image: (0.4, 1) global, (0.05, 0.4) local
    flip_p: float = 0.5  # horizontal flip: left-right is not part of an object's identity
    jitter_p: float = 0.8  # colour jitter: without it, colour histograms alone can match two views
    grayscale_p: float = 0.2  # likewise: forces features that survive the loss of colour
    blur_p: float = 0.5  # 1.0 on global view 1, 0.1 on global view 2: the asymmetry
    solarize_p: float = 0.0  # 0.2 on global view 2 only


JITTER_STRENGTH = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1}  # paper / BYOL
BLUR_SIGMA = (0.1, 2.0)  # σ in pixels of the output crop, uniform
# up to this view size all views of an image are augmented as one batch on one canvas (small
# crops pay per tensor operation, not per pixel); above it, one batch per size
CANVAS_MAX_SIZE = photometric.MATMUL_BLUR_MAX_SIZE
# from this many images on, a batch of images is augmented one size at a time even at the small
# presets: the tensor operations are then shared by enough crops, and a local view no longer
# pays for the empty part of a global-size slot (2.3x the pixels at cpu-32)
CANVAS_MIN_IMAGES_SPLIT = 4
# above CANVAS_MAX_SIZE (the paper's 224 / 96 px views), at most this many images per batch: large
# crops pay per pixel and the buffers outgrow the caches (16 images' global views: 19 MB). Paper
# preset, 2 DataLoader workers, one run each: 1 / 2 / 4 / 16 images per batch gave 135 / 153 /
# 130 / 98 images/s (benchmarks/README.md)
LARGE_VIEWS_MAX_IMAGES = 2


@dataclass
class MultiCropSample:
    """The views of one image and what was done to each (for pictures and for the checks)."""

    views: list[torch.Tensor]  # V tensors (3, size, size), float32, normalised; global views first
    recipes: list[ViewRecipe]
    boxes: list[tuple[int, int, int, int]]  # (top, left, height, width) of each view in the source image
    image_size: tuple[int, int]  # (H, W) of the source image
    flipped: list[bool] = field(default_factory=list)
    jittered: list[bool] = field(default_factory=list)
    grayscaled: list[bool] = field(default_factory=list)
    blur_sigma: list[float | None] = field(default_factory=list)  # None: not blurred
    solarized: list[bool] = field(default_factory=list)


MULTICROP_PRESETS: dict[str, dict] = {
    # the paper: 2 × 224 px global + 8 × 96 px local views (main_dino.py defaults)
    "paper": dict(global_size=224, local_size=96, n_local_crops=8),
    # CPU presets (course choice): small views so a laptop can train; 6 local views instead of
    # 8 to keep a training step short (the paper's Table 5 shows gains from 2 local views on)
    "cpu-32": dict(global_size=32, local_size=16, n_local_crops=6),
    "cpu-64": dict(global_size=64, local_size=28, n_local_crops=6),
}


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def image_to_uint8_tensor(image) -> torch.Tensor:
    """A PIL image of any mode or a uint8 tensor `(3, H, W)` / `(1, H, W)` -> uint8 `(3, H, W)`.

    PIL modes other than RGB are converted with `Image.convert("RGB")` (grey replicated, a
    palette looked up, an alpha channel dropped), as `torchvision.datasets.ImageFolder` does.
    """
    if isinstance(image, Image.Image):
        if image.width < 1 or image.height < 1:
            raise ValueError(f"image must have at least one pixel, got size {image.size}")
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)  # (3, H, W), channels-last memory
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8:
            raise TypeError(
                f"image tensor must be uint8 (values 0..255), got {image.dtype}; "
                "convert with (x * 255).round().to(torch.uint8)"
            )
        if image.dim() != 3 or image.shape[0] not in (1, 3) or image.shape[1] < 1 or image.shape[2] < 1:
            raise ValueError(f"image tensor must have shape (3, H, W) or (1, H, W), got {tuple(image.shape)}")
        return image.expand(3, -1, -1) if image.shape[0] == 1 else image
    raise TypeError(f"image must be a PIL.Image.Image or a uint8 torch.Tensor (3, H, W), got {type(image).__name__}")


def resized_crop(source: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """The pixels of `box` = `(top, left, height, width)` of a uint8 image `(3, H, W)`, resized
    to uint8 `(1, 3, size, size)`: bicubic with antialiasing, as torchvision's `resized_crop`
    does (calling `interpolate` directly saves its dispatch overhead). The per-image path."""
    top, left, height, width = box
    return F.interpolate(source[None, :, top : top + height, left : left + width], size=(size, size), mode="bicubic", antialias=True)


def box_to_affine(boxes: Sequence[tuple[int, int, int, int]], height: int, width: int, flipped: torch.Tensor | None = None) -> torch.Tensor:
    """Affine maps `(n, 2, 3)` for `F.affine_grid(..., align_corners=False)` that sample exactly
    the pixels of each box `(top, left, box_height, box_width)` of an `height` x `width` image.

    With `align_corners=False` the image spans [-1, 1] from its outer pixel *edges*, so the box's
    edges `left` and `left + box_width` (in pixels) sit at `2 · left / W - 1` and
    `2 · (left + box_width) / W - 1`: the map scales the output's [-1, 1] by `box_width / W`
    and centres it at `(2 · left + box_width) / W - 1` (rows likewise). A flipped view
    (`flipped[i]` True) mirrors the x axis about the box's centre.
    """
    box = torch.tensor(boxes, dtype=torch.float64).view(-1, 4)  # (n, 4): top, left, box height, box width
    top, left, box_height, box_width = box.unbind(1)
    theta = torch.zeros(box.shape[0], 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = box_width / width
    theta[:, 0, 2] = (2 * left + box_width) / width - 1
    theta[:, 1, 1] = box_height / height
    theta[:, 1, 2] = (2 * top + box_height) / height - 1
    if flipped is not None:
        theta[:, 0, 0] = torch.where(flipped, -theta[:, 0, 0], theta[:, 0, 0])
    return theta.float()


class MultiCropAugmentation:
    """DINO's multi-crop augmentation: 2 global views and `n_local_crops` local views of one image.

    Per view, as *your* `view_recipes` (Lesson 3.2, `dino_course/multicrop.py`) describes it,
    looked up at every batch (the paper's table is in that module's docstring): random
    resized crop (box from your `sample_crop_box`, bicubic resize with antialiasing), horizontal
    flip (p 0.5), colour jitter
    (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, in random order, p 0.8), grayscale
    (p 0.2), Gaussian blur (σ ~ U(0.1, 2); p 1.0 / 0.1 / 0.5 for global 1 / global 2 / locals),
    solarisation (p 0.2, global view 2 only), ImageNet normalisation.

    Differences from the original PIL pipeline (same random choices and probabilities, slightly
    different pixel arithmetic):

    - colour operations run on float32 values instead of uint8: no rounding between steps,
      contrast blends with the exact mean grey level (PIL rounds it to an integer), hue is
      rotated with torchvision's float HSV formulas (PIL converts to 8-bit HSV and back);
    - the blur is an exactly sampled Gaussian with edge pixels repeated, truncated at 3 σ_max,
      σ_max the largest σ among the views blurred together (the blurred views of one size of an
      image; at the small presets, all blurred views of an image; with `augment_batch`, of the
      images augmented together), instead of PIL's
      three-box-blur approximation of the same σ;
    - the resize is torch's antialiased bicubic (uint8) instead of PIL's (values within a few
      levels of each other).

    How it is fast: all crops of one size are augmented as one batch, each with its own
    parameters (at the small presets, whose cost is the number of tensor operations, all crops
    of an image form one batch: locals in the top-left corner of a global-size slot); the
    random numbers of a batch come from one draw; colour jitter needs one hue rotation per
    batch (see `photometric.color_jitter`).

    Args:
        global_size, local_size: output sides in pixels (paper 224 and 96).
        n_local_crops: number of local views N (paper 8; 0 gives the two global views only).
        global_scale, local_scale: area-fraction ranges, each within (0, 1].
        augmentations: which of `AUGMENTATIONS` are switched on (the crop explorer toggles
            them); a switched-off augmentation never fires. Cropping is always on.
        normalize: normalise the views with `mean` and `std` (switch off to look at them).
        flip_p, jitter_p: probability of a horizontal flip and of colour jitter, every view
            (paper 0.5 and 0.8).
        solarize_p: probability of solarising the second global view (paper 0.2).
        mean, std: per-channel normalisation (paper: ImageNet's, `IMAGENET_MEAN` / `IMAGENET_STD`).

    Raises:
        ValueError / TypeError: invalid sizes, scales, N or augmentation names.

    Example:
        >>> augment = MultiCropAugmentation.from_preset("cpu-32")
        >>> views = augment(Image.new("RGB", (50, 40), (200, 30, 30)))
        >>> [tuple(v.shape) for v in views[:3]], len(views)
        ([(3, 32, 32), (3, 32, 32), (3, 16, 16)], 8)
    """

    def __init__(
        self,
        global_size: int = 224,
        local_size: int = 96,
        n_local_crops: int = 8,
        global_scale: tuple[float, float] = (0.4, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.4),
        *,
        augmentations: Sequence[str] = AUGMENTATIONS,
        normalize: bool = True,
        flip_p: float = 0.5,
        jitter_p: float = 0.8,
        solarize_p: float = 0.2,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        global_size = _positive_int(global_size, "global_size")
        local_size = _positive_int(local_size, "local_size")
        n_local_crops = _positive_int(n_local_crops, "n_local_crops", minimum=0)
        global_scale = _check_scale(global_scale, "global_scale")
        local_scale = _check_scale(local_scale, "local_scale")
        flip_p, jitter_p = _check_probability(flip_p, "flip_p"), _check_probability(jitter_p, "jitter_p")
        solarize_p = _check_probability(solarize_p, "solarize_p")
        self.mean, self.std = check_channel_stats(mean, std)
        if isinstance(augmentations, str) or not all(isinstance(a, str) for a in augmentations):
            raise TypeError(f"augmentations must be a list of names from {AUGMENTATIONS}, got {augmentations!r}")
        unknown = sorted(set(augmentations) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(f"augmentations must be among {AUGMENTATIONS}, got unknown {unknown}")
        self.augmentations = tuple(a for a in AUGMENTATIONS if a in augmentations)
        self.normalize = bool(normalize)
        self.n_local_crops = n_local_crops
        self._global_size, self._local_size = global_size, local_size
        self._global_scale, self._local_scale = global_scale, local_scale
        # what is handed to Lesson 3.2's `view_recipes` at every batch
        self._recipe_settings = dict(
            global_size=global_size, local_size=local_size, n_local_crops=n_local_crops,
            global_scale=global_scale, local_scale=local_scale, flip_p=flip_p, jitter_p=jitter_p, solarize_p=solarize_p,
        )
        self._probability_cache: dict = {}
        self._scratch: dict = {}  # batch shape -> a buffer colour jitter may write into (never returned)
        self._mean_t = torch.tensor(self.mean).view(1, 3, 1, 1)
        self._std_t = torch.tensor(self.std).view(1, 3, 1, 1)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> MultiCropAugmentation:
        """`MultiCropAugmentation` with the sizes of `MULTICROP_PRESETS[name]`, any argument overridden."""
        if name not in MULTICROP_PRESETS:
            raise ValueError(f"name must be one of {sorted(MULTICROP_PRESETS)}, got {name!r}")
        return cls(**{**MULTICROP_PRESETS[name], **overrides})

    def _switch_off(self, recipe: ViewRecipe) -> ViewRecipe:
        off = {"flip": "flip_p", "color_jitter": "jitter_p", "grayscale": "grayscale_p", "blur": "blur_p", "solarize": "solarize_p"}
        return replace(recipe, **{field_name: 0.0 for name, field_name in off.items() if name not in self.augmentations})

    @property
    def recipes(self) -> list[ViewRecipe]:
        """One `ViewRecipe` per view, global views first: *your* `view_recipes` (Lesson 3.2) of
        this augmentation's settings, asked now, with the switched-off augmentations at p = 0."""
        made = _lesson().view_recipes(**self._recipe_settings)
        expected = 2 + self.n_local_crops
        if not isinstance(made, list) or not all(isinstance(r, ViewRecipe) for r in made):
            raise TypeError(f"view_recipes (Lesson 3.2) must return a list of ViewRecipe, got {made!r:.80}")
        if len(made) != expected:
            raise ValueError(f"view_recipes (Lesson 3.2) must return 2 + n_local_crops = {expected} recipes, got {len(made)}")
        return [self._switch_off(r) for r in made]

    @property
    def global_size(self) -> int:
        return self._global_size

    @property
    def local_size(self) -> int:
        return self._local_size if self.n_local_crops else self._global_size

    def __repr__(self) -> str:
        return (
            f"MultiCropAugmentation(global_size={self.global_size}, local_size={self.local_size}, "
            f"n_local_crops={self.n_local_crops}, global_scale={self._global_scale}, "
            f"local_scale={self._local_scale if self.n_local_crops else None}, "
            f"augmentations={list(self.augmentations)}, normalize={self.normalize})"
        )

    def __call__(self, image) -> list[torch.Tensor]:
        """The `2 + n_local_crops` views of `image` (PIL image or uint8 `(3, H, W)`), global first."""
        return self.sample(image).views

    def sample(self, image, generator: torch.Generator | None = None) -> MultiCropSample:
        """Like calling the augmentation, but also return each view's box and augmentations."""
        return self.sample_batch([image], generator)[0]

    def augment_batch(self, images: Sequence) -> list[list[torch.Tensor]]:
        """The views of each of `images`, as `[augment(image) for image in images]` gives them,
        but augmented together: far fewer tensor operations per image (see `sample_batch`)."""
        return [result.views for result in self.sample_batch(images)]

    def sample_batch(self, images: Sequence, generator: torch.Generator | None = None) -> list[MultiCropSample]:
        """`sample` for several images at once: one `MultiCropSample` per image, in order.

        Each image gets its own boxes and its own random choices, with the same probabilities
        as `sample`; the photometric operations then run once over the crops of *all* the
        images (view-major: view v of every image, then view v + 1), so a batch of B images
        costs about as many tensor operations as one image. What `MultiCropDataset` calls in
        DataLoader workers. With one image it is exactly `sample` (same random draws). From
        `CANVAS_MIN_IMAGES_SPLIT` images on, small views are batched one size at a time (no
        shared canvas); views larger than `CANVAS_MAX_SIZE` (the paper's) at most
        `LARGE_VIEWS_MAX_IMAGES` images at a time.
        """
        if not isinstance(images, (list, tuple)) or len(images) == 0:
            raise ValueError(f"images must be a non-empty list of images, got {images!r:.60}")
        pixels = [image_to_uint8_tensor(image) for image in images]
        crop_box = _lesson().sample_crop_box  # yours (Lesson 3.2), or the reference when switched on
        recipes = self.recipes  # likewise, from your view_recipes
        results = []
        for source in pixels:
            height, width = (int(side) for side in source.shape[-2:])
            boxes = [crop_box(height, width, r.scale, generator=generator) for r in recipes]
            results.append(MultiCropSample(views=[], recipes=list(recipes), boxes=boxes, image_size=(height, width)))
        for start, end in self._runs(recipes, one_canvas=len(images) < CANVAS_MIN_IMAGES_SPLIT):
            # large views pay per pixel: a few images at a time keep the buffers small
            chunk = len(images) if recipes[start].size <= CANVAS_MAX_SIZE else LARGE_VIEWS_MAX_IMAGES
            for first in range(0, len(images), chunk):
                mine = results[first : first + chunk]
                self._augment_run(pixels[first : first + chunk], recipes[start:end], [r.boxes[start:end] for r in mine], generator, mine)
        return results

    def views_of_batch(
        self, images: torch.Tensor, generator: torch.Generator, shard: slice = slice(None)
    ) -> list[torch.Tensor]:
        """The views of `images[shard]` as a multi-crop batch, random choices drawn for all of `images`.

        The train job's and the demo's path. For each view v (global views first), for every
        image of the *whole* batch: a box from your `sample_crop_box(S, S, scale, generator=...)`,
        then in one draw the view's random choices (flip, jitter and its two factors, grey,
        blur and its σ, solarisation), each with the probability of the view's `ViewRecipe`.
        Only then does the process keep its `shard` of the images, so N processes split one
        global batch into exactly the views a single process makes of it. Each view is then
        one float `grid_sample` over the shard (bilinear, reflection padding at the border,
        `align_corners=False`; the box as an exact affine map, `box_to_affine`), and the crops
        of each image go through your `collate_multicrop`.

        Differences from the per-image path (and from the original PIL pipeline), named here:
        the resize is bilinear on float values, without antialiasing (the train job's small
        crops are upsampled or barely downsampled; bicubic uint8 crops lowered the cpu-digits
        run's k-NN); the colour jitter is brightness then contrast, in that order, with one
        clip at the end (contrast blends with the view's mean over all channels); saturation
        and hue are not jittered on this path (the digits are grey; switch on "grayscale" for
        colour data); solarisation inverts values >= 0.5.

        Args:
            images: uint8 `(B, 3, S, S)`, the whole global batch.
            generator: the source of every random number (same state on every process).
            shard: the rows this process keeps (default: all).

        Returns:
            `2 + n_local_crops` float32 tensors `(b, 3, size, size)`, b the shard's size,
            normalised with `mean` and `std` (unless `normalize=False`), global views first.
        """
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be a uint8 tensor (B, 3, S, S), got {getattr(images, 'dtype', type(images))} "
                             f"of shape {tuple(getattr(images, 'shape', ()))}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        lesson = _lesson()  # yours (Lesson 3.2), or the reference when switched on
        n, _, height, width = images.shape
        plans = []
        for recipe in self.recipes:  # your view_recipes, asked once per batch
            boxes = [lesson.sample_crop_box(height, width, recipe.scale, generator=generator) for _ in range(n)]
            draws = torch.rand(n, 8, generator=generator)  # flip, jitter, brightness, contrast, grey, blur, σ, solarise
            plans.append((recipe, boxes, draws))
        pixels = images[shard].float() / 255.0
        indices = torch.arange(n)[shard]
        views = []
        for recipe, boxes, draws in plans:
            draws = draws[shard]
            theta = box_to_affine([boxes[i] for i in indices.tolist()], height, width, draws[:, 0] < recipe.flip_p)
            grid = F.affine_grid(theta, [len(indices), 3, recipe.size, recipe.size], align_corners=False)
            view = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
            views.append(self._batch_photometric(view, recipe, draws))
        crops_per_image = [list(crops) for crops in zip(*(view.unbind(0) for view in views))]  # b lists of V crops
        return lesson.collate_multicrop(crops_per_image)

    def _batch_photometric(self, view: torch.Tensor, recipe: ViewRecipe, draws: torch.Tensor) -> torch.Tensor:
        """`views_of_batch`'s colour operations on one view of the shard `(b, 3, size, size)` in [0, 1]."""
        jitter = draws[:, 1] < recipe.jitter_p
        if bool(jitter.any()):
            b_strength, c_strength = JITTER_STRENGTH["brightness"], JITTER_STRENGTH["contrast"]
            brightness = torch.where(jitter, 1 - b_strength + 2 * b_strength * draws[:, 2], 1.0).view(-1, 1, 1, 1)
            contrast = torch.where(jitter, 1 - c_strength + 2 * c_strength * draws[:, 3], 1.0).view(-1, 1, 1, 1)
            view = view * brightness
            mean = view.mean(dim=(1, 2, 3), keepdim=True)
            view = ((view - mean) * contrast + mean).clamp(0, 1)
        photometric.apply_to(view, draws[:, 4] < recipe.grayscale_p, lambda subset: photometric.to_grayscale(subset).expand(-1, 3, -1, -1))
        blurred = draws[:, 5] < recipe.blur_p
        sigma = BLUR_SIGMA[0] + (BLUR_SIGMA[1] - BLUR_SIGMA[0]) * draws[:, 6]
        photometric.apply_to(view, blurred, lambda subset: photometric.gaussian_blur(subset, sigma[blurred]))
        solarize = (draws[:, 7] < recipe.solarize_p).view(-1, 1, 1, 1)
        if bool(solarize.any()):
            view = torch.where(solarize & (view >= 0.5), 1.0 - view, view)
        return standardize(view, self.mean, self.std) if self.normalize else view

    @staticmethod
    def _runs(recipes: list[ViewRecipe], one_canvas: bool = True) -> list[tuple[int, int]]:
        """Index ranges of the views augmented as one batch: runs of equal-size views, or all
        views at once when they are small and `one_canvas` (then on one canvas, see `_augment_run`)."""
        if one_canvas and max(r.size for r in recipes) <= CANVAS_MAX_SIZE:
            return [(0, len(recipes))]
        return _equal_size_runs([r.size for r in recipes])

    def _probabilities(self, recipes: list[ViewRecipe]) -> list[tuple[float, ...]]:
        key = tuple(recipes)
        try:
            cached = self._probability_cache.get(key)
        except TypeError:  # a recipe holding a list (unhashable): nothing to cache
            key, cached = None, None
        if cached is None:
            cached = [(r.flip_p, r.jitter_p, r.grayscale_p, r.blur_p, r.solarize_p) for r in recipes]
            if key is not None:
                self._probability_cache[key] = cached
        return cached

    def _augment_run(self, pixels, recipes, boxes, generator, results: list[MultiCropSample]) -> None:
        """Augment views of B images as one batch `(V_run · B, 3, side, side)`, view-major: crop
        `v · B + b` is view v of image b (`pixels[b]`, `boxes[b][v]`). Views of a smaller size
        than `side` (small presets: locals with the globals) fill the top-left of their canvas
        slot; every operation is per pixel except contrast's mean and the blur, which are told
        the sizes."""
        n_images = len(pixels)
        view_sizes = [r.size for r in recipes]
        side = max(view_sizes)
        # view-major: each view's crops of all images are consecutive, so crops of one size form
        # one block of the batch (one copy in, one slice out)
        all_recipes = [r for r in recipes for _ in range(n_images)]
        sizes = [r.size for r in all_recipes]
        all_boxes = [boxes[b][v] for v in range(len(recipes)) for b in range(n_images)]
        sources = pixels * len(recipes)
        n = len(all_recipes)
        mixed = None if min(sizes) == side else sizes
        # (first crop, end, size) of each run of equal-size views
        blocks = [(start * n_images, end * n_images, view_sizes[start]) for start, end in _equal_size_runs(view_sizes)]

        # every random number of the run in one draw, then plain Python: per view, 5 uniforms
        # that decide whether flip / jitter / grayscale / blur / solarisation fire (each with the
        # view's own probability), 4 jitter factors, 4 keys whose ranking is the jitter order, σ
        draws = torch.rand(n, 14, generator=generator).tolist()
        fired = [[u < p for u, p in zip(d[:5], probabilities)] for d, probabilities in zip(draws, self._probabilities(all_recipes))]
        flipped, jittered, grayscaled, blurred, solarized = (list(column) for column in zip(*fired))

        # bicubic with antialiasing, as TF.resized_crop does (calling interpolate directly saves
        # its dispatch overhead); the flip is done on the small uint8 crop, right after its resize
        resized = []
        for source, box, flip, size in zip(sources, all_boxes, flipped, sizes):
            crop = resized_crop(source, box, size)
            resized.append(crop.flip(-1) if flip else crop)
        crops = (torch.zeros if mixed else torch.empty)(n, 3, side, side)  # (n, 3, side, side)
        for first, end, size in blocks:  # one copy (channels-last uint8 -> float32) per block of equal sizes
            crops[first:end, :, :size, :size].copy_(torch.cat(resized[first:end]))
        crops.div_(255.0)

        if any(jittered):
            factors = {}
            for column, (name, strength) in enumerate(JITTER_STRENGTH.items(), start=5):
                low, high = (-strength, strength) if name == "hue" else (max(0.0, 1.0 - strength), 1.0 + strength)
                factors[name] = [low + (high - low) * d[column] for d in draws]
            order = [sorted(range(4), key=d[9:13].__getitem__) for d in draws]  # a random order per view
            # a second buffer kept between calls: each fresh large buffer costs page faults
            scratch = self._scratch.pop(crops.shape, None)
            jittered_crops = photometric.color_jitter_from_lists(crops, factors, order, jittered, mixed, overwrite=True, scratch=scratch)
            if jittered_crops.data_ptr() != crops.data_ptr():  # keep whichever buffer is not returned
                self._scratch[crops.shape] = crops
            elif scratch is not None:
                self._scratch[crops.shape] = scratch
            crops = jittered_crops

        photometric.apply_to(crops, grayscaled, lambda subset: photometric.to_grayscale(subset).expand(-1, 3, -1, -1))

        sigma = [BLUR_SIGMA[0] + (BLUR_SIGMA[1] - BLUR_SIGMA[0]) * d[13] for d in draws]
        chosen_sigma = torch.tensor([s for s, b in zip(sigma, blurred) if b])
        chosen_sizes = [s for s, b in zip(sizes, blurred) if b] if mixed else None
        photometric.apply_to(crops, blurred, lambda subset: photometric.gaussian_blur(subset, chosen_sigma, sizes=chosen_sizes))

        photometric.apply_to(crops, solarized, photometric.solarize)

        if self.normalize:
            crops = crops.sub_(self._mean_t).div_(self._std_t)  # TF.normalize, in place
        views = []  # crop order; smaller views cut out of their slots one block at a time
        for first, end, size in blocks:
            block = crops[first:end] if size == side else crops[first:end, :, :size, :size].contiguous()
            views.extend(block.unbind(0))
        for b, result in enumerate(results):
            mine = slice(b, n, n_images)  # view v of image b is crop v · B + b
            result.views.extend(views[mine])
            result.flipped.extend(flipped[mine])
            result.jittered.extend(jittered[mine])
            result.grayscaled.extend(grayscaled[mine])
            result.blur_sigma.extend(s if on else None for s, on in zip(sigma[mine], blurred[mine]))
            result.solarized.extend(solarized[mine])


def _equal_size_runs(sizes: list[int]) -> list[tuple[int, int]]:
    """Index ranges `(start, end)` of the runs of consecutive equal values in the recipes' `sizes`."""
    runs, start = [], 0
    for index in range(1, len(sizes) + 1):
        if index == len(sizes) or sizes[index] != sizes[start]:
            runs.append((start, index))
            start = index
    return runs




class MultiCropDataset(torch.utils.data.Dataset):
    """A map-style dataset of multi-crop views: item i is `augment(image i)` (with its label, if any).

    `__getitem__` augments one image. `__getitems__` augments a list of images together with
    `MultiCropAugmentation.augment_batch`: a `DataLoader` with a batch size calls it (PyTorch
    >= 2.1) with the indices of one batch and hands the returned list, one item per index, to
    its `collate_fn` (e.g. `collate_multicrop`). Small crops cost per tensor operation, not
    per pixel, so augmenting a batch at once is what makes the workers fast (course choice:
    the original DINO augments image by image in its workers; the random choices are the same).

    Args:
        images: a sequence of images (PIL images or uint8 tensors `(3, H, W)`), or a map-style
            dataset whose items are images or `(image, label)` pairs (e.g. `ImageFolder`
            without a transform).
        augment: the `MultiCropAugmentation` to apply.

    Raises:
        TypeError: `images` has no length or indexing, or `augment` is not a
            `MultiCropAugmentation`.

    Example:
        >>> from dino_course.multicrop import collate_multicrop
        >>> dataset = MultiCropDataset([Image.new("RGB", (40, 40))] * 4, MultiCropAugmentation.from_preset("cpu-32"))
        >>> loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=collate_multicrop)
        >>> [tuple(v.shape) for v in next(iter(loader))[:3]]
        [(4, 3, 32, 32), (4, 3, 32, 32), (4, 3, 16, 16)]
    """

    def __init__(self, images, augment: MultiCropAugmentation) -> None:
        if not (hasattr(images, "__len__") and hasattr(images, "__getitem__")) or isinstance(images, (str, bytes)):
            raise TypeError(f"images must be a sequence of images or a map-style dataset, got {type(images).__name__}")
        if not isinstance(augment, MultiCropAugmentation):
            raise TypeError(f"augment must be a MultiCropAugmentation, got {type(augment).__name__}")
        self.images, self.augment = images, augment

    def __len__(self) -> int:
        return len(self.images)

    def _image_and_label(self, index: int):
        item = self.images[index]
        if isinstance(item, tuple) and len(item) == 2:
            return item
        return item, None

    def __getitem__(self, index: int):
        image, label = self._image_and_label(index)
        views = self.augment(image)
        return views if label is None else (views, label)

    def __getitems__(self, indices: Sequence[int]) -> list:
        """The items at `indices`, as `[self[i] for i in indices]` would give them, augmented together."""
        if len(indices) == 0:
            return []
        images, labels = zip(*(self._image_and_label(index) for index in indices))
        views = self.augment.augment_batch(list(images))
        return [v if label is None else (v, label) for v, label in zip(views, labels)]
