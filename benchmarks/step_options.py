"""Benchmark: the main job's training step as it runs (float32, eager) against two options that
could make it faster: bfloat16 autocast (`train_step(..., autocast_dtype=torch.bfloat16)`) and
`torch.compile` of the student's and teacher's backbones.

    python benchmarks/step_options.py                      # cpu-digits, 1 and 2 threads
    python benchmarks/step_options.py --threads 2 --pairs 40

Each option gets its own model built from the same seed, the same batch of views and the same
schedules; after the warm-up (for `torch.compile`: the compilation, timed and reported on its own)
the three steps run one after the other, in ABBA order round by round, so that a busy spell slows
each alike. The table gives each option's median seconds per step with quartiles, the median of
the per-round ratios eager / option (above 1: the option is faster), and how far its loss drifted
from the float32 eager step's over the same steps (bfloat16 changes the numbers; a compiled graph
only reorders float32 arithmetic). Run it on a quiet machine (`uptime`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

os.environ.setdefault("DINO_COURSE_REFERENCE", "all")  # the reference step, as benchmarks/train_step.py times it


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return q1, median, q3


def build_step(option: str, config, parts, iterations: int):
    from dino_course import training
    from train_step import build_course  # the same model, loss, optimiser and schedules as train_step.py times

    model, criterion, optimizer, schedules = build_course(config, parts, iterations)
    if option == "compile":  # fixed shapes: one graph per crop size, no recompilation
        model.student.backbone.compile(dynamic=False)
        model.teacher.backbone.compile(dynamic=False)
    dtype = torch.bfloat16 if option == "bf16" else None

    def step(views, i: int) -> float:
        return training.train_step(model, criterion, optimizer, views, i, 0, schedules, clip_grad=config.clip_grad,
                                   freeze_last_layer=config.freeze_last_layer, autocast_dtype=dtype)["loss"]

    return step


def measure(threads: int, args: argparse.Namespace) -> None:
    from dino_course.data.datasets import load_digits
    from dino_course.job.train import PRESETS, _Parts, build_augmentation

    torch.set_num_threads(threads)
    config = PRESETS[args.preset]
    parts = _Parts()
    data = load_digits(config.image_size)
    views = build_augmentation(config).views_of_batch(data.train_images[: config.batch_size], torch.Generator().manual_seed(0))
    options = ["eager", "bf16", "compile"]
    iterations = args.warmup + args.pairs + 2
    steps = {option: build_step(option, config, parts, iterations) for option in options}
    losses = {option: [] for option in options}
    warmup_seconds = {}
    for option in options:
        start = time.perf_counter()
        for i in range(args.warmup):
            losses[option].append(steps[option](views, i))
        warmup_seconds[option] = time.perf_counter() - start
    seconds = {option: [] for option in options}
    for pair in range(args.pairs):
        order = options if pair % 2 == 0 else options[::-1]
        for option in order:
            start = time.perf_counter()
            losses[option].append(steps[option](views, args.warmup + pair))
            seconds[option].append(time.perf_counter() - start)
    print(f"\n{args.preset}, {threads} thread(s), {args.pairs} rounds after {args.warmup} warm-up steps "
          f"(batch {config.batch_size}, {len(views)} views)", flush=True)
    print("| step | s/step median (quartiles) | eager / option per round | warm-up s | largest loss drift from eager |")
    print("| --- | --- | --- | --- | --- |")
    for option in options:
        q1, median, q3 = quartiles(seconds[option])
        r1, ratio, r3 = quartiles([a / b for a, b in zip(seconds["eager"], seconds[option])])
        drift = max(abs(a - b) for a, b in zip(losses[option], losses["eager"]))
        label = {"eager": "float32 eager (the job's)", "bf16": "bfloat16 autocast", "compile": "torch.compile backbones"}[option]
        print(f"| {label} | {median:.4f} ({q1:.4f}-{q3:.4f}) | {ratio:.2f} ({r1:.2f}-{r3:.2f}) | "
              f"{warmup_seconds[option]:.1f} | {drift:.2e} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu-digits")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pairs", type=int, default=30, help="rounds in which each option runs one step (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first; they include compilation (default 3)")
    args = parser.parse_args()
    if args.pairs < 4 or args.warmup < 1:
        parser.error("--pairs must be at least 4 and --warmup at least 1")
    for threads in args.threads:
        measure(threads, args)


if __name__ == "__main__":
    main()
