"""Photometric augmentations on a batch of crops, each crop with its own random parameters.

torchvision's transforms draw one set of parameters per call, so a per-image pipeline calls
them once per crop (10 calls per image for DINO's 2 + 8 views). Here every function takes a
batch of crops `(n, 3, H, W)` (float, values in [0, 1]) and a tensor of per-crop parameters
`(n,)`, so all crops of one size are augmented in a handful of tensor operations. This is
what makes the course's multi-crop pipeline faster than the per-image PIL pipeline (see
`benchmarks/multicrop_throughput.py`). Speed rules measured on CPU (1 thread): the cost is
the number of tensor operations for small crops and the number of passes over memory (and of
fresh large buffers) for large ones; comparisons, `torch.where`, `torch.remainder` and
`torch.minimum` cost several times more than arithmetic, so the code avoids them.

The formulas are torchvision's (`torchvision.transforms.v2.functional.adjust_*`): blend with
black (brightness), with the mean grey level (contrast) or with the grey image (saturation),
each followed by clipping to [0, 1]; hue rotation in HSV space. Differences from the PIL
pipeline of the original DINO are named where they are made.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

__all__ = [
    "GRAY_WEIGHTS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "color_jitter",
    "color_jitter_from_lists",
    "to_grayscale",
    "gaussian_blur",
    "solarize",
    "apply_to",
]

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL's convert("L") and torchvision
JITTER_OPERATIONS = ("brightness", "contrast", "saturation", "hue")
_GRAY_COLUMN = torch.tensor(GRAY_WEIGHTS).view(3, 1)


def to_grayscale(crops: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) -> (n, 1, H, W) luma."""
    r, g, b = crops.unbind(dim=1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


# The three blends are one operation, `_blend` (below), which is what the pipeline runs; these
# name its three uses for a tensor of per-crop factors `(n,)`.


def adjust_brightness(crops: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale towards black: factor 0 gives black, 1 leaves the crop unchanged."""
    f = factor.tolist()
    return _blend(crops, own=f, grey=[0.0] * len(f), mean_grey=[0.0] * len(f))


def adjust_contrast(crops: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the crop's mean grey level: factor 0 gives a flat grey crop."""
    f = factor.tolist()
    return _blend(crops, own=f, grey=[0.0] * len(f), mean_grey=[1.0 - x for x in f])


def adjust_saturation(crops: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the grey version of the crop: factor 0 gives a grey crop."""
    f = factor.tolist()
    return _blend(crops, own=f, grey=[1.0 - x for x in f], mean_grey=[0.0] * len(f))


_CHANNEL_SHIFTS = torch.tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1)  # n in HSV -> RGB for R, G, B


def _step(x: torch.Tensor) -> torch.Tensor:
    """In place: 1.0 where x == 0, 0.0 where x < 0 (x = channel - max: 0, or at most about -6e-8).

    Arithmetic only: scaling by 1e30 sends every negative value far below 0. Comparisons and
    `torch.where` cost 5-20 times more than arithmetic on the CPU builds we measured.
    """
    return x.mul_(1e30).add_(1.0).clamp_(0.0, 1.0)


def adjust_hue(crops: torch.Tensor, factor: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate the hue by `factor` turns (in [-0.5, 0.5]), keeping HSV value and saturation.

    Hue H (in sixths of a turn) from the channel that holds the maximum V, with chroma
    C = max - min: (G - B) / C if R is the maximum, 2 + (B - R) / C for G, 4 + (R - G) / C for B
    (where two channels tie for the maximum, their formulas agree modulo 6, so ties can go to
    either). Back to RGB with the closed form: channel n is V - C * clamp(min(k, 4 - k), 0, 1)
    with k = (n + H + 6 · factor) mod 6 and n = 5, 3, 1 for R, G, B. The same operation as
    torchvision's `adjust_hue` (to float rounding), written with arithmetic-only tensor
    operations, few and mostly in place: `torch.remainder`, comparisons and `torch.where`
    cost 5-20 times more than arithmetic on the CPU builds we measured. `out`: a tensor shaped
    like `crops` (not `crops` itself) to write the result into; None for a new one (fresh large
    buffers cost page faults, so the callers hand one over when they have it).
    """
    maxc = crops.amax(dim=1, keepdim=True)  # (n, 1, H, W)
    chroma = maxc - crops.amin(dim=1, keepdim=True)
    inverse = chroma.clamp_min(1e-12).reciprocal_()  # grey pixels: every numerator below is 0
    r, g, b = crops.unbind(dim=1)  # (n, H, W) each
    value = maxc.squeeze(1)
    # few fresh buffers, the rest in place: fresh large buffers cost page faults
    red_is_max = _step(r - value)
    green_is_max = _step(g - value)
    green_is_max.addcmul_(green_is_max, red_is_max, value=-1.0)  # ties go to R, then G, then B
    blue_is_max = torch.add(red_is_max, green_is_max).neg_().add_(1.0)
    difference = b - r
    hue6 = (g - b).mul_(red_is_max).addcmul_(difference, green_is_max)
    hue6.addcmul_(torch.sub(r, g, out=difference), blue_is_max)
    hue6.mul_(inverse.squeeze(1)).add_(green_is_max, alpha=2.0).add_(blue_is_max, alpha=4.0)  # H, up to a multiple of 6
    k = hue6.unsqueeze(1) + (6.0 * factor.to(crops.dtype).view(-1, 1, 1, 1) + _CHANNEL_SHIFTS)  # (n, 3, H, W)
    out = torch.empty_like(k) if out is None else out
    k.add_(torch.mul(k, 1.0 / 6.0, out=out).floor_(), alpha=-6.0)  # mod 6 with floor (far faster than torch.remainder); `out` as scratch
    # min(k, 4 - k) = 2 - |k - 2|, in place (torch.minimum is several times slower than arithmetic here)
    k.sub_(2.0).abs_().neg_().add_(2.0).clamp_(0.0, 1.0)
    return torch.addcmul(maxc, chroma, k, value=-1.0, out=out)


def _blend(
    crops: torch.Tensor,
    own: list[float],
    grey: list[float],
    mean_grey: list[float],
    mean_weights: torch.Tensor | None = None,
    into: torch.Tensor | None = None,
) -> torch.Tensor:
    """clamp(own · x + grey · gray(x) + mean_grey · mean(gray(x)), 0, 1), with per-crop weights (lists of n).

    Brightness (own = f), contrast (own = f, mean_grey = 1 - f), saturation (own = f, grey = 1 - f)
    and the identity (own = 1) are all this one operation, so one call applies, to every crop,
    whichever of the three it has at the current step. Per crop it is a 3 × 3 colour matrix
    M = own · I + grey · (1 1 1)ᵀ (w_R w_G w_B) and an offset, applied to all pixels by one
    batched matrix product, `baddbmm`: one pass over the pixels instead of a dozen tensor
    operations. The identity matrix returns the crop exactly (1 · x + 0 · y + 0 · z = x).
    `mean_weights` `(n, H*W, 1)`: averaging weights for crops that fill only part of the batch's
    canvas (see `canvas_mean_weights`); None: every crop fills the whole `(H, W)`. `into`: a
    tensor shaped like `crops` (not `crops` itself) to write the result into, or None for a new one.
    """
    n = crops.shape[0]
    flat = crops.reshape(n, 3, -1)  # (n, 3, H*W)
    entries = []  # per crop: its 3 × 3 matrix, then its mean_grey weight (one tensor for both)
    red, green, blue = GRAY_WEIGHTS
    for o, g, m in zip(own, grey, mean_grey):
        if g:
            r, gr, b = g * red, g * green, g * blue
            entries += [o + r, gr, b, r, o + gr, b, r, gr, o + b, m]
        else:  # the same numbers, without the arithmetic (most crops at most steps)
            entries += [o, 0.0, 0.0, 0.0, o, 0.0, 0.0, 0.0, o, m]
    parameters = torch.tensor(entries, dtype=crops.dtype).view(n, 10)
    matrices = parameters[:, :9].view(n, 3, 3)
    if any(mean_grey):
        means = flat.mean(dim=2) if mean_weights is None else torch.bmm(flat, mean_weights).squeeze(2)  # (n, 3)
        mean_gray = means @ _GRAY_COLUMN  # (n, 1): mean of the grey image, w · mean(x)
        offset = (mean_gray * parameters[:, 9:]).view(n, 1, 1)  # broadcast over the 3 channels and the pixels
        out = torch.baddbmm(offset, matrices, flat, out=None if into is None else into.view(n, 3, -1))
    else:
        out = torch.bmm(matrices, flat, out=None if into is None else into.view(n, 3, -1))
    return out.clamp_(0.0, 1.0).view(crops.shape)


def color_jitter(
    crops: torch.Tensor, factors: dict[str, torch.Tensor], order: torch.Tensor, apply: torch.Tensor
) -> torch.Tensor:
    """torchvision's `ColorJitter`, with its own factors and its own random order for each crop.

    Args:
        crops: `(n, 3, H, W)` in [0, 1].
        factors: for each of "brightness", "contrast", "saturation", "hue", a tensor `(n,)`.
        order: `(n, 4)` integer permutations of 0..3 (indices into `JITTER_OPERATIONS`): crop i
            gets its operations in the order `order[i]`, as `ColorJitter` draws a random order.
        apply: `(n,)` bool, which crops are jittered at all (`RandomApply(p=0.8)`).

    Returns a new tensor (the input is not modified).

    Every jittered crop gets hue rotation exactly once, somewhere in its order, with up to three
    blend operations (brightness, contrast, saturation) before it and after it. So: the blends
    *before* hue, aligned to end just before it (one fused `_blend` per step, the identity for
    crops with fewer), then hue for all jittered crops in one call, then the blends *after* hue.
    Each crop still gets exactly its own operations in its own order; the batch needs one hue
    call (the expensive one) instead of one per position.
    """
    values = {name: factors[name].tolist() for name in JITTER_OPERATIONS}
    return color_jitter_from_lists(crops, values, order.tolist(), apply.tolist())


def color_jitter_from_lists(
    crops: torch.Tensor,
    values: dict[str, list[float]],
    order: list[list[int]],
    apply: list[bool],
    sizes: list[int] | None = None,
    overwrite: bool = False,
    scratch: torch.Tensor | None = None,
) -> torch.Tensor:
    """`color_jitter` with its per-crop parameters as plain Python lists (what the pipeline draws).

    The bookkeeping is on at most a few dozen numbers per batch: plain Python lists cost less
    than tensor operations here, and small crops pay per operation. `sizes`: crop i fills only
    the top-left `sizes[i] × sizes[i]` pixels of the batch (a canvas holding crops of several
    sizes); contrast then takes the mean over that part only. Every other operation is per pixel.
    `overwrite`: `crops` may be used as a scratch buffer (its values are lost); one fresh buffer
    fewer. `scratch`: a tensor shaped like `crops` to use as a buffer (the result may be it).
    """
    mean_weights = None if sizes is None else canvas_mean_weights(tuple(sizes), crops.shape[-2], crops.shape[-1])
    before, after, hue_crops = [], [], []
    for i, (row, on) in enumerate(zip(order, apply)):
        names = [JITTER_OPERATIONS[k] for k in row] if on else []
        cut = names.index("hue") if on else 0
        before.append(names[:cut])
        after.append(names[cut + 1 :])
        if on:
            hue_crops.append(i)
    # `out` holds the current result; each blend writes into `spare`, the result before last
    # (ours, no longer needed), so that a run allocates two buffers rather than one per step:
    # fresh large buffers cost page faults, which show up most in DataLoader workers
    out, spare = crops, scratch

    def blend(names: list[str | None]) -> None:
        nonlocal out, spare
        out, spare = _blend_step(out, names, values, mean_weights, into=spare), (out if overwrite or out is not crops else None)

    depth = max(map(len, before))
    for step in range(depth):  # right-aligned: crop i's first blend at step depth - len(before[i])
        blend([b[step - depth + len(b)] if step >= depth - len(b) else None for b in before])
    if hue_crops:
        hue = torch.tensor([values["hue"][i] for i in hue_crops], dtype=crops.dtype)
        if len(hue_crops) == len(before):
            out, spare = adjust_hue(out, hue, out=spare), (out if overwrite or out is not crops else None)
        else:
            index = torch.tensor(hue_crops)
            hued = adjust_hue(out.index_select(0, index), hue)
            out = out.index_copy(0, index, hued) if out is crops and not overwrite else out.index_copy_(0, index, hued)
    for step in range(max(map(len, after))):
        blend([a[step] if step < len(a) else None for a in after])
    return crops.clone() if out is crops and not overwrite else out


def _blend_step(
    crops: torch.Tensor,
    names: list[str | None],
    values: dict[str, list[float]],
    mean_weights: torch.Tensor | None = None,
    into: torch.Tensor | None = None,
) -> torch.Tensor:
    """One fused `_blend`: crop i gets brightness, contrast or saturation (`names[i]`), or nothing (None)."""
    own, grey, mean_grey = [], [], []
    for i, name in enumerate(names):
        f = values[name][i] if name else 1.0
        own.append(f)
        grey.append(1.0 - f if name == "saturation" else 0.0)
        mean_grey.append(1.0 - f if name == "contrast" else 0.0)
    return _blend(crops, own, grey, mean_grey, mean_weights, into)


@functools.lru_cache(maxsize=16)
def canvas_mean_weights(sizes: tuple[int, ...], height: int, width: int) -> torch.Tensor:
    """(n, H*W, 1) weights: 1 / s_i² on the top-left s_i × s_i pixels of crop i, 0 elsewhere."""
    weights = torch.zeros(len(sizes), height, width)
    for i, size in enumerate(sizes):
        weights[i, :size, :size] = 1.0 / (size * size)
    return weights.view(len(sizes), height * width, 1)


def apply_to(crops: torch.Tensor, chosen: torch.Tensor | list[bool], transform) -> torch.Tensor:
    """Replace, in place, the crops where `chosen` (bool `(n,)`, tensor or list) is True by `transform(those crops)`.

    Written with `index_select` / `index_copy_`: boolean indexing (`crops[mask] = ...`) and
    `torch.where` over the whole batch were 3-10 times slower on CPU.
    """
    flags = chosen.tolist() if isinstance(chosen, torch.Tensor) else list(chosen)
    indices = [i for i, flag in enumerate(flags) if flag]
    if not indices:
        return crops
    if len(indices) == crops.shape[0]:
        return crops.copy_(transform(crops))
    index = torch.tensor(indices)
    return crops.index_copy_(0, index, transform(crops.index_select(0, index)))


MATMUL_BLUR_MAX_SIZE = 64  # up to this side, blurring by matrix products beats conv2d's per-call overhead


@functools.lru_cache(maxsize=64)
def _taps(radius: int, size: int = 0) -> torch.Tensor:
    """Offsets -r..r as float32 (size 0), or, for a crop side, the clamped source index of each tap `(size, 2r+1)`."""
    offsets = torch.arange(-radius, radius + 1)
    if size == 0:
        return offsets.float()
    return (torch.arange(size).view(-1, 1) + offsets.view(1, -1)).clamp_(0, size - 1)


def _blur_kernels(sigma: torch.Tensor, radius: int, dtype: torch.dtype) -> torch.Tensor:
    """(n, 2r+1) normalised, sampled Gaussians."""
    kernel = torch.exp(-0.5 * (_taps(radius).to(dtype) / sigma.to(dtype).view(-1, 1)) ** 2)
    return kernel / kernel.sum(dim=1, keepdim=True)


def _blur_matrices(kernel: torch.Tensor, size: int, sizes: list[int] | None = None) -> torch.Tensor:
    """(n, size, size) matrices M with (M x)[i] = sum_t kernel[t] x[clamp(i + t - r, 0, size - 1)].

    With `sizes`, crop i fills only the first `sizes[i]` rows / columns: its taps are clamped to
    its own edge (so nothing of the canvas around it leaks in).
    """
    n, taps = kernel.shape
    source = _taps(taps // 2, size).expand(n, size, taps)  # (n, size, 2r+1)
    if sizes is not None:
        source = torch.minimum(source, torch.tensor(sizes).view(n, 1, 1) - 1)
    matrices = torch.zeros(n, size, size, dtype=kernel.dtype)
    return matrices.scatter_add_(2, source, kernel.view(n, 1, taps).expand(n, size, taps))


def gaussian_blur(
    crops: torch.Tensor, sigma: torch.Tensor, truncate: float = 3.0, sizes: list[int] | None = None
) -> torch.Tensor:
    """Blur each crop with its own Gaussian of standard deviation `sigma[i]` pixels.

    A separable, sampled Gaussian truncated at `truncate` σ of the largest σ in the batch, with
    edge pixels repeated outside the crop. Differs from the original DINO, which used PIL's
    `ImageFilter.GaussianBlur` (an approximation by three box blurs with the same σ).
    Small crops are blurred as two matrix products (rows, then columns), larger ones with a
    depthwise convolution; both compute the same sums. `sizes`: crop i fills only the top-left
    `sizes[i] × sizes[i]` pixels of a square canvas (small crops only, matrix form): its edge
    pixels are the ones repeated.
    """
    n, channels, height, width = crops.shape
    radius = max(1, math.ceil(truncate * float(sigma.max())))
    kernel = _blur_kernels(sigma, radius, crops.dtype)  # (n, 2r+1)
    if sizes is not None and (height != width or height > MATMUL_BLUR_MAX_SIZE):
        raise ValueError(f"sizes needs a square canvas of side <= {MATMUL_BLUR_MAX_SIZE}, got crops of shape {tuple(crops.shape)}")
    if max(height, width) <= MATMUL_BLUR_MAX_SIZE:
        rows = _blur_matrices(kernel, height, sizes).unsqueeze(1)  # (n, 1, H, H)
        columns = (rows if width == height else _blur_matrices(kernel, width).unsqueeze(1)).transpose(-1, -2)  # (n, 1, W, W)
        return rows @ crops @ columns
    kernel = kernel.repeat_interleave(channels, dim=0)  # (n*3, 2r+1), one filter per channel
    x = crops.reshape(1, n * channels, height, width)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    # depthwise convolutions run 1.5-2 times faster on CPU in channels-last memory
    x = x.contiguous(memory_format=torch.channels_last)
    x = F.conv2d(x, kernel.view(n * channels, 1, 1, -1), groups=n * channels)  # along W
    x = F.conv2d(x, kernel.view(n * channels, 1, -1, 1), groups=n * channels)  # along H
    return x.reshape(n, channels, height, width)


def solarize(crops: torch.Tensor, threshold: float = 128 / 255) -> torch.Tensor:
    """Invert every value at or above `threshold` (PIL's `ImageOps.solarize(image, 128)`)."""
    return torch.where(crops >= threshold, 1.0 - crops, crops)
