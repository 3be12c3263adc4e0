"""Checks of the train job's data sets (`dino_course/data/datasets.py`): the digits split, image
folders, no silent downloads."""

from __future__ import annotations

import pytest
import torch

from dino_course.data.datasets import load_dataset, load_digits, load_image_folder

pytestmark = pytest.mark.maintainer


def test_digits_are_32px_rgb_with_a_stratified_held_out_split():
    data = load_digits(32, test_fraction=0.2, seed=0)
    assert data.train_images.shape[1:] == (3, 32, 32) and data.train_images.dtype == torch.uint8
    assert len(data.train_labels) + len(data.test_labels) == 1797
    assert set(data.test_labels.tolist()) == set(range(10))  # every class held out
    assert abs(len(data.test_labels) / 1797 - 0.2) < 0.01
    again = load_digits(32, test_fraction=0.2, seed=0)
    assert torch.equal(again.test_labels, data.test_labels)  # seeded


def test_image_folder(tmp_path):
    from PIL import Image

    for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.new("RGB", (20 + i, 30), colour).save(tmp_path / name / f"{i}.png")
    data = load_image_folder(tmp_path, size=16)
    assert data.classes == ["blue", "red"] and data.train_images.shape[1:] == (3, 16, 16)
    with pytest.raises(ValueError, match="sub-folder"):
        load_image_folder(tmp_path / "red", size=16)


def test_torchvision_sets_are_never_downloaded_unless_asked(tmp_path):
    with pytest.raises(ValueError, match="--download"):
        load_dataset("cifar10", root=tmp_path)
    assert not any(tmp_path.iterdir())
