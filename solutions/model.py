"""Lesson 3.3: the complete DINO model, backbone + projection head, with the multi-crop forward.

A DINO network is a backbone (a ViT or a ResNet giving one feature per image, `(B, D)`)
followed by the projection head (`heads.py`, `(B, D) -> (B, K)`). The student runs on all V
views of every image, the teacher on the 2 global ones (Lesson 3.1's wrapper).

The multi-crop forward, as in the original: the views come as a list, 2 global views of
224 px then 8 local views of 96 px. A ViT can process any number of equal-size images in
one batch, so the network runs the backbone **once per run of consecutive equal-resolution
views** (2 passes instead of 10), concatenates the CLS features in view order, and runs the
head **once** on all `V * B` features. The result is exactly what one pass per view would
give (up to float rounding), in fewer, larger, faster matrix multiplications
(`benchmarks/multicrop_forward.py` measures it).

Also here, each a short section: factories for a tiny CPU preset, the paper's ViT-S/16 and a
torchvision ResNet; heads whose width follows the backbone's (adaptive heads); several heads
on one backbone (multi-head projections); and spectral normalisation of the head's MLP.

Exercises (each marked in its docstring):
    MultiCropNetwork.forward, adaptive_head_dims
"""

from __future__ import annotations

import torch
from torch import nn

from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)
from dino_course.heads import (
    BOTTLENECK_DIM,
    HIDDEN_DIM,
    NORM_LAST_LAYER,
    OUTPUT_DIM,
    USE_BN_IN_HEAD,
    DINOProjectionHead,
)
from dino_course.multicrop import group_by_resolution
from dino_course.student_teacher import MOMENTUM_TEACHER, MOMENTUM_TEACHER_END, StudentTeacherWrapper
from dino_course.networks.vit import VisionTransformer, vit_small, vit_tiny_cpu

LESSON = "3.3"
LESSON_TITLE = "Projection heads, L2 normalisation and the complete DINO model"
LESSON_NOTEBOOK = "lessons/module3/3.3_projection_heads.ipynb"

# CPU preset (a course choice, not the paper's): K = 1024 prototypes instead of 65536. A tiny
# dataset has far fewer "concepts" than ImageNet, and the last layer 64 x 65536 would dominate
# the CPU time of a 0.2 M-parameter ViT.
CPU_OUTPUT_DIM = 1024


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
        head: `(N, D) -> (N, K)`, e.g. `DINOProjectionHead`; a `MultiHeadProjection` returns
            a dict of such outputs instead.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Exercise 3.3 · the grouped multi-crop forward.

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
# Adaptive heads: the head's width follows the backbone's
# --------------------------------------------------------------------------------------------


def adaptive_head_dims(
    embed_dim: int,
    max_hidden_dim: int = HIDDEN_DIM,
    expansion: int = 4,
    bottleneck_ratio: int = 8,
) -> tuple[int, int]:
    """Exercise 3.3 · head widths that scale with the backbone width D.

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


def adaptive_head(embed_dim: int, output_dim: int = OUTPUT_DIM, **head_options) -> DINOProjectionHead:
    """A `DINOProjectionHead` sized by `adaptive_head_dims(embed_dim)`; other options passed on."""
    hidden_dim, bottleneck_dim = adaptive_head_dims(embed_dim)
    return DINOProjectionHead(embed_dim, output_dim=output_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim, **head_options)


# --------------------------------------------------------------------------------------------
# Multi-head projections: several heads on one backbone
# --------------------------------------------------------------------------------------------


class MultiHeadProjection(nn.Module):
    """Several projection heads on the same features; `forward` returns `{name: (N, K_name)}`.

    Not part of DINO v1 (which has one head); useful to see how one backbone can serve
    several objectives, e.g. a head with 65536 prototypes and one with 4096 (each with its
    own DINO loss and center, summed), or a DINO head plus a probe for another task. The
    teacher copies every head. Keys `heads.<name>.*`.
    """

    def __init__(self, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        if not isinstance(heads, dict) or not heads:
            raise ValueError(f"heads must be a non-empty dict of name -> nn.Module, got {heads!r}")
        self.heads = nn.ModuleDict(heads)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(features) for name, head in self.heads.items()}


def multi_head_projection(embed_dim: int, output_dims: dict[str, int], **head_options) -> MultiHeadProjection:
    """One adaptive `DINOProjectionHead` per entry of `output_dims` (`{name: K}`)."""
    return MultiHeadProjection({name: adaptive_head(embed_dim, k, **head_options) for name, k in output_dims.items()})


# --------------------------------------------------------------------------------------------
# Spectral normalisation (an option the course adds; DINO does not use it)
# --------------------------------------------------------------------------------------------


def apply_spectral_norm(head: DINOProjectionHead, n_power_iterations: int = 1) -> DINOProjectionHead:
    """Constrain every Linear layer of the head's MLP to spectral norm 1; returns the same head.

    Spectral normalisation (Miyato et al. 2018) divides a weight by an estimate of its
    largest singular value σ(W), refreshed by one power iteration per training-mode forward,
    so each layer is 1-Lipschitz: the MLP cannot amplify small input changes, which keeps
    the bottleneck from exploding in early training. DINO does not need it (the L2
    normalisation and the fixed-g last layer already bound the outputs); the course offers
    it to compare. The last layer is left alone: its rows are unit vectors already.

    Uses `torch.nn.utils.parametrizations.spectral_norm`, so the MLP keys become
    `mlp.i.parametrizations.weight.original` (original checkpoints no longer load as is).
    """
    if not isinstance(head, DINOProjectionHead):
        raise TypeError(f"head must be a DINOProjectionHead, got {type(head).__name__}")
    for index, layer in enumerate(head.mlp):
        if isinstance(layer, nn.Linear):
            head.mlp[index] = nn.utils.parametrizations.spectral_norm(layer, n_power_iterations=n_power_iterations)
    return head


# --------------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------------


def resnet_backbone(arch: str = "resnet50") -> nn.Module:
    """A torchvision ResNet without its classifier (`fc = Identity`), giving `(B, D)` features.

    Randomly initialised (`weights=None`: nothing is downloaded); `.embed_dim` is D (512 for
    resnet18/34, 2048 for resnet50). Keys are torchvision's (`conv1.weight`, `layer1.0...`),
    as in the original DINO ResNet checkpoints. Course note: on 32 px images the ResNet stem
    (stride-2 conv and max-pool) leaves a 1 x 1 map before the last stage; it runs, but the
    CPU preset is the ViT.
    """
    import torchvision  # imported here: only the ResNet option needs it

    builders = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34, "resnet50": torchvision.models.resnet50}
    if arch not in builders:
        raise ValueError(f"arch must be one of {sorted(builders)}, got {arch!r}")
    network = builders[arch](weights=None)
    network.embed_dim = network.fc.in_features  # read by adaptive heads
    network.fc = nn.Identity()
    return network


def _complete_model(backbone: nn.Module, output_dim: int, head_options: dict, spectral_norm: bool, wrapper_options: dict) -> CompleteDINOModel:
    head = adaptive_head(backbone.embed_dim, output_dim, **head_options)
    if spectral_norm:
        apply_spectral_norm(head)
    return CompleteDINOModel(backbone, head, **wrapper_options)


def dino_tiny_cpu(
    output_dim: int = CPU_OUTPUT_DIM,
    *,
    epochs: int,
    steps_per_epoch: int,
    momentum_teacher: float = MOMENTUM_TEACHER,
    momentum_teacher_end: float = MOMENTUM_TEACHER_END,
    use_bn: bool = USE_BN_IN_HEAD,
    norm_last_layer: bool = NORM_LAST_LAYER,
    spectral_norm: bool = False,
    **vit_overrides,
) -> CompleteDINOModel:
    """The course's CPU preset: `vit_tiny_cpu()` (32 px, D = 96) + an adaptive head (512/64/K=1024).

    `vit_overrides` go to `vit_tiny_cpu` (e.g. `depth=2`). For 32 px global and 16 px local crops
    (`MultiCropAugmentation.from_preset("cpu-32")`).
    """
    return _complete_model(
        vit_tiny_cpu(**vit_overrides),
        output_dim,
        {"use_bn": use_bn, "norm_last_layer": norm_last_layer},
        spectral_norm,
        {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "momentum_teacher": momentum_teacher, "momentum_teacher_end": momentum_teacher_end},
    )


def dino_vit_small(
    output_dim: int = OUTPUT_DIM,
    *,
    epochs: int,
    steps_per_epoch: int,
    momentum_teacher: float = MOMENTUM_TEACHER,
    momentum_teacher_end: float = MOMENTUM_TEACHER_END,
    use_bn: bool = USE_BN_IN_HEAD,
    norm_last_layer: bool = NORM_LAST_LAYER,
    spectral_norm: bool = False,
    **vit_overrides,
) -> CompleteDINOModel:
    """The paper's ViT-S/16 (21 M parameters, 224/96 px crops) with the paper's head 2048/256/65536.

    (The adaptive rule gives exactly the paper's head for D = 384.) About 43 M parameters in
    student + teacher heads and backbones together; slow on a CPU.
    """
    return _complete_model(
        vit_small(**vit_overrides),
        output_dim,
        {"use_bn": use_bn, "norm_last_layer": norm_last_layer},
        spectral_norm,
        {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "momentum_teacher": momentum_teacher, "momentum_teacher_end": momentum_teacher_end},
    )


def dino_resnet(
    arch: str = "resnet50",
    output_dim: int = OUTPUT_DIM,
    *,
    epochs: int,
    steps_per_epoch: int,
    momentum_teacher: float = MOMENTUM_TEACHER,
    momentum_teacher_end: float = MOMENTUM_TEACHER_END,
    use_bn: bool = USE_BN_IN_HEAD,
    norm_last_layer: bool = NORM_LAST_LAYER,
    spectral_norm: bool = False,
) -> CompleteDINOModel:
    """A torchvision ResNet backbone (`resnet_backbone(arch)`) with an adaptive head.

    ResNet-50 (D = 2048) gets the paper's head 2048/256. The original trains its ResNet-50 with
    SGD and a different crop scale; those belong to the training recipe, not the model.
    """
    return _complete_model(
        resnet_backbone(arch),
        output_dim,
        {"use_bn": use_bn, "norm_last_layer": norm_last_layer},
        spectral_norm,
        {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "momentum_teacher": momentum_teacher, "momentum_teacher_end": momentum_teacher_end},
    )

