"""Lesson 4.1: centering the teacher's outputs with a running mean.

DINO has no negative pairs and no labels, so nothing in the loss itself stops a trivial
solution. One such solution: one output dimension k grows larger than all others for every
image, the teacher puts all its probability on k, the student copies it, the loss is zero and
nothing has been learned ("one dimension dominates"). Centering removes that incentive by
subtracting from the teacher's logits a running mean `c` of the logits it produced recently:

    g_t(x) ← g_t(x) − c                                  (Caron et al. 2021, Eq. 4)
    c ← m · c + (1 − m) · (1/B) Σ_i g_t(x_i)              (m = 0.9, the "center momentum")

A dimension that is large for *every* image is large in `c` too, and is cancelled. What
survives is how an image differs from the average image. Centering alone pushes towards the
other collapse, a uniform output (Lesson 4.2 balances it with sharpening).

Details that match the original implementation (and the golden numbers):
  - the center is updated *after* the loss of an iteration is computed, so an iteration's loss
    uses only the center of earlier iterations;
  - the batch mean is taken over the *raw* teacher logits (not centred, not divided by the
    temperature), over all rows of both global views;
  - under `torch.distributed` the mean runs over the rows of every process (an all-reduce),
    so all processes keep the same center; single process by default;
  - no gradient flows through the update.

Exercises: update_center
"""

from __future__ import annotations

import torch

from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)

LESSON = "4.1"
LESSON_TITLE = "Centering the teacher's outputs"
LESSON_NOTEBOOK = "lessons/module4/4.1_centering.ipynb"

# m of Eq. 4, the center momentum (the original DINOLoss's default): the center averages roughly the
# last 1/(1 − 0.9) = 10 batches. Every class and job of the course takes its default from here.
CENTER_MOMENTUM = 0.9


# --------------------------------------------------------------------------------------------
# Given: summing over processes when training runs under torch.distributed
# --------------------------------------------------------------------------------------------


def sum_across_processes(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all processes of the default process group; a copy of it when there is none.

    Single-process runs (the course default) never initialise `torch.distributed`, and then
    this is the identity. Under `torchrun` every process contributes its own tensor and every
    process gets the same sum back.
    """
    total = tensor.clone()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(total)  # default op: SUM
    return total


def world_size() -> int:
    """Number of processes taking part in training (1 without `torch.distributed`)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def _check_center_inputs(center: torch.Tensor, teacher_output: torch.Tensor, momentum: float) -> None:
    if not isinstance(center, torch.Tensor) or not isinstance(teacher_output, torch.Tensor):
        raise TypeError(
            f"center and teacher_output must be torch.Tensor, got {type(center).__name__} and {type(teacher_output).__name__}"
        )
    if teacher_output.dim() != 2 or teacher_output.shape[0] == 0:
        raise ValueError(f"teacher_output must have shape (2B, K) with at least one row, got {tuple(teacher_output.shape)}")
    if tuple(center.shape) != (1, teacher_output.shape[1]):
        raise ValueError(f"center must have shape (1, K) = (1, {teacher_output.shape[1]}), got {tuple(center.shape)}")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be a number in [0, 1], got {momentum!r}")


# --------------------------------------------------------------------------------------------
# The exercise
# --------------------------------------------------------------------------------------------


def update_center(center: torch.Tensor, teacher_output: torch.Tensor, momentum: float = CENTER_MOMENTUM) -> torch.Tensor:
    """Exercise 4.1 · the new running center: c ← m·c + (1 − m)·mean of the raw teacher logits.

        c_new = m · c + (1 − m) · (1 / (B_total)) Σ_i g_t(x_i)

    where the sum runs over all 2B rows of `teacher_output` (both global views) *and*, when
    `torch.distributed` is initialised, over the rows of every other process: sum the rows
    with `sum_across_processes` (given, the identity in a single process) and divide by
    `len(teacher_output) * world_size()`. No gradient may flow into the center, and the
    input `center` is not modified (return a new tensor).

    Args:
        center: `(1, K)`, the running center c.
        teacher_output: `(2B, K)`, the teacher's raw logits (not centred, not sharpened).
        momentum: m in [0, 1]; 0.9 in the paper. m = 1 keeps c; m = 0 replaces it by the batch mean.

    Returns:
        `(1, K)` float tensor, the new center, with `requires_grad=False`.

    Raises:
        ValueError: wrong shapes or a momentum outside [0, 1].

    Example:
        >>> center = torch.zeros(1, 3)
        >>> teacher_output = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]])
        >>> update_center(center, teacher_output, momentum=0.9)
        tensor([[0.2000, 0.0000, 0.2000]])
    """
    _check_center_inputs(center, teacher_output, momentum)
    # BEGIN SOLUTION
    with torch.no_grad():
        batch_sum = sum_across_processes(teacher_output.detach().float().sum(dim=0, keepdim=True))  # (1, K)
        batch_center = batch_sum / (len(teacher_output) * world_size())
        return center.detach() * momentum + batch_center * (1 - momentum)
    # END SOLUTION
