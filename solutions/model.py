"""Lesson 3.4: the complete DINO model, backbone + projection head, with the multi-crop forward.

A DINO network is a backbone (a ViT or a ResNet giving one feature per image, `(B, D)`)
followed by the projection head (`heads.py`, `(B, D) -> (B, K)`). The student runs on all V
views of every image, the teacher on the 2 global ones (Lesson 3.1's wrapper).

The multi-crop forward, as in the original: the views come as a list, 2 global views of
224 px then 8 local views of 96 px. A ViT can process any number of equal-size images in
one batch, so the network runs the backbone **once per run of consecutive equal-resolution
views** (2 passes instead of 10), concatenates the CLS features in view order, and runs the
head **once** on all `V * B` features. The result is exactly what one pass per view would
give (up to float rounding), in fewer, larger, faster matrix multiplications; you measure
the price in time and memory yourself (`measure_forward`; `benchmarks/multicrop_forward.py`
measures it with backward passes too, for both presets).

Also here: the rule that sizes a head by the backbone's width (adaptive heads). The given
factories that build whole models in one call (CPU preset, the paper's ViT-S/16, a ResNet),
several heads on one backbone and spectral normalisation live in
`dino_course/networks/dino_models.py`; they use your `CompleteDINOModel` and `adaptive_head_dims`.

Exercises (each marked in its docstring):
    MultiCropNetwork.forward, measure_forward, adaptive_head_dims
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)
from dino_course.heads import HIDDEN_DIM
from dino_course.multicrop import group_by_resolution
from dino_course.student_teacher import MOMENTUM_TEACHER, MOMENTUM_TEACHER_END, StudentTeacherWrapper

LESSON = "3.4"
LESSON_TITLE = "The complete DINO model and feature-quality diagnostics"
LESSON_NOTEBOOK = "lessons/module3/3.4_complete_model.ipynb"


def _check_views(views) -> None:
    if isinstance(views, torch.Tensor) or not isinstance(views, (list, tuple)):
        raise TypeError(f"views must be a list of (B, C, H, W) tensors, got {type(views).__name__}")
    if not views:
        raise ValueError("views must hold at least one (B, C, H, W) tensor, got an empty list")
    batch = None
    for index, view in enumerate(views):
        if not isinstance(view, torch.Tensor) or view.dim() != 4:
            shape = tuple(view.shape) if isinstance(view, torch.Tensor) else type(view).__name__
            raise ValueError(f"views[{index}] must be a (B, C, H, W) tensor, got {shape}")
        if batch is not None and view.shape[0] != batch:
            raise ValueError(f"every view must hold the same batch B={batch}, views[{index}] has {view.shape[0]}")
        batch = view.shape[0]


# --------------------------------------------------------------------------------------------
# The multi-crop network
# --------------------------------------------------------------------------------------------


class MultiCropNetwork(nn.Module):
    """Backbone + head on a list of views; the backbone runs once per resolution group.

    `state_dict()` keys are `backbone.*` and `head.*`, as the original's `MultiCropWrapper`,
    so original checkpoints (and the golden `train.init_student`) load directly.

    Args:
        backbone: `(B, C, H, W) -> (B, D)`, e.g. `VisionTransformer` (its CLS feature).
        head: `(N, D) -> (N, K)`, e.g. `DINOProjectionHead`; a `MultiHeadProjection`
            (`dino_course.networks.dino_models`) returns a dict of such outputs instead.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Exercise 3.4 · the grouped multi-crop forward.

        1. `group_by_resolution(views)` (Lesson 3.2) gives the runs `(start, end)` of
           consecutive views with equal size.
        2. For every run, concatenate its views along the batch axis,
           `(len * B, C, H, W)`, and run the backbone **once** on them.
        3. Concatenate all the features in view order, `(V * B, D)` crop-major, and run the
           head **once**.

        The output equals running backbone and head on each view separately and stacking the
        results, `torch.cat([head(backbone(v)) for v in views])`, which is the check. (It is
        exact for layers that treat images independently; a BatchNorm in the head sees all
        V * B rows at once, as in the original.)

        Args:
            views: list of V tensors `(B, C, H, W)`, global views first; equal B.

        Returns:
            `(V * B, K)` crop-major: rows `v*B ... v*B + B - 1` belong to view v.

        Raises:
            TypeError, ValueError: `views` is not a non-empty list of `(B, C, H, W)` tensors
                with a common B.

        Example:
            >>> network = MultiCropNetwork(nn.Flatten(), nn.Identity())
            >>> views = [torch.zeros(2, 3, 2, 2)] * 2  # V = 2 views of B = 2 images
            >>> network(views).shape
            torch.Size([4, 12])
        """
        _check_views(views)
        # BEGIN SOLUTION
        features = [self.backbone(torch.cat(views[start:end])) for start, end in group_by_resolution(list(views))]
        return self.head(torch.cat(features))  # (V * B, D) -> (V * B, K)
        # END SOLUTION


class CompleteDINOModel(StudentTeacherWrapper):
    """The complete DINO model: student `MultiCropNetwork(backbone, head)` and its EMA teacher.

    Lesson 3.1's `StudentTeacherWrapper` with a multi-crop student: `model(views)` returns
    `(student_output (V*B, K), teacher_output (n_global*B, K))`, the student on every view,
    the teacher (a frozen copy, `torch.no_grad()`) on the global views only;
    `model.update_teacher(step)` is the EMA step. Keys: `student.backbone.*`,
    `student.head.*`, `teacher.*`, `momentum_schedule`.

    Which network to evaluate: DINO reports the *teacher's* backbone (it is the better one,
    paper §5.3); `model.teacher.backbone`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        *,
        epochs: int,
        steps_per_epoch: int,
        momentum_teacher: float = MOMENTUM_TEACHER,
        momentum_teacher_end: float = MOMENTUM_TEACHER_END,
        n_global_views: int = 2,
    ) -> None:
        super().__init__(
            MultiCropNetwork(backbone, head),
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            momentum_teacher=momentum_teacher,
            momentum_teacher_end=momentum_teacher_end,
            n_global_views=n_global_views,
        )


# --------------------------------------------------------------------------------------------
# What grouping buys: time and peak memory of one forward, measured
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardCost:
    """What `measure_forward` measured for one way of running the network on the views."""

    seconds: float  # median wall time of one forward pass, in seconds
    peak_bytes: int  # peak of the tensor memory allocated during one forward pass, above the level before it, in bytes
    output: torch.Tensor  # (V * B, K) the forward's output, crop-major


def measure_forward(network: MultiCropNetwork, views: list[torch.Tensor], *, grouped: bool = True, repeats: int = 5) -> ForwardCost:
    """Exercise 3.4 · wall time and peak memory of one forward pass, grouped by resolution or one pass per view.

    The two ways of running `network` on the views give the same output (up to rounding):

        grouped (grouped=True):    network(views)       the backbone once per run of equal-size views
        per view (grouped=False):  network.head(torch.cat([network.backbone(v) for v in views]))
                                                        the backbone once per view (Lesson 3.1's way)

    Measure the forward you chose, as an inference (evaluation) pass:

    1. Put the network in evaluation mode (`network.eval()`), and put it back in the mode it was
       in (`network.train(was_training)`) when you are done, even if a forward fails
       (`try` / `finally`). Run every forward under `torch.no_grad()`: nothing to train here,
       and no autograd graph should keep activations alive.
    2. Time: one untimed warm-up forward first (the first pass pays one-time costs), then
       `repeats` forwards, each timed with `time.perf_counter()` around it; `seconds` is the
       median of those `repeats` times (the median ignores a forward slowed by something else
       running on the machine; a mean or a sum would not).
    3. Memory: one more forward inside
       `torch.autograd.profiler.profile(profile_memory=True) as prof`. Each event of
       `prof.function_events` carries `self_cpu_memory_usage`, the bytes its op allocated
       minus those it freed (frees outside any op are events of their own, named `[memory]`).
       Sorted by start time (`event.time_range.start`), their running sum is the live tensor
       memory after each op; `peak_bytes` is its maximum (at least 0).

    Why the profiler: on a GPU, `torch.cuda.max_memory_allocated()` gives this peak directly,
    but PyTorch has no such counter for CPU memory. The process's resident memory (RSS,
    `resource.getrusage`) counts pages the allocator keeps after tensors are freed, so it
    hardly goes down and hides the peak of a second measurement; Python's `tracemalloc` does
    not see PyTorch's allocations at all. The profiler records every tensor allocation and
    free, at the resolution of one op. (`torch.profiler.profile(activities=[ProfilerActivity.CPU],
    profile_memory=True)` gives the same events through `prof.events()`, but its first use in a
    process starts the Kineto tracer, which took 9-15 s on the course's busy 2-core machine;
    the autograd profiler used here starts in a fraction of a second.)

    Args:
        network: a `MultiCropNetwork` (or any module with `backbone` and `head` that takes the
            list of views).
        views: V tensors `(B, C, H, W)`, global views first, equal B.
        grouped: True for the grouped forward, False for one backbone pass per view.
        repeats: number of timed forwards (>= 1).

    Returns:
        `ForwardCost(seconds, peak_bytes, output)`: the median time in seconds (float), the
        peak in bytes (int) and the output `(V * B, K)` of the last forward, with no autograd
        history. The network is left in the mode it was in.

    Raises:
        TypeError, ValueError: `views` is not a non-empty list of `(B, C, H, W)` tensors with a
            common B, or `repeats` is not a positive int.

    Example:
        >>> network = MultiCropNetwork(nn.Flatten(), nn.Linear(12, 4))
        >>> views = [torch.ones(2, 3, 2, 2)] * 2
        >>> grouped = measure_forward(network, views, repeats=3)
        >>> per_view = measure_forward(network, views, grouped=False, repeats=3)
        >>> grouped.seconds > 0, grouped.peak_bytes >= grouped.output.nbytes, grouped.output.shape
        (True, True, torch.Size([4, 4]))
        >>> torch.allclose(grouped.output, per_view.output), network.training
        (True, True)
    """
    _check_views(views)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    # BEGIN SOLUTION
    def forward() -> torch.Tensor:
        if grouped:
            return network(views)
        return network.head(torch.cat([network.backbone(view) for view in views]))  # (V * B, D) -> (V * B, K)

    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            forward()  # warm-up, not timed
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                output = forward()
                times.append(time.perf_counter() - start)
            with torch.autograd.profiler.profile(profile_memory=True) as prof:
                forward()
    finally:
        network.train(was_training)
    level = peak = 0
    for event in sorted(prof.function_events, key=lambda event: event.time_range.start):
        level += event.self_cpu_memory_usage  # bytes allocated minus freed by this op
        peak = max(peak, level)
    return ForwardCost(seconds=statistics.median(times), peak_bytes=int(peak), output=output)
    # END SOLUTION


# --------------------------------------------------------------------------------------------
# Adaptive heads: the head's width follows the backbone's
# --------------------------------------------------------------------------------------------


def adaptive_head_dims(
    embed_dim: int,
    max_hidden_dim: int = HIDDEN_DIM,
    expansion: int = 4,
    bottleneck_ratio: int = 8,
) -> tuple[int, int]:
    """Exercise 3.4 · head widths that scale with the backbone width D.

    The paper uses one head, 2048 hidden / 256 bottleneck, for every backbone it trains
    (ViT-S with D = 384, ViT-B with 768, ResNet-50 with 2048). For a tiny CPU backbone
    (D = 96) a 2048-wide head is 20 times larger than the backbone itself. The course's rule
    (a course choice, not the paper's) keeps the paper's head for D ≥ 384 and shrinks it for
    narrower backbones:

        hidden     = min(max_hidden_dim, smallest power of two ≥ expansion · D)
        bottleneck = hidden // bottleneck_ratio

    so ViT-S (384) gets (2048, 256), the paper's numbers, and the CPU ViT (96) gets (512, 64).

    Args:
        embed_dim: D, the backbone's feature width (positive int).
        max_hidden_dim: the cap (2048, the paper's width).
        expansion: how much wider than D the hidden layers are (before rounding up).
        bottleneck_ratio: hidden / bottleneck (2048 / 256 = 8 in the paper).

    Returns:
        `(hidden_dim, bottleneck_dim)` as ints, bottleneck at least 1.

    Raises:
        ValueError: a non-positive or non-int argument.

    Example:
        >>> adaptive_head_dims(384), adaptive_head_dims(96), adaptive_head_dims(2048)
        ((2048, 256), (512, 64), (2048, 256))
    """
    for name, value in (("embed_dim", embed_dim), ("max_hidden_dim", max_hidden_dim), ("expansion", expansion), ("bottleneck_ratio", bottleneck_ratio)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    # BEGIN SOLUTION
    hidden = 1
    while hidden < expansion * embed_dim:
        hidden *= 2
    hidden = min(hidden, max_hidden_dim)
    return hidden, max(1, hidden // bottleneck_ratio)
    # END SOLUTION
