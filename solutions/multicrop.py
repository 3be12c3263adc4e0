"""Lesson 3.2: multi-crop augmentation, collation and grouping by resolution.

DINO shows the student many views of one image and the teacher only the two largest
(Caron et al. 2021, Sec. 3.1 and Appendix). From each image it samples

    2 *global* views  x_1^g, x_2^g   224 × 224 px, each covering 40–100 % of the image
    N *local* views   x_1, ..., x_N  96 × 96 px, each covering 5–40 % of the image (N = 8)

The teacher sees only the global views; the student sees all V = 2 + N views and must match
the teacher's output on a global view from every *other* view. A local view covers a small
part of the object, so the student learns "local-to-global" correspondences: the features of
a part must predict those of the whole.

The photometric augmentations are deliberately *asymmetric* (they follow BYOL):

    | augmentation                      | global 1 | global 2 | locals |
    | random resized crop + flip        | yes      | yes      | yes    |
    | colour jitter (0.4/0.4/0.2/0.1)   | p = 0.8  | p = 0.8  | p = 0.8|
    | random grayscale                  | p = 0.2  | p = 0.2  | p = 0.2|
    | Gaussian blur, σ ∈ [0.1, 2]        | p = 1.0  | p = 0.1  | p = 0.5|
    | solarisation                      | never    | p = 0.2  | never  |

One global view is almost always blurred and never solarised, the other rarely blurred and
sometimes solarised: the two teacher targets of an image are thus very different views, and
the student cannot match both by keeping low-level colour or texture statistics.

Course implementation (named here): the crops of one image that share a size are augmented
together as one batch, each crop with its own random parameters (`dino_course.data.photometric`);
at the small CPU presets all crops of an image form one batch. In DataLoader workers,
`MultiCropDataset` augments the images of a whole batch together (`augment_batch`). The
random draws and probabilities are the paper's; the pixel arithmetic differs from the
original PIL pipeline in small ways listed in `MultiCropAugmentation`.

Exercises (each marked in its docstring):
    sample_crop_box, group_by_resolution, collate_multicrop
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image

from dino_course.data import photometric

from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)

LESSON = "3.2"
LESSON_TITLE = "Multi-crop augmentation and collation"
LESSON_NOTEBOOK = "lessons/module3/3.2_multicrop.ipynb"

ASPECT_RATIO_RANGE = (3 / 4, 4 / 3)  # paper (via torchvision RandomResizedCrop): crops up to 33 % wider or taller
CROP_ATTEMPTS = 10  # torchvision's number of tries before the centre-crop fallback
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTATIONS = ("flip", "color_jitter", "grayscale", "blur", "solarize")  # names the crop explorer toggles


# --------------------------------------------------------------------------------------------
# Crop sampling: where does a view come from?
# --------------------------------------------------------------------------------------------


def _check_range(value, name: str, low: float, high: float, low_inclusive: bool = False) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a (min, max) pair, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    low_ok = lo >= low if low_inclusive else lo > low
    if not (low_ok and hi <= high and math.isfinite(lo) and math.isfinite(hi)):
        bracket = "[" if low_inclusive else "("
        raise ValueError(f"{name} must lie in {bracket}{low}, {high}], got {value!r}")
    if lo > hi:
        raise ValueError(f"{name} must be (min, max) with min <= max, got {value!r}")
    return lo, hi


def sample_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = ASPECT_RATIO_RANGE,
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """Exercise 3.2 · sample a random crop box: area fraction in `scale`, log-uniform aspect ratio.

    This is the sampling of `RandomResizedCrop`, the geometric heart of multi-crop. For up to
    10 attempts draw

        s ~ U(scale_min, scale_max)                 fraction of the image's area
        log r ~ U(log ratio_min, log ratio_max)     aspect ratio r = w / h, log-uniform
        w = round(sqrt(s · H · W · r)),  h = round(sqrt(s · H · W / r))

    and if `0 < h <= H` and `0 < w <= W` the box fits: place it uniformly,
    top ~ U{0, ..., H - h}, left ~ U{0, ..., W - w}, and return it. Log-uniform makes r and
    1/r equally likely (a crop is as often 4/3 wide as 4/3 tall).

    Fallback when no attempt fits (e.g. a very elongated image): a centred box of the whole
    image, clipped to the nearest allowed aspect ratio: if W / H < ratio_min then w = W,
    h = round(W / ratio_min); if W / H > ratio_max then h = H, w = round(H · ratio_max);
    otherwise the whole image.

    Draw every random number from `generator` (e.g. `torch.rand(1, generator=generator)`), so
    that a seeded generator gives reproducible crops.

    Args:
        height, width: image size H, W in pixels (>= 1).
        scale: (min, max) area fraction, 0 < min <= max <= 1, e.g. (0.4, 1.0) for global views.
        ratio: (min, max) aspect ratio w / h, 0 < min <= max.
        generator: a `torch.Generator`, or None for torch's global generator.

    Returns:
        `(top, left, crop_height, crop_width)`, integers with `0 <= top`, `top + crop_height <= H`,
        `0 <= left`, `left + crop_width <= W`, and crop sizes >= 1.

    Raises:
        ValueError: non-positive image size, or `scale` / `ratio` out of range.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> top, left, h, w = sample_crop_box(100, 200, scale=(0.4, 1.0), generator=g)
        >>> 0.39 <= h * w / (100 * 200) <= 1.0 and 0 <= top <= 100 - h and 0 <= left <= 200 - w
        True
    """
    if not (isinstance(height, int) and isinstance(width, int)) or height < 1 or width < 1:
        raise ValueError(f"height and width must be positive integers, got {height!r} and {width!r}")
    scale = _check_range(scale, "scale", 0.0, 1.0)
    ratio = _check_range(ratio, "ratio", 0.0, math.inf)
    # BEGIN SOLUTION
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(CROP_ATTEMPTS):
        u_scale, u_ratio = torch.rand(2, generator=generator).tolist()
        target_area = area * (scale[0] + (scale[1] - scale[0]) * u_scale)
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u_ratio)
        crop_width = round(math.sqrt(target_area * aspect))
        crop_height = round(math.sqrt(target_area / aspect))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(torch.randint(0, height - crop_height + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - crop_width + 1, (1,), generator=generator))
            return top, left, crop_height, crop_width
    image_ratio = width / height
    if image_ratio < ratio[0]:
        crop_width, crop_height = width, round(width / ratio[0])
    elif image_ratio > ratio[1]:
        crop_height, crop_width = height, round(height * ratio[1])
    else:
        crop_height, crop_width = height, width
    crop_height, crop_width = max(1, min(crop_height, height)), max(1, min(crop_width, width))
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width
    # END SOLUTION


# --------------------------------------------------------------------------------------------
# Collation: per-image crop lists -> one batch tensor per view
# --------------------------------------------------------------------------------------------


def _check_views(views: Sequence[torch.Tensor], name: str = "views") -> None:
    if not isinstance(views, (list, tuple)):
        raise TypeError(f"{name} must be a list of tensors, got {type(views).__name__}")
    for index, view in enumerate(views):
        if not isinstance(view, torch.Tensor):
            raise TypeError(f"{name}[{index}] must be a torch.Tensor, got {type(view).__name__}")
        if view.dim() < 2:
            raise ValueError(f"{name}[{index}] must have at least 2 dimensions (..., H, W), got shape {tuple(view.shape)}")


def group_by_resolution(views: list[torch.Tensor]) -> list[tuple[int, int]]:
    """Exercise 3.2 · group consecutive views of equal resolution, so each group is one forward pass.

    The multi-crop batch is a list of V tensors `(B, C, H, W)`: two global views of one size,
    then N local views of a smaller size. A ViT can take a whole group of equal-size views
    concatenated along the batch axis in one forward pass, `(len * B, C, H, W)`, instead of
    V separate passes; the original DINO does the same with `torch.unique_consecutive`.

    Only *consecutive* views are grouped, so the order of the views (and of the outputs built
    from them) is kept: sizes [32, 32, 16, 16, 32] give three groups, not two.

    Args:
        views: V tensors whose last two dimensions are (H, W), e.g. `(B, C, H, W)` each.

    Returns:
        Half-open index ranges `(start, end)` covering `0 .. V` in order, one per run of
        consecutive views with the same `(H, W)`. An empty list for no views.

    Raises:
        TypeError: `views` is not a list of tensors.
        ValueError: a view has fewer than 2 dimensions.

    Example:
        >>> views = [torch.zeros(4, 3, 32, 32)] * 2 + [torch.zeros(4, 3, 16, 16)] * 6
        >>> group_by_resolution(views)
        [(0, 2), (2, 8)]
    """
    _check_views(views)
    # BEGIN SOLUTION
    groups: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(views) + 1):
        if index == len(views) or views[index].shape[-2:] != views[start].shape[-2:]:
            groups.append((start, index))
            start = index
    return groups
    # END SOLUTION


def _split_item(item, index: int) -> tuple[Sequence[torch.Tensor], object]:
    """(crops, label or None) of one dataset item; raises a clear error for anything else."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], (list, tuple)):
        crops, label = item
    elif isinstance(item, (list, tuple)):
        crops, label = item, None
    else:
        raise TypeError(f"batch[{index}] must be a list of crops or a (crops, label) tuple, got {type(item).__name__}")
    _check_views(crops, f"batch[{index}] crops")
    if label is not None and not isinstance(label, (int, torch.Tensor)):
        raise TypeError(f"batch[{index}] label must be an int or a 0-d tensor, got {type(label).__name__}")
    return crops, label


def collate_multicrop(batch: list) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
    """Exercise 3.2 · collate per-image crop lists into one batch tensor per view (view-major).

    A `DataLoader` over a multi-crop dataset yields, per image, a list of V crops (2 global
    first, then the locals), possibly with a label. The default collation cannot stack crops
    of different sizes; DINO's model wants instead one tensor per *view*:

        views[v] = stack(batch[0][v], batch[1][v], ..., batch[B-1][v])     shape (B, C, H_v, W_v)

    so that view v of every image sits in one tensor and equal-size views can later be
    concatenated (see `group_by_resolution`).

    Args:
        batch: B items, each either a list of V crop tensors `(C, H_v, W_v)`, or a tuple
            `(list of V crops, label)` with an int (or 0-d tensor) label. All items have the
            same V and the same crop sizes view by view.

    Returns:
        A list of V tensors `(B, C, H_v, W_v)`, in view order (global views first); or,
        when the items carry labels, `(views, labels)` with `labels` an int64 tensor `(B,)`.

    Raises:
        TypeError: an item is neither a crop list nor a (crops, label) tuple.
        ValueError: the batch is empty, or the items have different numbers of views,
            or mixed labelled and unlabelled items.

    Example:
        >>> item = [torch.zeros(3, 32, 32), torch.zeros(3, 32, 32), torch.zeros(3, 16, 16)]
        >>> views = collate_multicrop([item, item, item, item])
        >>> [tuple(v.shape) for v in views]
        [(4, 3, 32, 32), (4, 3, 32, 32), (4, 3, 16, 16)]
    """
    if not isinstance(batch, (list, tuple)) or len(batch) == 0:
        raise ValueError(f"batch must be a non-empty list of items, got {batch!r:.60}")
    items = [_split_item(item, index) for index, item in enumerate(batch)]
    n_views = {len(crops) for crops, _ in items}
    if len(n_views) != 1:
        raise ValueError(f"every item of batch must have the same number of views, got {sorted(n_views)}")
    if len({label is None for _, label in items}) != 1:
        raise ValueError("batch mixes items with and without labels")
    # BEGIN SOLUTION
    crops_per_image = [crops for crops, _ in items]
    views = [torch.stack(same_view) for same_view in zip(*crops_per_image)]  # V tensors (B, C, H_v, W_v)
    if items[0][1] is None:
        return views
    labels = torch.tensor([int(label) for _, label in items], dtype=torch.int64)  # (B,)
    return views, labels
    # END SOLUTION


# --------------------------------------------------------------------------------------------
# Given: the multi-crop augmentation (uses your `sample_crop_box`)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewRecipe:
    """How one kind of view is made; the probabilities are the paper's (BYOL's) values."""

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


class MultiCropAugmentation:
    """DINO's multi-crop augmentation: 2 global views and `n_local_crops` local views of one image.

    Per view (see the module docstring for the table): random resized crop (box from
    `sample_crop_box`, bicubic resize with antialiasing), horizontal flip (p 0.5), colour jitter
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
        normalize: ImageNet-normalise the views (switch off to look at them).

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
    ) -> None:
        global_size = _positive_int(global_size, "global_size")
        local_size = _positive_int(local_size, "local_size")
        n_local_crops = _positive_int(n_local_crops, "n_local_crops", minimum=0)
        global_scale = _check_range(global_scale, "global_scale", 0.0, 1.0)
        local_scale = _check_range(local_scale, "local_scale", 0.0, 1.0)
        if isinstance(augmentations, str) or not all(isinstance(a, str) for a in augmentations):
            raise TypeError(f"augmentations must be a list of names from {AUGMENTATIONS}, got {augmentations!r}")
        unknown = sorted(set(augmentations) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(f"augmentations must be among {AUGMENTATIONS}, got unknown {unknown}")
        self.augmentations = tuple(a for a in AUGMENTATIONS if a in augmentations)
        self.normalize = bool(normalize)
        self.n_local_crops = n_local_crops
        global_1 = ViewRecipe("global", global_size, global_scale, blur_p=1.0, solarize_p=0.0)
        global_2 = ViewRecipe("global", global_size, global_scale, blur_p=0.1, solarize_p=0.2)
        local = ViewRecipe("local", local_size, local_scale, blur_p=0.5, solarize_p=0.0)
        self.recipes = [self._switch_off(r) for r in [global_1, global_2] + [local] * n_local_crops]
        self._probability_cache: dict = {}
        self._scratch: dict = {}  # batch shape -> a buffer colour jitter may write into (never returned)

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
    def global_size(self) -> int:
        return self.recipes[0].size

    @property
    def local_size(self) -> int:
        return self.recipes[-1].size if self.n_local_crops else self.recipes[0].size

    def __repr__(self) -> str:
        g, loc = self.recipes[0], self.recipes[-1]
        return (
            f"MultiCropAugmentation(global_size={g.size}, local_size={self.local_size}, "
            f"n_local_crops={self.n_local_crops}, global_scale={g.scale}, local_scale={loc.scale if self.n_local_crops else None}, "
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
        results = []
        for source in pixels:
            height, width = (int(side) for side in source.shape[-2:])
            boxes = [sample_crop_box(height, width, r.scale, ASPECT_RATIO_RANGE, generator) for r in self.recipes]
            results.append(MultiCropSample(views=[], recipes=list(self.recipes), boxes=boxes, image_size=(height, width)))
        for start, end in self._runs(one_canvas=len(images) < CANVAS_MIN_IMAGES_SPLIT):
            # large views pay per pixel: a few images at a time keep the buffers small
            chunk = len(images) if self.recipes[start].size <= CANVAS_MAX_SIZE else LARGE_VIEWS_MAX_IMAGES
            for first in range(0, len(images), chunk):
                mine = results[first : first + chunk]
                self._augment_run(pixels[first : first + chunk], self.recipes[start:end], [r.boxes[start:end] for r in mine], generator, mine)
        return results

    def _runs(self, one_canvas: bool = True) -> list[tuple[int, int]]:
        """Index ranges of the views augmented as one batch: runs of equal-size views, or all
        views at once when they are small and `one_canvas` (then on one canvas, see `_augment_run`)."""
        if one_canvas and max(r.size for r in self.recipes) <= CANVAS_MAX_SIZE:
            return [(0, len(self.recipes))]
        return _equal_size_runs([r.size for r in self.recipes])

    def _probabilities(self, recipes: list[ViewRecipe]) -> list[tuple[float, ...]]:
        key = tuple(recipes)
        if key not in self._probability_cache:
            self._probability_cache[key] = [(r.flip_p, r.jitter_p, r.grayscale_p, r.blur_p, r.solarize_p) for r in recipes]
        return self._probability_cache[key]

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
        for source, (top, left, h, w), flip, size in zip(sources, all_boxes, flipped, sizes):
            crop = F.interpolate(source[None, :, top : top + h, left : left + w], size=(size, size), mode="bicubic", antialias=True)
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
            crops = crops.sub_(_NORMALIZE_MEAN).div_(_NORMALIZE_STD)  # TF.normalize, in place
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


_NORMALIZE_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_NORMALIZE_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


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


def denormalize(view: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation of a view `(3, H, W)` (or `(B, 3, H, W)`): values back in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=view.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=view.dtype).view(3, 1, 1)
    return (view * std + mean).clamp(0.0, 1.0)
