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
