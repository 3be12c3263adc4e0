# Your exercises for Lesson 4.3: replace each `raise ExerciseNotStarted(...)` line with your code.
# Grade them with `pytest` (or `check("4.3")` in the lesson notebook).
# Maintainers: this file is generated from solutions/loss.py by `dino-course stubs`;
# edit the solution there and regenerate instead of editing this copy.
"""Lesson 4.3: the complete DINO loss.

The student learns to predict, from *every* view of an image, the teacher's centred and
sharpened distribution on a *different*, global view of the same image:

    P_t(x) = softmax((g_t(x) − c) / τ_t)                 teacher targets, treated as constants
    P_s(x') = softmax(g_s(x') / τ_s)                      student predictions
    L = mean over pairs (x ∈ {x_1^g, x_2^g}, x' ∈ V, x' ≠ x) of  H(P_t(x), P_s(x'))
    H(a, b) = −Σ_k a^(k) log b^(k)                        (Caron et al. 2021, Eq. 3 and Algorithm 1)

With 2 global views and V views in all there are 2V − 2 pairs: global view 0 is compared
with global view 1 and with every local view, and the same for global view 1. Each pair's
cross-entropy is averaged over the B images; the loss is the mean over pairs (the original's
"average of averages"). After the loss, the center moves towards the raw teacher logits
(Lesson 4.1). No gradient flows into the teacher: the teacher follows by EMA (Lesson 3.1).

Course addition, named here: `DINOLoss` refuses non-finite values (`NonFiniteValueError`, given
code around the exercise). A NaN or infinite network output raises before the forward runs, and a
non-finite loss (or updated center) puts the center back as it was before raising, so one bad batch can no longer
turn the center into NaN for good. The original checks `math.isfinite(loss.item())` in its train
loop only after the loss's forward has already updated the center.

Layout (shape vocabulary in `dino_course/__init__.py`): outputs are crop-major, rows
`v*B … v*B + B − 1` are view v, global views first.

Exercises: dino_loss, DINOLoss.forward
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dino_course.centering import CENTER_MOMENTUM, update_center
from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)
from dino_course.temperature import (
    STUDENT_TEMP,
    TEACHER_TEMP,
    WARMUP_TEACHER_TEMP,
    WARMUP_TEACHER_TEMP_EPOCHS,
    teacher_temperature_schedule,
)

LESSON = "4.3"
LESSON_TITLE = "The complete DINO loss"
LESSON_NOTEBOOK = "lessons/module4/4.3_dino_loss.ipynb"


def check_loss_inputs(
    student_output: torch.Tensor, teacher_output: torch.Tensor, center: torch.Tensor, n_global_views: int
) -> tuple[int, int]:
    """Validate the crop-major shapes; return (V, B)."""
    for name, value in (("student_output", student_output), ("teacher_output", teacher_output), ("center", center)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if isinstance(n_global_views, bool) or not isinstance(n_global_views, int) or n_global_views <= 0:
        raise ValueError(f"n_global_views must be a positive int, got {n_global_views!r}")
    if teacher_output.dim() != 2 or teacher_output.shape[0] == 0 or teacher_output.shape[0] % n_global_views:
        raise ValueError(
            f"teacher_output must have shape (n_global_views * B, K) = ({n_global_views} * B, K), got {tuple(teacher_output.shape)}"
        )
    batch = teacher_output.shape[0] // n_global_views
    k = teacher_output.shape[1]
    if student_output.dim() != 2 or student_output.shape[1] != k or student_output.shape[0] % batch:
        raise ValueError(f"student_output must have shape (V * B, K) = (V * {batch}, {k}), got {tuple(student_output.shape)}")
    n_views = student_output.shape[0] // batch
    if n_views < n_global_views:
        raise ValueError(
            f"student_output must hold at least the {n_global_views} global views ({n_global_views * batch} rows), "
            f"got {student_output.shape[0]} rows"
        )
    if tuple(center.shape) != (1, k):
        raise ValueError(f"center must have shape (1, K) = (1, {k}), got {tuple(center.shape)}")
    if n_views == 1:
        raise ValueError("the loss needs at least 2 views: with one view every pair compares a view with itself")
    return n_views, batch


def dino_loss(
    student_output: torch.Tensor,
    teacher_output: torch.Tensor,
    center: torch.Tensor,
    teacher_temp: float,
    student_temp: float = STUDENT_TEMP,
    n_global_views: int = 2,
) -> torch.Tensor:
    """Exercise 4.3 · the DINO loss: mean over (teacher view t, student view s ≠ t) of H(P_t, P_s).

        q_t = softmax((teacher_output_t − center) / teacher_temp)      no gradient (detach it)
        log p_s = log_softmax(student_output_s / student_temp)
        L = (1 / #pairs) Σ_{t < n_global} Σ_{s ≠ t} (1/B) Σ_b −Σ_k q_t[b, k] · log p_s[b, k]

    Row b of every view shows the same image, so pairs are formed row by row. Use
    `log_softmax` (not `log(softmax(...))`, which gives −inf, then NaN, for confident
    students). A double loop over (t, s) is fine; the reference is vectorised.
    The computation runs in float32 even when the outputs are bfloat16 or the call sits inside
    `torch.autocast` (matrix products there would otherwise run in bfloat16).

    Args:
        student_output: `(V * B, K)` student logits, crop-major, global views first.
        teacher_output: `(n_global_views * B, K)` teacher logits, crop-major.
        center: `(1, K)`, the running center (Lesson 4.1), used as it is (not updated here).
        teacher_temp: τ_t, e.g. 0.04.
        student_temp: τ_s, 0.1 in the paper.
        n_global_views: how many leading views are global (seen by the teacher), 2 in the paper.

    Returns:
        A float32 scalar tensor with a gradient towards `student_output` only.

    Raises:
        ValueError: shapes that do not fit the crop-major layout, or non-positive temperatures.

    Example:
        >>> logits = torch.zeros(6, 4)  # V = 3 views of B = 2 images, K = 4, all uniform
        >>> dino_loss(logits, torch.zeros(4, 4), torch.zeros(1, 4), teacher_temp=0.04)  # log 4
        tensor(1.3863)
    """
    n_views, batch = check_loss_inputs(student_output, teacher_output, center, n_global_views)
    for name, value in (("teacher_temp", teacher_temp), ("student_temp", student_temp)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    raise ExerciseNotStarted("4.3", "dino_loss")


class NonFiniteValueError(FloatingPointError):
    """A NaN or infinite tensor reached `DINOLoss` (its message names which); the center was left as it was."""


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether every value of `tensor` is finite. A finite sum proves it (a NaN or ±inf makes the sum NaN or ±inf),
    at a tenth of `isfinite(...).all()`'s cost; only when the sum is not finite (which large finite values can
    also give, by overflow) are the values checked one by one."""
    values = tensor.detach()
    return bool(torch.isfinite(values.sum())) or bool(torch.isfinite(values).all())


def _describe_non_finite(tensor: torch.Tensor) -> str:
    values = tensor.detach()
    return f"{int(torch.isnan(values).sum())} NaN and {int(torch.isinf(values).sum())} infinite values of {values.numel()}"


def _refuse_non_finite_outputs(criterion: "DINOLoss", args: tuple, kwargs: dict) -> None:
    """Given code (a forward pre-hook of `DINOLoss`): a NaN or infinite output never reaches the center."""
    names = ("student_output", "teacher_output")
    values = list(args[:2]) + [kwargs.get(name) for name in names[len(args[:2]) :]]
    for name, value in zip(names, values):
        if isinstance(value, torch.Tensor) and not _all_finite(value):
            raise NonFiniteValueError(
                f"DINOLoss: {name} holds {_describe_non_finite(value)}; the center was not updated. A network output "
                "turns NaN/inf when training diverges: lower the learning rate, or check the batch for NaN pixels."
            )
    criterion._center_before_call = criterion.center.detach().clone()


def _restore_center_after_a_non_finite_loss(criterion: "DINOLoss", args: tuple, output) -> None:
    """Given code (a forward hook of `DINOLoss`): after a non-finite loss or center, the center is put back and it raises."""
    before, criterion._center_before_call = criterion._center_before_call, None
    bad = "the loss" if isinstance(output, torch.Tensor) and not _all_finite(output) else None
    if bad is None and not _all_finite(criterion.center):  # finite logits whose mean overflows
        bad = "the updated center"
    if bad is None:
        return
    values = _describe_non_finite(output if bad == "the loss" else criterion.center)
    if before is not None:
        with torch.no_grad():
            criterion.center.copy_(before)
    raise NonFiniteValueError(
        f"DINOLoss: {bad} holds {values} although both outputs are finite; the center was put back as it was before "
        "this call. Logits so large that dividing them by the temperature (or averaging them) overflows give this: "
        "lower the learning rate."
    )


class DINOLoss(nn.Module):
    """The DINO loss as a module that owns its state: the running center and the τ_t schedule.

    Usage, once per training iteration (Algorithm 1 of the paper):

        criterion = DINOLoss(out_dim=K, epochs=100)
        loss = criterion(student_output, teacher_output, epoch)   # then the center moves

    Args:
        out_dim: K, the head's output dimension.
        epochs: length of training (the τ_t schedule has one value per epoch).
        warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs: the τ_t schedule
            (paper: 0.04 → 0.07 over 30 epochs). A warm-up longer than training is
            shortened to the training length (course choice for short runs; the original
            would build a longer schedule and use only its first `epochs` values).
        student_temp: τ_s (0.1).
        center_momentum: m of the center update (0.9).
        n_global_views: how many leading views are global (2).

    `center` is a buffer, so `state_dict()` checkpoints it.

    Calling it refuses non-finite values (course addition; the original checks only the loss, in its
    train loop, after the center has moved): a NaN or infinite `student_output` or `teacher_output`
    raises `NonFiniteValueError` before `forward` runs, and a non-finite loss or updated center
    raises it after the center has been put back, so the center never takes in a non-finite value.

    Raises:
        NonFiniteValueError: a non-finite output or loss; the message names which tensor.
    """

    def __init__(
        self,
        out_dim: int,
        *,
        epochs: int,
        warmup_teacher_temp: float = WARMUP_TEACHER_TEMP,
        teacher_temp: float = TEACHER_TEMP,
        warmup_teacher_temp_epochs: int = WARMUP_TEACHER_TEMP_EPOCHS,
        student_temp: float = STUDENT_TEMP,
        center_momentum: float = CENTER_MOMENTUM,
        n_global_views: int = 2,
    ) -> None:
        super().__init__()
        if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim <= 0:
            raise ValueError(f"out_dim must be a positive int, got {out_dim!r}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
            raise ValueError(f"epochs must be a positive int, got {epochs!r}")
        if isinstance(warmup_teacher_temp_epochs, bool) or not isinstance(warmup_teacher_temp_epochs, int) or warmup_teacher_temp_epochs < 0:
            raise ValueError(f"warmup_teacher_temp_epochs must be a non-negative int, got {warmup_teacher_temp_epochs!r}")
        if isinstance(student_temp, bool) or not isinstance(student_temp, (int, float)) or not 0 < student_temp < math.inf:
            raise ValueError(f"student_temp must be a positive finite number, got {student_temp!r}")
        for name, value in (("warmup_teacher_temp", warmup_teacher_temp), ("teacher_temp", teacher_temp)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if isinstance(center_momentum, bool) or not isinstance(center_momentum, (int, float)) or not 0.0 <= center_momentum <= 1.0:
            raise ValueError(f"center_momentum must be in [0, 1], got {center_momentum!r}")
        if isinstance(n_global_views, bool) or not isinstance(n_global_views, int) or n_global_views < 1:
            raise ValueError(f"n_global_views must be a positive int, got {n_global_views!r}")
        self.student_temp = float(student_temp)
        self.center_momentum = float(center_momentum)
        self.n_global_views = n_global_views
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer(
            "teacher_temp_schedule",
            teacher_temperature_schedule(
                warmup_teacher_temp, teacher_temp, min(warmup_teacher_temp_epochs, epochs), epochs
            ),
        )
        # Given code around the exercise: no non-finite value ever reaches the center (see the class docstring).
        self._center_before_call = None
        self.register_forward_pre_hook(_refuse_non_finite_outputs, with_kwargs=True)
        self.register_forward_hook(_restore_center_after_a_non_finite_loss)

    def teacher_temp(self, epoch: int) -> float:
        """τ_t of `epoch` (0-based)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"epoch must be an int, got {type(epoch).__name__}")
        if not 0 <= epoch < len(self.teacher_temp_schedule):
            raise ValueError(f"epoch must be in [0, {len(self.teacher_temp_schedule) - 1}], got {epoch}")
        return float(self.teacher_temp_schedule[epoch])

    def forward(self, student_output: torch.Tensor, teacher_output: torch.Tensor, epoch: int) -> torch.Tensor:
        """Exercise 4.3 · the loss of one iteration, then the center update.

        1. `loss = dino_loss(...)` with the *current* center and τ_t = `self.teacher_temp(epoch)`;
        2. then, with the *raw* teacher logits, replace the buffer: `self.center` ←
           `update_center(self.center, teacher_output, self.center_momentum)` (copy into it
           in place, so that the buffer and any reference to it stay the same tensor);
        3. return the loss.

        Updating before the loss would let each batch's targets be centred with its own mean
        and changes the numbers (the golden check will tell).

        Args:
            student_output: `(V * B, K)`; teacher_output: `(n_global_views * B, K)`; epoch: 0-based.

        Returns:
            The scalar loss.

        Example:
            >>> criterion = DINOLoss(out_dim=4, epochs=1)
            >>> loss = criterion(torch.zeros(6, 4), torch.ones(4, 4), epoch=0)
            >>> criterion.center
            tensor([[0.1000, 0.1000, 0.1000, 0.1000]])
        """
        teacher_temp = self.teacher_temp(epoch)
        raise ExerciseNotStarted("4.3", "DINOLoss.forward")
