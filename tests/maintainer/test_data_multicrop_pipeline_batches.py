"""Checks of the train job's batched multi-crop views (`MultiCropAugmentation.views_of_batch` in
`dino_course/data/multicrop_pipeline.py`): shapes, shards, determinism, normalisation, the preset's
evaluation inputs, and that the boxes and batches come from the Lesson 3.2 exercises."""

from __future__ import annotations

import pytest
import torch

from dino_course.data.datasets import DIGITS_MEAN, DIGITS_STD, load_digits
from dino_course.data.multicrop_pipeline import MultiCropAugmentation
from dino_course.data.normalization import IMAGENET_MEAN, IMAGENET_STD, normalize_uint8
from dino_course.job.train import PRESETS, TRAIN_AUGMENTATIONS, build_augmentation

pytestmark = pytest.mark.maintainer


def job_crops(**changes) -> MultiCropAugmentation:
    settings = dict(global_size=32, local_size=16, n_local_crops=3, augmentations=TRAIN_AUGMENTATIONS)
    return MultiCropAugmentation(**{**settings, **changes})


def test_batched_crops_shapes_shards_and_determinism():
    images = load_digits(32).train_images[:8]
    crops = job_crops()
    views = crops.views_of_batch(images, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(8, 3, 32, 32)] * 2 + [(8, 3, 16, 16)] * 3
    halves = [crops.views_of_batch(images, torch.Generator().manual_seed(0), shard=s) for s in (slice(0, 4), slice(4, 8))]
    for whole, first, second in zip(views, *halves):
        torch.testing.assert_close(torch.cat([first, second]), whole, rtol=0, atol=1e-6)
    assert not torch.equal(views[0], views[1])  # two different global views


def test_views_and_evaluation_inputs_use_the_given_normalisation():
    # The cpu-digits preset divides by the digits' std with no mean subtracted: a black pixel
    # must stay exactly 0, a white one become 1 / std; the default stays ImageNet's.
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    images[:, :, :, 16:] = 255
    mean, std = (0.0, 0.0, 0.0), (0.32, 0.32, 0.32)
    pixels = normalize_uint8(images, mean, std)
    assert pixels[:, :, :, :16].abs().max() == 0
    torch.testing.assert_close(pixels[:, :, :, 16:], torch.full((2, 3, 32, 16), 1 / 0.32))
    imagenet = normalize_uint8(images)
    torch.testing.assert_close(imagenet[0, :, 0, 0], -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD))
    # full-image global crops with no jitter: the view is the normalised image itself
    crops = job_crops(n_local_crops=0, global_scale=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, solarize_p=0.0, mean=mean, std=std)
    flat = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    for view in crops.views_of_batch(flat, torch.Generator().manual_seed(0)):
        torch.testing.assert_close(view, normalize_uint8(flat, mean, std), rtol=0, atol=1e-5)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_evaluation_sees_the_images_as_training_does(preset):
    # k-NN, the raw-pixel baseline and the attention figure go through config.network_input;
    # a global view of a flat image with no colour change must be exactly that input.
    config = PRESETS[preset].replace(global_size=PRESETS[preset].image_size, jitter_p=0.0, solarize_p=0.0)
    size = config.image_size
    images = torch.randint(0, 256, (2, 3, 1, 1), dtype=torch.uint8).expand(2, 3, size, size).contiguous()
    view = build_augmentation(config).views_of_batch(images, torch.Generator().manual_seed(0))[0]
    torch.testing.assert_close(view, config.network_input(images), rtol=0, atol=1e-5)


@pytest.mark.parametrize("mean, std, message", [
    ((0.0, 0.0), (0.3, 0.3, 0.3), "mean must be three numbers"),
    ((0.0, 0.0, 0.0), (0.3, 0.0, 0.3), "std must be positive"),
    ((0.0, 0.0, 0.0), 0.3, "std must be three numbers"),
])
def test_a_bad_normalisation_is_named(mean, std, message):
    images = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match=message):
        normalize_uint8(images, mean, std)
    with pytest.raises(ValueError, match=message):
        MultiCropAugmentation(mean=mean, std=std)


def test_the_digits_statistics_are_the_presets():
    assert PRESETS["cpu-digits"].pixel_mean == DIGITS_MEAN and PRESETS["cpu-digits"].pixel_std == DIGITS_STD


# ----------------------------------------------------------------------------- the job runs Lesson 3.2's code


def test_the_jobs_views_come_from_sample_crop_box_and_collate_multicrop(monkeypatch):
    # The train job (and the demo) must crop with the lesson's `sample_crop_box` and assemble the
    # batch with its `collate_multicrop`, looked up when called (the reference switch and
    # %autoreload). Swap both in the module the switch resolves and watch the views follow.
    import importlib

    lesson = importlib.import_module("dino_course.multicrop")
    config = PRESETS["cpu-digits"].replace(jitter_p=0.0, solarize_p=0.0)
    augment = build_augmentation(config)
    images = load_digits(32).train_images[:6]
    calls = {"boxes": 0, "collations": 0}

    def whole_image(height, width, scale, ratio=(3 / 4, 4 / 3), generator=None):
        calls["boxes"] += 1
        return 0, 0, height, width

    real_collate = lesson.collate_multicrop

    def counting_collate(batch):
        calls["collations"] += 1
        assert len(batch) == 6 and len(batch[0]) == 2 + config.n_local  # per-image crop lists
        return real_collate(batch)

    monkeypatch.setattr(lesson, "sample_crop_box", whole_image)
    monkeypatch.setattr(lesson, "collate_multicrop", counting_collate)
    views = augment.views_of_batch(images, torch.Generator().manual_seed(0))
    assert calls == {"boxes": 6 * (2 + config.n_local), "collations": 1}
    # every box is the whole image: the global views are the image itself, the locals its 16 px resize
    for view in views[:2]:
        torch.testing.assert_close(view, config.network_input(images), rtol=0, atol=1e-5)
    small = torch.nn.functional.interpolate(images.float() / 255, size=16, mode="bilinear", align_corners=False)
    torch.testing.assert_close(views[2], small / torch.tensor(DIGITS_STD).view(1, 3, 1, 1), rtol=0, atol=1e-5)

    # the box's position is honoured: the right half (top 0, left 16, 32 x 16) is that half upsampled
    # (interior columns: the outermost ones also weigh the pixel just outside the box)
    monkeypatch.setattr(lesson, "sample_crop_box", lambda height, width, scale, ratio=None, generator=None: (0, 16, height, 16))
    half = augment.views_of_batch(images, torch.Generator().manual_seed(0))[0]
    expected = torch.nn.functional.interpolate(images[..., 16:].float() / 255, size=32, mode="bilinear", align_corners=False)
    expected = expected / torch.tensor(DIGITS_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(half[..., 1:-1], expected[..., 1:-1], rtol=0, atol=1e-5)

def test_without_the_lesson_the_job_names_view_recipes(monkeypatch):
    # The generated stub of Lesson 3.2 in place of the reference (as a fresh clone has it): the
    # job's next batch reaches the stub, whose error names the exercise (the CLI prints it): the
    # first one the pipeline asks is view_recipes, for the views to make.
    import importlib.util
    import sys

    from dino_course.grading import ExerciseNotStarted
    from dino_course.grading.catalog import PACKAGE_DIR

    spec = importlib.util.spec_from_file_location("multicrop_stub", PACKAGE_DIR / "multicrop.py")
    stub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stub)
    augment = build_augmentation(PRESETS["tiny"])
    monkeypatch.setitem(sys.modules, "dino_course.multicrop", stub)
    with pytest.raises(ExerciseNotStarted, match="view_recipes"):
        augment.views_of_batch(load_digits(16).train_images[:2], torch.Generator())
