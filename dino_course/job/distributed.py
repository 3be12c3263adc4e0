"""Running the train job on several processes (torchrun + DDP), or on one without a process group.

    torchrun --nproc_per_node=2 -m dino_course train ...     # 2 processes, gloo on CPU, NCCL on GPU
    dino-course train ...                                    # 1 process, no torch.distributed at all

What changes with N processes, and why the result equals one process over the same global batch:
  - every process draws the *same* global batch (same seeded generator) and keeps its own
    contiguous slice of it (`shard`), so together they see exactly the images and views of a
    single-process run (a distributed sampler without the padding of PyTorch's);
  - the student is wrapped in `DistributedDataParallel`, which averages the gradients over
    the processes during `backward()`: the mean over N equal shards of per-shard mean losses
    is the mean over the whole batch;
  - the loss's center averages the teacher outputs over all processes (Lesson 4.1 all-reduces);
  - only rank 0 prints, writes metrics, figures and checkpoints.
"""

from __future__ import annotations

import faulthandler
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Environment", "setup", "teardown", "DistributedDINO", "average_across_processes"]


@dataclass(frozen=True)
class Environment:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, batch_size: int) -> slice:
        """This process's rows of a global batch of `batch_size` (which must split evenly)."""
        if batch_size % self.world_size:
            raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes {self.world_size}")
        per_process = batch_size // self.world_size
        return slice(self.rank * per_process, (self.rank + 1) * per_process)


def setup(device: str = "auto") -> Environment:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); otherwise a 1-process environment."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if world_size <= 1:
        return Environment(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    # Only rank 0 prints; if a process dies in native code (an abort in a communication library),
    # this still leaves its Python stack on stderr, which torchrun passes through.
    faulthandler.enable()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Environment(rank, world_size, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"))


def teardown(env: Environment, completed: bool = False) -> None:
    """Leave the process group. After a completed run the processes first meet at a barrier, so
    none shuts its connections down while another is still evaluating or writing figures (rank 0
    works on after the last step; the others would otherwise leave at once). After an error there
    is no barrier: the others notice the closed connections and stop with an error of their own."""
    if env.distributed and dist.is_initialized():
        if completed:
            dist.barrier()
        dist.destroy_process_group()


def average_across_processes(value: float) -> float:
    """Mean of a Python float over all processes (identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor) / dist.get_world_size()


class DistributedDINO(nn.Module):
    """A student-teacher model whose student runs inside `DistributedDataParallel`.

    It presents the wrapper interface that `train_step` expects (`model(views)`, `.student`,
    `.teacher`, `.update_teacher(it)`, `.momentum_schedule`), so the training step of
    Lesson 4.4 runs unchanged on N processes. `.student` stays the plain module (clipping,
    the last-layer freeze and the EMA pair its parameters by name); only the forward pass goes
    through the DDP wrapper, whose backward all-reduces the gradients.
    """

    def __init__(self, model: nn.Module, env: Environment) -> None:
        super().__init__()
        from torch.nn.parallel import DistributedDataParallel

        self.model = model
        device_ids = [env.device.index] if env.device.type == "cuda" else None
        # broadcast_buffers=False: each process keeps its own BatchNorm running statistics (the head's
        # BatchNorm option; the original's run would convert it to SyncBatchNorm); parameters are broadcast
        # from rank 0 when the wrapper is built, so all processes start equal. torch 2.14 deprecates the
        # argument in favour of `forward_sync_buffers`, which still syncs buffers at init; its own warning
        # says to keep `broadcast_buffers=False` until an `init_sync_buffers` exists, so it is silenced here.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
            self.student_ddp = DistributedDataParallel(model.student, device_ids=device_ids, broadcast_buffers=False)

    @property
    def student(self) -> nn.Module:
        return self.model.student

    @property
    def teacher(self) -> nn.Module:
        return self.model.teacher

    @property
    def momentum_schedule(self) -> torch.Tensor:
        return self.model.momentum_schedule

    def update_teacher(self, step: int) -> float:
        return self.model.update_teacher(step)

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        student_output = self.student_ddp(list(views))
        with torch.no_grad():
            teacher_output = self.model.teacher(list(views[: self.model.n_global_views]))
        return student_output, teacher_output
