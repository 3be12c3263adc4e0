"""Assertions whose failure message starts with a hint a learner can act on.

The grader shows the first line of a failed check's message, so every helper here puts the
hint first and the numbers after it.
"""

from __future__ import annotations

import torch


def expect_close(actual, expected, hint: str, *, rtol: float | None = None, atol: float | None = None) -> None:
    """`torch.testing.assert_close`, failing with `hint` as the first line."""
    if isinstance(expected, torch.Tensor) and not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{hint}\nexpected a torch.Tensor, got {type(actual).__name__}")
    if isinstance(expected, torch.Tensor) and actual.shape != expected.shape:
        raise AssertionError(f"{hint}\nshape {tuple(actual.shape)} differs from the expected {tuple(expected.shape)}")
    try:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, check_dtype=False)
    except AssertionError as exc:
        raise AssertionError(f"{hint}\n{exc}") from None


def expect(condition: bool, hint: str) -> None:
    """`assert condition`, with `hint` as the message."""
    if not condition:
        raise AssertionError(hint)
