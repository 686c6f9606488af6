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


def host_array(value: Any) -> Any:
    """`value` as a NumPy array when its values sit on the host (a NumPy
    array or scalar, a Python list/tuple/number), else None: a backend tensor
    (maybe traced, maybe on an accelerator) is not read back, so checks on
    values only run on host data, at no cost to a training step."""
    import numpy as np

    if isinstance(value, (np.ndarray, np.generic, numbers.Number, list, tuple)):
        try:
            return np.asarray(value)
        except (ValueError, TypeError):  # ragged lists: left to the caller
            return None
    return None


def check_class_indices(
    name: str, values: Any, num_classes: int, bound: str | None = None
) -> None:
    """Raise if host `values` (integer indices) leave `[0, num_classes)`.

    One-hot of an out-of-range class index is an all-zero row (on TensorFlow
    and JAX), which silently drops the sample's label; this check is made
    where the values are known, at the public entry points. `bound` says
    where `num_classes` comes from (default `"num_classes=<value>"`).
    """
    import numpy as np

    flat = np.asarray(values).reshape(-1)
    if flat.size == 0 or flat.dtype.kind not in "iu":
        return
    bad = np.flatnonzero((flat < 0) | (flat >= num_classes))
    if bad.size:
        first = int(bad[0])
        raise ValueError(
            f"`{name}` must be indices in [0, {num_classes}) "
            f"({bound or f'num_classes={num_classes}'}). Received {bad.size} "
            f"out-of-range value(s), e.g. {name}[{first}]={flat[first]}; values "
            f"span [{flat.min()}, {flat.max()}]."
        )


def check_unit_interval(name: str, values: Any) -> None:
    """Raise if host `values` are not all finite and within [0, 1]."""
    import numpy as np

    flat = np.asarray(values, dtype="float64").reshape(-1)
    bad = np.flatnonzero(~((flat >= 0.0) & (flat <= 1.0)))
    if bad.size:
        first = int(bad[0])
        raise ValueError(
            f"`{name}` must be finite and in [0, 1]. Received {bad.size} value(s) "
            f"outside it, e.g. {name}[{first}]={flat[first]}."
        )


def misplaced_channels(dims: Any, data_format: str) -> bool:
    """True when the per-image dims `(a, b, c)` look like the other channel
    order than `data_format` says: a channels-first RGB/gray/RGBA image
    `(C, H, W)` read as channels-last, `C` in (1, 3, 4) and `H`, `W` > 4 (or
    the converse). Feature maps with a side of at most 4 are never flagged;
    unknown dims never are."""
    if len(dims) != 3 or any(d is None for d in dims):
        return False
    first, middle, last = (int(d) for d in dims)
    if data_format == "channels_first":
        first, last = last, first
    return first in (1, 3, 4) and middle > 4 and last > 4
