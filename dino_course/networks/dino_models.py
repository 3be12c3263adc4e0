"""Given: ready-made DINO models in one call, and variants of the projection head (Lesson 3.4).

Factories that put a backbone and a head together into your `CompleteDINOModel`
(`dino_course/model.py`):

    dino_tiny_cpu     the course's CPU preset: `vit_tiny_cpu()` (32 px, D = 96), head 512/64/K = 1024
    dino_vit_small    the paper's ViT-S/16 with the paper's head 2048/256/65536
    dino_resnet       a torchvision ResNet (randomly initialised: nothing is downloaded)

and the head variants they can use: `adaptive_head` (the head's widths follow the backbone's,
by your `adaptive_head_dims`), `MultiHeadProjection` / `multi_head_projection` (several heads on
one backbone) and `apply_spectral_norm` (an option the course adds; DINO does not use it).

Your exercises (`model`, `heads`) are looked up when a function runs, not when this module is
imported, so the reference switch and your latest edits apply.
"""

from __future__ import annotations

import torch
from torch import nn

from dino_course.networks.vit import vit_small, vit_tiny_cpu

# CPU preset (a course choice, not the paper's): K = 1024 prototypes instead of 65536. A tiny
# dataset has far fewer "concepts" than ImageNet, and the last layer 64 x 65536 would dominate
# the CPU time of a 0.2 M-parameter ViT.
CPU_OUTPUT_DIM = 1024


# --------------------------------------------------------------------------------------------
# Adaptive heads: the head's width follows the backbone's
# --------------------------------------------------------------------------------------------


def adaptive_head(embed_dim: int, output_dim: int | None = None, **head_options) -> nn.Module:
    """A `DINOProjectionHead` sized by your `adaptive_head_dims(embed_dim)`; other options passed on.

    `output_dim` None keeps the head's default K (the paper's 65536, `heads.OUTPUT_DIM`).
    """
    from dino_course import heads, model

    hidden_dim, bottleneck_dim = model.adaptive_head_dims(embed_dim)
    if output_dim is not None:
        head_options["output_dim"] = output_dim
    return heads.DINOProjectionHead(embed_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim, **head_options)


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


def apply_spectral_norm(head: nn.Module, n_power_iterations: int = 1) -> nn.Module:
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
    from dino_course import heads

    if not isinstance(head, heads.DINOProjectionHead):
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


def _complete_model(backbone: nn.Module, output_dim: int | None, head_options: dict, spectral_norm: bool, wrapper_options: dict):
    from dino_course import model

    head = adaptive_head(backbone.embed_dim, output_dim, **head_options)
    if spectral_norm:
        apply_spectral_norm(head)
    return model.CompleteDINOModel(backbone, head, **wrapper_options)


def _head_options(use_bn: bool | None, norm_last_layer: bool | None) -> dict:
    """The head's options; one left None keeps Lesson 3.3's default (`heads.USE_BN_IN_HEAD`, `NORM_LAST_LAYER`)."""
    options = {"use_bn": use_bn, "norm_last_layer": norm_last_layer}
    return {name: value for name, value in options.items() if value is not None}


def _wrapper_options(epochs: int, steps_per_epoch: int, momentum_teacher: float | None, momentum_teacher_end: float | None) -> dict:
    """The `CompleteDINOModel` options; a momentum left None keeps Lesson 3.1's default."""
    options = {"epochs": epochs, "steps_per_epoch": steps_per_epoch}
    if momentum_teacher is not None:
        options["momentum_teacher"] = momentum_teacher
    if momentum_teacher_end is not None:
        options["momentum_teacher_end"] = momentum_teacher_end
    return options


def dino_tiny_cpu(
    output_dim: int = CPU_OUTPUT_DIM,
    *,
    epochs: int,
    steps_per_epoch: int,
    momentum_teacher: float | None = None,
    momentum_teacher_end: float | None = None,
    use_bn: bool | None = None,
    norm_last_layer: bool | None = None,
    spectral_norm: bool = False,
    **vit_overrides,
):
    """The course's CPU preset: `vit_tiny_cpu()` (32 px, D = 96) + an adaptive head (512/64/K=1024).

    Returns your `CompleteDINOModel`. `vit_overrides` go to `vit_tiny_cpu` (e.g. `depth=2`). For
    32 px global and 16 px local crops (`MultiCropAugmentation.from_preset("cpu-32")`). The teacher
    momentum defaults to Lesson 3.1's (`student_teacher.MOMENTUM_TEACHER` -> `MOMENTUM_TEACHER_END`).
    """
    return _complete_model(
        vit_tiny_cpu(**vit_overrides),
        output_dim,
        _head_options(use_bn, norm_last_layer),
        spectral_norm,
        _wrapper_options(epochs, steps_per_epoch, momentum_teacher, momentum_teacher_end),
    )


def dino_vit_small(
    output_dim: int | None = None,
    *,
    epochs: int,
    steps_per_epoch: int,
    momentum_teacher: float | None = None,
    momentum_teacher_end: float | None = None,
    use_bn: bool | None = None,
    norm_last_layer: bool | None = None,
    spectral_norm: bool = False,
    **vit_overrides,
):
    """The paper's ViT-S/16 (21 M parameters, 224/96 px crops) with the paper's head 2048/256/65536.

    `output_dim` None: the paper's K (`heads.OUTPUT_DIM`); momenta None: Lesson 3.1's.
    (The adaptive rule gives exactly the paper's head for D = 384.) About 43 M parameters in
    student + teacher heads and backbones together; slow on a CPU.
    """
    return _complete_model(
        vit_small(**vit_overrides),
        output_dim,
        _head_options(use_bn, norm_last_layer),
        spectral_norm,
        _wrapper_options(epochs, steps_per_epoch, momentum_teacher, momentum_teacher_end),
    )


def dino_resnet(
    arch: str = "resnet50",
    output_dim: int | None = None,
    *,
    epochs: int,
    steps_per_epoch: int,
    momentum_teacher: float | None = None,
    momentum_teacher_end: float | None = None,
    use_bn: bool | None = None,
    norm_last_layer: bool | None = None,
    spectral_norm: bool = False,
):
    """A torchvision ResNet backbone (`resnet_backbone(arch)`) with an adaptive head.

    ResNet-50 (D = 2048) gets the paper's head 2048/256 (`output_dim` None: the paper's K). The
    original trains its ResNet-50 with SGD and a different crop scale; those belong to the
    training recipe, not the model.
    """
    return _complete_model(
        resnet_backbone(arch),
        output_dim,
        _head_options(use_bn, norm_last_layer),
        spectral_norm,
        _wrapper_options(epochs, steps_per_epoch, momentum_teacher, momentum_teacher_end),
    )
