"""NumPy references for PuzzleMix's energy and solvers (tests, benchmarks):
the energy of a labelling (`energy_np`) and the exact minimum by enumeration
(`brute_force_np`), independent of the backend code they check."""

from __future__ import annotations

from typing import Any

import numpy as np


def energy_np(unary: Any, w_v: Any, w_h: Any, labels: Any) -> np.ndarray:
    """PuzzleMix's `energy` in float64 NumPy, for one sample (`unary`
    `(R, L, n)`) or a batch; labels may carry extra leading axes (several
    labellings)."""
    unary = np.asarray(unary, "float64")
    w_v, w_h = np.asarray(w_v, "float64"), np.asarray(w_h, "float64")
    labels = np.asarray(labels)
    n = unary.shape[-1]
    levels = np.arange(n, dtype="float64") / (n - 1)
    # The float32 table the library's energy uses, in float64.
    table = ((levels[:, None] - levels[None, :]) ** 2).astype("float32")
    table = table.astype("float64")
    data = np.take_along_axis(
        np.broadcast_to(unary, (*labels.shape, unary.shape[-1])),
        labels[..., None],
        axis=-1,
    )[..., 0]
    down = table[labels[..., :-1, :], labels[..., 1:, :]]
    right = table[labels[..., :, :-1], labels[..., :, 1:]]
    return (
        data.sum(axis=(-2, -1))
        + (w_v * down).sum(axis=(-2, -1))
        + (w_h * right).sum(axis=(-2, -1))
    )


def brute_force_np(unary: Any, w_v: Any, w_h: Any, chunk: int = 1 << 16):
    """The exact minimum of one sample's energy by enumerating every
    labelling (`n ** (R * L)` of them: small grids only).

    Args:
        unary: `(R, L, n)`; w_v: `(R-1, L)`; w_h: `(R, L-1)`.
        chunk: labellings evaluated at once.

    Returns:
        `(labels (R, L), energy)`: a minimiser and its float64 energy.
    """
    unary = np.asarray(unary, "float64")
    rows, length, n = unary.shape
    sites = rows * length
    total = n**sites
    if total > 50_000_000:
        raise ValueError(f"{total} labellings are too many to enumerate.")
    powers = n ** np.arange(sites - 1, -1, -1)
    best, best_energy = None, np.inf
    for start in range(0, total, chunk):
        index = np.arange(start, min(start + chunk, total))
        labels = (index[:, None] // powers) % n
        energies = energy_np(unary, w_v, w_h, labels.reshape(-1, rows, length))
        i = int(np.argmin(energies))
        if energies[i] < best_energy:
            best_energy, best = float(energies[i]), labels[i].reshape(rows, length)
    return best, best_energy
