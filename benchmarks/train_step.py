"""Benchmark: the course's full DINO training step against the same step built from `lightly`.

    pip install -e .[bench]          # lightly, only for this benchmark
    DINO_COURSE_REFERENCE=all python benchmarks/train_step.py [--preset cpu-digits] [--steps 10] [--threads 2]

Both steps use the same ViT backbone (same weights), the same head sizes and the same views
(2 global + n local crops, drawn once by the course's multi-crop data path), and do the same
work: teacher forward on the global views, student forward on all views, DINO loss with
centering, backward, per-tensor gradient clipping (3.0), last-layer freeze, AdamW step, EMA.

  course:  CompleteDINOModel (3.3) + DINOLoss (4.3) + train_step (4.4) with the reference code
  lightly: lightly.models.modules.DINOProjectionHead, lightly.loss.DINOLoss,
           lightly.models.utils.update_momentum, each view through the student separately
           (as lightly's DINO example does), clipping/freeze written the same way.

The augmentations are timed separately: the course's `MultiCropAugmentation.views_of_batch`
on a uint8 batch vs
`lightly.transforms.DINOTransform` per PIL image, at the same crop sizes.

Timed twice: in alternating rounds, each side in its own fresh process (so that its peak
memory is its own), and paired: both steps in one process, alternating step by step, which
compares them under the same machine conditions (on a shared machine, how fast a fresh process
runs varies by 10-20 % from one process to the next, more than the two steps differ).

Reported per step: median seconds, images/s (source images per second), peak memory (the
process's max RSS growth on CPU, `torch.cuda.max_memory_allocated` on GPU), and the share of
the machine's measured float32 matmul FLOP/s (a large square matmul) that the step reaches,
with the step's FLOPs counted by `torch.utils.flop_counter.FlopCounterMode`.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import time

import torch

os.environ.setdefault("DINO_COURSE_REFERENCE", "all")


def matmul_flops_per_second(size: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(step, steps: int) -> list[float]:
    times = []
    for i in range(steps):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    return times


def count_flops(step) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(0)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-digits")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side (default 3)")
    parser.add_argument("--paired-steps", type=int, default=40,
                        help="steps of each side timed alternately in one process (default 40; 0 skips)")
    parser.add_argument("--only", choices=["course", "lightly", "paired"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only is None:  # each step in its own process, so that peak memory is its own
        import json
        import subprocess
        import sys

        # rounds alternate the two sides, so that a busy spell or a clock change hits both alike
        rounds: dict[str, list[dict]] = {"course": [], "lightly": []}
        for _ in range(args.rounds):
            for name in rounds:
                out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only", name], capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"the {name} benchmark failed:\n{out.stderr[-2000:]}")
                rounds[name].append(json.loads(out.stdout.strip().splitlines()[-1]))

        def median_of(name: str, key: str) -> float:
            return statistics.median(row[key] for row in rounds[name])

        paired = None
        if args.paired_steps:
            command = [sys.executable, __file__, *sys.argv[1:], "--only", "paired"]
            out = subprocess.run(command, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"the paired benchmark failed:\n{out.stderr[-2000:]}")
            paired = json.loads(out.stdout.strip().splitlines()[-1])

        info = rounds["course"][0]
        print(f"preset {args.preset}: batch {info['batch']}, {info['views']} views ({info['sizes']} px), torch threads {info['threads']}, "
              f"{args.rounds} alternating rounds of {args.steps} timed steps (medians over rounds below)")
        print(f"measured float32 matmul (1024 x 1024): {median_of('course', 'matmul') / 1e9:.1f} GFLOP/s")
        print("| step | s/step (median) | images/s | peak memory growth (MB) | GFLOP per step | share of matmul FLOP/s |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name in rounds:
            print(f"| {name} | {median_of(name, 'seconds'):.3f} | {median_of(name, 'rate'):.0f} | {median_of(name, 'memory'):.0f} | "
                  f"{median_of(name, 'flops') / 1e9:.1f} | {100 * median_of(name, 'share'):.0f} % |")
        ratios = [l["seconds"] / c["seconds"] for c, l in zip(rounds["course"], rounds["lightly"])]
        print("lightly s/step / course s/step, per round: " + ", ".join(f"{r:.2f}" for r in ratios))
        if paired:
            course_times, lightly_times = paired["course"], paired["lightly"]
            ratios = sorted(l / c for c, l in zip(course_times, lightly_times))
            quartiles = statistics.quantiles(ratios, n=4)
            print(f"paired, one process, the two steps alternating ({len(ratios)} pairs): course "
                  f"{statistics.median(course_times):.3f} s/step, "
                  f"lightly {statistics.median(lightly_times):.3f} s/step; "
                  f"lightly / course per pair: median {statistics.median(ratios):.2f} "
                  f"(quartiles {quartiles[0]:.2f}-{quartiles[2]:.2f})")
        print(f"augmentation of one batch: course views_of_batch {median_of('course', 'augment'):.3f} s, "
              f"lightly DINOTransform (per PIL image) {median_of('lightly', 'augment'):.3f} s")
        return
    import json
    if args.threads:
        torch.set_num_threads(args.threads)

    from lightly.transforms import DINOTransform
    from lightly_dino import LightlyDINO

    from dino_course import loss as course_loss
    from dino_course import training
    from dino_course.data.datasets import load_digits
    from dino_course.job.train import PRESETS, _Parts, build_augmentation, build_model

    config = PRESETS[args.preset]
    parts = _Parts()
    data = load_digits(config.image_size)
    images = data.train_images[: config.batch_size]
    augment = build_augmentation(config)
    views = augment.views_of_batch(images, torch.Generator().manual_seed(0))
    total_iterations = max(args.steps, args.paired_steps) + args.warmup + 1

    # ---- the course's step
    model = build_model(config, parts, total_iterations)
    criterion = course_loss.DINOLoss(config.output_dim, epochs=2, warmup_teacher_temp_epochs=0)
    optimizer = torch.optim.AdamW(training.parameter_groups(model.student))
    schedules = training.TrainingSchedules.create(config.epochs, total_iterations, config.batch_size, base_lr=config.base_lr,
                                                  warmup_epochs=0)

    def course_step(i: int) -> None:
        training.train_step(model, criterion, optimizer, views, i, 0, schedules, clip_grad=config.clip_grad, freeze_last_layer=1)

    # ---- the same step from lightly's components (same backbone weights)
    lightly = LightlyDINO(copy.deepcopy(model.student.backbone), config)

    def lightly_step(i: int) -> None:
        lightly.step(views, i, 0, schedules, model.momentum_schedule)

    if args.only == "paired":
        # Both steps in one process, alternating (course-lightly, then lightly-course), so that
        # a busy spell of a shared machine slows both sides of a pair alike; the per-process
        # rounds above also see how each process happens to be placed, which varies by 10-20 %.
        time_steps(course_step, args.warmup)
        time_steps(lightly_step, args.warmup)
        times: dict[str, list[float]] = {"course": [], "lightly": []}
        for i in range(args.paired_steps):
            order = ("course", "lightly") if i % 2 == 0 else ("lightly", "course")
            for name in order:
                start = time.perf_counter()
                (course_step if name == "course" else lightly_step)(args.warmup + i)
                times[name].append(time.perf_counter() - start)
        print(json.dumps(times))
        return
    step = course_step if args.only == "course" else lightly_step
    flops_per_second = matmul_flops_per_second()
    before = peak_rss_mb()
    flops = count_flops(step)
    time_steps(step, args.warmup)
    seconds = statistics.median(time_steps(step, args.steps))
    memory = peak_rss_mb() - before
    if args.only == "course":
        start = time.perf_counter()
        augment.views_of_batch(images, torch.Generator().manual_seed(1))
        augment_seconds = time.perf_counter() - start
    else:
        from PIL import Image

        transform = DINOTransform(global_crop_size=config.global_size, local_crop_size=config.local_size,
                                  n_local_views=config.n_local, hf_prob=config.flip_p, local_crop_scale=config.local_scale)
        pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]
        start = time.perf_counter()
        for image in pil:
            transform(image)
        augment_seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds, "rate": config.batch_size / seconds, "memory": memory, "flops": flops,
        "share": flops / seconds / flops_per_second, "matmul": flops_per_second, "augment": augment_seconds,
        "batch": config.batch_size, "views": len(views), "sizes": f"{config.global_size}/{config.local_size}",
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
