"""Hidden checks for Lesson 3.2 (`dino_course/multicrop.py`).

Collation and grouping are deterministic: compared with the reference over a grid of batch
sizes, view counts and resolutions, and with hand-built expectations (`torch.equal`, since
stacking copies values exactly). Crop sampling is random: checked by properties over many
draws (every box inside the image, its area fraction in the scale range, its aspect ratio in
the ratio range, the fallback when nothing fits) and by statistics, never by replaying the
reference's random stream.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import solutions.multicrop as ref
from dino_course.grading.hints import expect
from dino_course.grading.learner import LearnerModule

mc = LearnerModule("multicrop")


def exercise(name: str):
    return pytest.mark.exercise("3.2", name)


def views_of_sizes(sizes: list[int], batch: int = 2, channels: int = 3) -> list[torch.Tensor]:
    return [torch.zeros(batch, channels, s, s) for s in sizes]


# ----------------------------------------------------------------------------- group_by_resolution

SIZE_PATTERNS = [
    [32, 32, 16, 16, 16, 16, 16, 16],  # paper layout, CPU preset
    [224, 224] + [96] * 8,  # paper sizes
    [64, 64],  # globals only (teacher)
    [16],
    [32, 32, 16, 16, 32],  # a size that comes back: not merged with the first run
    [8, 16, 8, 16],  # alternating: every view its own group
    [28] * 10,
]


@exercise("group_by_resolution")
def test_group_by_resolution_paper_layout():
    groups = mc.group_by_resolution(views_of_sizes([32, 32, 16, 16, 16, 16, 16, 16]))
    expect(isinstance(groups, list), f"group_by_resolution must return a list of (start, end) tuples, got {type(groups).__name__}")
    expect(
        [tuple(g) for g in groups] == [(0, 2), (2, 8)],
        f"2 global views of 32 px then 6 local views of 16 px should give [(0, 2), (2, 8)], got {groups}: "
        "ranges are half-open (end is one past the last view of the run)",
    )


@exercise("group_by_resolution")
@pytest.mark.parametrize("sizes", SIZE_PATTERNS, ids=lambda s: "-".join(map(str, s)))
def test_group_by_resolution_matches_reference(sizes):
    views = views_of_sizes(sizes)
    groups = [tuple(g) for g in mc.group_by_resolution(views)]
    expected = ref.group_by_resolution(views)
    if len(groups) < len(expected):
        expect(False, f"only *consecutive* views of equal size form a group (sizes {sizes} give {expected}, got {groups}): "
               "do not merge a size that comes back later, the order of the views must be kept")
    expect(groups == expected, f"for view sizes {sizes} expected groups {expected}, got {groups}")
    covered = list(itertools.chain.from_iterable(range(a, b) for a, b in groups))
    expect(covered == list(range(len(sizes))), f"the groups must cover the views 0..{len(sizes) - 1} once each, in order")


@exercise("group_by_resolution")
def test_group_by_resolution_compares_height_and_width():
    views = [torch.zeros(2, 3, 16, 32), torch.zeros(2, 3, 16, 32), torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 32, 16)]
    groups = [tuple(g) for g in mc.group_by_resolution(views)]
    expect(groups == [(0, 2), (2, 3), (3, 4)],
           f"views of (H, W) = (16, 32), (16, 32), (16, 16), (32, 16) should give [(0, 2), (2, 3), (3, 4)], got {groups}: "
           "compare both H and W (shape[-2:]), not only one side")
    # batch size and channels may differ between groups without mattering
    mixed = [torch.zeros(2, 3, 8, 8), torch.zeros(5, 1, 8, 8)]
    expect([tuple(g) for g in mc.group_by_resolution(mixed)] == [(0, 2)],
           "only the resolution (the last two dimensions) decides the groups, not the batch size or channels")


@exercise("group_by_resolution")
def test_group_by_resolution_single_and_empty():
    expect([tuple(g) for g in mc.group_by_resolution(views_of_sizes([16]))] == [(0, 1)], "one view is one group (0, 1)")
    expect(list(mc.group_by_resolution([])) == [], "no views give no groups: return an empty list")


# ----------------------------------------------------------------------------- collate_multicrop


def make_items(batch: int, sizes: list[int], seed: int, labels: bool) -> list:
    generator = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(batch):
        crops = [torch.rand(3, s, s, generator=generator) for s in sizes]
        items.append((crops, int(torch.randint(0, 1000, (1,), generator=generator))) if labels else crops)
    return items


@exercise("collate_multicrop")
def test_collate_multicrop_shapes_and_order():
    items = make_items(4, [32, 32, 16, 16, 16], seed=0, labels=False)
    views = mc.collate_multicrop(items)
    expect(isinstance(views, list), f"collate_multicrop must return a list of V tensors, got {type(views).__name__}")
    expect(len(views) == 5, f"5 crops per image must give 5 view tensors, got {len(views)}: one tensor per view, not per image")
    shapes = [tuple(v.shape) for v in views]
    expect(shapes == [(4, 3, 32, 32)] * 2 + [(4, 3, 16, 16)] * 3,
           f"expected view tensors (B, C, H, W) = (4, 3, 32, 32) x2 then (4, 3, 16, 16) x3, got {shapes}")
    for v, view in enumerate(views):
        for b in range(4):
            expect(torch.equal(view[b], items[b][v]),
                   f"views[{v}][{b}] should be crop {v} of image {b}: stack the v-th crop of every image (view-major), "
                   "not the crops of one image")


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
    result = mc.collate_multicrop(items)
    expected = ref.collate_multicrop(items)
    if labels:
        expect(isinstance(result, tuple) and len(result) == 2,
               "items that carry labels must give a (views, labels) tuple")
        views, got_labels = result
        expect(isinstance(got_labels, torch.Tensor) and got_labels.dtype == torch.int64,
               f"labels must be an int64 tensor (B,), got {type(got_labels).__name__} "
               f"{getattr(got_labels, 'dtype', '')}: torch.tensor(labels, dtype=torch.int64)")
        expect(torch.equal(got_labels, expected[1]), f"labels {got_labels.tolist()} should be {expected[1].tolist()}, in batch order")
        expected = expected[0]
    else:
        views = result
        expect(isinstance(views, list), "items without labels must give a plain list of view tensors")
    expect(len(views) == len(expected), f"expected {len(expected)} view tensors, got {len(views)}")
    for v, (got, want) in enumerate(zip(views, expected)):
        expect(isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(want.shape),
               f"view {v} should be a tensor of shape {tuple(want.shape)}, got {tuple(getattr(got, 'shape', ()))}")
        expect(torch.equal(got, want), f"view {v} holds the wrong crops: views[v][b] must be crop v of image b")


@exercise("collate_multicrop")
def test_collate_multicrop_tensor_labels_and_dataloader():
    items = [([torch.rand(3, 8, 8), torch.rand(3, 4, 4)], torch.tensor(label)) for label in (3, 1, 4)]
    views, labels = mc.collate_multicrop(items)
    expect(labels.tolist() == [3, 1, 4] and labels.shape == (3,),
           f"0-d tensor labels should collate to tensor([3, 1, 4]), got {labels}")

    class Crops(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, index):
            return [torch.full((3, 8, 8), float(index)), torch.full((3, 4, 4), float(index))], index

    loader = torch.utils.data.DataLoader(Crops(), batch_size=3, collate_fn=mc.collate_multicrop)
    views, labels = next(iter(loader))
    expect(labels.tolist() == [0, 1, 2] and views[1][:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0],
           "collate_multicrop must work as a DataLoader collate_fn, keeping the image order within each view")


# ----------------------------------------------------------------------------- sample_crop_box

# Statistical checks: n independent draws of a quantity with standard deviation sd; a correct
# sampler's mean lies within 4.5 standard errors of the expected value except with probability
# ~7e-6 (normal approximation, fine at n >= 1000). The draws are seeded, so a given
# implementation always gets the same verdict.
SIGMAS = 4.5
LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))


def draw_boxes(height, width, scale, n, seed, ratio=ref.ASPECT_RATIO_RANGE):
    generator = torch.Generator().manual_seed(seed)
    return [mc.sample_crop_box(height, width, scale, ratio, generator) for _ in range(n)]


def within_mean(values, expected, sd, n=None) -> bool:
    n = n or len(values)
    return abs(sum(values) / n - expected) <= SIGMAS * sd / math.sqrt(n)


@exercise("sample_crop_box")
def test_sample_crop_box_returns_a_box_inside_the_image():
    box = mc.sample_crop_box(100, 200, (0.4, 1.0), generator=torch.Generator().manual_seed(0))
    expect(isinstance(box, tuple) and len(box) == 4, f"sample_crop_box must return a tuple (top, left, height, width), got {box!r}")
    expect(all(isinstance(v, int) for v in box), f"the box must hold Python ints (use int(...) on tensors), got {[type(v).__name__ for v in box]}")
    top, left, h, w = box
    expect(h >= 1 and w >= 1 and 0 <= top <= 100 - h and 0 <= left <= 200 - w,
           f"box (top={top}, left={left}, h={h}, w={w}) is not inside a 100 x 200 image")


@exercise("sample_crop_box")
@pytest.mark.parametrize("height,width,scale", [
    (224, 224, (0.4, 1.0)), (224, 224, (0.05, 0.4)), (375, 500, (0.4, 1.0)), (500, 375, (0.05, 0.4)),
    (32, 32, (0.4, 1.0)), (32, 32, (0.05, 0.4)), (64, 48, (0.14, 0.14)), (1000, 700, (0.2, 0.5)),
])
def test_sample_crop_box_area_and_aspect_ratio_ranges(height, width, scale):
    for top, left, h, w in draw_boxes(height, width, scale, 300, seed=height + width):
        expect(h >= 1 and w >= 1 and 0 <= top and top + h <= height and 0 <= left and left + w <= width,
               f"box (top={top}, left={left}, h={h}, w={w}) leaves the {height} x {width} image: "
               "top must be in 0..H-h and left in 0..W-w")
        # w and h are rounded to whole pixels, so allow half a pixel either way on each side
        area_low = max(0.0, (h - 0.5)) * max(0.0, (w - 0.5)) / (height * width)
        area_high = (h + 0.5) * (w + 0.5) / (height * width)
        expect(area_high >= scale[0] and area_low <= scale[1],
               f"box {h} x {w} covers {h * w / (height * width):.3f} of a {height} x {width} image, outside scale {scale}: "
               "the target area is s * H * W with s ~ U(scale), and w = sqrt(area * r), h = sqrt(area / r)")
        expect((w + 0.5) / max(h - 0.5, 1e-9) >= 3 / 4 and (w - 0.5) / (h + 0.5) <= 4 / 3,
               f"box {h} x {w} has aspect ratio w/h = {w / h:.3f}, outside (3/4, 4/3): is r = w / h (not h / w)?")


@exercise("sample_crop_box")
def test_sample_crop_box_statistics_area_log_ratio_and_position():
    n, side = 4000, 1000
    boxes = draw_boxes(side, side, (0.05, 0.4), n, seed=11)  # every draw fits: no fallback involved
    areas = [h * w / side**2 for _, _, h, w in boxes]
    expect(within_mean(areas, (0.05 + 0.4) / 2, (0.4 - 0.05) / math.sqrt(12)),
           f"mean area fraction {sum(areas) / n:.4f} should be {(0.05 + 0.4) / 2:.4f} (s ~ U(0.05, 0.4)): "
           "draw the area fraction uniformly in the scale range, not the side length")
    log_ratios = [math.log(w / h) for _, _, h, w in boxes]
    width = LOG_RATIO[1] - LOG_RATIO[0]
    expect(within_mean(log_ratios, 0.0, width / math.sqrt(12)),
           f"mean log aspect ratio {sum(log_ratios) / n:.4f} should be 0: draw log r uniformly in "
           "(log 3/4, log 4/3) and take r = exp(...), so that wide and tall crops are equally likely")
    lower_third = sum(v < LOG_RATIO[0] + width / 3 for v in log_ratios) / n
    expect(abs(lower_third - 1 / 3) <= SIGMAS * math.sqrt(2 / 9 / n),
           f"{lower_third:.3f} of the log aspect ratios fall in the lowest third of the range, expected 1/3: log r must be uniform")
    positions = [left / (side - w) for _, left, _, w in boxes if side > w]
    expect(within_mean(positions, 0.5, math.sqrt(1 / 12)),
           f"crops sit on average at {sum(positions) / len(positions):.3f} of the free width, expected 0.5: place them uniformly")


@exercise("sample_crop_box")
def test_sample_crop_box_reaches_every_position():
    boxes = draw_boxes(20, 20, (0.3, 0.4), 1500, seed=5)
    expect(any(left == 0 for _, left, _, _ in boxes) and any(left + w == 20 for _, left, _, w in boxes),
           "no crop ever touches the left or the right edge: left must be drawn from 0..W-w inclusive "
           "(torch.randint's upper bound is exclusive: use W - w + 1)")
    expect(any(top == 0 for top, _, _, _ in boxes) and any(top + h == 20 for top, _, h, _ in boxes),
           "no crop ever touches the top or the bottom edge: top must be drawn from 0..H-h inclusive")


@exercise("sample_crop_box")
@pytest.mark.parametrize("height,width,expected", [
    (10, 200, (0, 93, 10, 13)),  # very wide: full height, width clipped to ratio 4/3
    (200, 10, (93, 0, 13, 10)),  # very tall: full width, height clipped to ratio 3/4
])
def test_sample_crop_box_fallback_is_a_centred_clipped_box(height, width, expected):
    # with scale (0.9, 1.0) no drawn box fits a 10 x 200 image (h would be >= 37 > 10)
    boxes = draw_boxes(height, width, (0.9, 1.0), 5, seed=0)
    for box in boxes:
        expect(tuple(box) == expected,
               f"when no box fits a {height} x {width} image the fallback should be the centred box {expected} "
               f"(top, left, h, w), got {tuple(box)}: after 10 failed attempts take the whole image clipped to the "
               "nearest allowed aspect ratio, centred")


@exercise("sample_crop_box")
def test_sample_crop_box_uses_the_generator():
    first = draw_boxes(300, 400, (0.05, 0.4), 20, seed=3)
    again = draw_boxes(300, 400, (0.05, 0.4), 20, seed=3)
    other = draw_boxes(300, 400, (0.05, 0.4), 20, seed=4)
    expect(first == again, "two generators with the same seed gave different boxes: draw every random number "
           "from `generator` (torch.rand(..., generator=generator))")
    expect(first != other, "generators with different seeds gave the same boxes: are the random numbers drawn at all?")


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
    image = coordinate_image()
    augment = mc.MultiCropAugmentation(global_size=64, local_size=32, n_local_crops=4, augmentations=(), normalize=False)
    generator = torch.Generator().manual_seed(0)
    tolerance = 3.0  # pixels, from uint8 rounding of the ramp (see recover_box)
    for _ in range(25):
        sample = augment.sample(image, generator=generator)
        for view, recipe, box in zip(sample.views, sample.recipes, sample.boxes):
            top, left, h, w = recover_box(view)
            expect(all(abs(a - b) <= tolerance for a, b in zip((top, left, h, w), box)),
                   f"a {recipe.kind} view shows pixels of box {tuple(round(v) for v in (top, left, h, w))}, "
                   f"but sample_crop_box returned {box}: is the box (top, left, height, width) in that order?")
            low = (h - tolerance) * (w - tolerance) / (200 * 240)
            high = (h + tolerance) * (w + tolerance) / (200 * 240)
            expect(high >= recipe.scale[0] and low <= recipe.scale[1],
                   f"a {recipe.kind} view covers {h * w / (200 * 240):.3f} of the image, outside its scale {recipe.scale}")
