"""Given: the starting values of a widget's controls, checked against the control's range.

An ipywidgets slider silently clamps a value outside its range (`IntSlider(value=50, max=10)`
starts at 10) and a checkbox takes any truthy value: an explorer made with such a value would
show something else than was asked for. The explorers pass each starting value through these
functions first, so a bad one is refused with the argument, the value and the range.
"""

from __future__ import annotations

import math

__all__ = ["slider_start", "checkbox_start"]


def slider_start(name: str, value, low: float, high: float, *, integer: bool = False):
    """`value` unchanged if it is a finite number (an int when `integer`) in [low, high].

    Raises:
        ValueError: otherwise, naming `name`, the value and the slider's range.
    """
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if integer:
        fits = is_number and isinstance(value, int) and low <= value <= high
        expected = f"an integer in [{low:g}, {high:g}]"
    else:
        fits = is_number and math.isfinite(value) and low <= value <= high
        expected = f"a number in [{low:g}, {high:g}]"
    if not fits:
        raise ValueError(f"{name} must be {expected} (the slider's range), got {value!r}")
    return value


def checkbox_start(name: str, value) -> bool:
    """`value` if it is True or False; a ValueError naming `name` otherwise ('no' is truthy)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value
