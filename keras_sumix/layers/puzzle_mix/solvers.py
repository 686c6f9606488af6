"""The solvers of PuzzleMix's labelling energy (`energy.energy_terms`), on
the device, for the whole batch at once:

- `solve_exact` minimises it exactly, by dynamic programming over the rows
  of the block grid (each row's labelling is one state of a chain; the
  row-to-row transition separates over columns, so it costs `L * n^(L+1)`,
  not `n^(2L)`): every default grid (up to 8x8 with 3 labels, 6,561 row
  states) is solved exactly;
- `solve_local` is the fallback for grids whose rows have too many states
  (`n_labels ** side > 6561`, e.g. 8x8 with 4 labels): a local search whose
  moves are exact, expansion moves (each block keeps its label or takes a
  given one: a 2-label problem the same row DP solves exactly) and
  relabelling every other row (then column) by Viterbi given its
  neighbours; a move is kept only if it lowers the energy, so the energy
  never increases;
- `solve_labels` picks one of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_sumix.layers.puzzle_mix.energy import _pair_costs, _pair_table, energy

#: Largest number of row states (`n_labels ** grid side`) `solve_exact`
#: handles in the "auto" solver: every default grid (8x8, 3 labels).
EXACT_STATES = 6561
#: Largest number `solver="exact"` accepts (8x8 with 4 labels).
MAX_EXACT_STATES = 65536


# --------------------------------------------------------------------------- #
# Exact solver: dynamic programming over the rows of the grid
# --------------------------------------------------------------------------- #
def _row_state_costs(ops: Any, unary: Any, pair_h: Any) -> Any:
    """Cost of every labelling of every row: unary `(N, R, L, n)`, pair
    tables `(N, R, L-1, n, n)` -> `(N, R, n^L)`, column 0 the most
    significant digit."""
    rows, length, n = unary.shape[1], unary.shape[2], unary.shape[3]
    total, size = unary[:, :, 0], n
    for c in range(1, length):
        prev = ops.numpy.reshape(total, (-1, rows, size // n, n, 1))
        step = (
            prev + unary[:, :, c][:, :, None, None, :] + pair_h[:, :, c - 1][:, :, None]
        )
        size *= n
        total = ops.numpy.reshape(step, (-1, rows, size))
    return total


def _digit_costs(ops: Any, costs: Any) -> Any:
    """Sum over columns of per-column costs `(N, L, n)` for every row
    labelling, `(N, n^L)`."""
    length, n = costs.shape[1], costs.shape[2]
    total, size = costs[:, 0], n
    for c in range(1, length):
        total = ops.numpy.reshape(
            total[:, :, None] + costs[:, c][:, None, :], (-1, size * n)
        )
        size *= n
    return total


def _row_transition(ops: Any, values: Any, pair: Any) -> Any:
    """`min_s values(s) + sum_c pair[c, s_c, s'_c]` for every next-row
    labelling `s'` (`values` `(N, n^L)`, `pair` `(N, L, n, n)`), one column
    at a time."""
    length, n = pair.shape[1], pair.shape[2]
    states = n**length
    for c in range(length):
        before, after = n**c, n ** (length - 1 - c)
        x = ops.numpy.reshape(values, (-1, before, n, 1, after))
        x = x + pair[:, c][:, None, :, :, None]
        values = ops.numpy.reshape(ops.numpy.min(x, axis=2), (-1, states))
    return values


def _state_digits(ops: Any, index: Any, length: int, n: int) -> Any:
    index = ops.cast(index, "int32")
    return ops.numpy.stack(
        [
            ops.numpy.mod(ops.numpy.floor_divide(index, n ** (length - 1 - c)), n)
            for c in range(length)
        ],
        axis=-1,
    )


def _solve_tables(ops: Any, unary: Any, pair_v: Any, pair_h: Any) -> Any:
    """Exact minimum of `sum_p unary[p, x_p] + sum_edges pair[e, x_p, x_q]`
    on an `R x L` grid: unary `(N, R, L, n)`, pair_v `(N, R-1, L, n, n)`
    (top, bottom), pair_h `(N, R, L-1, n, n)` (left, right)."""
    rows, length, n = unary.shape[1], unary.shape[2], unary.shape[3]
    row_costs = _row_state_costs(ops, unary, pair_h)
    values = [row_costs[:, 0]]
    for t in range(1, rows):
        values.append(
            row_costs[:, t] + _row_transition(ops, values[-1], pair_v[:, t - 1])
        )
    best = ops.numpy.argmin(values[-1], axis=-1)
    labels = [_state_digits(ops, best, length, n)]
    for t in range(rows - 2, -1, -1):
        below = labels[-1][:, :, None, None]  # (N, L, 1, 1)
        link = ops.numpy.take_along_axis(pair_v[:, t], below, axis=3)[..., 0]
        best = ops.numpy.argmin(values[t] + _digit_costs(ops, link), axis=-1)
        labels.append(_state_digits(ops, best, length, n))
    return ops.numpy.stack(labels[::-1], axis=1)


def solve_exact(ops: Any, unary: Any, w_v: Any, w_h: Any) -> Any:
    """The exact minimum of the labelling energy (see `energy_terms`).

    Viterbi over the rows: a row's labelling is one of `n^L` states, the
    row-to-row cost separates over columns, so each transition is `L`
    min-plus steps of `n^(L+1)`; the path is recovered from the stored
    values (no back-pointer tables). Exact up to float32 rounding.

    Args:
        ops: backend namespace.
        unary: `(N, R, L, n)`; w_v: `(N, R-1, L)`; w_h: `(N, R, L-1)`.

    Returns:
        int32 labels `(N, R, L)`.
    """
    table = ops.convert_to_tensor(_pair_table(unary.shape[-1]))
    return _solve_tables(
        ops, unary, w_v[..., None, None] * table, w_h[..., None, None] * table
    )


# --------------------------------------------------------------------------- #
# Fallback: local search (expansion moves, exact row / column updates)
# --------------------------------------------------------------------------- #
def _chain_minimum(ops: Any, unary: Any, w: Any, table: Any) -> Any:
    """Viterbi along chains: unary `(M, L, n)`, weights `(M, L-1)` ->
    int32 labels `(M, L)`."""
    length = unary.shape[1]
    message, pointers = unary[:, 0], []
    for c in range(1, length):
        x = message[:, :, None] + w[:, c - 1][:, None, None] * table
        pointers.append(ops.cast(ops.numpy.argmin(x, axis=1), "int32"))
        message = ops.numpy.min(x, axis=1) + unary[:, c]
    last = ops.cast(ops.numpy.argmin(message, axis=-1), "int32")
    out = [last]
    for c in range(length - 1, 0, -1):
        last = ops.numpy.take_along_axis(pointers[c - 1], last[:, None], axis=1)[:, 0]
        out.append(last)
    return ops.numpy.stack(out[::-1], axis=1)


def _line_energy(ops: Any, unary: Any, w: Any, table: Any, labels: Any) -> Any:
    data = ops.numpy.take_along_axis(unary, labels[..., None], axis=-1)[..., 0]
    pairs = _pair_costs(ops, table, labels[..., :-1], labels[..., 1:])
    return ops.numpy.sum(data, axis=-1) + ops.numpy.sum(w * pairs, axis=-1)


def _update_lines(ops, unary, w_across, w_along, labels, parity, table):
    """Relabel the rows of parity `parity` exactly given the other rows; a
    row keeps its labels unless the new ones have a strictly lower
    energy. unary `(N, R, L, n)`, w_across `(N, R-1, L)`, w_along
    `(N, R, L-1)`, labels `(N, R, L)`."""
    rows, length, n = unary.shape[1], unary.shape[2], unary.shape[3]
    near = ops.numpy.take(table, labels, axis=0)  # (N, R, L, n)
    from_above = w_across[..., None] * near[:, :-1]
    from_below = w_across[..., None] * near[:, 1:]
    zeros = ops.numpy.zeros_like(from_above[:, :1])
    local = (
        unary
        + ops.numpy.concatenate([zeros, from_above], axis=1)
        + ops.numpy.concatenate([from_below, zeros], axis=1)
    )
    flat = _chain_minimum(
        ops,
        ops.numpy.reshape(local, (-1, length, n)),
        ops.numpy.reshape(w_along, (-1, length - 1)),
        table,
    )
    candidate = ops.numpy.reshape(flat, (-1, rows, length))
    gain = _line_energy(ops, local, w_along, table, candidate) < _line_energy(
        ops, local, w_along, table, labels
    )
    chosen = np.arange(rows) % 2 == parity
    update = ops.numpy.logical_and(gain, ops.convert_to_tensor(chosen)[None])
    return ops.numpy.where(update[..., None], candidate, labels)


def _expand(ops, unary, w_v, w_h, labels, label, table):
    """The best expansion move to `label`: every block keeps its label or
    takes `label`, the binary problem solved exactly by `_solve_tables`
    (`2^L` row states). Kept per sample only if it lowers the energy."""
    label = ops.cast(label, "int32")  # a Python int or a loop index
    target = ops.numpy.zeros_like(labels) + label
    unary2 = ops.numpy.stack(
        [
            ops.numpy.take_along_axis(unary, labels[..., None], axis=-1)[..., 0],
            ops.numpy.take(unary, label, axis=-1),
        ],
        axis=-1,
    )

    def tables(w, a, b):
        # (N, E..., 2, 2): choice (i, j) -> the labels' pair cost.
        first = ops.numpy.stack([a, ops.numpy.zeros_like(a) + label], axis=-1)
        second = ops.numpy.stack([b, ops.numpy.zeros_like(b) + label], axis=-1)
        cost = _pair_costs(ops, table, first[..., :, None], second[..., None, :])
        return w[..., None, None] * cost

    pair_v = tables(w_v, labels[:, :-1], labels[:, 1:])
    pair_h = tables(w_h, labels[:, :, :-1], labels[:, :, 1:])
    choice = _solve_tables(ops, unary2, pair_v, pair_h)
    moved = ops.numpy.where(ops.numpy.equal(choice, 1), target, labels)
    better = energy(ops, unary, w_v, w_h, moved) < energy(ops, unary, w_v, w_h, labels)
    return ops.numpy.where(better[:, None, None], moved, labels)


def solve_local(
    ops: Any,
    unary: Any,
    w_v: Any,
    w_h: Any,
    sweeps: int = 4,
    return_energies: bool = False,
):
    """Local search on the labelling energy, for grids too large for
    `solve_exact`.

    Starts from each block's best label alone. A sweep makes, for each
    label, the best expansion move (every block keeps its label or takes
    that one: a 2-label problem, solved exactly by the row DP with `2^L`
    states, when `2^L <= EXACT_STATES`), then relabels the even rows, the
    odd rows, the even columns and the odd columns, each line exactly
    (Viterbi) given its neighbours, all lines of a parity at once. Every
    move is kept only if it lowers the energy, so the energy never
    increases.

    Args:
        ops: backend namespace.
        unary, w_v, w_h: as `solve_exact` takes them.
        sweeps: number of sweeps (a fixed count: it compiles).
        return_energies: also return the energy `(sweeps + 1, N)` at the
            start and after each sweep.

    Returns:
        int32 labels `(N, R, L)` (and the energies).
    """
    n, length = unary.shape[-1], unary.shape[2]
    table = ops.convert_to_tensor(_pair_table(n))
    labels = ops.cast(ops.numpy.argmin(unary, axis=-1), "int32")
    history = [energy(ops, unary, w_v, w_h, labels)] if return_energies else []
    unary_t = ops.numpy.transpose(unary, (0, 2, 1, 3))
    w_v_t = ops.numpy.transpose(w_v, (0, 2, 1))
    w_h_t = ops.numpy.transpose(w_h, (0, 2, 1))
    expansions = 2**length <= EXACT_STATES

    def expand(label, labels):
        return _expand(ops, unary, w_v, w_h, labels, label, table)

    def sweep(_, labels):
        # Loops rather than unrolled Python: the body compiles once.
        if expansions:
            labels = ops.core.fori_loop(0, n, expand, labels)
        for parity in (0, 1):
            labels = _update_lines(ops, unary, w_v, w_h, labels, parity, table)
        labels = ops.numpy.transpose(labels, (0, 2, 1))
        for parity in (0, 1):
            labels = _update_lines(ops, unary_t, w_h_t, w_v_t, labels, parity, table)
        return ops.numpy.transpose(labels, (0, 2, 1))

    if not return_energies:
        return ops.core.fori_loop(0, sweeps, sweep, labels)
    steps = ops.numpy.arange(sweeps, dtype="int32")[:, None]

    def recorded(i, carry):
        labels, energies = carry
        labels = sweep(i, labels)
        now = energy(ops, unary, w_v, w_h, labels)
        return labels, ops.numpy.where(steps == i, now[None], energies)

    start = history[0]
    energies = ops.numpy.zeros_like(start)[None] + ops.numpy.zeros((sweeps, 1))
    labels, energies = ops.core.fori_loop(0, sweeps, recorded, (labels, energies))
    return labels, ops.numpy.concatenate([start[None], energies], axis=0)


def solve_labels(
    ops: Any,
    unary: Any,
    w_v: Any,
    w_h: Any,
    solver: str = "auto",
    sweeps: int = 4,
) -> Any:
    """Labels `(N, R, L)` int32 minimising the energy: `solve_exact` when
    `solver="exact"`, or `"auto"` with at most `EXACT_STATES` row states,
    else `solve_local`."""
    states = unary.shape[-1] ** unary.shape[2]
    if solver == "exact" or (solver == "auto" and states <= EXACT_STATES):
        return solve_exact(ops, unary, w_v, w_h)
    return solve_local(ops, unary, w_v, w_h, sweeps=sweeps)
