"""Grouped multi-crop forward vs one backbone pass per view: time and peak memory.

    PYTHONPATH=$PWD python benchmarks/multicrop_forward.py            # both presets (~2 min on 2 idle cores)
    PYTHONPATH=$PWD python benchmarks/multicrop_forward.py --quick    # CPU preset only

Both networks hold the same backbone and head (same weights) and get the same views:

- per view: Lesson 3.1's `PerViewNetwork`, the backbone on each of the V views separately
  (V passes), then the head on the concatenated features;
- grouped: Lesson 3.4's `MultiCropNetwork` (reference), the backbone once per run of
  equal-size views (2 passes: globals, locals), then the head.

Presets: `tiny-cpu` (`dino_tiny_cpu`: ViT 96-d x 3 blocks, 32/16 px crops, head 512/64/1024) and
`vit-s16` (`dino_vit_small`: the paper's ViT-S/16, 224/96 px crops, head 2048/256/65536), each with
2 global + 8 local views. The student forward runs with autograd on, as in training.

Measured per preset and network: the median wall time of the forward ("fwd") and of forward +
backward of a sum of the outputs ("fwd+bwd") over `--repeats` runs after one warm-up, and the
peak CPU memory allocated by PyTorch during one forward + backward, above what was allocated
before it. Peak memory is read from the PyTorch profiler (`profile_memory=True`): the running
sum, in time order, of each op's own allocations minus frees, i.e. tensor memory from
PyTorch's CPU allocator at the resolution of one op, not the process RSS (Python's
`tracemalloc` does not see those allocations).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DINO_COURSE_REFERENCE", "all")  # benchmark the reference code

from dino_course.model import MultiCropNetwork  # noqa: E402
from dino_course.networks.dino_models import dino_tiny_cpu, dino_vit_small  # noqa: E402
from dino_course.student_teacher import PerViewNetwork  # noqa: E402

PRESETS = {
    # name: (factory, global size, local size)
    "tiny-cpu": (dino_tiny_cpu, 32, 16),
    "vit-s16": (dino_vit_small, 224, 96),
}


def make_views(batch: int, global_size: int, local_size: int, n_local: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    globals_ = [torch.randn(batch, 3, global_size, global_size, generator=generator) for _ in range(2)]
    locals_ = [torch.randn(batch, 3, local_size, local_size, generator=generator) for _ in range(n_local)]
    return globals_ + locals_


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up (allocator, kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_allocated_bytes(function) -> int:
    """Peak of PyTorch's CPU tensor memory during `function()`, above the level before it."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function()
    # Each event carries the net memory its op allocated itself (allocations minus frees inside
    # it); frees that happen outside any op are "[memory]" events. Their running sum in start
    # order is the live tensor memory, to the resolution of one op.
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    level = peak = 0
    for event in events:
        level += event.self_cpu_memory_usage
        peak = max(peak, level)
    return peak


def bench(preset: str, batch: int, n_local: int, repeats: int) -> list[dict]:
    factory, global_size, local_size = PRESETS[preset]
    torch.manual_seed(0)
    student = factory(epochs=1, steps_per_epoch=1).student  # a MultiCropNetwork
    networks = {"per view": PerViewNetwork(student.backbone, student.head), "grouped": MultiCropNetwork(student.backbone, student.head)}
    views = make_views(batch, global_size, local_size, n_local)
    with torch.no_grad():
        difference = float((networks["grouped"](views) - networks["per view"](views)).abs().max())
    rows = []
    for name, network in networks.items():

        def forward():
            return network(views)

        def forward_backward():
            network.zero_grad(set_to_none=True)
            network(views).sum().backward()

        rows.append(
            {
                "preset": preset,
                "network": name,
                "views": f"2x{global_size}+{n_local}x{local_size}",
                "batch": batch,
                "fwd_ms": 1000 * median_seconds(forward, repeats),
                "fwd_bwd_ms": 1000 * median_seconds(forward_backward, repeats),
                "peak_mib": peak_allocated_bytes(forward_backward) / 2**20,
                "max_abs_diff": difference,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the CPU preset")
    parser.add_argument("--n-local", type=int, default=8, help="local views (paper: 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement for tiny-cpu (median reported)")
    parser.add_argument("--repeats-vits", type=int, default=1, help="timed runs per measurement for vit-s16 (slow on 2 cores)")
    parser.add_argument("--batch-cpu", type=int, default=16, help="images per view for tiny-cpu")
    parser.add_argument("--batch-vits", type=int, default=2, help="images per view for vit-s16 (small: 2 cores)")
    args = parser.parse_args()

    rows = bench("tiny-cpu", args.batch_cpu, args.n_local, args.repeats)
    if not args.quick:
        rows += bench("vit-s16", args.batch_vits, args.n_local, args.repeats_vits)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of repeats; peak = PyTorch CPU allocator, fwd+bwd")
    print("| preset | network | views | B | fwd ms | fwd+bwd ms | peak MiB (fwd+bwd) | speed-up fwd | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    baseline = {}
    for row in rows:
        if row["network"] == "per view":
            baseline[row["preset"]] = row["fwd_ms"]
        speedup = baseline[row["preset"]] / row["fwd_ms"]
        print(
            f"| {row['preset']} | {row['network']} | {row['views']} | {row['batch']} | {row['fwd_ms']:.1f} | "
            f"{row['fwd_bwd_ms']:.1f} | {row['peak_mib']:.1f} | {speedup:.2f}x | {row['max_abs_diff']:.1e} |"
        )


if __name__ == "__main__":
    main()
