# Your exercises for Lesson 4.4: replace each `raise ExerciseNotStarted(...)` line with your code.
# Grade them with `pytest` (or `check("4.4")` in the lesson notebook).
# Maintainers: this file is generated from solutions/training.py by `dino-course stubs`;
# edit the solution there and regenerate instead of editing this copy.
"""Lesson 4.4: the DINO training step.

One iteration of DINO, in the order of the paper's Algorithm 1 and of the original code:

    1. schedules   lr ← lr_schedule[it] (both groups), wd ← wd_schedule[it] (decayed group only)
    2. forward     teacher on the 2 global views, student on all V views
    3. loss        DINO loss with the current center and τ_t(epoch); then the center moves (4.3)
    4. backward    zero the gradients, backpropagate into the student only
    5. clip        each parameter's gradient to norm ≤ clip, tensor by tensor
    6. freeze      drop the last layer's gradients during the first epoch(s)
    7. step        AdamW
    8. EMA         the teacher follows: θ_t ← τ·θ_t + (1 − τ)·θ_s with τ = momentum_schedule[it] (3.1)

The hyper-parameter schedules come from Lesson 3.1's `cosine_schedule`, one value per
iteration: the learning rate warms up linearly to `lr · batch_size / 256` (the linear scaling
rule, `batch_size` counted over all processes) and then decays to `min_lr`; the weight decay
rises from 0.04 to 0.4. The teacher momentum is not scheduled here: Lesson 3.1's wrapper owns
its schedule (`momentum_schedule`, 0.996 → 1), and phase 8 reads it through `model.update_teacher(it)`.

Course additions, named here: `train_step` raises `NonFiniteLossError` (the original prints
and exits the process), and `autocast_dtype=torch.bfloat16` runs forward and loss under
`torch.autocast` (the original uses float16 with a gradient scaler on GPUs; bfloat16 has
float32's range and needs no scaler). Defaults are fp32, as the golden numbers.

Exercises: parameter_groups, clip_gradients, gradient_norms_by_layer, TrainingSchedules.create, apply_schedules,
train_step
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)
from dino_course.heads import cancel_last_layer_gradients
from dino_course.student_teacher import cosine_schedule

LESSON = "4.4"
LESSON_TITLE = "The training step"
LESSON_NOTEBOOK = "lessons/module4/4.4_training_loop.ipynb"

# The optimisation settings of the course: every class and job takes its defaults from here.
# Peak learning rate for a batch of 256, scaled linearly with the batch (paper, Section 3.2:
# lr = 0.0005 · batchsize / 256; the original's --lr default).
BASE_LR = 5e-4
# Where the lr cosine ends (the original's --min_lr default; the paper only says "cosine schedule").
MIN_LR = 1e-6
# Epochs of linear lr warm-up from 0 (paper, Section 3.2; --warmup_epochs).
WARMUP_EPOCHS = 10
# Weight decay at the start of its cosine (paper, Section 3.2; --weight_decay): the original's help text
# says a smaller value at the beginning works well with ViTs.
WEIGHT_DECAY = 0.04
# ... and at its end (paper; --weight_decay_end): a larger decay late in training improves ViTs (help text).
WEIGHT_DECAY_END = 0.4
# Per-tensor gradient norm limit; 0 switches clipping off (the original's --clip_grad default; its help
# text: 0.3 to 1.0 can help larger ViTs).
CLIP_GRAD = 3.0
# Epochs during which the last layer (the prototypes) gets no update (--freeze_last_layer; its help text:
# doing so in the first epoch helps training, try more if the loss does not decrease).
FREEZE_LAST_LAYER = 1


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the weights were not updated."""


# --------------------------------------------------------------------------------------------
# The optimiser's parameter groups
# --------------------------------------------------------------------------------------------


def parameter_groups(model: nn.Module) -> list[dict]:
    """Exercise 4.4 · split the trainable parameters into a weight-decayed and a non-decayed group.

    The original decays every weight *matrix* (and higher-dimensional tensor, so the
    `cls_token (1,1,D)` and `pos_embed (1,1+N,D)` are decayed too) but neither biases nor
    normalisation weights: a parameter goes to the non-decayed group when its name ends in
    `.bias` or it is 1-D. Parameters with `requires_grad=False` (e.g. the frozen `weight_g`
    of the head's last layer) are left out entirely.

    Args:
        model: the student.

    Returns:
        `[{"params": [...], "param_names": [...]}, {"params": [...], "param_names": [...], "weight_decay": 0.0}]`,
        each list in `model.named_parameters()` order; pass it to `torch.optim.AdamW`.
        The first group's weight decay is set by the schedule (`apply_schedules`).

    Example:
        >>> groups = parameter_groups(nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2)))
        >>> groups[0]["param_names"], groups[1]["param_names"], groups[1]["weight_decay"]
        (['0.weight'], ['0.bias', '1.weight', '1.bias'], 0.0)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    raise ExerciseNotStarted("4.4", "parameter_groups")


# --------------------------------------------------------------------------------------------
# Per-tensor gradient clipping
# --------------------------------------------------------------------------------------------


def clip_gradients(model: nn.Module, clip: float) -> list[float]:
    """Exercise 4.4 · clip the gradient of each parameter tensor separately to norm ≤ `clip`.

    For every parameter that has a gradient (skip those whose `.grad` is None), in
    `model.named_parameters()` order:

        n = ‖grad‖₂;   coef = clip / (n + 1e-6);   if coef < 1: grad ← coef · grad   (in place)

    This is *not* `torch.nn.utils.clip_grad_norm_`, which rescales all gradients by one
    global norm: DINO limits each tensor on its own, so one exploding layer does not shrink
    the updates of all the others.

    Args:
        model: the student, after `backward()`.
        clip: the norm limit, > 0 (3.0 in the paper).

    Returns:
        The pre-clip norms as Python floats, one per parameter with a gradient, in order.

    Example:
        >>> layer = nn.Linear(2, 1, bias=False)
        >>> layer.weight.grad = torch.tensor([[3.0, 4.0]])
        >>> clip_gradients(layer, clip=1.0), layer.weight.grad
        ([5.0], tensor([[0.6000, 0.8000]]))
    """
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
        raise ValueError(f"clip must be a positive number, got {clip!r}")
    raise ExerciseNotStarted("4.4", "clip_gradients")


def gradient_group(name: str) -> str:
    """The layer a parameter belongs to, for `gradient_norms_by_layer`: its name's first two components,
    three for a transformer block (`backbone.blocks.3.attn.qkv.weight` → `backbone.blocks.3`)."""
    parts = name.split(".")
    return ".".join(parts[:3] if len(parts) > 2 and parts[1] == "blocks" else parts[:2])


def gradient_norms_by_layer(model: nn.Module) -> dict[str, float]:
    """Exercise 4.4 · where the gradient goes: the L2 norm of the gradient of each layer.

    Call it after `backward()`. Group the parameters by `gradient_group(name)`, the first two
    components of the parameter's name, or three in a transformer block: for the student
    `MultiCropNetwork` the groups are `backbone.cls_token`, `backbone.pos_embed`,
    `backbone.patch_embed`, `backbone.blocks.0`, `backbone.blocks.1`, …, `backbone.norm`,
    `head.mlp` and `head.last_layer`. A group's norm is the L2 norm of all its gradients
    together, as if they were one long vector:

        ‖g_group‖₂ = sqrt( Σ_{p in group} ‖grad_p‖₂² )

    so it is the root of the sum of the squares of the per-parameter norms `clip_gradients`
    returns (measure before clipping to see the gradient backward produced). A parameter
    whose `.grad` is None received no gradient (the teacher's, a frozen `requires_grad=False`
    one, the last layer while `cancel_last_layer_gradients` drops it): skip it, and leave out a
    group none of whose parameters has a gradient. A model before any `backward()`, or the
    teacher, gives `{}`. Leave the gradients as they are.

    Args:
        model: a module after `backward()`, e.g. `model.student` or `model.teacher`.

    Returns:
        `{group: norm}` with Python floats, groups in the order of `model.named_parameters()`.

    Example:
        >>> layer = nn.Linear(2, 1)
        >>> layer.weight.grad = torch.tensor([[3.0, 0.0]])
        >>> layer.bias.grad = torch.tensor([4.0])
        >>> gradient_norms_by_layer(nn.ModuleDict({"head": nn.Sequential(layer)}))  # one group: head.0
        {'head.0': 5.0}
    """
    raise ExerciseNotStarted("4.4", "gradient_norms_by_layer")


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSchedules:
    """The optimiser's per-iteration schedules of one training run (float64 tensors of length epochs · niter_per_ep).

    `lr`: learning rate; `weight_decay`: of the decayed group. Index them with the global
    iteration `it = epoch · niter_per_ep + i`. (The teacher's momentum schedule belongs to the
    model: `StudentTeacherWrapper.momentum_schedule`, Lesson 3.1.)
    """

    lr: torch.Tensor
    weight_decay: torch.Tensor
    niter_per_ep: int

    def __len__(self) -> int:
        return len(self.lr)

    @classmethod
    def create(
        cls,
        epochs: int,
        niter_per_ep: int,
        batch_size: int,
        *,
        base_lr: float = BASE_LR,
        min_lr: float = MIN_LR,
        warmup_epochs: int = WARMUP_EPOCHS,
        weight_decay: float = WEIGHT_DECAY,
        weight_decay_end: float = WEIGHT_DECAY_END,
    ) -> "TrainingSchedules":
        """Exercise 4.4 · the two optimiser schedules, built with Lesson 3.1's `cosine_schedule`.

            lr:           warm-up from 0 to base_lr · batch_size / 256 over `warmup_epochs`,
                          then cosine to `min_lr`        (linear scaling rule, Goyal et al.)
            weight_decay: cosine from `weight_decay` to `weight_decay_end`, no warm-up

        Args:
            epochs, niter_per_ep: length of training; niter_per_ep = iterations per epoch.
            batch_size: images per iteration summed over all processes (the original uses
                batch_size_per_gpu · world_size).
            base_lr: lr for a batch of 256 (5e-4 in the paper). Other arguments: the paper's values.

        Returns:
            `TrainingSchedules(lr, weight_decay, niter_per_ep)`.

        Raises:
            ValueError: a non-positive batch size (epochs and warm-up are checked by `cosine_schedule`).

        Example:
            >>> s = TrainingSchedules.create(epochs=3, niter_per_ep=2, batch_size=4, warmup_epochs=1)
            >>> s.lr[:2].tolist(), round(float(s.weight_decay[0]), 3)
            ([0.0, 7.8125e-06], 0.04)
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int (images per iteration over all processes), got {batch_size!r}")
        raise ExerciseNotStarted("4.4", "TrainingSchedules.create")


def apply_schedules(optimizer: torch.optim.Optimizer, schedules: TrainingSchedules, it: int) -> tuple[float, float]:
    """Exercise 4.4 · set iteration `it`'s learning rate and weight decay in the optimiser.

    Every parameter group gets `lr = schedules.lr[it]`; only the *first* group (the
    regularised one of `parameter_groups`) gets `weight_decay = schedules.weight_decay[it]`,
    the others keep theirs (0). Store Python floats.

    Returns:
        `(lr, weight_decay)` of iteration `it`, as floats.

    Raises:
        ValueError: `it` outside the schedules.

    Example:
        >>> layer = nn.Linear(2, 2)
        >>> optimizer = torch.optim.AdamW(parameter_groups(layer))
        >>> s = TrainingSchedules.create(epochs=2, niter_per_ep=1, batch_size=256, warmup_epochs=1)
        >>> apply_schedules(optimizer, s, 1)
        (0.0005, 0.22)
        >>> optimizer.param_groups[1]["weight_decay"]
        0.0
    """
    if isinstance(it, bool) or not isinstance(it, int) or not 0 <= it < len(schedules.lr):
        raise ValueError(f"it must be an int in [0, {len(schedules.lr) - 1}], got {it!r}")
    raise ExerciseNotStarted("4.4", "apply_schedules")


# --------------------------------------------------------------------------------------------
# One training iteration
# --------------------------------------------------------------------------------------------


def train_step(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    views: list[torch.Tensor],
    it: int,
    epoch: int,
    schedules: TrainingSchedules,
    clip_grad: float = CLIP_GRAD,
    freeze_last_layer: int = FREEZE_LAST_LAYER,
    autocast_dtype: torch.dtype | None = None,
) -> dict:
    """Exercise 4.4 · one DINO iteration, phase by phase as in Algorithm 1 (see the module docstring).

        1. `lr, wd = apply_schedules(optimizer, schedules, it)`
        2. `student_output, teacher_output = model(views)`    (inside `torch.autocast(...)` when
           `autocast_dtype` is given: `device_type=views[0].device.type`, `dtype=autocast_dtype`)
        3. `loss = criterion(student_output, teacher_output, epoch)`    (same autocast block)
           if the loss is not finite: raise `NonFiniteLossError` *before* touching the weights
        4. `optimizer.zero_grad()`, `loss.backward()`
        5. `grad_norms = clip_gradients(model.student, clip_grad)` unless `clip_grad` is 0
        6. `cancel_last_layer_gradients(model.student, epoch, freeze_last_layer)`  (Lesson 3.3)
        7. `optimizer.step()`
        8. `momentum = model.update_teacher(it)`      (Lesson 3.1: the EMA with the model's own
           momentum_schedule[it]; the model is the one owner of the teacher momentum)

    Args:
        model: a student-teacher wrapper (e.g. `CompleteDINOModel`, `StudentTeacherWrapper`):
            `model(views) -> (student_output, teacher_output)`, `.student`, `.update_teacher(it)`
            (which applies, and returns, the momentum of iteration `it` from its own schedule).
        criterion: a `DINOLoss` (it owns the center and the τ_t schedule).
        optimizer: built from `parameter_groups(model.student)`.
        views: V tensors `(B, C, H, W)`, global views first.
        it: global iteration (0-based); epoch: current epoch (0-based).
        schedules: from `TrainingSchedules.create` (learning rate and weight decay).
        clip_grad: per-tensor gradient norm limit (3.0, `CLIP_GRAD`); 0 switches clipping off.
        freeze_last_layer: epochs during which the last layer gets no update (1, `FREEZE_LAST_LAYER`).
        autocast_dtype: None (float32) or e.g. `torch.bfloat16`.

    Returns:
        `{"loss": float, "lr": float, "weight_decay": float, "momentum": float,
        "grad_norms": list[float]}` (an empty list when clipping is off).

    Raises:
        NonFiniteLossError: the loss is NaN or ±inf; no weight was changed.
    """
    if isinstance(clip_grad, bool) or not isinstance(clip_grad, (int, float)) or clip_grad < 0:
        raise ValueError(f"clip_grad must be a non-negative number (0 = no clipping), got {clip_grad!r}")
    if autocast_dtype is not None and not isinstance(autocast_dtype, torch.dtype):
        raise TypeError(f"autocast_dtype must be None or a torch.dtype such as torch.bfloat16, got {autocast_dtype!r}")
    raise ExerciseNotStarted("4.4", "train_step")
