"""Labelled image sets for training and evaluating DINO on a laptop, held in memory as uint8 tensors.

- `digits` (the default): scikit-learn's 1,797 handwritten digits (8 x 8 grey levels 0-16,
  10 classes), which ship with scikit-learn, so nothing is downloaded. Upsampled (bilinear)
  to `size` pixels and repeated to 3 channels so the RGB ViT takes them; a stratified,
  seeded held-out split (20 % by default) is used only for the k-NN evaluation.
- an image folder (`--data PATH`): one sub-folder per class (`PATH/cat/*.png`, ...), every
  image resized to `size` x `size`; the same seeded held-out split.
- `cifar10` / `stl10` through torchvision: downloaded only when the caller passes
  `download=True` (the CLI's `--download` flag), never otherwise.

DINO itself never sees a label: the labels are used by the k-NN monitor only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = [
    "ImageSet", "load_dataset", "load_digits", "load_image_folder", "load_torchvision", "DATASETS",
    "DIGITS_MEAN", "DIGITS_STD",
]

DATASETS = ("digits", "cifar10", "stl10")
# The digits' normalisation (what `load_digits` images are divided by): their own pixel std
# (0.32) with no mean subtracted, so the black background (most of every image) is exactly 0.
# ImageNet's statistics would turn it into -2.1, a large constant every patch token shares
# (README, "The main job"). Course choice for the cpu-digits preset and the Lesson 4.4 demo.
DIGITS_MEAN = (0.0, 0.0, 0.0)
DIGITS_STD = (0.32, 0.32, 0.32)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class ImageSet:
    """A labelled image set with a held-out split: uint8 images `(N, 3, H, W)`, int64 labels `(N,)`."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    def __repr__(self) -> str:
        return (
            f"ImageSet({self.name!r}: {len(self.train_labels)} training / {len(self.test_labels)} held-out images, "
            f"{len(self.classes)} classes, {self.image_size} px)"
        )


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 1024:
        raise ValueError(f"size must be an int number of pixels in [8, 1024], got {size!r}")


def _check_fraction(test_fraction: float) -> None:
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")


def stratified_split(labels: torch.Tensor, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices `(train, test)`: a seeded, per-class split so every class is in both parts."""
    _check_fraction(test_fraction)
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for label in labels.unique(sorted=True):
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = max(1, round(test_fraction * len(members))) if len(members) > 1 else 0
        test.append(members[:n_test])
        train.append(members[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def _split(name: str, images: torch.Tensor, labels: torch.Tensor, classes: list[str], test_fraction: float, seed: int) -> ImageSet:
    train, test = stratified_split(labels, test_fraction, seed)
    return ImageSet(name, images[train], labels[train], images[test], labels[test], classes)


def load_digits(size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> ImageSet:
    """scikit-learn's handwritten digits as `size`-pixel RGB uint8 images, with a held-out split.

    Ink is drawn white on black, as in the original 0-16 grey levels (scaled to 0-255).
    """
    _check_size(size)
    from sklearn.datasets import load_digits as sklearn_digits  # ships with scikit-learn: no download

    bunch = sklearn_digits()
    grey = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    grey = F.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False)
    images = (grey.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return _split("digits", images, labels, [str(d) for d in range(10)], test_fraction, seed)


def _resize_uint8(image, size: int) -> torch.Tensor:
    from PIL import Image

    image = image.convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)


def load_image_folder(path: str | Path, size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> ImageSet:
    """Images under `path/<class>/...`, resized to `size` x `size`, with a held-out split."""
    _check_size(size)
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"data must be a folder with one sub-folder of images per class, got {str(root)!r}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"data folder {str(root)!r} has no class sub-folders (expected e.g. {root}/cats/*.jpg)")
    images, labels = [], []
    for index, name in enumerate(classes):
        for file in sorted((root / name).rglob("*")):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as image:
                    images.append(_resize_uint8(image, size))
            except (UnidentifiedImageError, OSError) as exc:
                raise ValueError(f"cannot read image {file}: {exc}") from None
            labels.append(index)
    if len(images) < 2 * len(classes):
        raise ValueError(f"data folder {str(root)!r} needs at least 2 images per class, found {len(images)} in {len(classes)} classes")
    return _split(root.name, torch.stack(images), torch.tensor(labels), classes, test_fraction, seed)


def load_torchvision(name: str, root: str | Path, size: int = 32, download: bool = False, limit: int | None = None) -> ImageSet:
    """CIFAR-10 or STL-10 (labelled train split for training, test split held out), resized to `size`.

    Downloads into `root` only with `download=True`. `limit` keeps the first `limit` images of
    each split (for quick runs).
    """
    _check_size(size)
    import torchvision

    if name not in ("cifar10", "stl10"):
        raise ValueError(f"name must be 'cifar10' or 'stl10', got {name!r}")
    try:
        if name == "cifar10":
            train = torchvision.datasets.CIFAR10(root, train=True, download=download)
            test = torchvision.datasets.CIFAR10(root, train=False, download=download)
            classes = list(train.classes)
            parts = [(torch.as_tensor(d.data).permute(0, 3, 1, 2), torch.as_tensor(d.targets)) for d in (train, test)]
        else:
            train = torchvision.datasets.STL10(root, split="train", download=download)
            test = torchvision.datasets.STL10(root, split="test", download=download)
            classes = list(train.classes)
            parts = [(torch.as_tensor(d.data), torch.as_tensor(d.labels)) for d in (train, test)]
    except RuntimeError as exc:
        raise ValueError(f"{name} is not in {root}: pass --download to fetch it ({exc})") from None
    resized = []
    for images, labels in parts:
        if limit:
            images, labels = images[:limit], labels[:limit]
        if images.shape[-1] != size:
            images = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            images = images.clamp(0, 255).round().to(torch.uint8)
        resized.append((images.contiguous(), labels.long()))
    (train_images, train_labels), (test_images, test_labels) = resized
    return ImageSet(name, train_images, train_labels, test_images, test_labels, classes)


def load_dataset(
    name: str = "digits",
    *,
    data: str | Path | None = None,
    size: int = 32,
    test_fraction: float = 0.2,
    seed: int = 0,
    download: bool = False,
    root: str | Path = "data",
    limit: int | None = None,
) -> ImageSet:
    """One entry point for the train job: an image folder if `data` is given, else the named set."""
    if data is not None:
        return load_image_folder(data, size, test_fraction, seed)
    if name == "digits":
        return load_digits(size, test_fraction, seed)
    if name in ("cifar10", "stl10"):
        return load_torchvision(name, root, size, download, limit)
    raise ValueError(f"dataset must be one of {DATASETS} (or pass an image folder as data), got {name!r}")
