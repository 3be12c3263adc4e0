"""Checks of the train job's batched crops (`dino_course/data/batched_multicrop.py`): shapes, shards,
determinism, normalisation, and the preset's evaluation inputs."""

from __future__ import annotations

import pytest
import torch

from dino_course.data.batched_multicrop import IMAGENET_MEAN, IMAGENET_STD, BatchedMultiCrop, normalize_uint8
from dino_course.data.datasets import load_digits
from dino_course.job.train import PRESETS, build_augmentation

pytestmark = pytest.mark.maintainer


def test_batched_crops_shapes_shards_and_determinism():
    images = load_digits(32).train_images[:8]
    crops = BatchedMultiCrop(global_size=32, local_size=16, n_local=3)
    views = crops(images, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(8, 3, 32, 32)] * 2 + [(8, 3, 16, 16)] * 3
    halves = [crops(images, torch.Generator().manual_seed(0), shard=s) for s in (slice(0, 4), slice(4, 8))]
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
    crops = BatchedMultiCrop(global_size=32, local_size=16, n_local=0, global_scale=(1.0, 1.0), flip_p=0.0,
                             jitter_p=0.0, solarize_p=0.0, mean=mean, std=std)
    flat = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    for view in crops(flat, torch.Generator().manual_seed(0)):
        torch.testing.assert_close(view, normalize_uint8(flat, mean, std), rtol=0, atol=1e-5)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_evaluation_sees_the_images_as_training_does(preset):
    # k-NN, the raw-pixel baseline and the attention figure go through config.network_input;
    # a global view of a flat image with no colour change must be exactly that input.
    config = PRESETS[preset].replace(global_size=PRESETS[preset].image_size, jitter_p=0.0, solarize_p=0.0)
    size = config.image_size
    images = torch.randint(0, 256, (2, 3, 1, 1), dtype=torch.uint8).expand(2, 3, size, size).contiguous()
    view = build_augmentation(config)(images, torch.Generator().manual_seed(0))[0]
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
        BatchedMultiCrop(mean=mean, std=std)
