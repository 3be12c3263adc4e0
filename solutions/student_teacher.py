"""Lesson 3.1: student-teacher networks with an exponential-moving-average (EMA) teacher.

DINO trains one network, the *student* (parameters θ_s), by gradient descent. Its targets
come from a second network of the same architecture, the *teacher* (θ_t), which is never
trained by gradients. After every optimiser step the teacher moves a small way towards the
student:

    θ_t ← τ · θ_t + (1 − τ) · θ_s        (Caron et al. 2021, Eq. 2 and Algorithm 1)

With τ close to 1 the teacher is an average of the student over the last ~1/(1−τ) steps:
an ensemble of recent students that changes slowly, so its outputs are stable targets.
τ follows a cosine schedule from 0.996 towards 1 during training (paper, Section 3.1), one
value per iteration. The teacher freezes only in the last iterations, where the learning rate,
on the same cosine, has decayed to nearly nothing too: the student has stopped moving as well.

This module owns the teacher momentum: `MOMENTUM_TEACHER` and `MOMENTUM_TEACHER_END` are the
defaults of every class and job of the course (the original's name, `--momentum_teacher`).
A short run departs from the *start* value, not the end (the main job's `cpu-digits` preset
starts at 0.98): what matters is how many steps the teacher remembers, ~1/(1 − τ), compared
with the length of the run.

Exercises (each marked in its docstring):
    build_teacher, sync_teacher, ema_update, cosine_schedule, parameter_divergence,
    StudentTeacherWrapper.forward, StudentTeacherWrapper.update_teacher
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)

LESSON = "3.1"
LESSON_TITLE = "Student-teacher networks with an EMA teacher"
LESSON_NOTEBOOK = "lessons/module3/3.1_student_teacher.ipynb"

# τ at the first iteration (paper, Section 3.1; the original's --momentum_teacher default): the teacher
# keeps 99.6 % of itself per step and remembers ~250 steps. The original's help text recommends a higher
# value with small batches (0.9995 for a batch of 256); in a run of only a few thousand steps use a lower
# one instead, so that 1/(1 − τ) stays a small part of the run.
MOMENTUM_TEACHER = 0.996
# τ at the end of the cosine (paper, Section 3.1; the original hard-codes it): 1 freezes the teacher in
# the last iterations, when the learning rate has decayed to min_lr as well.
MOMENTUM_TEACHER_END = 1.0


# --------------------------------------------------------------------------------------------
# Given: checking that two networks can be paired parameter by parameter
# --------------------------------------------------------------------------------------------


def check_same_architecture(teacher: nn.Module, student: nn.Module) -> None:
    """Raise `ValueError` unless `teacher` and `student` have the same parameter names and shapes."""
    if not isinstance(teacher, nn.Module) or not isinstance(student, nn.Module):
        raise TypeError(
            f"teacher and student must be torch.nn.Module, got {type(teacher).__name__} and {type(student).__name__}"
        )
    teacher_shapes = {name: tuple(p.shape) for name, p in teacher.named_parameters()}
    student_shapes = {name: tuple(p.shape) for name, p in student.named_parameters()}
    if teacher_shapes == student_shapes:
        return
    only_teacher = sorted(set(teacher_shapes) - set(student_shapes))
    only_student = sorted(set(student_shapes) - set(teacher_shapes))
    if only_teacher or only_student:
        raise ValueError(
            "teacher and student must have the same parameters; "
            f"only in teacher: {only_teacher[:3]}, only in student: {only_student[:3]}"
        )
    name = next(n for n in student_shapes if student_shapes[n] != teacher_shapes[n])
    raise ValueError(
        f"teacher and student parameter {name!r} differ in shape: {teacher_shapes[name]} vs {student_shapes[name]}"
    )


# --------------------------------------------------------------------------------------------
# Weight synchronisation and gradient isolation
# --------------------------------------------------------------------------------------------


def build_teacher(student: nn.Module) -> nn.Module:
    """Exercise 3.1 · build the teacher: an exact, independent, gradient-free copy of the student.

    DINO's teacher starts with exactly the student's weights (θ_t = θ_s at step 0), backbone
    and head alike. It must *share no tensors* with the student (otherwise every optimiser
    step would move the teacher too) and it must never receive gradients: set
    `requires_grad = False` on every teacher parameter. The student is left as it was.

    Args:
        student: any `nn.Module`, e.g. a backbone followed by a projection head.

    Returns:
        A new module with the same architecture and the same parameter and buffer values,
        in the same train/eval mode, with every parameter frozen.

    Example:
        >>> student = nn.Linear(4, 2)
        >>> teacher = build_teacher(student)
        >>> torch.equal(teacher.weight, student.weight), teacher.weight is student.weight
        (True, False)
        >>> teacher.weight.requires_grad, student.weight.requires_grad
        (False, True)
    """
    # BEGIN SOLUTION
    teacher = copy.deepcopy(student)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher
    # END SOLUTION


def sync_teacher(teacher: nn.Module, student: nn.Module) -> None:
    """Exercise 3.1 · re-synchronise: copy the student's current weights into the teacher, in place.

    Sets θ_t = θ_s for every parameter and buffer, without replacing the teacher's tensors
    (other code, e.g. an optimiser or a hook, may hold references to them) and without
    making the teacher require gradients. Useful to restart a teacher, and to see that
    `ema_update` with τ = 0 is the same thing.

    Args:
        teacher: the teacher, built by `build_teacher`.
        student: a module with the same parameter names and shapes.

    Raises:
        ValueError: the two modules cannot be paired parameter by parameter.

    Example:
        >>> student, teacher = nn.Linear(3, 3), nn.Linear(3, 3).requires_grad_(False)
        >>> sync_teacher(teacher, student)
        >>> torch.equal(teacher.weight, student.weight)
        True
    """
    check_same_architecture(teacher, student)
    # BEGIN SOLUTION
    with torch.no_grad():
        for teacher_tensor, student_tensor in zip(teacher.state_dict().values(), student.state_dict().values()):
            teacher_tensor.copy_(student_tensor)
    # END SOLUTION


# --------------------------------------------------------------------------------------------
# The EMA update and its momentum schedule
# --------------------------------------------------------------------------------------------


def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """Exercise 3.1 · move the teacher towards the student: θ_t ← τ·θ_t + (1 − τ)·θ_s.

    Update every teacher *parameter* in place with momentum τ = `momentum`. Buffers (e.g.
    BatchNorm running statistics) are not averaged: the teacher keeps its own, as in the
    original. The update is not part of the training graph: no gradient flows through it,
    and afterwards the teacher still does not require gradients.

    τ = 1 leaves the teacher unchanged; τ = 0 copies the student; DINO uses 0.996 → 1.

    Args:
        teacher: the teacher (updated in place).
        student: the student (read only), same parameter names and shapes.
        momentum: τ in [0, 1].

    Raises:
        ValueError: momentum outside [0, 1], or networks that cannot be paired.

    Example:
        >>> student, teacher = nn.Linear(2, 1), nn.Linear(2, 1).requires_grad_(False)
        >>> with torch.no_grad():
        ...     _ = student.weight.fill_(1.0), teacher.weight.fill_(0.0)
        >>> ema_update(teacher, student, momentum=0.9)
        >>> teacher.weight
        Parameter containing:
        tensor([[0.1000, 0.1000]])
    """
    if isinstance(momentum, torch.Tensor):
        momentum = float(momentum)
    if not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be a number in [0, 1], got {momentum!r}")
    check_same_architecture(teacher, student)
    # BEGIN SOLUTION
    # The reference updates all parameters with two in-place "foreach" calls (one kernel launch
    # per step for the whole list on a GPU) instead of a Python loop of small ops per tensor;
    # see benchmarks/ema_update.py. Forming (1 - τ)·θ_s as its own tensor first, as the original
    # does, would match the original's rounding bit for bit but allocates a copy of the whole
    # model every step (4x slower here); the fused add differs from it by at most 1 ulp.
    teacher_params = [p for _, p in sorted(teacher.named_parameters())]
    student_params = [p.detach() for _, p in sorted(student.named_parameters())]
    with torch.no_grad():
        torch._foreach_mul_(teacher_params, momentum)
        torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)
    # END SOLUTION


def cosine_schedule(
    base_value: float,
    final_value: float,
    epochs: int,
    niter_per_ep: int,
    warmup_epochs: int = 0,
    start_warmup_value: float = 0.0,
) -> torch.Tensor:
    """Exercise 3.1 · a per-iteration cosine schedule with optional linear warm-up (DINO's scheduler).

    DINO sets its learning rate, weight decay and teacher momentum from one schedule rule,
    with one value per training iteration (`epochs * niter_per_ep` values, float64):

      - warm-up: the first W = warmup_epochs * niter_per_ep values go linearly from
        `start_warmup_value` to `base_value`, both ends included: v_i = s + (b − s)·i/(W − 1);
      - then n = epochs * niter_per_ep − W values follow half a cosine from `base_value`
        towards `final_value`: v_i = f + ½ (b − f)(1 + cos(π i / n)), i = 0 … n − 1.

    Note the last value is close to, not equal to, `final_value`, and with warm-up the peak
    appears twice. Work in float64: the schedule must match the original to 1e-15.

    Args:
        base_value: b, the value after warm-up (e.g. momentum 0.996).
        final_value: f, the value the cosine heads for (e.g. momentum 1.0).
        epochs, niter_per_ep: positive; the schedule has `epochs * niter_per_ep` entries.
        warmup_epochs: 0 ≤ warmup_epochs ≤ epochs.
        start_warmup_value: s, the first warm-up value.

    Returns:
        float64 tensor of shape `(epochs * niter_per_ep,)`.

    Raises:
        ValueError: non-positive epochs or niter_per_ep, or a warm-up longer than training.

    Example:
        >>> cosine_schedule(0.996, 1.0, epochs=1, niter_per_ep=4)
        tensor([0.9960, 0.9966, 0.9980, 0.9994], dtype=torch.float64)
    """
    for name, value in (("epochs", epochs), ("niter_per_ep", niter_per_ep)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(warmup_epochs, int) or not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs must be an int in [0, epochs={epochs}], got {warmup_epochs!r}")
    # BEGIN SOLUTION
    warmup_iters = warmup_epochs * niter_per_ep
    warmup = torch.linspace(start_warmup_value, base_value, warmup_iters, dtype=torch.float64)
    iters = torch.arange(epochs * niter_per_ep - warmup_iters, dtype=torch.float64)
    cosine = final_value + 0.5 * (base_value - final_value) * (1 + torch.cos(math.pi * iters / len(iters)))
    return torch.cat([warmup, cosine])
    # END SOLUTION


def momentum_schedule(
    epochs: int,
    niter_per_ep: int,
    momentum_teacher: float = MOMENTUM_TEACHER,
    momentum_teacher_end: float = MOMENTUM_TEACHER_END,
) -> torch.Tensor:
    """The teacher momentum τ for every iteration: cosine from `momentum_teacher` to `momentum_teacher_end`.

    Defaults: the paper's 0.996 → 1. The one momentum schedule of a training run: the wrapper
    holds it and `update_teacher(step)` reads it (Lesson 4.4's step does not build another).
    """
    if not 0.0 <= momentum_teacher <= momentum_teacher_end <= 1.0:
        raise ValueError(
            "momentum_teacher and momentum_teacher_end must satisfy "
            f"0 <= momentum_teacher <= momentum_teacher_end <= 1, got {momentum_teacher!r} and {momentum_teacher_end!r}"
        )
    return cosine_schedule(momentum_teacher, momentum_teacher_end, epochs, niter_per_ep)


# --------------------------------------------------------------------------------------------
# Watching the teacher follow the student
# --------------------------------------------------------------------------------------------


def parameter_divergence(student: nn.Module, teacher: nn.Module) -> dict[str, float]:
    """Exercise 3.1 · per-parameter relative distance between student and teacher.

    For every student parameter θ_s (by name) and its teacher twin θ_t:

        d = ‖θ_s − θ_t‖₂ / max(‖θ_s‖₂, 1e-12)

    0 means identical; 1 means the difference is as large as the weights themselves.
    Tracked over training, it shows how closely the teacher follows (small τ) or lags
    (large τ) the student, and a sudden jump flags an unstable run.

    Args:
        student, teacher: modules with the same parameter names and shapes.

    Returns:
        `{parameter name: d}` as Python floats, in the student's parameter order.

    Raises:
        ValueError: the networks cannot be paired.

    Example:
        >>> student, teacher = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> sync_teacher(teacher, student)
        >>> parameter_divergence(student, teacher)
        {'weight': 0.0, 'bias': 0.0}
    """
    check_same_architecture(teacher, student)
    # BEGIN SOLUTION
    teacher_params = dict(teacher.named_parameters())
    divergence = {}
    with torch.no_grad():
        for name, student_param in student.named_parameters():
            distance = torch.linalg.vector_norm(student_param - teacher_params[name])
            scale = torch.linalg.vector_norm(student_param).clamp_min(1e-12)
            divergence[name] = float(distance / scale)
    return divergence
    # END SOLUTION


# --------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------


class PerViewNetwork(nn.Module):
    """Given: run a backbone (and optional head) on a list of views, outputs stacked crop-major.

    One forward pass per view: simple, not fast. Lesson 3.4 replaces it with a network that
    runs all views of one resolution in a single pass.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head if head is not None else nn.Identity()

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        features = torch.cat([self.backbone(view) for view in views])  # (V * B, D)
        return self.head(features)  # (V * B, K)


class StudentTeacherWrapper(nn.Module):
    """A student, its EMA teacher and the momentum schedule, as one module.

    `student` is any network that takes a list of views (each `(B, C, H, W)`, global views
    first) and returns crop-major outputs `(V * B, K)`, e.g. `PerViewNetwork(backbone, head)`.

    Usage, per training iteration `step` (Algorithm 1 of the paper):

        student_output, teacher_output = wrapper(views)   # student: all V views; teacher: global ones
        loss = ...; loss.backward(); optimizer.step()     # only the student learns by gradients
        wrapper.update_teacher(step)                      # then the teacher follows by EMA

    `state_dict()` holds student, teacher and schedule, so a checkpoint restores all three.
    The schedule is `momentum_schedule(epochs, steps_per_epoch, momentum_teacher, momentum_teacher_end)`,
    the paper's 0.996 → 1 by default; the wrapper is its only owner in a training run.
    """

    def __init__(
        self,
        student: nn.Module,
        *,
        epochs: int,
        steps_per_epoch: int,
        momentum_teacher: float = MOMENTUM_TEACHER,
        momentum_teacher_end: float = MOMENTUM_TEACHER_END,
        n_global_views: int = 2,
    ) -> None:
        super().__init__()
        if not isinstance(n_global_views, int) or n_global_views <= 0:
            raise ValueError(f"n_global_views must be a positive int, got {n_global_views!r}")
        self.student = student
        self.teacher = build_teacher(student)
        self.n_global_views = n_global_views
        self.register_buffer(
            "momentum_schedule", momentum_schedule(epochs, steps_per_epoch, momentum_teacher, momentum_teacher_end)
        )

    def _check_views(self, views) -> None:
        if isinstance(views, torch.Tensor) or not isinstance(views, (list, tuple)):
            raise TypeError(f"views must be a list of (B, C, H, W) tensors, global views first, got {type(views).__name__}")
        if len(views) < self.n_global_views:
            raise ValueError(f"views must hold at least n_global_views={self.n_global_views} tensors, got {len(views)}")
        for index, view in enumerate(views):
            if not isinstance(view, torch.Tensor) or view.dim() != 4:
                shape = tuple(view.shape) if isinstance(view, torch.Tensor) else type(view).__name__
                raise ValueError(f"views[{index}] must be a (B, C, H, W) tensor, got {shape}")

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Exercise 3.1 · student on every view, teacher on the global views only.

        The teacher sees only the first `n_global_views` views (the global crops: the
        "big picture" the student's local crops must agree with), and its forward runs
        under `torch.no_grad()`: no graph is built for it, saving memory and time.

        Either order of the two forwards gives the same outputs. Running the teacher first,
        as the original does, is a little lighter: its temporaries are freed before the
        student's saved activations pile up, instead of coming on top of them (the main
        job's step on cpu-digits peaks at 73 instead of 80 MiB of tensors).

        Args:
            views: list of V tensors `(B, C, H, W)`, the `n_global_views` global views first.

        Returns:
            `(student_output, teacher_output)`: `(V * B, K)` with a graph for backprop, and
            `(n_global_views * B, K)` without one.

        Example:
            >>> wrapper = StudentTeacherWrapper(PerViewNetwork(nn.Flatten()), epochs=1, steps_per_epoch=1)
            >>> student_out, teacher_out = wrapper([torch.ones(2, 1, 2, 2)] * 3)
            >>> student_out.shape, teacher_out.shape, teacher_out.requires_grad
            (torch.Size([6, 4]), torch.Size([4, 4]), False)
        """
        self._check_views(views)
        # BEGIN SOLUTION
        with torch.no_grad():
            teacher_output = self.teacher(list(views[: self.n_global_views]))
        student_output = self.student(list(views))
        return student_output, teacher_output
        # END SOLUTION

    def update_teacher(self, step: int) -> float:
        """Exercise 3.1 · the EMA step of iteration `step`, with τ = momentum_schedule[step].

        Call it after the optimiser step of iteration `step` (0-based, counted over the
        whole training run).

        Returns:
            The momentum τ used, as a float.

        Raises:
            ValueError: `step` is negative or past the end of the schedule.

        Example:
            >>> wrapper = StudentTeacherWrapper(nn.Linear(2, 2), epochs=1, steps_per_epoch=3)
            >>> round(wrapper.update_teacher(0), 4)
            0.996
        """
        if not isinstance(step, int) or isinstance(step, bool):
            raise TypeError(f"step must be an int, got {type(step).__name__}")
        if not 0 <= step < len(self.momentum_schedule):
            raise ValueError(
                f"step must be in [0, {len(self.momentum_schedule) - 1}] (the length of the momentum schedule), got {step}"
            )
        # BEGIN SOLUTION
        momentum = float(self.momentum_schedule[step])
        ema_update(self.teacher, self.student, momentum)
        return momentum
        # END SOLUTION
