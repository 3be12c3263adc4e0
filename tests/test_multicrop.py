"""Hidden checks for Lesson 3.2 (`dino_course/multicrop.py`).

Checks run from specific to general, so the first failing one names the mistake: the wrong
kind of value, a box outside the image or in the wrong order, then each property the
docstring promises on its own (area range, the `ratio` argument, log-uniform aspect ratios,
uniform positions, up to 10 attempts, boxes as large as the image, the fallback, the
generator), and only then the comparison with the reference.

Collation and grouping are deterministic: compared with the reference over a grid of batch
sizes, view counts and resolutions, and with hand-built expectations (`torch.equal`, since
stacking copies values exactly); typical wrong layouts (image-major, `cat` instead of
`stack`, closed ranges, non-consecutive groups, ...) are recognised and named. Crop sampling
is random: checked by properties over many draws and by statistics, never by replaying the
reference's random stream.
"""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch

import solutions.multicrop as ref
from dino_course.data.multicrop_pipeline import ViewRecipe
from dino_course.grading.hints import call_unmutated, expect, expect_raises
from dino_course.grading.learner import LearnerModule

mc = LearnerModule("multicrop")


exercise = functools.partial(pytest.mark.exercise, "3.2")  # @exercise("name"): a check of that exercise of the lesson


def views_of_sizes(sizes: list, batch: int = 2, channels: int = 3) -> list[torch.Tensor]:
    """Zero views `(batch, channels, H, W)`; a size is a side `s` (square) or an `(H, W)` pair."""
    # expanded zeros: the shape without the memory
    return [torch.zeros(()).expand(batch, channels, *(s if isinstance(s, tuple) else (s, s))) for s in sizes]


# ----------------------------------------------------------------------------- group_by_resolution


def runs_of(keys: list) -> list[tuple[int, int]]:
    """Half-open ranges of the runs of equal consecutive `keys`."""
    runs, start = [], 0
    for index in range(1, len(keys) + 1):
        if index == len(keys) or keys[index] != keys[start]:
            runs.append((start, index))
            start = index
    return runs


def group_mistake(views: list[torch.Tensor], got) -> str | None:
    """A hint naming the mistake when `got` is a typical wrong grouping of `views`."""
    if got is None:
        return "group_by_resolution returned None: did you forget the `return` statement?"
    if not isinstance(got, list):
        return f"group_by_resolution must return a list of (start, end) tuples, got a {type(got).__name__}"
    if not all(isinstance(g, (tuple, list)) and len(g) == 2 for g in got):
        return f"each group must be a (start, end) pair of view indices, got {got!r:.80}"
    groups = [tuple(g) for g in got]
    expected = ref.group_by_resolution(views)
    if groups == expected:
        return None
    sizes = [tuple(v.shape[-2:]) for v in views]
    shown = f"for views of (H, W) {sizes} expected {expected}, got {groups}"
    if groups == [(a, b - 1) for a, b in expected]:
        return f"the ranges are half-open: end is one past the last view of the run ({shown})"
    if groups == [(a, b - a) for a, b in expected]:
        return f"each group is (start, end), not (start, number of views): end = start + count ({shown})"
    if groups == expected[:-1]:
        return f"the last run of views is missing: close the final group after the loop ({shown})"
    if groups == expected[1:]:
        return f"the first run of views is missing ({shown})"
    first_seen = list(dict.fromkeys(sizes))
    merged = [[i for i, s in enumerate(sizes) if s == size] for size in first_seen]
    if len(groups) == len(merged) < len(expected):
        return (f"only *consecutive* views of equal size form a group: a size that comes back later starts a new "
                f"group, so the order of the views is kept ({shown})")
    if groups != runs_of(sizes):
        for keys, hint in [
            ([s[1] for s in sizes], "compare both H and W (shape[-2:]), not only the width"),
            ([s[0] for s in sizes], "compare both H and W (shape[-2:]), not only the height"),
            ([tuple(v.shape) for v in views], "only the resolution (the last two dimensions) decides the groups, "
                                              "not the batch size or the channels: compare shape[-2:]"),
            (list(range(len(views))), "group the consecutive views of equal resolution together, one range per run"),
        ]:
            if groups == runs_of(keys) and runs_of(keys) != expected:
                return f"{hint} ({shown})"
    return None


def check_groups(views: list[torch.Tensor], got) -> None:
    mistake = group_mistake(views, got)
    expect(mistake is None, mistake or "")
    expected = ref.group_by_resolution(views)
    groups = [tuple(g) for g in got]
    expect(groups == expected,
           f"for views of (H, W) {[tuple(v.shape[-2:]) for v in views]} expected groups {expected}, got {groups}")


def group(views):
    try:
        return mc.group_by_resolution(views)
    except IndexError as exc:
        if not views:
            raise AssertionError(f"group_by_resolution([]) raised IndexError ({exc}): no views give no groups, "
                                 "return an empty list (don't read views[0] before checking)") from None
        raise


SIZE_PATTERNS = [
    [32, 32, 16, 16, 16, 16, 16, 16],  # paper layout, CPU preset
    [224, 224] + [96] * 8,  # paper sizes
    [64, 64],  # globals only (teacher)
    [16],
    [32, 32, 16, 16, 32],  # a size that comes back: not merged with the first run
    [8, 16, 8, 16],  # alternating: every view its own group
    [28] * 10,
    [(16, 32), (16, 32), (16, 16), (32, 16)],  # rectangles: equal width or height alone is not enough
]


@exercise("group_by_resolution")
def test_group_by_resolution_paper_layout():
    views = views_of_sizes([32, 32, 16, 16, 16, 16, 16, 16])
    groups = call_unmutated(group, views)
    check_groups(views, groups)


@exercise("group_by_resolution")
def test_group_by_resolution_single_and_empty():
    check_groups(views_of_sizes([16]), group(views_of_sizes([16])))
    groups = group([])
    expect(isinstance(groups, list) and list(groups) == [],
           f"no views give no groups: return an empty list, got {groups!r}")


@exercise("group_by_resolution")
def test_group_by_resolution_keeps_the_order_of_the_views():
    views = views_of_sizes([32, 32, 16, 16, 32])
    check_groups(views, group(views))


@exercise("group_by_resolution")
def test_group_by_resolution_compares_height_and_width():
    views = views_of_sizes([(16, 32), (16, 32), (16, 16), (32, 16)])
    check_groups(views, group(views))
    views = views_of_sizes([(8, 16), (16, 16), (16, 8), (16, 8)])
    check_groups(views, group(views))


@exercise("group_by_resolution")
def test_group_by_resolution_ignores_batch_size_and_channels():
    views = [torch.zeros(2, 3, 8, 8), torch.zeros(5, 1, 8, 8), torch.zeros(3, 8, 8), torch.zeros(8, 8)]
    check_groups(views, group(views))


@exercise("group_by_resolution")
def test_group_by_resolution_rejects_what_is_not_a_list_of_views():
    group(views_of_sizes([8]))
    with pytest.raises(TypeError):
        mc.group_by_resolution(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError):
        mc.group_by_resolution([torch.zeros(8)])


@exercise("group_by_resolution")
@pytest.mark.parametrize("sizes", SIZE_PATTERNS, ids=lambda s: "-".join(map(str, s)))
def test_group_by_resolution_matches_reference(sizes):
    views = views_of_sizes(sizes)
    groups = group(views)
    check_groups(views, groups)
    covered = list(itertools.chain.from_iterable(range(a, b) for a, b in groups))
    expect(covered == list(range(len(sizes))),
           f"the groups must cover the views 0..{len(sizes) - 1} once each, in order")


# ----------------------------------------------------------------------------- collate_multicrop


def make_items(batch: int, sizes: list[int], seed: int, labels: bool) -> list:
    generator = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(batch):
        crops = [torch.rand(3, s, s, generator=generator) for s in sizes]
        items.append((crops, int(torch.randint(0, 1000, (1,), generator=generator))) if labels else crops)
    return items


def collate(items):
    try:
        return call_unmutated(mc.collate_multicrop, items)
    except TypeError as exc:
        if "expected Tensor as element" in str(exc) and isinstance(items[0], tuple):
            raise AssertionError(
                f"collate_multicrop raised TypeError ({exc}): the labels are Python ints (or 0-d tensors), which "
                "torch.stack cannot take; build them with torch.tensor([int(label) for ...], dtype=torch.int64)"
            ) from None
        raise


def describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(describe(v) for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"a {type(value).__name__} of {len(value)}: [{shown}]"
    return f"a {type(value).__name__}"


def check_views(views, items: list, crops_of) -> None:
    """`views` must be the list of V tensors whose [b] is crop v of image b."""
    crop_lists = [crops_of(item) for item in items]
    batch, n_views = len(crop_lists), len(crop_lists[0])
    expected_shapes = [(batch, *crop_lists[0][v].shape) for v in range(n_views)]
    if views is None:
        raise AssertionError("collate_multicrop returned None: did you forget the `return` statement?")
    if isinstance(views, tuple) and all(isinstance(v, torch.Tensor) for v in views):
        raise AssertionError("collate_multicrop must return a *list* of V tensors, got a tuple: wrap it in list(...)")
    if not isinstance(views, list) or not all(isinstance(v, torch.Tensor) for v in views):
        raise AssertionError(
            f"collate_multicrop must return a list of V view tensors (B, C, H, W), got {describe(views)}"
        )
    shapes = [tuple(v.shape) for v in views]
    if shapes != expected_shapes:
        if len(views) == batch != n_views and all(s[:1] == (n_views,) for s in shapes):
            hint = "stack the v-th crop of every image (view-major: zip(*crops)), not the crops of one image"
        elif shapes == [(batch * s[1], *s[2:]) for s in expected_shapes]:
            hint = "torch.stack the crops (a new batch axis: (B, C, H, W)); torch.cat joins them along the channels"
        elif len(views) != n_views:
            hint = f"one tensor per view: {n_views} crops per image give {n_views} view tensors"
        else:
            hint = "views[v] stacks crop v of every image: shape (B, C, H_v, W_v)"
        raise AssertionError(f"{hint} (expected shapes {expected_shapes}, got {shapes})")
    for v, view in enumerate(views):
        for b in range(batch):
            expect(torch.equal(view[b], crop_lists[b][v]),
                   f"views[{v}][{b}] should be crop {v} of image {b}: stack the v-th crop of every image (view-major), "
                   "in the order of the batch")


def check_labels(labels, items: list) -> None:
    want = [int(label) for _, label in items]
    if labels is None:
        raise AssertionError("the labels are missing: items with labels must give (views, labels)")
    if not isinstance(labels, torch.Tensor):
        raise AssertionError(f"the labels must be an int64 tensor of shape (B,), got a {type(labels).__name__}: "
                             "torch.tensor(labels, dtype=torch.int64)")
    expect(labels.dtype == torch.int64, f"the labels must be an int64 tensor, got {labels.dtype}: "
           "torch.tensor(labels, dtype=torch.int64) (torch.Tensor(...) makes float32)")
    expect(tuple(labels.shape) == (len(items),),
           f"the labels must have shape (B,) = ({len(items)},), got {tuple(labels.shape)}")
    expect(labels.tolist() == want, f"labels {labels.tolist()} should be {want}, in batch order")


def check_unlabelled(result, items: list) -> None:
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], list):
        raise AssertionError("items without labels must give a plain list of view tensors, not a (views, labels) tuple")
    check_views(result, items, lambda item: item)


def check_labelled(result, items: list) -> None:
    views_only = isinstance(result, list) and all(isinstance(v, torch.Tensor) for v in result)
    if views_only and len(result) == len(items[0][0]):
        raise AssertionError("the labels are missing: items that carry labels must give a (views, labels) tuple")
    expect(isinstance(result, tuple) and len(result) == 2,
           f"items that carry labels must give a (views, labels) tuple, got {describe(result)}")
    views, labels = result
    check_views(views, items, lambda item: item[0])
    check_labels(labels, items)


@exercise("collate_multicrop")
def test_collate_multicrop_shapes_and_order():
    same_size = make_items(2, [8, 8, 8], seed=1, labels=False)  # equal sizes: a wrong layout shows as a shape
    check_unlabelled(collate(same_size), same_size)
    items = make_items(4, [32, 32, 16, 16, 16], seed=0, labels=False)
    check_unlabelled(collate(items), items)


@exercise("collate_multicrop")
def test_collate_multicrop_labels():
    items = make_items(3, [16, 16, 8], seed=2, labels=True)
    check_labelled(collate(items), items)
    tensor_labels = [([torch.rand(3, 8, 8), torch.rand(3, 4, 4)], torch.tensor(label)) for label in (3, 1, 4)]
    check_labelled(collate(tensor_labels), tensor_labels)


@exercise("collate_multicrop")
@pytest.mark.parametrize("batch,sizes,labels", [
    (1, [32, 32], False),
    (3, [32, 32, 16, 16, 16, 16, 16, 16], False),
    (2, [64, 64, 28, 28], True),
    (5, [224, 96], True),
    (1, [16, 16, 8], True),
])
def test_collate_multicrop_matches_reference(batch, sizes, labels):
    items = make_items(batch, sizes, seed=batch * 7 + len(sizes), labels=labels)
    result = collate(items)
    (check_labelled if labels else check_unlabelled)(result, items)
    expected = ref.collate_multicrop(items)
    views = result[0] if labels else result
    for v, (got, want) in enumerate(zip(views, expected[0] if labels else expected)):
        expect(torch.equal(got, want), f"view {v} holds the wrong crops: views[v][b] must be crop v of image b")


@exercise("collate_multicrop")
def test_collate_multicrop_as_a_dataloader_collate_fn():
    class Crops(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, index):
            return [torch.full((3, 8, 8), float(index)), torch.full((3, 4, 4), float(index))], index

    loader = torch.utils.data.DataLoader(Crops(), batch_size=3, collate_fn=mc.collate_multicrop)
    views, labels = next(iter(loader))
    expect(labels.tolist() == [0, 1, 2] and views[1][:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0],
           "collate_multicrop must work as a DataLoader collate_fn, keeping the image order within each view")


@exercise("collate_multicrop")
def test_collate_multicrop_rejects_bad_batches():
    items = make_items(2, [8, 4], seed=3, labels=False)
    collate(items)
    with pytest.raises(ValueError):
        mc.collate_multicrop([])
    with pytest.raises(ValueError):
        mc.collate_multicrop([items[0], items[1][:1]])
    with pytest.raises(ValueError):
        mc.collate_multicrop([items[0], (items[1], 3)])


# ----------------------------------------------------------------------------- sample_crop_box

# Statistical checks: n independent draws of a quantity with standard deviation sd; a correct
# sampler's mean lies within 4.5 standard errors of the expected value except with probability
# ~7e-6 (normal approximation, fine at n >= 400). The draws are seeded, so a given
# implementation always gets the same verdict.
SIGMAS = 4.5
DEFAULT_RATIO = ref.ASPECT_RATIO_RANGE  # (3/4, 4/3)

RANDINT_HINT = (
    "torch.randint's upper bound is exclusive: draw top from torch.randint(0, H - h + 1) and left from "
    "torch.randint(0, W - w + 1), so that a box as large as the image still has its one position 0"
)


def crop_box(*args, **kwargs) -> tuple:
    try:
        return mc.sample_crop_box(*args, **kwargs)
    except RuntimeError as exc:
        if "expects 'from' to be less than 'to'" in str(exc):
            raise AssertionError(f"sample_crop_box raised RuntimeError for a box as large as the image: {RANDINT_HINT} "
                                 f"({exc})") from None
        raise


def draw_boxes(height, width, scale, n, seed, ratio=DEFAULT_RATIO) -> list[tuple]:
    generator = torch.Generator().manual_seed(seed)
    boxes = [crop_box(height, width, scale, ratio, generator) for _ in range(n)]
    check_box_types(boxes[0])
    check_boxes_inside(boxes, height, width)
    return boxes


def check_box_types(box) -> None:
    expect(box is not None, "sample_crop_box returned None: did you forget the `return` statement?")
    expect(isinstance(box, tuple) and len(box) == 4,
           f"sample_crop_box must return a tuple (top, left, height, width), got {box!r:.80}")
    expect(all(isinstance(v, int) and not isinstance(v, bool) for v in box),
           f"the box must hold Python ints (use int(...) on tensors), got {[type(v).__name__ for v in box]}")


def check_boxes_inside(boxes: list[tuple], height: int, width: int) -> None:
    """Every box lies in the image; when not, name the order or range mistake that explains all of them."""

    def fits(top, left, h, w) -> bool:
        return h >= 1 and w >= 1 and 0 <= top and top + h <= height and 0 <= left and left + w <= width

    bad = [box for box in boxes if not fits(*box)]
    if not bad:
        return
    top, left, h, w = bad[0]
    shown = f"box (top={top}, left={left}, h={h}, w={w}) leaves the {height} x {width} image"
    if all(fits(b[1], b[0], b[3], b[2]) for b in boxes):
        hint = "return (top, left, height, width): the rows first (top, height), then the columns (left, width)"
    elif all(fits(b[0], b[1], b[3], b[2]) for b in boxes):
        hint = "return the height before the width: (top, left, crop_height, crop_width)"
    elif all(fits(b[1], b[0], b[2], b[3]) for b in boxes):
        hint = "return top before left: (top, left, crop_height, crop_width)"
    elif any(b[2] < 1 or b[3] < 1 for b in boxes):
        hint = ("a side rounded to 0 pixels (a small image or scale) does not fit either: accept a box only if "
                "0 < h <= H and 0 < w <= W, else draw again")
    elif all(b[2] <= height and b[3] <= width for b in boxes):
        hint = "top must be drawn from 0..H - h and left from 0..W - w (top goes with the height, left with the width)"
    else:
        hint = "a box fits only if h <= H and w <= W: draw again when it does not"
    raise AssertionError(f"{hint} ({shown})")


def in_aspect_range(h: int, w: int, low: float, high: float) -> bool:
    """w / h in [low, high], allowing half a pixel of rounding on each side."""
    return (w + 0.5) / max(h - 0.5, 1e-9) >= low and (w - 0.5) / (h + 0.5) <= high


def within_mean(values, expected, sd) -> bool:
    return abs(sum(values) / len(values) - expected) <= SIGMAS * sd / math.sqrt(len(values))


@exercise("sample_crop_box")
def test_sample_crop_box_returns_a_box_inside_the_image():
    box = crop_box(100, 200, (0.4, 1.0), generator=torch.Generator().manual_seed(0))
    check_box_types(box)
    check_boxes_inside([box], 100, 200)
    # very wide and very tall images: a box in the wrong order rarely fits
    draw_boxes(60, 400, (0.05, 0.4), 200, seed=1)
    draw_boxes(400, 60, (0.05, 0.4), 200, seed=2)


@exercise("sample_crop_box")
@pytest.mark.parametrize("height,width,scale", [
    (224, 224, (0.4, 1.0)), (224, 224, (0.05, 0.4)), (375, 500, (0.4, 1.0)), (500, 375, (0.05, 0.4)),
    (32, 32, (0.4, 1.0)), (32, 32, (0.05, 0.4)), (64, 48, (0.14, 0.14)), (1000, 700, (0.2, 0.5)),
])
def test_sample_crop_box_area_and_aspect_ratio_ranges(height, width, scale):
    for top, left, h, w in draw_boxes(height, width, scale, 300, seed=height + width):
        # w and h are rounded to whole pixels, so allow half a pixel either way on each side
        area_low = max(0.0, (h - 0.5)) * max(0.0, (w - 0.5)) / (height * width)
        area_high = (h + 0.5) * (w + 0.5) / (height * width)
        expect(area_high >= scale[0] and area_low <= scale[1],
               f"box {h} x {w} covers {h * w / (height * width):.3f} of a {height} x {width} image, "
               f"outside scale {scale}: "
               "the target area is s · H · W with s ~ U(scale) (a fraction of the area, not of the side), "
               "and w = sqrt(area · r), h = sqrt(area / r)")
        expect(in_aspect_range(h, w, *DEFAULT_RATIO),
               f"box {h} x {w} has aspect ratio w/h = {w / h:.3f}, outside (3/4, 4/3): "
               "w = sqrt(area · r), h = sqrt(area / r)")


@exercise("sample_crop_box")
def test_sample_crop_box_uses_the_ratio_argument():
    ratio = (1.5, 2.0)  # wide boxes only: not symmetric around 1, so w/h and h/w differ
    boxes = draw_boxes(300, 400, (0.1, 0.3), 400, seed=21, ratio=ratio)
    if not all(in_aspect_range(h, w, *ratio) for _, _, h, w in boxes):
        expect(not all(in_aspect_range(w, h, *ratio) for _, _, h, w in boxes),
               f"with ratio {ratio} the boxes are tall (h/w in the range): r = w / h, so w = sqrt(area · r) and "
               "h = sqrt(area / r), not the other way round")
        expect(not all(in_aspect_range(h, w, *DEFAULT_RATIO) for _, _, h, w in boxes),
               f"sample_crop_box(..., ratio={ratio}) gave aspect ratios in the default (3/4, 4/3): use the `ratio` "
               "argument, not ASPECT_RATIO_RANGE")
        h, w = next((h, w) for _, _, h, w in boxes if not in_aspect_range(h, w, *ratio))
        raise AssertionError(f"with ratio {ratio} box {h} x {w} has aspect ratio w/h = {w / h:.3f}, outside the range: "
                             "draw log r uniformly in (log ratio_min, log ratio_max)")
    log_ratios = [math.log(w / h) for _, _, h, w in boxes]
    low, high = math.log(ratio[0]), math.log(ratio[1])
    expect(within_mean(log_ratios, (low + high) / 2, (high - low) / math.sqrt(12)),
           f"with ratio {ratio} the mean log aspect ratio is {sum(log_ratios) / len(boxes):.4f}, expected "
           f"{(low + high) / 2:.4f}: draw log r uniformly in (log ratio_min, log ratio_max)")
    squares = draw_boxes(300, 400, (0.1, 0.3), 50, seed=22, ratio=(1.0, 1.0))
    expect(all(h == w for _, _, h, w in squares),
           "sample_crop_box(..., ratio=(1, 1)) must give square boxes: use the `ratio` argument")


@exercise("sample_crop_box")
def test_sample_crop_box_statistics_area_log_ratio_and_position():
    n, side = 4000, 1000
    boxes = draw_boxes(side, side, (0.05, 0.4), n, seed=11)  # every draw fits: no fallback involved
    areas = [h * w / side**2 for _, _, h, w in boxes]
    expect(within_mean(areas, (0.05 + 0.4) / 2, (0.4 - 0.05) / math.sqrt(12)),
           f"mean area fraction {sum(areas) / n:.4f} should be {(0.05 + 0.4) / 2:.4f} (s ~ U(0.05, 0.4)): "
           "draw the area fraction uniformly in the scale range, not the side length")
    log_ratios = [math.log(w / h) for _, _, h, w in boxes]
    low, high = math.log(DEFAULT_RATIO[0]), math.log(DEFAULT_RATIO[1])
    lower_third = sum(v < low + (high - low) / 3 for v in log_ratios) / n
    uniform = abs(lower_third - 1 / 3) <= SIGMAS * math.sqrt(2 / 9 / n)
    expect(uniform and within_mean(log_ratios, 0.0, (high - low) / math.sqrt(12)),
           f"{lower_third:.3f} of the log aspect ratios fall in the lowest third of the range, expected 1/3: "
           "draw log r "
           "uniformly in (log 3/4, log 4/3) and take r = exp(...), so that wide and tall crops are equally likely")
    for name, positions in [
        ("left", [left / (side - w) for _, left, _, w in boxes if side > w]),
        ("top", [top / (side - h) for top, _, h, _ in boxes if side > h]),
    ]:
        expect(within_mean(positions, 0.5, math.sqrt(1 / 12)),
               f"crops sit on average at {sum(positions) / len(positions):.3f} of the free "
               f"{'width' if name == 'left' else 'height'}, "
               f"expected 0.5: draw {name} uniformly from 0..{'W - w' if name == 'left' else 'H - h'}")


@exercise("sample_crop_box")
def test_sample_crop_box_reaches_every_position():
    boxes = draw_boxes(20, 20, (0.3, 0.4), 1500, seed=5)
    expect(any(left == 0 for _, left, _, _ in boxes) and any(left + w == 20 for _, left, _, w in boxes),
           f"no crop ever touches the left or the right edge: {RANDINT_HINT}")
    expect(any(top == 0 for top, _, _, _ in boxes) and any(top + h == 20 for top, _, h, _ in boxes),
           f"no crop ever touches the top or the bottom edge: {RANDINT_HINT}")


@exercise("sample_crop_box")
def test_sample_crop_box_tries_again_before_falling_back():
    # a box drawn for a 224 x 224 image with scale (0.4, 1) does not fit 21 % of the time; with up
    # to 10 attempts the whole-image fallback comes in 0.21^10 of the draws, and the whole image
    # is drawn directly only for s > 0.995 (0.05 % of the draws in all)
    n = 1000
    boxes = draw_boxes(224, 224, (0.4, 1.0), n, seed=8)
    whole = sum(tuple(box) == (0, 0, 224, 224) for box in boxes) / n
    expect(whole <= 0.02,
           f"{whole:.0%} of the boxes are the whole image, expected about 0.05 %: when a drawn box does not fit, draw "
           "again (up to 10 attempts) before falling back to the whole image")


@exercise("sample_crop_box")
def test_sample_crop_box_accepts_a_box_as_large_as_a_side():
    # scale (0.9, 1) on 40 x 40: about half of the fitting boxes span the full width or height
    boxes = draw_boxes(40, 40, (0.9, 1.0), 300, seed=9)
    expect(any((h == 40) != (w == 40) for _, _, h, w in boxes),
           "no box spans the full width or height of the image (without being the whole image): a box fits when "
           "h <= H and w <= W, equality included")


@exercise("sample_crop_box")
@pytest.mark.parametrize("height,width,scale,ratio,size", [
    (10, 200, (0.9, 1.0), DEFAULT_RATIO, (10, 13)),  # very wide: full height, w = round(H · 4/3)
    (200, 10, (0.9, 1.0), DEFAULT_RATIO, (13, 10)),  # very tall: full width, h = round(W / (3/4))
    (10, 100, (0.9, 1.0), (1.0, 2.0), (10, 20)),  # the `ratio` argument: w = round(H · ratio_max)
    (10, 10, (1.0, 1.0), (2.0, 2.0), (5, 10)),  # w / h must be 2: no box fits, h = round(W / ratio_min)
])
def test_sample_crop_box_fallback_is_a_centred_clipped_box(height, width, scale, ratio, size):
    # no drawn box fits these images (e.g. 10 x 200 with s >= 0.9: h >= 37 > 10), so every call falls back
    h, w = size
    centred_tops, centred_lefts = {(height - h) // 2, (height - h + 1) // 2}, {(width - w) // 2, (width - w + 1) // 2}
    for box in draw_boxes(height, width, scale, 5, seed=0, ratio=ratio):
        if tuple(box[2:]) == (height, width):
            hint = ("don't return the whole image: clip it to the nearest allowed aspect ratio (a wide image keeps its "
                    "height and gets w = round(H · ratio_max), a tall one keeps its width and gets "
                    "h = round(W / ratio_min))")
        elif tuple(box[2:]) != size:
            hint = (f"expected a {h} x {w} box: a wide image (W / H > ratio_max) keeps its height and gets "
                    "w = round(H · ratio_max); a tall one (W / H < ratio_min) keeps its width and gets "
                    "h = round(W / ratio_min)")
        elif box[0] not in centred_tops or box[1] not in centred_lefts:
            hint = "centre the fallback box: top = (H - h) // 2, left = (W - w) // 2"
        else:
            continue
        raise AssertionError(
            f"when no box fits a {height} x {width} image (scale {scale}, ratio {ratio}) the fallback is the centred "
            f"{h} x {w} box, got {tuple(box)}: {hint}"
        )


@exercise("sample_crop_box")
@pytest.mark.parametrize("height,width", [(1, 1), (2, 3), (3, 1)])
def test_sample_crop_box_on_tiny_images(height, width):
    # sides of sqrt(0.05 · H · W · r) round to 0 here: such draws do not fit, and every box has sides >= 1
    draw_boxes(height, width, (0.05, 0.4), 50, seed=height * width)


@exercise("sample_crop_box")
def test_sample_crop_box_uses_the_generator():
    first = draw_boxes(300, 400, (0.05, 0.4), 20, seed=3)
    again = draw_boxes(300, 400, (0.05, 0.4), 20, seed=3)
    other = draw_boxes(300, 400, (0.05, 0.4), 20, seed=4)
    expect(first == again, "two generators with the same seed gave different boxes: draw every random number "
           "from `generator` (torch.rand(..., generator=generator), torch.randint(..., generator=generator))")
    expect(first != other, "generators with different seeds gave the same boxes: are the random numbers drawn at all?")


@exercise("sample_crop_box")
def test_sample_crop_box_without_a_generator_uses_the_global_one():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        first = [crop_box(300, 400, (0.05, 0.4)) for _ in range(10)]
        torch.manual_seed(7)
        again = [crop_box(300, 400, (0.05, 0.4)) for _ in range(10)]
    check_box_types(first[0])
    check_boxes_inside(first, 300, 400)
    expect(len(set(first)) > 1, "with generator=None every call gave the same box: pass generator=None on to "
           "torch.rand / torch.randint, which then draw from torch's global generator (don't make a new Generator)")
    expect(first == again, "with generator=None the boxes must come from torch's global generator, so that "
           "torch.manual_seed makes them reproducible")


def coordinate_image(height: int = 200, width: int = 240) -> torch.Tensor:
    """uint8 (3, H, W) whose red value is the column and green value the row of each pixel."""
    columns = torch.arange(width).view(1, -1).expand(height, width)
    rows = torch.arange(height).view(-1, 1).expand(height, width)
    return torch.stack([columns, rows, torch.full_like(rows, 128)]).to(torch.uint8)


def recover_box(view: torch.Tensor) -> tuple[float, float, float, float]:
    """(top, left, h, w) of a crop of `coordinate_image`, from two interior rows and columns.

    Inside the crop the resize reproduces a linear ramp, so output column j holds source column
    left + (j + 0.5) * w / size - 0.5; interior columns (a quarter in from each side) avoid the
    filter's edge effects. The output is rounded to uint8 levels, so each estimate is within a
    couple of source pixels.
    """
    size = view.shape[-1]
    j1, j2 = size // 4, size - 1 - size // 4
    values = view * 255.0
    red, green = values[0], values[1]
    w = float(red[:, j2].mean() - red[:, j1].mean()) * size / (j2 - j1)
    h = float(green[j2, :].mean() - green[j1, :].mean()) * size / (j2 - j1)
    left = float(red[:, j1].mean()) + 0.5 - (j1 + 0.5) * w / size
    top = float(green[j1, :].mean()) + 0.5 - (j1 + 0.5) * h / size
    return top, left, h, w


@exercise("sample_crop_box")
def test_multicrop_views_come_from_boxes_in_the_scale_ranges():
    # The given pipeline (`dino_course.data.multicrop_pipeline`) cuts each view out of the image
    # at the box your function returns; the pixels of the view must show that box.
    from dino_course.data.multicrop_pipeline import resized_crop

    image = coordinate_image()
    generator = torch.Generator().manual_seed(0)
    tolerance = 3.0  # pixels, from uint8 rounding of the ramp (see recover_box)
    for _ in range(10):
        for kind, scale, size in (("global", (0.4, 1.0), 64), ("local", (0.05, 0.4), 32)):
            box = mc.sample_crop_box(200, 240, scale, generator=generator)
            check_box_types(box)
            view = resized_crop(image, box, size)[0].float() / 255.0
            top, left, h, w = recover_box(view)
            expect(all(abs(a - b) <= tolerance for a, b in zip((top, left, h, w), box)),
                   f"a {kind} view shows pixels of box {tuple(round(v) for v in (top, left, h, w))}, "
                   f"but sample_crop_box returned {box}: is the box (top, left, height, width) in that order?")
            low = (h - tolerance) * (w - tolerance) / (200 * 240)
            high = (h + tolerance) * (w + tolerance) / (200 * 240)
            expect(high >= scale[0] and low <= scale[1],
                   f"a {kind} view covers {h * w / (200 * 240):.3f} of the image, outside its scale {scale}")


@exercise("sample_crop_box")
def test_sample_crop_box_rejects_bad_arguments():
    crop_box(10, 10, (0.4, 1.0))
    for args in [(0, 10, (0.4, 1.0)), (10, 10, (0.0, 0.5)), (10, 10, (0.5, 1.5)), (10, 10, (0.6, 0.4))]:
        with pytest.raises(ValueError):
            mc.sample_crop_box(*args)
    with pytest.raises(ValueError):
        mc.sample_crop_box(10, 10, (0.4, 1.0), ratio=(0.0, 1.0))


# ----------------------------------------------------------------------------- view_recipes

PAPER_RECIPE = dict(global_size=224, local_size=96, n_local_crops=8, global_scale=(0.4, 1.0), local_scale=(0.05, 0.4))
# every setting differs from the paper's and from the function's defaults, so a value that ignores
# its argument shows; sizes and scales of the locals differ from the globals'
RECIPE_SETTINGS = [
    PAPER_RECIPE,
    dict(global_size=32, local_size=16, n_local_crops=6, global_scale=(0.25, 1.0), local_scale=(0.1, 0.25),
         flip_p=0.0, jitter_p=0.6, solarize_p=0.3),
    dict(global_size=64, local_size=28, n_local_crops=1, global_scale=(0.5, 0.9), local_scale=(0.05, 0.3),
         flip_p=0.25, jitter_p=1.0, solarize_p=0.0),
    dict(global_size=40, local_size=24, n_local_crops=0, global_scale=(0.3, 1.0), local_scale=(0.1, 0.3),
         flip_p=1.0, jitter_p=0.0, solarize_p=1.0),
]
PROBABILITY_ARGUMENTS = ("flip_p", "jitter_p")  # the same on every view, from the arguments


def recipe_mistake(settings: dict, got) -> str | None:
    """A hint naming the first mistake of `got`, the recipes returned for `settings`; None if right."""
    expected = ref.view_recipes(**settings)
    if got is None:
        return "view_recipes returned None: did you forget the `return` statement?"
    if not isinstance(got, list):
        return f"view_recipes must return a list of ViewRecipe (one per view), got a {type(got).__name__}"
    for index, recipe in enumerate(got):
        if not isinstance(recipe, ViewRecipe):
            return (f"each view's recipe must be a ViewRecipe (dino_course.data.multicrop_pipeline), "
                    f"got {type(recipe).__name__} for view {index}")
    n_local = settings["n_local_crops"]
    if len(got) != len(expected):
        n_global = sum(getattr(r, "kind", None) == "global" for r in got)
        if n_global == 0 and len(got) == n_local:
            return f"the 2 global views are missing: return 2 + n_local_crops = {len(expected)} recipes, got {len(got)}"
        if n_global == 2 and len(got) == max(n_local, 2):
            return (f"n_local_crops is the number of *local* views: with the 2 global views there are "
                    f"2 + n_local_crops = {len(expected)} recipes, got {len(got)}")
        return (f"there must be one recipe per view: 2 global views, then n_local_crops = {n_local} local views "
                f"({len(expected)} in all), got {len(got)}")
    kinds = [r.kind for r in got]
    if kinds != [r.kind for r in expected]:
        return f"the views are 2 \"global\" then the \"local\" ones, in that order; got kinds {kinds}"
    for index, (mine, theirs) in enumerate(zip(got, expected)):
        view = ("global view 1", "global view 2")[index] if index < 2 else f"local view {index - 1}"
        if not isinstance(mine.scale, tuple):
            return (f"{view}'s scale must be a (min, max) tuple, got a {type(mine.scale).__name__}: a tuple cannot be "
                    "changed, so recipes that share it stay independent (and hashable)")
        if mine.size != theirs.size:
            if theirs.kind == "local" and mine.size == settings["global_size"]:
                return f"local views are local_size = {settings['local_size']} px, not the global views' size"
            return f"{view} must be {theirs.size} px ({theirs.kind}_size), got {mine.size}"
        if tuple(mine.scale) != theirs.scale:
            if theirs.kind == "local" and tuple(mine.scale) == settings["global_scale"]:
                return f"local views crop local_scale = {settings['local_scale']} of the image, not the global scale"
            return f"{view} must crop scale = {theirs.scale} ({theirs.kind}_scale), got {mine.scale}"
        for name in PROBABILITY_ARGUMENTS:
            if getattr(mine, name) != getattr(theirs, name):
                return (f"use the {name} argument on every view: the settings say {name} = {settings.get(name, 'default')}, "
                        f"{view} has {getattr(mine, name)}")
        if mine.grayscale_p != theirs.grayscale_p:
            return f"every view is turned grey with p = {theirs.grayscale_p} (the paper's), {view} has {mine.grayscale_p}"
    blur = [r.blur_p for r in got]
    expected_blur = [r.blur_p for r in expected]
    if blur != expected_blur:
        if blur[:2] == expected_blur[1::-1]:
            return "global view 1 is the one always blurred (p = 1.0), global view 2 rarely (p = 0.1): they are swapped"
        if blur[:2] != expected_blur[:2]:
            return f"blur: p = 1.0 on global view 1 and 0.1 on global view 2 (the asymmetry), got {blur[:2]}"
        return f"local views are blurred with p = 0.5, got {blur[2:]}"
    solarize = [r.solarize_p for r in got]
    if solarize[0] != 0.0:
        return f"only global view 2 is solarised: global view 1 must have solarize_p = 0, got {solarize[0]}"
    if any(p != 0.0 for p in solarize[2:]):
        return f"local views are never solarised (solarize_p = 0), got {solarize[2:]}"
    if solarize[1] != expected[1].solarize_p:
        return (f"global view 2 is solarised with the solarize_p argument ({expected[1].solarize_p} here), "
                f"got {solarize[1]}")
    if got != expected:
        wrong = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
        return f"view {wrong}'s recipe differs: expected {expected[wrong]}, got {got[wrong]}"
    return None


def check_recipes(settings: dict) -> list:
    got = call_unmutated(mc.view_recipes, **settings)
    mistake = recipe_mistake(settings, got)
    expect(mistake is None, mistake or "")
    return got


@exercise("view_recipes")
def test_view_recipes_paper_settings():
    recipes = check_recipes(PAPER_RECIPE)
    # the paper's table, written out (Caron et al. 2021, Appendix; BYOL's probabilities)
    assert [(r.kind, r.size, r.blur_p, r.solarize_p) for r in recipes] == (
        [("global", 224, 1.0, 0.0), ("global", 224, 0.1, 0.2)] + [("local", 96, 0.5, 0.0)] * 8)


@exercise("view_recipes")
@pytest.mark.parametrize("settings", RECIPE_SETTINGS[1:], ids=["cpu-32-like", "one-local", "no-locals"])
def test_view_recipes_follow_the_settings(settings):
    check_recipes(settings)


@exercise("view_recipes")
def test_view_recipes_flip_p_zero_means_no_flip_anywhere():
    # the digits job: a mirrored digit is another symbol, so the job asks for flip_p = 0
    settings = dict(RECIPE_SETTINGS[1], flip_p=0.0)
    recipes = check_recipes(settings)
    expect(all(r.flip_p == 0.0 for r in recipes), "flip_p = 0 must give flip_p = 0 on every view")


@exercise("view_recipes")
def test_view_recipes_are_independent_values():
    settings = RECIPE_SETTINGS[1]
    first = check_recipes(settings)
    again = mc.view_recipes(**settings)
    expect(again == first and again is not first, "two calls must return two equal, separate lists")
    for recipe in first:
        try:
            hash(recipe)
        except TypeError:
            expect(False, "every recipe must be hashable (a frozen ViewRecipe of tuples and numbers): "
                          "the pipeline keeps what it computed from a recipe under it")
    first.append(None)  # the caller may change its list without changing the next call's
    expect(len(mc.view_recipes(**settings)) == len(first) - 1,
           "view_recipes must return a new list on each call, not one kept between calls")


@exercise("view_recipes")
def test_view_recipes_rejects_bad_arguments():
    check_recipes(RECIPE_SETTINGS[1])
    bad = [dict(global_size=0), dict(local_size=-4), dict(n_local_crops=-1), dict(global_scale=(0.0, 1.0)),
           dict(local_scale=(0.4, 0.1)), dict(flip_p=1.5), dict(jitter_p=-0.1), dict(solarize_p=2)]
    for change in bad:
        expect_raises(ValueError, f"view_recipes({change}) must raise ValueError", mc.view_recipes,
                      **dict(RECIPE_SETTINGS[1], **change))
