"""Lesson 3.3: the DINO projection head (MLP, L2 normalisation, weight-normalised last layer).

The backbone gives one feature per image, the CLS token `(B, D)`. DINO never compares those
features directly. A *projection head* maps them to K "prototype" scores, and the loss
compares the student's and the teacher's softmax over those K scores:

    h(x) = W_K · ( z / ‖z‖₂ ),   z = MLP(x)                       (Caron et al. 2021, §3.1 and App.)

  - MLP: 3 layers D → 2048 → 2048 → 256 with GELU between them (no activation after the last
    one, the 256-d "bottleneck"); optional BatchNorm after the hidden layers (off for ViTs);
  - the bottleneck is L2-normalised: every image becomes a point on the unit sphere;
  - the last layer W_K (256 → K = 65536, no bias) is *weight normalised*: each row is
    w_k = g_k · v_k / ‖v_k‖₂. With `norm_last_layer=True` the magnitudes g_k are fixed at 1,
    so every row is a unit vector and every score is a cosine similarity in [−1, 1];
    the temperature of the loss (0.1 for the student) then sets the sharpness, not the head.

The paper notes that the weight-normalised last layer with fixed g is what keeps training
of ViT-S stable, and that the last layer is frozen during the first epoch (its gradients are
dropped), because the prototypes are otherwise pulled around by the random early features.

Exercises (each marked in its docstring):
    build_mlp, init_linear_weights, l2_normalize, WeightNormalizedLinear.effective_weight,
    DINOProjectionHead.forward, cancel_last_layer_gradients
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)

LESSON = "3.3"
LESSON_TITLE = "Projection heads and L2 normalisation"
LESSON_NOTEBOOK = "lessons/module3/3.3_projection_heads.ipynb"

# The paper's head (main_dino.py defaults): K = 65536 prototypes, hidden 2048, bottleneck 256.
OUTPUT_DIM = 65536  # K: more prototypes help a little (paper Table 9); 65536 costs 16.8 M parameters
HIDDEN_DIM = 2048  # width of the two hidden layers
BOTTLENECK_DIM = 256  # the L2-normalised space the prototypes live in
NLAYERS = 3  # Linear layers in the MLP (before the last layer)
# Weight-normalised last layer with its magnitudes g fixed at 1 (the original's --norm_last_layer default).
# Its help text: not normalising performs better but can make training unstable; its authors typically
# set it False for ViT-S and True for ViT-B.
NORM_LAST_LAYER = True
# BatchNorm after the MLP's hidden layers: off, the original's --use_bn_in_head default (its ResNet runs use it).
USE_BN_IN_HEAD = False
INIT_STD = 0.02  # truncated-normal std of the MLP weights, as in the original ViT recipe
L2_EPS = 1e-12  # x / max(‖x‖, eps): the same guard as torch.nn.functional.normalize


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):  # 'no' or 0.0 would otherwise be read as a yes or a no
        raise ValueError(f"{name} must be True or False, got {value!r}")


# --------------------------------------------------------------------------------------------
# The MLP and its initialisation
# --------------------------------------------------------------------------------------------


def build_mlp(
    in_dim: int, hidden_dim: int, bottleneck_dim: int, nlayers: int = NLAYERS, use_bn: bool = USE_BN_IN_HEAD
) -> nn.Sequential:
    """Exercise 3.3 · the head's MLP: `nlayers` Linear layers, GELU between them, optional BatchNorm.

    For `nlayers = 3` (the paper):

        Linear(D, hidden) → [BatchNorm1d(hidden)] → GELU →
        Linear(hidden, hidden) → [BatchNorm1d(hidden)] → GELU →
        Linear(hidden, bottleneck)

    The bracketed BatchNorm layers exist only with `use_bn=True`. Deeper MLPs repeat the
    middle block; `nlayers = 1` is a single `Linear(D, bottleneck)` (returned inside an
    `nn.Sequential`). Use the exact GELU (`nn.GELU()`), and no activation after the last layer.

    The order of the modules fixes the state-dict keys, which must match the original so
    that its weights load: `0, 2, 4` without BatchNorm (the GELUs sit at 1 and 3), and
    `0, 1 (BN), 3, 4 (BN), 6` with it.

    Args:
        in_dim: D, the backbone feature width.
        hidden_dim: width of the hidden layers (2048 in the paper).
        bottleneck_dim: output width (256 in the paper).
        nlayers: number of Linear layers, at least 1.
        use_bn: BatchNorm1d after every hidden Linear layer.

    Returns:
        An `nn.Sequential` mapping `(B, in_dim)` to `(B, bottleneck_dim)`.

    Raises:
        ValueError: a width or `nlayers` that is not a positive int.

    Example:
        >>> mlp = build_mlp(8, 16, 4, nlayers=3)
        >>> [type(m).__name__ for m in mlp]
        ['Linear', 'GELU', 'Linear', 'GELU', 'Linear']
        >>> mlp(torch.zeros(2, 8)).shape
        torch.Size([2, 4])
    """
    for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("bottleneck_dim", bottleneck_dim), ("nlayers", nlayers)):
        _check_positive_int(name, value)
    # BEGIN SOLUTION
    if nlayers == 1:
        return nn.Sequential(nn.Linear(in_dim, bottleneck_dim))
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(nlayers - 1):
        layers.append(nn.Linear(width, hidden_dim))
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.GELU())
        width = hidden_dim
    layers.append(nn.Linear(hidden_dim, bottleneck_dim))
    return nn.Sequential(*layers)
    # END SOLUTION


def init_linear_weights(module: nn.Module) -> None:
    """Exercise 3.3 · DINO's initialisation of one module: truncated normal (std 0.02), zero bias.

    Meant for `mlp.apply(init_linear_weights)`, which calls it on every submodule. For an
    `nn.Linear`: draw the weight from a normal distribution with std `INIT_STD` = 0.02,
    truncated to [−2, 2] (`nn.init.trunc_normal_`; with std 0.02 the cut never bites), and set
    the bias, if any, to 0. Every other module is left as it is (BatchNorm keeps weight 1,
    bias 0).

    Small initial weights keep the early features, and so the early prototype scores, close
    to zero: training starts from a near-uniform prediction.

    Args:
        module: any module; only `nn.Linear` is changed (in place).

    Example:
        >>> layer = nn.Linear(100, 100)
        >>> init_linear_weights(layer)
        >>> round(float(layer.weight.detach().std()), 2), float(layer.bias.detach().abs().max())
        (0.02, 0.0)
    """
    # BEGIN SOLUTION
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    # END SOLUTION


# --------------------------------------------------------------------------------------------
# L2 normalisation and the weight-normalised last layer
# --------------------------------------------------------------------------------------------


def l2_normalize(x: torch.Tensor, eps: float = L2_EPS) -> torch.Tensor:
    """Exercise 3.3 · project every row onto the unit sphere: z / max(‖z‖₂, eps).

    Each row (the last dimension) is divided by its Euclidean norm; the `eps` floor keeps an
    all-zero row at zero instead of turning it into NaN. This is what
    `torch.nn.functional.normalize(x, dim=-1)` computes; write it yourself.

    Args:
        x: `(..., D)`, e.g. the bottleneck `(B, 256)`.
        eps: the smallest norm divided by.

    Returns:
        A tensor of the same shape whose rows have norm 1 (or are all zero). Differentiable.

    Example:
        >>> l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        tensor([[0.6000, 0.8000],
                [0.0000, 0.0000]])
    """
    # BEGIN SOLUTION
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)
    # END SOLUTION


class WeightNormalizedLinear(nn.Module):
    """A bias-free Linear layer whose rows are w_k = g_k · v_k / ‖v_k‖₂ (Salimans & Kingma 2016).

    Holds two parameters with the original DINO state-dict names (those of the classic
    `torch.nn.utils.weight_norm`), so the original weights load as they are:

      - `weight_g` `(out_features, 1)`: the magnitude g of every row, initialised to 1;
      - `weight_v` `(out_features, in_features)`: the direction v, PyTorch's default Linear init.

    Course note: the original wraps an `nn.Linear` with `torch.nn.utils.weight_norm`, which
    PyTorch now deprecates and whose hook makes `copy.deepcopy` fragile; this small module
    computes the same weight explicitly (the same operation order as PyTorch's kernel) and
    deep-copies like any other module.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        _check_positive_int("in_features", in_features)
        _check_positive_int("out_features", out_features)
        direction = nn.Linear(in_features, out_features, bias=False).weight.detach()  # PyTorch's default init
        self.in_features, self.out_features = in_features, out_features
        self.weight_g = nn.Parameter(torch.ones(out_features, 1))
        self.weight_v = nn.Parameter(direction.clone())

    def effective_weight(self) -> torch.Tensor:
        """Exercise 3.3 · the weight the layer multiplies by: W[k, :] = g[k] · v[k, :] / ‖v[k, :]‖₂.

        Compute it from `self.weight_g` `(K, 1)` and `self.weight_v` `(K, D)` on every call
        (do not store it: g and v are what the optimiser changes), differentiably with
        respect to both. Every row of the result has norm g[k], whatever the size of v.
        (No eps is needed: a row of v is never exactly zero in practice, as in the original.)

        Returns:
            `(out_features, in_features)`.

        Example:
            >>> layer = WeightNormalizedLinear(3, 2)
            >>> torch.allclose(torch.linalg.vector_norm(layer.effective_weight(), dim=1), torch.ones(2))
            True
        """
        # BEGIN SOLUTION
        return self.weight_v * (self.weight_g / torch.linalg.vector_norm(self.weight_v, dim=1, keepdim=True))
        # END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight())  # (B, in) -> (B, out)

    # Checkpoints saved with the newer `torch.nn.utils.parametrizations.weight_norm` name the same
    # tensors `parametrizations.weight.original0` (g) and `original1` (v); accept those too.
    _NEW_STYLE_KEYS = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for new_style, name in self._NEW_STYLE_KEYS.items():
            if prefix + new_style in state_dict and prefix + name not in state_dict:
                state_dict[prefix + name] = state_dict.pop(prefix + new_style)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias=False"


# --------------------------------------------------------------------------------------------
# The head
# --------------------------------------------------------------------------------------------


class DINOProjectionHead(nn.Module):
    """The DINO head: MLP → L2-normalise → weight-normalised Linear to K prototypes.

    `DINOProjectionHead(in_dim=384)` is the paper's head for ViT-S/16 (K = 65536). The Module 3
    configuration dict works as is:
    `DINOProjectionHead(in_dim=384, **{'hidden_dim': 2048, 'bottleneck_dim': 256,
    'output_dim': 65536, 'use_bn': False, 'norm_last_layer': True})`.

    State-dict keys are the original's (`mlp.0.weight`, …, `last_layer.weight_g`,
    `last_layer.weight_v`), so the original weights load with `load_state_dict`.

    Args:
        in_dim: D, the backbone feature width.
        output_dim: K, the number of prototypes (65536 in the paper).
        hidden_dim, bottleneck_dim, nlayers, use_bn: the MLP (see `build_mlp`).
        norm_last_layer: fix the last layer's magnitudes g at 1 (not trained); the original's
            default. False trains g too: better results but less stable, by the original's help
            text, whose authors use False for ViT-S and True for ViT-B.
    """

    def __init__(
        self,
        in_dim: int,
        output_dim: int = OUTPUT_DIM,
        hidden_dim: int = HIDDEN_DIM,
        bottleneck_dim: int = BOTTLENECK_DIM,
        use_bn: bool = USE_BN_IN_HEAD,
        norm_last_layer: bool = NORM_LAST_LAYER,
        nlayers: int = NLAYERS,
    ) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("output_dim", output_dim), ("hidden_dim", hidden_dim),
                            ("bottleneck_dim", bottleneck_dim), ("nlayers", nlayers)):
            _check_positive_int(name, value)
        _check_bool("use_bn", use_bn)
        _check_bool("norm_last_layer", norm_last_layer)
        self.in_dim, self.output_dim, self.bottleneck_dim = in_dim, output_dim, bottleneck_dim
        self.mlp = build_mlp(in_dim, hidden_dim, bottleneck_dim, nlayers=nlayers, use_bn=use_bn)
        # As in the original, the init runs before the last layer exists: v keeps PyTorch's
        # default Linear init and only the MLP gets the truncated normal.
        self.mlp.apply(init_linear_weights)
        self.last_layer = WeightNormalizedLinear(bottleneck_dim, output_dim)
        self.norm_last_layer = norm_last_layer
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad_(False)  # g stays exactly 1: scores are cosines

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Exercise 3.3 · the head's forward: h(x) = W_K · l2_normalize(MLP(x)).

        Run the MLP (`self.mlp`), L2-normalise the bottleneck row-wise with your
        `l2_normalize`, then apply the weight-normalised last layer (`self.last_layer`).
        The normalisation sits *between* the MLP and the last layer: the prototypes score
        points on the unit sphere, so with g = 1 every output is a cosine similarity.

        Args:
            x: `(B, D)` backbone features (B may be V * B for a multi-crop batch).

        Returns:
            `(B, K)` prototype scores.

        Raises:
            ValueError: `x` is not 2-D with `in_dim` columns.

        Example:
            >>> head = DINOProjectionHead(in_dim=8, output_dim=5, hidden_dim=16, bottleneck_dim=4)
            >>> scores = head(torch.randn(3, 8))
            >>> scores.shape, bool(scores.abs().max() <= 1)
            (torch.Size([3, 5]), True)
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.in_dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a (B, in_dim={self.in_dim}) tensor of backbone features, got {shape}")
        # BEGIN SOLUTION
        bottleneck = self.mlp(x)  # (B, bottleneck_dim)
        return self.last_layer(l2_normalize(bottleneck))  # (B, K)
        # END SOLUTION

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised bottleneck `(B, bottleneck_dim)`: the points the prototypes score."""
        return l2_normalize(self.mlp(x))


# --------------------------------------------------------------------------------------------
# Freezing the last layer during the first epoch
# --------------------------------------------------------------------------------------------


def cancel_last_layer_gradients(model: nn.Module, epoch: int, freeze_last_layer: int) -> None:
    """Exercise 3.3 · drop the last layer's gradients while `epoch < freeze_last_layer`.

    The original freezes the prototypes for the first epoch (`freeze_last_layer=1`) by
    deleting their gradients after `backward()` and before `optimizer.step()`: set `.grad`
    to **None** (not zero) for every parameter whose name (from `model.named_parameters()`)
    contains `"last_layer"`. With no gradient at all, AdamW skips the parameter entirely: no
    moment update, no step count, no weight decay. A zero gradient would still let weight
    decay and the Adam moments move it. From epoch `freeze_last_layer` on, do nothing.

    Args:
        model: the student (any module; its head's last layer is named `last_layer`).
        epoch: the current epoch, 0-based.
        freeze_last_layer: number of epochs during which the last layer is frozen (0 = never).

    Raises:
        ValueError: a negative `epoch` or `freeze_last_layer`.

    Example:
        >>> head = DINOProjectionHead(in_dim=4, output_dim=3, hidden_dim=8, bottleneck_dim=2)
        >>> head(torch.randn(5, 4)).sum().backward()
        >>> cancel_last_layer_gradients(head, epoch=0, freeze_last_layer=1)
        >>> head.last_layer.weight_v.grad is None, head.mlp[0].weight.grad is None
        (True, False)
    """
    for name, value in (("epoch", epoch), ("freeze_last_layer", freeze_last_layer)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    # BEGIN SOLUTION
    if epoch >= freeze_last_layer:
        return
    for name, parameter in model.named_parameters():
        if "last_layer" in name:
            parameter.grad = None
    # END SOLUTION
