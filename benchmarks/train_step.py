"""Benchmark: the course's full DINO training step against the original DINO code and `lightly`'s.

    pip install -e .[bench]          # lightly, only for this benchmark
    DINO_COURSE_REFERENCE=all python benchmarks/train_step.py [--preset cpu-digits] [--threads 1 2] \\
        [--original-dir path/to/dino] [--vit-s16]

All steps use the same ViT backbone (same weights), the same head sizes and the same views
(2 global + n local crops, drawn once by the course's multi-crop data path), and do the same
work: teacher forward on the global views, student forward on all views, DINO loss with
centering, backward, per-tensor gradient clipping (3.0), last-layer freeze, AdamW step, EMA.

  course:   CompleteDINOModel (3.4) + DINOLoss (4.3) + train_step (4.4) with the reference code
  original: facebookresearch/dino's modules imported unchanged from `--original-dir`
            (`original_dino.py`: its ViT, DINOHead, MultiCropWrapper, DINOLoss, clip_gradients,
            cancel_gradients_last_layer, get_params_groups, in train_one_epoch's order); the same
            weights (state-dict keys match); without `--original-dir` the column is skipped
  lightly:  lightly.models.modules.DINOProjectionHead, lightly.loss.DINOLoss,
            lightly.models.utils.update_momentum, each view through the student separately
            (as lightly's DINO example does), clipping/freeze written the same way.

`--vit-s16` times ViT-S/16 (the `paper` preset's network and head, K = 65536) on 2 x 224 + 2 x 96 px
crops of a small batch (`--batch-size`, default 8) instead of a preset's.

Before timing, the course's and the original's steps run `--check-steps` iterations from the same
state on the same views and schedules, and their losses must agree (`--loss-tolerance`).

The augmentations are timed separately: the course's `MultiCropAugmentation.views_of_batch`
on a uint8 batch vs
`lightly.transforms.DINOTransform` per PIL image, at the same crop sizes.

Timed twice: in alternating rounds, each side in its own fresh process (so that its peak
memory is its own), and paired: all steps in one process, alternating step by step in ABBA
order (course, original, lightly, then the reverse), which compares them under the same machine
conditions (on a shared machine, how fast a fresh process runs varies by 10-20 % from one process
to the next, more than the steps differ). Each is done at every thread count of `--threads`.

Reported per step: median seconds, images/s (source images per second), peak memory (the
process's max RSS growth on CPU, `torch.cuda.max_memory_allocated` on GPU), and the share of
the machine's measured float32 matmul FLOP/s (a large square matmul) that the step reaches,
with the step's FLOPs counted by `torch.utils.flop_counter.FlopCounterMode` (attention included:
the course's `scaled_dot_product_attention` is counted as its two matmuls, see `count_flops`).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import resource
import statistics
import sys
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


def peak_tensor_mb(step) -> float:
    """Peak tensor memory (MiB) allocated during one call of `step`, above what was live before it.

    On a GPU this is `torch.cuda.max_memory_allocated()`; PyTorch keeps no such counter for CPU
    memory, so it is read from the profiler as Lesson 3.3's `measure_forward` does: the running sum
    of each op's own allocations minus frees, in order, and its maximum. Unlike the process's peak
    resident memory (`peak_rss_mb`), it leaves out the allocator's cached blocks, oneDNN's primitive
    cache and the imported libraries, so two steps in one process compare.
    """
    with torch.autograd.profiler.profile(profile_memory=True) as prof:
        step(0)
    live = peak = 0
    for event in prof.function_events:
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def time_steps(step, steps: int) -> list[float]:
    times = []
    for i in range(steps):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    return times


def count_flops(step) -> int:
    """FLOPs of one call of `step`, attention included.

    `FlopCounterMode` counts matmuls and convolutions; it does not know the oneDNN linear that the
    course's ViT runs on x86 CPUs (counted here as its matmul), and on a CPU it does not know the fused
    attention kernel that `F.scaled_dot_product_attention` runs, so that kernel is counted here as
    the matmuls an explicit attention does: Q K^T and P V forward (PyTorch's `sdpa_flop_count`),
    four of the same size backward (not `sdpa_backward_flop_count`, which adds the fused kernel's
    recomputation of Q K^T), so that the course's and the original's counts compare.
    """
    from torch.utils import flop_counter

    aten = torch.ops.aten

    def forward_flops(query, key, value, *args, **kwargs) -> int:  # shapes (FlopCounterMode passes them)
        return flop_counter.sdpa_flop_count(query, key, value)

    def backward_flops(grad_out, query, key, value, *args, **kwargs) -> int:
        return 2 * flop_counter.sdpa_flop_count(query, key, value)

    def onednn_linear_flops(rows, weight, *args, **kwargs) -> int:  # the ViT's oneDNN linear (networks/vit.py)
        return 2 * math.prod(rows[:-1]) * rows[-1] * weight[0]

    mapping = {}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        mapping[torch.ops.mkldnn._linear_pointwise] = onednn_linear_flops
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = forward_flops
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = backward_flops
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=mapping)
    with counter:
        step(0)
    return counter.get_total_flops()


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-digits")
    parser.add_argument("--vit-s16", action="store_true",
                        help="ViT-S/16 and the paper's head on 2 x 224 + 2 x 96 px crops instead of the preset")
    parser.add_argument("--batch-size", type=int, default=8, help="images per step with --vit-s16 (default 8)")
    parser.add_argument("--original-dir", help="a checkout of facebookresearch/dino (e.g. path/to/dino, cloned at 7c446df)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[0], help="torch threads; several: each in turn (0: default)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side (default 3; 0 skips)")
    parser.add_argument("--paired-steps", type=int, default=40,
                        help="steps of each side timed alternately in one process (default 40; 0 skips)")
    parser.add_argument("--check-steps", type=int, default=5,
                        help="iterations over which the course's and the original's losses must agree (default 5)")
    parser.add_argument("--loss-tolerance", type=float, default=1e-4,
                        help="largest |course - original| loss difference accepted (default 1e-4: float32 rounding "
                             "through a few AdamW steps; tests/dino_v1_golden.README.md: 1e-5 over 4 steps of a tiny model)")
    parser.add_argument("--only", choices=["course", "original", "lightly", "paired"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("steps", "batch_size", "check_steps"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.original_dir:
        from pathlib import Path

        missing = [f"{m}.py" for m in ("utils", "vision_transformer", "main_dino") if not (Path(args.original_dir) / f"{m}.py").is_file()]
        if missing:
            parser.error(f"--original-dir {args.original_dir!r} lacks {', '.join(missing)}: expected a checkout of facebookresearch/dino")
    if args.rounds <= 0 and args.paired_steps <= 0:
        parser.error("nothing to time: --rounds and --paired-steps are both 0")
    if any(t < 0 for t in args.threads):
        parser.error(f"--threads must be >= 0, got {args.threads}")
    return args


def run_worker(argv: list[str], what: str, threads: int) -> dict:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, __file__, *argv, "--only", what, "--threads", str(threads)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the {what} benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(args: argparse.Namespace, sides: list[str], threads: int) -> None:
    """Drive one thread count: rounds of fresh processes per side, then the paired run; print the table."""
    import sys

    argv = sys.argv[1:]
    # rounds alternate the sides, so that a busy spell or a clock change hits all alike
    rounds: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name in sides:
            rounds[name].append(run_worker(argv, name, threads))
    paired = run_worker(argv, "paired", threads) if args.paired_steps else None
    load = os.getloadavg()[0]

    def median_of(name: str, key: str) -> float:
        return statistics.median(row[key] for row in rounds[name])

    info = rounds["course"][0] if args.rounds else paired["info"]
    print(f"\n{info['label']}: batch {info['batch']}, {info['views']} views ({info['sizes']} px), torch threads {info['threads']}; "
          f"load average {load:.1f} after the run")
    if paired and "check" in paired:
        check = paired["check"]
        print(f"losses over {len(check['course'])} steps from the same state: course " + ", ".join(f"{v:.6f}" for v in check["course"])
              + f"; largest |course - original| {check['max_difference']:.2e}")
    if args.rounds:
        print(f"{args.rounds} alternating rounds of {args.steps} timed steps, each side in its own process (medians over rounds); "
              f"measured float32 matmul (1024 x 1024): {median_of('course', 'matmul') / 1e9:.1f} GFLOP/s")
        print("| step | s/step (median) | images/s | peak memory growth (MB) | GFLOP per step | share of matmul FLOP/s |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name in sides:
            print(f"| {name} | {median_of(name, 'seconds'):.3f} | {median_of(name, 'rate'):.0f} | {median_of(name, 'memory'):.0f} | "
                  f"{median_of(name, 'flops') / 1e9:.2f} | {100 * median_of(name, 'share'):.0f} % |")
        print(f"augmentation of one batch: course views_of_batch {median_of('course', 'augment'):.3f} s"
              + (f", lightly DINOTransform (per PIL image) {median_of('lightly', 'augment'):.3f} s" if "lightly" in sides else ""))
    if paired:
        times = paired["times"]
        print(f"paired, one process, the steps alternating in ABBA order ({args.paired_steps} rounds after {args.warmup} warm-up steps each; "
              f"matmul {paired['matmul'] / 1e9:.1f} GFLOP/s, {paired['flops'] / 1e9:.2f} GFLOP per course step):")
        print("| step | s/step median (quartiles) | its time / course's per round: median (quartiles) | share of matmul FLOP/s "
              "| peak tensor memory in a step (MiB) | its peak / course's |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name in sides:
            quartiles = statistics.quantiles(times[name], n=4)
            ratios = [other / course for other, course in zip(times[name], times["course"])]
            ratio_quartiles = statistics.quantiles(ratios, n=4)
            print(f"| {name} | {statistics.median(times[name]):.4f} ({quartiles[0]:.4f}-{quartiles[2]:.4f}) | "
                  f"{statistics.median(ratios):.2f} ({ratio_quartiles[0]:.2f}-{ratio_quartiles[2]:.2f}) | "
                  f"{100 * paired['flops'] / statistics.median(times[name]) / paired['matmul']:.0f} % | "
                  f"{paired['peak_tensor_mb'][name]:.1f} | {paired['peak_tensor_mb'][name] / paired['peak_tensor_mb']['course']:.2f} |")


def main() -> None:
    args = parse_arguments()
    if args.only is None:
        sys.stdout.reconfigure(line_buffering=True)  # each table as soon as it is measured
        sides = ["course"] + (["original"] if args.original_dir else []) + ["lightly"]
        if not args.original_dir:
            from original_dino import HOW_TO_GET_IT

            print(f"(no original column: {HOW_TO_GET_IT})")
        for threads in args.threads:
            report(args, sides, threads)
        return
    worker(args)


CRITERION_EPOCHS = 2  # the teacher temperature is constant (no warm-up) on every side


def build_course(config, parts, iterations: int):
    """The main job's model and fused AdamW for `config`, a loss with a constant teacher temperature,
    and schedules with no warm-up: (model, criterion, optimizer, schedules) for `iterations` steps."""
    from dino_course import loss as course_loss
    from dino_course import training
    from dino_course.job.train import build_model, build_optimizer

    model = build_model(config, parts, iterations)
    criterion = course_loss.DINOLoss(config.output_dim, epochs=CRITERION_EPOCHS, warmup_teacher_temp=config.teacher_temp,
                                     teacher_temp=config.teacher_temp, warmup_teacher_temp_epochs=0,
                                     student_temp=config.student_temp, center_momentum=config.center_momentum)
    optimizer = build_optimizer(model.student, parts)  # the main job's
    schedules = training.TrainingSchedules.create(config.epochs, iterations, config.batch_size, base_lr=config.base_lr,
                                                  warmup_epochs=0)
    return model, criterion, optimizer, schedules


def worker(args: argparse.Namespace) -> None:
    import dataclasses
    import json

    threads = args.threads[-1]
    if threads:
        torch.set_num_threads(threads)

    from lightly_dino import LightlyDINO

    from dino_course import training
    from dino_course.data.datasets import load_digits
    from dino_course.job.train import PRESETS, _Parts, build_augmentation

    if args.vit_s16:  # the paper's network and head; 2 local crops and a small batch, so that a CPU step takes seconds
        config = dataclasses.replace(PRESETS["paper"], image_size=224, n_local=2, batch_size=args.batch_size)
        label = f"ViT-S/16, head K {config.output_dim}"
    else:
        config = PRESETS[args.preset]
        label = f"preset {args.preset}"
    parts = _Parts()
    data = load_digits(config.image_size)
    images = data.train_images[: config.batch_size]
    augment = build_augmentation(config)
    views = augment.views_of_batch(images, torch.Generator().manual_seed(0))
    total_iterations = max(args.steps, args.paired_steps) + args.warmup + args.check_steps + 3  # + 2 peak-memory steps
    info = {"label": label, "batch": config.batch_size, "views": len(views), "sizes": f"{config.global_size}/{config.local_size}",
            "threads": torch.get_num_threads()}

    # ---- the course's step
    model, criterion, optimizer, schedules = build_course(config, parts, total_iterations)
    steps = {}

    def course_step(i: int) -> float:
        return training.train_step(model, criterion, optimizer, views, i, 0, schedules, clip_grad=config.clip_grad,
                                   freeze_last_layer=config.freeze_last_layer)["loss"]

    steps["course"] = course_step

    # ---- the original's step (same weights), when its code is given
    if args.original_dir and args.only in ("original", "paired"):
        from original_dino import OriginalDINO, import_original

        no_warmup = dataclasses.replace(config, warmup_teacher_temp=config.teacher_temp, warmup_teacher_temp_epochs=0)
        original = OriginalDINO(import_original(args.original_dir), model, no_warmup, CRITERION_EPOCHS)

        def original_step(i: int) -> float:
            return original.step(views, i, 0, schedules, model.momentum_schedule).item()

        steps["original"] = original_step

    # ---- the same step from lightly's components (same backbone weights)
    if args.only in ("lightly", "paired"):
        lightly = LightlyDINO(copy.deepcopy(model.student.backbone), config)

        def lightly_step(i: int) -> float:
            return lightly.step(views, i, 0, schedules, model.momentum_schedule).item()

        steps["lightly"] = lightly_step

    if args.only == "paired":
        result = {"info": info}
        if "original" in steps:  # same state, views and schedules: the losses must agree
            losses = {name: [steps[name](i) for i in range(args.check_steps)] for name in ("course", "original")}
            difference = max(abs(a - b) for a, b in zip(losses["course"], losses["original"]))
            if not difference <= args.loss_tolerance:
                raise SystemExit(f"the course's and the original's losses differ by {difference:.3g} (> --loss-tolerance "
                                 f"{args.loss_tolerance:g}): course {losses['course']}, original {losses['original']}")
            result["check"] = {**losses, "max_difference": difference}
        first = args.check_steps
        result["matmul"] = matmul_flops_per_second()
        result["flops"] = count_flops(lambda i: course_step(first))
        # All steps in one process, alternating in ABBA order (course, original, lightly, then the
        # reverse), so that a busy spell of a shared machine slows every side of a round alike.
        for name in steps:
            time_steps(lambda i: steps[name](first + i), args.warmup)
        # each side's tensor peak over two steps after its warm-up (the same in both, the state aside)
        result["peak_tensor_mb"] = {name: max(peak_tensor_mb(lambda i: steps[name](first + args.warmup + j)) for j in range(2))
                                    for name in steps}
        first += 2
        times: dict[str, list[float]] = {name: [] for name in steps}
        for i in range(args.paired_steps):
            order = list(steps) if i % 2 == 0 else list(reversed(steps))
            for name in order:
                start = time.perf_counter()
                steps[name](first + args.warmup + i)
                times[name].append(time.perf_counter() - start)
        result["times"] = times
        print(json.dumps(result))
        return
    step = steps[args.only]
    flops_per_second = matmul_flops_per_second()
    before = peak_rss_mb()
    flops = count_flops(step)
    time_steps(step, args.warmup)
    seconds = statistics.median(time_steps(step, args.steps))
    memory = peak_rss_mb() - before
    if args.only == "lightly":
        from lightly.transforms import DINOTransform
        from PIL import Image

        transform = DINOTransform(global_crop_size=config.global_size, local_crop_size=config.local_size,
                                  n_local_views=config.n_local, hf_prob=config.flip_p, local_crop_scale=config.local_scale)
        pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]
        start = time.perf_counter()
        for image in pil:
            transform(image)
        augment_seconds = time.perf_counter() - start
    else:
        start = time.perf_counter()
        augment.views_of_batch(images, torch.Generator().manual_seed(1))
        augment_seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds, "rate": config.batch_size / seconds, "memory": memory, "flops": flops,
        "share": flops / seconds / flops_per_second, "matmul": flops_per_second, "augment": augment_seconds, **info,
    }))


if __name__ == "__main__":
    main()
