"""The comparison the hidden checks use to recognise a mistake before they report one."""

from __future__ import annotations

import torch


def close(a: torch.Tensor, b: torch.Tensor, tol: dict) -> bool:
    """True when `a` and `b` have the same shape and agree within `tol` (`rtol`, `atol`), compared in
    float64 so that the comparison adds no rounding of its own."""
    return bool(a.shape == b.shape and torch.allclose(a.double(), b.double(), **tol))
