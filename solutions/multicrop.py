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

You write this table as data (`view_recipes`): one `ViewRecipe` per view, which the pipeline
reads instead of hard-coding the table.

Given, to read (`dino_course/data/multicrop_pipeline.py`): `MultiCropAugmentation`, the
course's one multi-crop data path, implements this recipe on top of your functions. It asks
your `view_recipes` which views to make and how, draws every crop box with your
`sample_crop_box` and assembles the batches with your `collate_multicrop`; the model
(Lesson 3.4) runs each group of `group_by_resolution` in one forward pass. The train job
(`dino-course train`), the Lesson 4.4 demo and the crop explorer all use it, so your code here
is what they train on.

Exercises (each marked in its docstring):
    view_recipes, sample_crop_box, group_by_resolution, collate_multicrop
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dino_course.data.multicrop_pipeline import ViewRecipe
from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)

LESSON = "3.2"
LESSON_TITLE = "Multi-crop augmentation and collation"
LESSON_NOTEBOOK = "lessons/module3/3.2_multicrop.ipynb"

ASPECT_RATIO_RANGE = (3 / 4, 4 / 3)  # paper (via torchvision RandomResizedCrop): crops up to 33 % wider or taller
CROP_ATTEMPTS = 10  # torchvision's number of tries before the centre-crop fallback


# --------------------------------------------------------------------------------------------
# The recipe: which views, and what is done to each
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


def _check_probability(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def view_recipes(
    global_size: int = 224,
    local_size: int = 96,
    n_local_crops: int = 8,
    global_scale: tuple[float, float] = (0.4, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.4),
    *,
    flip_p: float = 0.5,
    jitter_p: float = 0.8,
    solarize_p: float = 0.2,
) -> list[ViewRecipe]:
    """Exercise 3.2 · the per-view augmentation recipe of multi-crop, as data.

    Return one `ViewRecipe` (a small frozen dataclass, `dino_course/data/multicrop_pipeline.py`)
    per view, in the order the views are made: global view 1, global view 2, then the
    `n_local_crops` local views. Each recipe says what kind of view it is, its output side, the
    range of its crop's area fraction, and the probability of each augmentation (the table of
    the module docstring; paper values, after BYOL):

        | field        | global 1     | global 2     | each local  |
        | kind         | "global"     | "global"     | "local"     |
        | size         | global_size  | global_size  | local_size  |
        | scale        | global_scale | global_scale | local_scale |
        | flip_p       | flip_p       | flip_p       | flip_p      |
        | jitter_p     | jitter_p     | jitter_p     | jitter_p    |
        | grayscale_p  | 0.2          | 0.2          | 0.2         |
        | blur_p       | 1.0          | 0.1          | 0.5         |
        | solarize_p   | 0            | solarize_p   | 0           |

    The probabilities that a job may change (`flip_p`, `jitter_p`, `solarize_p`) come in as
    arguments: the course's digits job sets `flip_p = 0` (a mirrored 2 is no 2), so a recipe
    that keeps the paper's 0.5 trains on mirrored digits. `MultiCropAugmentation` calls this
    function for every batch and makes exactly the views it describes.

    Args:
        global_size, local_size: output sides in pixels (paper 224 and 96).
        n_local_crops: number of local views N >= 0 (paper 8).
        global_scale, local_scale: (min, max) area fractions within (0, 1] (paper (0.4, 1) and
            (0.05, 0.4)); the given checks pass them on as tuples of floats.
        flip_p, jitter_p: probability of a horizontal flip and of colour jitter, every view.
        solarize_p: probability of solarising global view 2 (the only view ever solarised).

    Returns:
        A list of `2 + n_local_crops` `ViewRecipe`s, global views first.

    Raises:
        ValueError: a size below 1, a negative `n_local_crops`, a scale outside (0, 1] or a
            probability outside [0, 1].

    Example:
        >>> recipes = view_recipes(32, 16, n_local_crops=2, flip_p=0.0)
        >>> [(r.kind, r.size, r.blur_p, r.solarize_p) for r in recipes]
        [('global', 32, 1.0, 0.0), ('global', 32, 0.1, 0.2), ('local', 16, 0.5, 0.0), ('local', 16, 0.5, 0.0)]
        >>> sorted({r.flip_p for r in recipes}), sorted({r.grayscale_p for r in recipes})
        ([0.0], [0.2])
    """
    global_size, local_size = _check_count(global_size, "global_size", 1), _check_count(local_size, "local_size", 1)
    n_local_crops = _check_count(n_local_crops, "n_local_crops", 0)
    global_scale = _check_range(global_scale, "global_scale", 0.0, 1.0)
    local_scale = _check_range(local_scale, "local_scale", 0.0, 1.0)
    flip_p, jitter_p = _check_probability(flip_p, "flip_p"), _check_probability(jitter_p, "jitter_p")
    solarize_p = _check_probability(solarize_p, "solarize_p")
    # BEGIN SOLUTION
    every_view = dict(flip_p=flip_p, jitter_p=jitter_p, grayscale_p=0.2)
    # the asymmetry: global 1 is always blurred and never solarised, global 2 rarely blurred
    # and sometimes solarised
    global_1 = ViewRecipe("global", global_size, global_scale, blur_p=1.0, solarize_p=0.0, **every_view)
    global_2 = ViewRecipe("global", global_size, global_scale, blur_p=0.1, solarize_p=solarize_p, **every_view)
    local = ViewRecipe("local", local_size, local_scale, blur_p=0.5, solarize_p=0.0, **every_view)
    return [global_1, global_2] + [local] * n_local_crops  # one frozen recipe may serve every local view
    # END SOLUTION


# --------------------------------------------------------------------------------------------
# Crop sampling: where does a view come from?
# --------------------------------------------------------------------------------------------


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
