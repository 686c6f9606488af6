"""Argument checks shared by every public entry point: each error names the
argument, the value received and what is expected."""

from __future__ import annotations

import math
import numbers
from typing import Any


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Validate a string option."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {choices}. Received: {name}={value!r}."
        )
    return value


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    include_low: bool = False,
    include_high: bool = True,
) -> float:
    """Validate a finite real number (Python or NumPy) within a range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a real number. Received: {name}={value!r} "
            f"of type {type(value).__name__}."
        )
    value = float(value)
    too_low = low is not None and (value < low if include_low else value <= low)
    too_high = high is not None and (value > high if include_high else value >= high)
    if too_low or too_high or not math.isfinite(value):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        interval = (
            f"{'[' if include_low else '('}{lo}, {hi}{']' if include_high else ')'}"
        )
        raise ValueError(
            f"`{name}` must be a finite number in {interval}. "
            f"Received: {name}={value!r}."
        )
    return value


def check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> Any:
    """Validate an integer (Python or NumPy) >= `minimum` (or None)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an integer{' or None' if allow_none else ''}. "
            f"Received: {name}={value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value!r}.")
    return int(value)
