"""Assertions whose failure message starts with a hint a learner can act on.

The grader shows the first line of a failed check's message, so every helper here puts the
hint first and the numbers after it. They check from specific to general, so the message
names the mistake: nothing returned, the wrong kind of value, the wrong dtype or shape, an
input changed in place, and only then the values.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

FLOAT32_EPS = torch.finfo(torch.float32).eps  # 1.19e-7: one ulp of a float32 of size 1


def _kind(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__} ({value!r:.60})"


def expect_type(actual, expected, what: str) -> None:
    """Fail with a specific message when `actual` is None or not the kind of value `expected` is."""
    if actual is None and expected is not None:
        raise AssertionError(f"{what} returned None: did you forget the `return` statement?")
    if isinstance(expected, torch.Tensor) and not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{what} should return a torch.Tensor, got {_kind(actual)}")
    if isinstance(expected, float) and not isinstance(expected, bool):
        if isinstance(actual, torch.Tensor):
            raise AssertionError(
                f"{what} should return a Python float, got {_kind(actual)}: convert it with .item() or float(...)"
            )
        if not isinstance(actual, (float, int)) or isinstance(actual, bool):
            raise AssertionError(f"{what} should return a Python float, got {_kind(actual)}")


def expect_close(
    actual,
    expected,
    hint: str,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool = False,
    what: str = "the exercise",
) -> None:
    """`torch.testing.assert_close`, failing with `hint` as the first line.

    Before comparing values it names the more specific mistakes: None returned, a tensor where a
    float was asked for (or the reverse), a dtype the docstring asks for (`check_dtype=True`),
    and a wrong shape.
    """
    expect_type(actual, expected, what)
    if isinstance(expected, torch.Tensor):
        if check_dtype and actual.dtype != expected.dtype:
            raise AssertionError(f"{what} should return dtype {expected.dtype}, got {actual.dtype}")
        if actual.shape != expected.shape:
            raise AssertionError(
                f"{what} returned shape {tuple(actual.shape)}, expected {tuple(expected.shape)}: {hint}"
            )
        if actual.requires_grad and not expected.requires_grad:
            actual = actual.detach()
    try:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, check_dtype=False)
    except (AssertionError, TypeError) as exc:
        raise AssertionError(f"{hint}\n{exc}") from None


def expect(condition: bool, hint: str) -> None:
    """`assert condition`, with `hint` as the message."""
    if not condition:
        raise AssertionError(hint)


def expect_raises(error: type[BaseException], hint: str, function: Callable, *args, **kwargs) -> None:
    """`function(*args, **kwargs)` must raise `error`; else fail with `hint`."""
    try:
        function(*args, **kwargs)
    except error:
        return
    except Exception as exc:  # noqa: BLE001 - the learner's code raised something else
        raise AssertionError(f"{hint} (expected {error.__name__}, got {type(exc).__name__}: {exc})") from None
    raise AssertionError(f"{hint} (expected {error.__name__}, nothing was raised)")


def _tensors_in(value, path: str):
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors_in(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors_in(item, f"{path}[{key!r}]")


def call_unmutated(function: Callable, *args, may_change: tuple[str, ...] = (), **kwargs):
    """Call `function` and fail with a specific hint if it changed a tensor argument in place.

    Tensors passed directly or inside lists, tuples and dicts are compared bit for bit before and
    after the call; arguments named in `may_change` (documented as updated in place) are exempt.
    Returns what the function returned.
    """
    try:
        bound = inspect.signature(function).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = {**{f"argument {i + 1}": a for i, a in enumerate(args)}, **kwargs}
    before = {
        label: (tensor, tensor.detach().clone())
        for name, value in bound.items()
        if name not in may_change
        for label, tensor in _tensors_in(value, name)
    }
    result = function(*args, **kwargs)
    name = getattr(function, "__qualname__", getattr(function, "__name__", "the exercise"))
    for label, (tensor, copy) in before.items():
        if tensor.shape != copy.shape or not torch.equal(tensor.detach(), copy):
            raise AssertionError(
                f"{name} changed its input `{label}` in place: leave the inputs as they are and compute "
                "new tensors (e.g. `x - c` rather than `x -= c` or `x.sub_(c)`; clone first if you need to modify)"
            )
    return result
