"""The center under torch.distributed: 2 real processes (gloo, loopback) keep the same center,
equal to a single process's center over the same global batch (reference code)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

ROWS_PER_PROCESS, K = 6, 10  # each process: 2 global views x 3 images


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _global_teacher_outputs() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(ROWS_PER_PROCESS, K, generator=generator) + 3.0 for _ in range(2)]  # one per process


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    import solutions.centering as centering

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        center = torch.zeros(1, K)
        for _ in range(3):
            center = centering.update_center(center, _global_teacher_outputs()[rank], 0.9)
        torch.save(center, f"{out_dir}/center_{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_two_processes_share_the_single_process_center(tmp_path):
    import solutions.centering as centering

    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    centers = [torch.load(tmp_path / f"center_{rank}.pt", weights_only=True) for rank in range(2)]
    single = torch.zeros(1, K)
    everything = torch.cat(_global_teacher_outputs())
    for _ in range(3):
        single = centering.update_center(single, everything, 0.9)
    torch.testing.assert_close(centers[0], centers[1], rtol=0, atol=0)  # every process holds the same center
    torch.testing.assert_close(centers[0], single, rtol=1e-6, atol=1e-6)  # = one process seeing the global batch
