"""A small, readable Vision Transformer: the backbone every lesson trains.

This file is given infrastructure, not an exercise. It follows the ViT that DINO uses
(Dosovitskiy et al. 2021; Caron et al. 2021, facebookresearch/dino `vision_transformer.py`)
closely enough that a state dict's keys and numbers line up with the original:

    image (B, 3, H, W)
      -> patch embedding: a P x P conv with stride P          (B, N, D), N = (H/P)(W/P)
      -> prepend the CLS token                                 (B, 1 + N, D)
      -> add position embeddings, interpolated to H/P x W/P    (B, 1 + N, D)
      -> `depth` pre-norm blocks: x + attn(norm1(x)), x + mlp(norm2(x))
      -> final LayerNorm; token 0 is the CLS feature           (B, D)

One model takes crops of any size that is a multiple of the patch size: the position
embeddings are learnt for `img_size` and resampled (bicubic) for other grids, which is
how the student sees 224 px global and 96 px local crops with the same weights.

Simplifications of the original, named here: no dropout and no stochastic depth
(`drop_path_rate` is 0 in the DINO ViT-S/16 recipe too); the attention of the ordinary
forward over more than `EXPLICIT_ATTENTION_MAX_TOKENS` tokens uses the fused
`F.scaled_dot_product_attention` (same numbers, faster on a CPU for long sequences), and over
fewer the original's explicit softmax(q k^T * scale) v; `last_attention` computes the
probabilities explicitly so the lessons can show them.

A speed change, named here and at `linear`: on an x86 CPU, in float32, the blocks' four linear
layers (q/k/v, projection, the MLP's two) multiply through oneDNN rather than `F.linear`, which
PyTorch sends to MKL. Same weights, same float32 arithmetic, another summation order (results
agree to float32 rounding). Measured on the course's AMD EPYC development machine, where MKL's
float32 GEMM ran at 22-30 GFLOP/s per core and oneDNN's at 80-170: a (3456 x 96) @ (96 x 384)
product, one thread, 9.3 ms vs 1.2 ms (benchmarks/README.md, "The original DINO code").
`FAST_CPU_LINEAR = False` switches it off.
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ViTConfig",
    "VisionTransformer",
    "TINY_CPU",
    "VIT_SMALL_16",
    "vit_tiny_cpu",
    "vit_small",
    "interpolate_pos_embed",
]


@dataclass(frozen=True)
class ViTConfig:
    """The shape of a Vision Transformer.

    Defaults are the DINO ViT-S/16 numbers; `TINY_CPU` is the course's laptop preset.
    """

    img_size: int = 224  # crop size the position embeddings are learnt for (global crops)
    patch_size: int = 16  # P: 16 x 16 pixels per token; smaller patches = more tokens = slower
    in_chans: int = 3
    embed_dim: int = 384  # D
    depth: int = 12  # number of transformer blocks
    num_heads: int = 6  # D must divide evenly; head dim = D / heads (64 in ViT-S)
    mlp_ratio: float = 4.0  # hidden width of each block's MLP, relative to D
    qkv_bias: bool = True  # the DINO ViT factories use a bias on q, k, v
    layernorm_eps: float = 1e-6  # the DINO ViT factories' LayerNorm eps (not PyTorch's 1e-5)

    def __post_init__(self) -> None:
        for name in ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"ViTConfig.{name} must be a positive int, got {value!r}")
        if isinstance(self.mlp_ratio, bool) or not isinstance(self.mlp_ratio, (int, float)) or not 0 < self.mlp_ratio < math.inf:
            raise ValueError(f"ViTConfig.mlp_ratio must be a finite number > 0, got {self.mlp_ratio!r}")
        if not isinstance(self.qkv_bias, bool):
            raise ValueError(f"ViTConfig.qkv_bias must be True or False, got {self.qkv_bias!r}")
        if isinstance(self.layernorm_eps, bool) or not isinstance(self.layernorm_eps, (int, float)) or not 0 < self.layernorm_eps < math.inf:
            raise ValueError(f"ViTConfig.layernorm_eps must be a finite number > 0, got {self.layernorm_eps!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"ViTConfig.embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.img_size % self.patch_size:
            raise ValueError(
                f"ViTConfig.img_size ({self.img_size}) must be a multiple of patch_size ({self.patch_size})"
            )


# Multiply the blocks' linear layers through oneDNN on an x86 CPU in float32 (see the module docstring).
FAST_CPU_LINEAR = True

# Attention over at most this many tokens is computed explicitly, softmax(q k^T * scale) v, as the
# original does; longer sequences use the fused `F.scaled_dot_product_attention`. On the cpu-digits
# crops (17 and 5 tokens) PyTorch's fused CPU kernel split the few, tiny heads over two threads and
# got slower than on one (benchmarks/README.md, "The original DINO code"); the explicit form's matmuls
# scale with the threads. Same numbers up to float32 rounding.
EXPLICIT_ATTENTION_MAX_TOKENS = 32
_ONEDNN_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if (
    torch.backends.mkldnn.is_available() and platform.machine().lower() in ("x86_64", "amd64")) else None


class _OneDNNLinear(torch.autograd.Function):
    """`F.linear(x, weight, bias)` with oneDNN's float32 GEMM, forward and backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])  # (B * N, D_in)
        ctx.save_for_backward(rows, weight)
        ctx.input_shape, ctx.has_bias = x.shape, bias is not None
        out = _ONEDNN_LINEAR(rows, weight, bias, "none", [], "")  # rows @ weight^T + bias
        return out.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        rows, weight = ctx.saved_tensors
        grad_rows = grad_out.reshape(-1, weight.shape[0])  # (B * N, D_out)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:  # grad_rows @ weight, as a linear with weight^T
            grad_x = _ONEDNN_LINEAR(grad_rows, weight.t().contiguous(), None, "none", [], "").reshape(ctx.input_shape)
        if ctx.needs_input_grad[1]:  # grad_rows^T @ rows
            grad_weight = _ONEDNN_LINEAR(grad_rows.t(), rows.t(), None, "none", [], "")
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)
        return grad_x, grad_weight, grad_bias


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)`; through oneDNN on an x86 CPU in float32 outside autocast and `torch.compile` (speed
    only, see the module docstring; a compiled graph chooses its own GEMM)."""
    if (FAST_CPU_LINEAR and _ONEDNN_LINEAR is not None and x.device.type == "cpu" and x.dtype == torch.float32
            and layer.weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling()):
        return _OneDNNLinear.apply(x, layer.weight, layer.bias)
    return layer(x)


# The paper's ViT-S/16: 21 M parameters, 224 px global crops.
VIT_SMALL_16 = ViTConfig()
# The course's CPU preset: 32 px global crops cut into 4 px patches (an 8 x 8 grid, 64 tokens),
# 3 narrow blocks. About 0.2 M parameters: a training step on a laptop takes tens of milliseconds.
TINY_CPU = ViTConfig(img_size=32, patch_size=4, embed_dim=96, depth=3, num_heads=3)


def interpolate_pos_embed(pos_embed: torch.Tensor, grid_rows: int, grid_cols: int) -> torch.Tensor:
    """Resample learnt position embeddings to a new patch grid.

    Args:
        pos_embed: `(1, 1 + n*n, D)`: the CLS row, then an n x n grid, row-major.
        grid_rows, grid_cols: the patch grid of the new image, H/P x W/P.

    Returns:
        `(1, 1 + grid_rows * grid_cols, D)`: the CLS row unchanged, the grid resampled with
        bicubic interpolation (PyTorch's kernel, a = -0.75, `align_corners=False`).

    This reproduces the original implementation's numbers exactly, including one detail
    that matters: it asks for *scale factors* `(rows + 0.1) / n`, not an output size. The
    small 0.1 only guards the floor that turns a scale into a size, but the scale factor also
    sets where each output sample reads the source grid, so asking for the size directly gives
    different numbers (checked against `golden/pos_embed`).
    """
    num_patches = pos_embed.shape[1] - 1
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"pos_embed must hold a square grid after the CLS row, got {num_patches} patch rows")
    if grid_rows == side and grid_cols == side:
        return pos_embed
    dim = pos_embed.shape[-1]
    cls_row, grid = pos_embed[:, :1], pos_embed[:, 1:]
    grid = grid.reshape(1, side, side, dim).permute(0, 3, 1, 2)  # (1, D, n, n)
    grid = F.interpolate(
        grid,
        scale_factor=((grid_rows + 0.1) / side, (grid_cols + 0.1) / side),
        mode="bicubic",
        align_corners=False,
    )  # (1, D, rows, cols)
    if grid.shape[-2:] != (grid_rows, grid_cols):  # cannot happen for grids up to thousands of patches
        raise RuntimeError(f"interpolated grid is {tuple(grid.shape[-2:])}, expected {(grid_rows, grid_cols)}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, grid_rows * grid_cols, dim)  # (1, rows*cols, D)
    return torch.cat([cls_row, grid], dim=1)


class PatchEmbed(nn.Module):
    """Cut an image into P x P patches and project each to D numbers (one strided conv)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(images)  # (B, D, H/P, W/P)
        return tokens.flatten(2).transpose(1, 2)  # (B, N, D), patches row-major


class Attention(nn.Module):
    """Multi-head self-attention with one fused q, k, v projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, tokens, dim = x.shape
        qkv = linear(self.qkv, x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, heads, N, D/heads)
        return qkv[0], qkv[1], qkv[2]

    def attention_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax attention probabilities, `(B, heads, N, N)` (query rows, key columns)."""
        q, k, _ = self._split_heads(x)
        return ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self._split_heads(x)
        if tokens <= EXPLICIT_ATTENTION_MAX_TOKENS:  # short sequences: two batched matmuls and a softmax
            out = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, heads, N, D/heads)
        out = out.transpose(1, 2).reshape(batch, tokens, dim)  # (B, N, D)
        return linear(self.proj, out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(self.fc2, F.gelu(linear(self.fc1, x)))  # exact (erf) GELU, as the original


class Block(nn.Module):
    """Pre-norm transformer block: normalise, transform, add back."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.layernorm_eps)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.layernorm_eps)
        self.mlp = Mlp(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT backbone. `forward` returns the CLS feature `(B, D)` of the last layer.

    Plain methods give the lessons what they need:
      - `forward(images)` -> CLS features `(B, D)`
      - `token_features(images)` -> all final tokens `(B, 1 + N, D)` (token 0 is CLS)
      - `last_attention(images)` -> the last block's attention `(B, heads, 1 + N, 1 + N)`
    """

    def __init__(self, cfg: ViTConfig = TINY_CPU) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dim = cfg.embed_dim  # read by heads that size themselves to the backbone
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        side = cfg.img_size // cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + side * side, cfg.embed_dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layernorm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        # The original: truncated normal (std 0.02) for position embeddings, CLS token and
        # every Linear weight; zero biases; LayerNorm at identity. The patch conv keeps
        # PyTorch's default init, as in the original.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a tensor of shape (B, C, H, W), got {shape}")
        patch = self.cfg.patch_size
        if images.shape[1] != self.cfg.in_chans or images.shape[-2] % patch or images.shape[-1] % patch:
            raise ValueError(
                f"images must have {self.cfg.in_chans} channels and a height and width that are "
                f"multiples of the patch size {patch}, got shape {tuple(images.shape)}"
            )

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch tokens with CLS prepended and position embeddings added, `(B, 1 + N, D)`."""
        self._check_images(images)
        batch = images.shape[0]
        rows, cols = images.shape[-2] // self.cfg.patch_size, images.shape[-1] // self.cfg.patch_size
        tokens = self.patch_embed(images)  # (B, N, D)
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)  # (B, 1 + N, D)
        return tokens + interpolate_pos_embed(self.pos_embed, rows, cols)

    def token_features(self, images: torch.Tensor) -> torch.Tensor:
        """All output tokens after the final LayerNorm, `(B, 1 + N, D)`; token 0 is CLS."""
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """CLS feature of each image, `(B, D)`."""
        return self.token_features(images)[:, 0]

    def last_attention(self, images: torch.Tensor) -> torch.Tensor:
        """Attention probabilities of the last block, `(B, heads, 1 + N, 1 + N)`.

        Row 0 is what the CLS token attends to: reshaped to the patch grid, it is the
        attention map DINO is famous for.
        """
        x = self.embed(images)
        for block in self.blocks[:-1]:
            x = block(x)
        return self.blocks[-1].attn.attention_probs(self.blocks[-1].norm1(x))


def vit_tiny_cpu(**overrides) -> VisionTransformer:
    """The course's laptop-CPU ViT (`TINY_CPU`), with any field overridden."""
    return VisionTransformer(ViTConfig(**{**TINY_CPU.__dict__, **overrides}))


def vit_small(**overrides) -> VisionTransformer:
    """The paper's ViT-S/16 (`VIT_SMALL_16`, 21 M parameters), with any field overridden."""
    return VisionTransformer(ViTConfig(**{**VIT_SMALL_16.__dict__, **overrides}))
