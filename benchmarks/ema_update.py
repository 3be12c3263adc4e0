"""Benchmark: the reference EMA update (fused foreach ops) against a plain per-parameter loop.

    python benchmarks/ema_update.py [--threads N]

Prints one table: time per teacher update for the course's tiny CPU ViT and the paper's
ViT-S/16 (each with a DINO-sized projection head stand-in), and the speed-up.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils import benchmark

from dino_course.networks.vit import vit_small, vit_tiny_cpu
from solutions.student_teacher import build_teacher, ema_update


def plain_loop_ema(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """What most first implementations look like: two small ops per parameter tensor."""
    with torch.no_grad():
        for teacher_param, student_param in zip(teacher.parameters(), student.parameters()):
            teacher_param.mul_(momentum).add_(student_param, alpha=1.0 - momentum)


def with_head(backbone: nn.Module, hidden: int, bottleneck: int, out_dim: int) -> nn.Module:
    # Same tensor shapes as DINO's projection head (3-layer MLP, weight-normalised last layer).
    dim = backbone.embed_dim
    head = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, bottleneck), nn.Linear(bottleneck, out_dim, bias=False))
    return nn.Sequential(backbone, head)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {
        "tiny CPU ViT + head 512/64/1024": with_head(vit_tiny_cpu(), 512, 64, 1024),
        "ViT-S/16 + head 2048/256/65536": with_head(vit_small(), 2048, 256, 65536),
    }
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    print(f"| model | parameters | tensors | plain loop (ms) | reference foreach (ms) | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, student in models.items():
        teacher = build_teacher(student)
        for _ in range(10):  # warm up: the first updates of a fresh copy pay for page faults on its memory
            plain_loop_ema(teacher, student, 0.996)
            ema_update(teacher, student, 0.996)
        times = {}
        for label, function in (("loop", plain_loop_ema), ("foreach", ema_update)):
            timer = benchmark.Timer(stmt="f(t, s, 0.996)", globals={"f": function, "t": teacher, "s": student}, num_threads=args.threads)
            times[label] = timer.blocked_autorange(min_run_time=2.0).median * 1e3
        n_params = sum(p.numel() for p in student.parameters())
        n_tensors = len(list(student.parameters()))
        print(f"| {name} | {n_params / 1e6:.2f} M | {n_tensors} | {times['loop']:.3f} | {times['foreach']:.3f} | {times['loop'] / times['foreach']:.2f}x |")


if __name__ == "__main__":
    main()
