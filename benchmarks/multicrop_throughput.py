"""Throughput of the course's multi-crop pipeline vs a per-image PIL pipeline (original recipe).

    PYTHONPATH=$PWD python benchmarks/multicrop_throughput.py            # full table (~2-4 min on 2 cores)
    PYTHONPATH=$PWD python benchmarks/multicrop_throughput.py --quick    # smaller runs

Both pipelines get the same PIL images and produce the same views (2 global + N local,
float32, ImageNet-normalised) with the same random choices and probabilities:

- baseline: the original DINO `DataAugmentationDINO` structure, one torchvision (v1) transform
  chain per view on PIL images: RandomResizedCrop (bicubic), RandomHorizontalFlip,
  RandomApply(ColorJitter(0.4, 0.4, 0.2, 0.1), p=0.8), RandomGrayscale(0.2), Gaussian blur
  with PIL's `ImageFilter.GaussianBlur(σ ~ U(0.1, 2))` (as the original; torchvision's own
  GaussianBlur on PIL is slower), RandomSolarize(128, p=0.2) on global view 2, ToTensor, Normalize.
- course: `dino_course.data.multicrop_pipeline.MultiCropAugmentation` (boxes from the reference
  `sample_crop_box`), the course's one multi-crop data path, which augments all crops of
  one size as one batch with per-crop parameters. What differs: float instead of uint8 colour
  arithmetic, an exact sampled Gaussian (3σ) instead of PIL's box-blur approximation, torch's
  antialiased bicubic resize instead of PIL's.

Images/s counts source images, crops/s the views made from them. "1 process": the pipeline
called in a loop with torch limited to one thread (both pipelines single-threaded), one image
at a time. "workers": a DataLoader with `--workers` processes, batch size 16,
`collate_multicrop`, timed from the first batch on (steady state: the workers' start-up is not
counted), over 4x as many images as the single-process runs. The datasets differ there: the
baseline keeps a plain per-image Dataset (`__getitem__` only), as the original DINO does (an
`ImageFolder` with the augmentation as its transform); the course uses
`dino_course.data.multicrop_pipeline.MultiCropDataset`, whose `__getitems__` augments the 16 images of a
batch together (`MultiCropAugmentation.augment_batch`: same random choices per image, the
photometric operations run once over the crops of all 16 images).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import torch
from PIL import ImageFilter
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DINO_COURSE_REFERENCE", "3.2")  # benchmark the reference pipeline

from dino_course.data.multicrop_pipeline import MULTICROP_PRESETS, MultiCropAugmentation, MultiCropDataset  # noqa: E402
from dino_course.multicrop import collate_multicrop  # noqa: E402
from dino_course.data.sample_images import sample_photo  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


class PILGaussianBlur:
    """The original DINO's blur: PIL's Gaussian filter with σ ~ U(0.1, 2), applied with probability p."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image):
        if random.random() >= self.p:
            return image
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))


class BaselineMultiCrop:
    """Per-view torchvision transform chains on PIL images (the original recipe)."""

    def __init__(self, global_size: int, local_size: int, n_local_crops: int) -> None:
        bicubic = transforms.InterpolationMode.BICUBIC
        colour = transforms.Compose([
            transforms.RandomHorizontalFlip(p=0.5),
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
        ])
        normalize = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
        self.global_1 = transforms.Compose([
            transforms.RandomResizedCrop(global_size, scale=(0.4, 1.0), interpolation=bicubic), colour, PILGaussianBlur(1.0), normalize])
        self.global_2 = transforms.Compose([
            transforms.RandomResizedCrop(global_size, scale=(0.4, 1.0), interpolation=bicubic), colour, PILGaussianBlur(0.1),
            transforms.RandomSolarize(128, p=0.2), normalize])
        self.local = transforms.Compose([
            transforms.RandomResizedCrop(local_size, scale=(0.05, 0.4), interpolation=bicubic), colour, PILGaussianBlur(0.5), normalize])
        self.n_local_crops = n_local_crops

    def __call__(self, image) -> list[torch.Tensor]:
        return [self.global_1(image), self.global_2(image)] + [self.local(image) for _ in range(self.n_local_crops)]


class Photos(torch.utils.data.Dataset):
    """The baseline's dataset: one image augmented per `__getitem__` call (as the original DINO)."""

    def __init__(self, images, augment, length: int) -> None:
        self.images, self.augment, self.length = images, augment, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return self.augment(self.images[index % len(self.images)])


def single_process(augment, images, n_images: int, repeats: int) -> float:
    """Best images/s over `repeats` runs (best of: the machine may be shared)."""
    for image in images:
        augment(image)  # warm-up: first calls pay one-off costs
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for index in range(n_images):
            augment(images[index % len(images)])
        best = max(best, n_images / (time.perf_counter() - start))
    return best


def with_workers(augment, images, n_images: int, workers: int, repeats: int) -> float:
    """Best steady-state images/s of a DataLoader with `workers` processes.

    The clock starts when the first batch arrives, so the workers' start-up (fork, imports,
    first calls) is left out, as it would be amortised over a training epoch; the images of
    the first batch are not counted.
    """
    best = 0.0
    batch_size = 16
    for _ in range(repeats):
        if isinstance(augment, MultiCropAugmentation):  # the course: a batch of images augmented together
            dataset = MultiCropDataset([images[index % len(images)] for index in range(n_images)], augment)
        else:  # the baseline: image by image
            dataset = Photos(images, augment, n_images)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_multicrop)
        batches = iter(loader)
        next(batches)
        start = time.perf_counter()
        counted = sum(len(views[0]) for views in batches)
        best = max(best, counted / (time.perf_counter() - start))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats (a rough number in ~1 min)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default 2)")
    parser.add_argument("--presets", default="paper,cpu-32", help="comma-separated MULTICROP_PRESETS names")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # both pipelines single-threaded in the main process; workers use 1 thread anyway
    repeats = 2 if args.quick else 3
    full_photos = [sample_photo(name) for name in PHOTOS]
    rows = []
    for preset in args.presets.split(","):
        sizes = MULTICROP_PRESETS[preset]
        # the paper's preset crops the ~500 px photos; the CPU preset gets 96 px images, as a small dataset would
        images = full_photos if preset == "paper" else [p.resize((96, 96)) for p in full_photos]
        n_views = 2 + sizes["n_local_crops"]
        n_images = (24 if args.quick else 64) if preset == "paper" else (128 if args.quick else 512)
        pipelines = {"baseline (torchvision, PIL)": BaselineMultiCrop(**sizes), "course (batched per size; workers: per batch)": MultiCropAugmentation(**sizes)}
        # repeats interleave the pipelines, so a busy spell on a shared machine hits both alike
        single = {name: 0.0 for name in pipelines}
        parallel = {name: 0.0 for name in pipelines}
        for _ in range(repeats):
            for name, augment in pipelines.items():
                single[name] = max(single[name], single_process(augment, images, n_images, 1))
                parallel[name] = max(parallel[name], with_workers(augment, images, n_images * 4, args.workers, 1))
        measured = {name: (single[name], parallel[name]) for name in pipelines}
        base = measured["baseline (torchvision, PIL)"]
        for name, (single, parallel) in measured.items():
            source = "photos 451-640 px" if preset == "paper" else "photos resized to 96x96"
            rows.append((preset, source, name, single, single * n_views, parallel,
                         parallel * n_views, single / base[0], parallel / base[1]))
    header = ("preset", "source", "pipeline", "img/s 1 proc", "crops/s 1 proc", f"img/s {args.workers} workers",
              f"crops/s {args.workers} workers", "speed-up 1 proc", f"speed-up {args.workers} workers")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for preset, source, name, single, single_crops, parallel, parallel_crops, up1, upw in rows:
        print(f"| {preset} | {source} | {name} | {single:.1f} | {single_crops:.0f} | {parallel:.1f} | {parallel_crops:.0f} | {up1:.2f}x | {upw:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
