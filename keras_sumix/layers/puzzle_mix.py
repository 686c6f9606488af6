"""PuzzleMix (Kim, Choo & Song, ICML 2020): a saliency-aware block labelling,
solved on the device, and an optimal transport of blocks within each image.

The reference (github.com/snu-mllab/PuzzleMix, `mixup.py`, and OpenMixup's
port) labels each block of a random grid by a graph cut on the CPU (gco's
alpha-beta swap, one sample at a time) and transports blocks with an
iterative assignment on the GPU. Here the whole batch is labelled on the
device, with backend ops, inside a compiled step:

- the energy is the reference's (`graphcut_multi`, with the unary and
  pairwise terms `mixup_graph` builds); `energy_terms` builds it, `energy`
  evaluates it, `energy_np` and `brute_force_np` are NumPy references;
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
- `transport_order` is the reference's `mask_transport`, completed into a
  permutation of blocks.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

import keras
import numpy as np
from keras.src.utils import jax_utils

from keras_sumix._validation import check_choice, check_int, check_number
from keras_sumix.layers.base import BaseMixer

#: Largest number of row states (`n_labels ** grid side`) `solve_exact`
#: handles in the "auto" solver: every default grid (8x8, 3 labels).
EXACT_STATES = 6561
#: Largest number `solver="exact"` accepts (8x8 with 4 labels).
MAX_EXACT_STATES = 65536
#: Largest transport grid side (the reference's cost matrices go to 16).
MAX_TRANSPORT_SIDE = 16
#: Settings by dataset family: the toolbox's CIFAR defaults (also the
#: constructor's) and the fine-grained (CUB-200) setting.
PRESETS: dict[str, dict[str, Any]] = {
    "cifar": {
        "block_num": 4,
        "beta": 1.2,
        "gamma": 0.5,
        "eta": 0.2,
        "neigh_size": 4,
        "n_labels": 3,
        "t_eps": 0.8,
        "t_size": 32,
    },
    "cub": {
        "block_num": 4,
        "beta": 1.0,
        "gamma": 0.5,
        "eta": 0.2,
        "neigh_size": 8,
        "n_labels": 2,
        "t_eps": 0.8,
        "t_size": 32,
    },
}
_SOLVERS = ("auto", "exact", "local")
# Eager JAX: the compiled draw per labelling setting and grid (`_jitted`).
_JIT_CACHE: dict = {}
_EPS = 1e-8  # the reference's `eps` in the prior's logarithm


# --------------------------------------------------------------------------- #
# Static layout: the block grids, and the cells each grid pools over
# --------------------------------------------------------------------------- #
def block_grids(block_num: Any) -> tuple[int, ...]:
    """The block grid sides a `block_num` setting draws from.

    As the toolbox reads it: an int `b` draws `2 ** k` blocks a side, `k`
    uniform in `[1, b)` (`block_num=4`: 2, 4 or 8); a pair `(lo, hi)` draws
    `k` in `[lo, hi)`.

    Args:
        block_num: an int >= 2 or a pair of ints `1 <= lo < hi`.

    Returns:
        The sides, ascending.

    Example:

    >>> from keras_sumix.layers.puzzle_mix import block_grids
    >>> block_grids(4)
    (2, 4, 8)
    """
    if isinstance(block_num, (tuple, list)):
        if len(block_num) != 2:
            raise ValueError(
                "`block_num` must be an int or a pair (lo, hi). Received: "
                f"block_num={block_num!r}."
            )
        low = check_int("block_num[0]", block_num[0], 1)
        high = check_int("block_num[1]", block_num[1], low + 1)
    else:
        low, high = 1, check_int("block_num", block_num, 2)
    return tuple(2**k for k in range(low, high))


def _divisor_at_most(length: int, cap: int) -> int:
    """The largest divisor of `length` not above `cap` (>= 1)."""
    cap = max(1, min(cap, length))
    return next(d for d in range(cap, 0, -1) if length % d == 0)


class GridLayout(NamedTuple):
    """The cells one block grid of a `height x width` image works with.

    Attributes:
        side: blocks a side (the labelling grid is `side x side`).
        block: `(rows, cols)` pixels of a block.
        neigh: `(rows, cols)` pixels of the cells the smoothness term pools
            the image over (`neigh_size`, rounded down to a divisor of the
            block).
        transport: `(rows, cols)` cells of the transport grid.
    """

    side: int
    block: tuple[int, int]
    neigh: tuple[int, int]
    transport: tuple[int, int]


def grid_layout(
    height: int, width: int, side: int, neigh_size: int, t_size: int
) -> GridLayout:
    """The layout of a `side x side` block grid (see `GridLayout`).

    `t_size=-1` transports whole blocks; otherwise transport cells have side
    `min(t_size, block)`, rounded down to a divisor of the block (the
    reference requires it to divide the block). `neigh_size` likewise. A
    single block (`side=1`) has nothing to transport.
    """
    block = (height // side, width // side)
    neigh = tuple(_divisor_at_most(b, neigh_size) for b in block)
    if t_size == -1 or side == 1:
        cells = block
    else:
        cells = tuple(_divisor_at_most(b, t_size) for b in block)
    transport = (height // cells[0], width // cells[1])
    return GridLayout(side, block, neigh, transport)


# --------------------------------------------------------------------------- #
# The energy
# --------------------------------------------------------------------------- #
def _pair_table(n_labels: int) -> np.ndarray:
    """`(m_a - m_b) ** 2` for mask levels `m_l = 1 - l / (n - 1)`."""
    levels = np.arange(n_labels, dtype="float64") / (n_labels - 1)
    return ((levels[:, None] - levels[None, :]) ** 2).astype("float32")


def mask_levels(n_labels: int) -> np.ndarray:
    """Kept share of label `l`: `1 - l / (n_labels - 1)` (label 0 keeps the
    image, the last takes the partner)."""
    return (1.0 - np.arange(n_labels, dtype="float64") / (n_labels - 1)).astype(
        "float32"
    )


def prior_costs(ops: Any, lam: Any, n_labels: int, eta: float, side: int) -> Any:
    """The reference's prior: `eta / side^2 * -log(P(l) + 1e-8)`, `P` the
    binomial law of the mixed levels (`lam`, `lam^2`, `2 lam (1 - lam)`, ...:
    `lam^(n-1-l) (1-lam)^l C(n-1, l)`). `lam` `(M,)` -> `(M, n_labels)`."""
    k = n_labels - 1
    power = np.arange(k, -1, -1, dtype="float32")  # of lam, per label
    binom = np.array([math.comb(k, i) for i in range(n_labels)], dtype="float32")
    lam = ops.cast(ops.numpy.reshape(lam, (-1, 1)), "float32")
    p = (
        ops.convert_to_tensor(binom)
        * ops.numpy.power(lam, ops.convert_to_tensor(power))
        * ops.numpy.power(1.0 - lam, ops.convert_to_tensor(k - power))
    )
    return -eta / side**2 * ops.numpy.log(p + _EPS)


def _boundary_means(ops: Any, diff: Any, k: int) -> Any:
    """`(N, B-1, B * k, C)` absolute differences -> `(N, B-1, B)`: the mean
    over channels and over the `k` cells of each block along the boundary
    (the reference's `neigh_penalty` after its strided slice)."""
    diff = ops.numpy.mean(diff, axis=-1)
    blocks = diff.shape[2] // k
    diff = ops.numpy.reshape(diff, (-1, diff.shape[1], blocks, k))
    return ops.numpy.mean(diff, axis=-1)


def smoothness_tables(ops: Any, own: Any, partner: Any, side: int):
    """The reference's data smoothness across block boundaries.

    Args:
        ops: backend namespace.
        own, partner: the images pooled over the smoothness cells,
            `(N, side * kh, side * kw, C)`, in value-range units.
        side: blocks a side.

    Returns:
        `(vertical, horizontal)`: dicts keyed `(a, b)`, `a, b` in {0
        (partner), 1 (own)}, of `(N, side-1, side)` and `(N, side, side-1)`
        mean absolute differences between the last cells of a block taken
        from image `a` and the first cells of the next block (below / to the
        right) taken from image `b`.
    """
    _, rows, cols, channels = own.shape
    kh, kw = rows // side, cols // side
    above, below, left, right = {}, {}, {}, {}
    for key, x in ((0, partner), (1, own)):
        # The last / first cell row of every block: (N, side-1, cols, C).
        r = ops.numpy.reshape(x, (-1, side, kh, cols, channels))
        above[key], below[key] = r[:, :-1, kh - 1], r[:, 1:, 0]
        # The last / first cell column, as (N, side-1, rows, C).
        c = ops.numpy.reshape(x, (-1, rows, side, kw, channels))
        c = ops.numpy.transpose(c, (0, 2, 3, 1, 4))  # (N, side, kw, rows, C)
        left[key], right[key] = c[:, :-1, kw - 1], c[:, 1:, 0]
    vertical, horizontal = {}, {}
    for a, b in itertools.product((0, 1), repeat=2):
        vertical[a, b] = _boundary_means(ops, ops.numpy.abs(above[a] - below[b]), kw)
        h = _boundary_means(ops, ops.numpy.abs(left[a] - right[b]), kh)
        horizontal[a, b] = ops.numpy.transpose(h, (0, 2, 1))
    return vertical, horizontal


def energy_terms(
    ops: Any,
    saliency: Any,
    partner_saliency: Any,
    vertical: dict,
    horizontal: dict,
    lam: Any,
    n_labels: int,
    beta: float,
    gamma: float,
    eta: float,
):
    """The labelling energy of `graphcut_multi`, as `mixup_graph` builds it.

    With `m_l = 1 - l / (n - 1)` the share of block `p` kept from the image
    under label `l`, the energy of a labelling `x` is

        E(x) = sum_p U[p, x_p] + sum_(p,q) W_pq (m_(x_p) - m_(x_q))^2

    over the 4-neighbour edges, where `U[p, l] = m_l * keep_cost[p] + (1 -
    m_l) * take_cost[p] + prior[l]`. `keep_cost` is the partner's saliency
    in the block (lost by keeping the image there) plus the smoothness
    terms of the image's blocks, `take_cost` the image's own saliency plus
    the partner's; `W = b (1 + gamma * d)` with `b = beta / side / 16` and
    `d` the edge's smoothness contrast (the reference's decomposition of the
    2x2 boundary table into unary terms and one pairwise weight).

    Args:
        ops: backend namespace.
        saliency, partner_saliency: `(N, side, side)`, each summing to 1 per
            sample (the reference's normalisation).
        vertical, horizontal: from `smoothness_tables`.
        lam: `(M,)` drawn mix ratios (M in {1, N}), the prior's target.
        n_labels: number of mask levels (2: hard masks).
        beta, gamma, eta: label smoothness, data smoothness, prior weight.

    Returns:
        `(unary, w_v, w_h)`: `(N, side, side, n_labels)`, `(N, side-1,
        side)` and `(N, side, side-1)`, float32.
    """
    side = saliency.shape[1]
    b = beta / side / 16.0
    pv = {k: b * gamma * v for k, v in vertical.items()}
    ph = {k: b * gamma * v for k, v in horizontal.items()}

    def pad(x, axis, before):
        zeros = ops.numpy.zeros_like(ops.numpy.take(x, [0], axis=axis))
        return ops.numpy.concatenate([zeros, x] if before else [x, zeros], axis=axis)

    def adjust(base, top, bottom, left, right):
        return (
            base
            + pad(top, 1, False)
            + pad(bottom, 1, True)
            + pad(left, 2, False)
            + pad(right, 2, True)
        )

    # Label classes: 1 = own image, 0 = partner (the reference's indices).
    keep_cost = adjust(
        partner_saliency,
        (pv[1, 0] + pv[1, 1]) / 2.0,
        (pv[0, 1] + pv[1, 1]) / 2.0,
        (ph[1, 0] + ph[1, 1]) / 2.0,
        (ph[0, 1] + ph[1, 1]) / 2.0,
    )
    take_cost = adjust(
        saliency,
        (pv[0, 1] + pv[0, 0]) / 2.0,
        (pv[1, 0] + pv[0, 0]) / 2.0,
        (ph[0, 1] + ph[0, 0]) / 2.0,
        (ph[1, 0] + ph[0, 0]) / 2.0,
    )
    w_v = (pv[1, 0] + pv[0, 1] - pv[1, 1] - pv[0, 0]) / 2.0 + b
    w_h = (ph[1, 0] + ph[0, 1] - ph[1, 1] - ph[0, 0]) / 2.0 + b
    levels = ops.convert_to_tensor(mask_levels(n_labels))
    prior = prior_costs(ops, lam, n_labels, eta, side)[:, None, None, :]
    unary = (
        keep_cost[..., None] * levels + take_cost[..., None] * (1.0 - levels) + prior
    )
    return (
        ops.cast(unary, "float32"),
        ops.cast(w_v, "float32"),
        ops.cast(w_h, "float32"),
    )


def _pair_costs(ops: Any, table: Any, a: Any, b: Any) -> Any:
    """`table[a, b]` element-wise for int label tensors `a`, `b`."""
    n = table.shape[0]
    flat = ops.numpy.reshape(table, (-1,))
    return ops.numpy.take(flat, a * n + b, axis=0)


def energy(ops: Any, unary: Any, w_v: Any, w_h: Any, labels: Any) -> Any:
    """The energy of labellings `(N, R, L)` int, per sample `(N,)` float32
    (see `energy_terms`)."""
    n = unary.shape[-1]
    table = ops.convert_to_tensor(_pair_table(n))
    labels = ops.cast(labels, "int32")
    data = ops.numpy.take_along_axis(unary, labels[..., None], axis=-1)[..., 0]
    down = _pair_costs(ops, table, labels[:, :-1], labels[:, 1:])
    right = _pair_costs(ops, table, labels[:, :, :-1], labels[:, :, 1:])
    return (
        ops.numpy.sum(data, axis=(1, 2))
        + ops.numpy.sum(w_v * down, axis=(1, 2))
        + ops.numpy.sum(w_h * right, axis=(1, 2))
    )


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


# --------------------------------------------------------------------------- #
# NumPy references (tests, benchmarks)
# --------------------------------------------------------------------------- #
def energy_np(unary: Any, w_v: Any, w_h: Any, labels: Any) -> np.ndarray:
    """`energy` in float64 NumPy, for one sample (`unary` `(R, L, n)`) or a
    batch; labels may carry extra leading axes (several labellings)."""
    unary = np.asarray(unary, "float64")
    w_v, w_h = np.asarray(w_v, "float64"), np.asarray(w_h, "float64")
    labels = np.asarray(labels)
    table = _pair_table(unary.shape[-1]).astype("float64")
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


# --------------------------------------------------------------------------- #
# Transport
# --------------------------------------------------------------------------- #
def cost_matrix(rows: int, cols: int) -> np.ndarray:
    """Squared distance between the cells of a `rows x cols` grid, each axis
    scaled to [0, 1] (the reference's `cost_matrix` for a square grid):
    `(rows * cols, rows * cols)` float32."""
    y, x = np.divmod(np.arange(rows * cols), cols)
    dy = (y[:, None] - y[None, :]) / max(rows - 1, 1)
    dx = (x[:, None] - x[None, :]) / max(cols - 1, 1)
    return (dy**2 + dx**2).astype("float32")


def transport_order(
    ops: Any, keep: Any, saliency: Any, eps: float, grid: tuple[int, int]
) -> Any:
    """Where each cell of the transported image comes from.

    The reference's `mask_transport`: on the cost `eps * C[i, j] - s[i] *
    z[j]` (`s` the cell saliencies, `z` the cells the image is kept in, `C`
    `cost_matrix`), every source cell `i` bids for its cheapest destination,
    each destination keeps its cheapest bidder and the losers' bids cost 1
    more, for `max(grid)` rounds. The reference keeps the last round's
    winners and leaves the other destinations empty (black); here the
    unmatched sources fill the unmatched destinations in index order, so the
    result is a permutation of cells (the same as the reference wherever the
    reference fills every destination).

    Args:
        ops: backend namespace.
        keep: `(N, K)`, the image's kept share per cell (> 0: kept).
        saliency: `(N, K)` cell saliencies.
        eps: the transport cost weight (`t_eps`).
        grid: `(rows, cols)`, `rows * cols == K`.

    Returns:
        int32 `(N, K)`: destination cell `j` shows source cell `order[j]`.
    """
    k = grid[0] * grid[1]
    distance = ops.convert_to_tensor(eps * cost_matrix(*grid))
    kept = ops.cast(keep > 0.0, "float32")
    cost = distance[None] - saliency[:, :, None] * kept[:, None, :]
    win = None
    for _ in range(max(grid)):
        bids = ops.nn.one_hot(ops.numpy.argmin(cost, axis=-1), k, dtype="float32")
        # The cheapest bid per destination (as in the reference, a
        # destination whose bids all cost more than 0 keeps none).
        best = ops.numpy.argmin(bids * cost, axis=1)  # (N, K) over sources
        win = ops.numpy.transpose(ops.nn.one_hot(best, k, dtype="float32"), (0, 2, 1))
        win = win * bids
        cost = cost + (bids - win)
    free_src = 1.0 - ops.numpy.max(win, axis=2)  # (N, K)
    free_dst = 1.0 - ops.numpy.max(win, axis=1)
    rank_src = ops.numpy.cumsum(free_src, axis=1)
    rank_dst = ops.numpy.cumsum(free_dst, axis=1)
    pair = (
        free_src[:, :, None]
        * free_dst[:, None, :]
        * ops.cast(
            ops.numpy.equal(rank_src[:, :, None], rank_dst[:, None, :]), "float32"
        )
    )
    return ops.cast(ops.numpy.argmax(win + pair, axis=1), "int32")


# --------------------------------------------------------------------------- #
# The layer
# --------------------------------------------------------------------------- #
def _pool(ops: Any, maps: Any, rows: int, cols: int) -> Any:
    """Mean of `(N, H, W)` (or `(N, H, W, C)`) over a `rows x cols` grid of
    equal cells (H, W divisible)."""
    shape = maps.shape
    tail = tuple(shape[3:])
    x = ops.numpy.reshape(
        maps, (-1, rows, shape[1] // rows, cols, shape[2] // cols, *tail)
    )
    return ops.numpy.mean(x, axis=(2, 4))


def _normalised(ops: Any, maps: Any) -> Any:
    """Each sample's map divided by its sum (zero maps stay zero)."""
    total = ops.numpy.sum(maps, axis=(1, 2), keepdims=True)
    return maps / ops.numpy.maximum(total, 1e-30)


def _cells(ops: Any, x: Any, grid: tuple[int, int]) -> Any:
    """`(N, H, W, C)` -> `(N * K, cell values)` in cell order."""
    shape = x.shape
    gh, gw = grid
    x = ops.numpy.reshape(x, (-1, gh, shape[1] // gh, gw, shape[2] // gw, shape[3]))
    x = ops.numpy.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.numpy.reshape(x, (-1, (shape[1] // gh) * (shape[2] // gw) * shape[3]))


def move_cells(ops: Any, x: Any, order: Any, grid: tuple[int, int]) -> Any:
    """Rearrange the cells of a `grid` over `(N, H, W, C)`: output cell `j`
    is input cell `order[:, j]` (`order` `(N, K)` int32)."""
    shape = x.shape
    gh, gw = grid
    k = gh * gw
    n = ops.shape(x)[0]
    offset = ops.numpy.arange(n, dtype="int32")[:, None] * k
    flat = ops.numpy.take(
        _cells(ops, x, grid), ops.numpy.reshape(order + offset, (-1,)), axis=0
    )
    ch, cw = shape[1] // gh, shape[2] // gw
    x = ops.numpy.reshape(flat, (-1, gh, gw, ch, cw, shape[3]))
    x = ops.numpy.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.numpy.reshape(x, (-1, shape[1], shape[2], shape[3]))


@keras.saving.register_keras_serializable(package="keras_sumix")
class PuzzleMix(
    BaseMixer,
    name="puzzlemix",
    in_place=False,
    true_share=True,
    needs_saliency=True,
):
    """PuzzleMix: a saliency-aware block mask, solved on the device, with
    the salient blocks of each image moved to where they are kept.

    Per batch a block grid of 2, 4 or 8 blocks a side is drawn (the
    toolbox's `block_num=4`). Each block of output `i` is labelled: kept
    from `images[i]`, taken from its partner, or (with `n_labels=3`) a 50/50
    blend, minimising the reference's energy: the saliency lost (unary),
    label and data smoothness between neighbouring blocks (`beta`,
    `gamma`) and a prior pulling the kept share toward `lam ~
    Beta(alpha, alpha)` (`eta`). The whole batch is solved at once with
    backend ops: exactly (dynamic programming over the grid's rows) for
    every grid with at most 6,561 row states (`n_labels ** side`: all
    default grids), by a local search of exact moves otherwise (`solver`).
    Then each image's blocks are transported (a permutation of cells of side
    `t_size`): salient cells move toward the blocks where that image is
    kept, at cost `t_eps` times the distance. `lam` is the exact mean of the
    final mask.

    Saliency is the model's: `mix(images, saliency=s)` with `s` `(N, H, W)`,
    `sqrt(mean_c (dL/dx)^2)` (the models compute it from an input gradient).
    Without it the layer falls back to the spectral-residual saliency
    SaliencyMix uses. It is pooled to the block grid and normalised to sum 1
    per image, as the reference does; no gradient flows through it into the
    mask.

    Only the grids that divide both image sides are drawn (12x10 images:
    2x2 only); when none does (a 7x7 or 1x1 image), the image is one block,
    kept, taken or blended as the prior prefers. `neigh_size` and
    `t_size` are rounded down to divisors of the block side (the reference
    requires them to divide it), and the transport grid has at most 16
    cells a side. A batch of one is returned unmixed (`lam = 1`); NaN pixels
    propagate into the samples they are mixed into (and into the smoothness
    term: the mask of such a pair is arbitrary, never NaN).

    Reference: [Puzzle Mix: Exploiting Saliency and Local Statistics for
    Optimal Mixup](https://arxiv.org/abs/2009.06962).

    Args:
        alpha: Beta concentration of `lam`. Defaults to 1.0.
        block_num: block grids drawn: an int `b` gives `2 ** k` blocks a
            side, `k` uniform in `[1, b)`; a pair `(lo, hi)` gives `k` in
            `[lo, hi)`. Defaults to 4 (2, 4 or 8).
        beta: label smoothness. Defaults to 1.2.
        gamma: data smoothness. Defaults to 0.5.
        eta: prior weight. Defaults to 0.2.
        neigh_size: side, in pixels, of the cells the data smoothness
            compares across block boundaries. Defaults to 4.
        n_labels: mask levels per block: 2 (kept or taken), 3 (also 50/50),
            up to 8. Defaults to 3.
        transport: whether to transport blocks. Defaults to True.
        t_eps: transport cost weight. Defaults to 0.8.
        t_size: transport cell side in pixels (at most the block; -1: whole
            blocks). Defaults to 32 (whole blocks up to 32 pixels).
        solver: `"auto"` (exact where the grid allows, as above), `"exact"`
            (up to 65,536 row states) or `"local"` (`solve_local`).
        sweeps: local search sweeps (`solver="local"`, or
            `"auto"` on a grid too large to solve exactly). Defaults to 4.
        value_range: `(low, high)` of the pixel values, which scales the
            data smoothness (the reference compares pixels in [0, 1]).
            Defaults to (0, 1).
        saliency_size: grid side of the fallback saliency. Defaults to 64.

    Keyword Args:
        mode: `"elem"` (one `lam` per sample) or `"batch"` (one for the
            batch, as the reference).
        num_classes: number of classes, required for integer labels.
        seed: integer seed.
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: base layer keyword arguments.

    Returns:
        `mix(images, saliency=None)` returns a `MixResult(images,
        permutation, lam, mask)`: `mask` the kept share of `images[i]` per
        output pixel (levels `1 - l / (n_labels - 1)`), `lam` its mean.
        `draw` returns, besides `permutation` and the drawn `lam`:
        `block_mask` (N, gh, gw) float32, the mask on a cell grid every
        block grid is made of; `own_order` and `partner_order` (N, gh * gw)
        int32, the transport (output cell `j` shows cell `order[j]` of the
        image, resp. its partner); `grid`, the block grid side drawn.

    Example:

    >>> import numpy as np
    >>> from keras_sumix.layers.puzzle_mix import PuzzleMix
    >>> mixer = PuzzleMix(seed=1)
    >>> x = np.random.rand(4, 32, 32, 3).astype("float32")
    >>> result = mixer.mix(x, saliency=np.random.rand(4, 32, 32))
    >>> tuple(result.images.shape), tuple(result.mask.shape)
    ((4, 32, 32, 3), (4, 32, 32, 1))
    >>> bool(np.allclose(result.lam, np.mean(result.mask, axis=(1, 2, 3))))
    True
    >>> PuzzleMix.from_preset("cub").n_labels
    2
    """

    def __init__(
        self,
        alpha: float = 1.0,
        block_num: int | tuple[int, int] = 4,
        beta: float = 1.2,
        gamma: float = 0.5,
        eta: float = 0.2,
        neigh_size: int = 4,
        n_labels: int = 3,
        transport: bool = True,
        t_eps: float = 0.8,
        t_size: int = 32,
        solver: str = "auto",
        sweeps: int = 4,
        value_range: tuple[float, float] = (0.0, 1.0),
        saliency_size: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(alpha=alpha, **kwargs)
        self.grids = block_grids(block_num)
        self.block_num = (
            tuple(int(b) for b in block_num)
            if isinstance(block_num, (tuple, list))
            else int(block_num)
        )
        self.beta = check_number("beta", beta, low=0.0, include_low=True, high=None)
        self.gamma = check_number("gamma", gamma, low=0.0, include_low=True, high=None)
        self.eta = check_number("eta", eta, low=0.0, include_low=True, high=None)
        self.neigh_size = check_int("neigh_size", neigh_size, 1)
        self.n_labels = check_int("n_labels", n_labels, 2)
        if self.n_labels > 8:
            raise ValueError(
                f"`n_labels` must be in [2, 8]. Received: n_labels={n_labels!r}."
            )
        if not isinstance(transport, bool):
            raise TypeError(
                f"`transport` must be a bool. Received: transport={transport!r}."
            )
        self.transport = transport
        self.t_eps = check_number("t_eps", t_eps, low=0.0, include_low=True, high=None)
        self.t_size = check_int("t_size", t_size, -1)
        if self.t_size == 0:
            raise ValueError("`t_size` must be >= 1 or -1. Received: t_size=0.")
        self.solver = check_choice("solver", solver, _SOLVERS)
        if solver == "exact":
            worst = self.n_labels ** max(self.grids)
            if worst > MAX_EXACT_STATES:
                raise ValueError(
                    f"solver='exact' handles at most {MAX_EXACT_STATES} row states; "
                    f"n_labels={self.n_labels} on a {max(self.grids)}-block grid "
                    f"has {worst}. Use solver='auto' or 'local', or fewer labels."
                )
        self.sweeps = check_int("sweeps", sweeps, 1)
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError(
                "`value_range` must be a pair (low, high). Received: "
                f"value_range={value_range!r}."
            )
        low = check_number("value_range[0]", value_range[0], low=None, high=None)
        high = check_number("value_range[1]", value_range[1], low=low, high=None)
        self.value_range = (low, high)
        self.saliency_size = check_int("saliency_size", saliency_size, 4)

    @classmethod
    def from_preset(cls, preset: str, **kwargs: Any) -> PuzzleMix:
        """A PuzzleMix with a dataset family's settings (`PRESETS`).

        Args:
            preset: `"cifar"` (the constructor's defaults: `block_num=4,
                beta=1.2, gamma=0.5, eta=0.2, neigh_size=4, n_labels=3,
                t_eps=0.8, t_size=32`) or `"cub"` (fine-grained images:
                `beta=1.0, neigh_size=8, n_labels=2`, the rest as CIFAR).
            **kwargs: any other constructor argument, or one to override.

        Returns:
            The layer.
        """
        check_choice("preset", preset, tuple(PRESETS))
        return cls(**{**PRESETS[preset], **kwargs})

    # ------------------------------------------------------------------ #
    # Layout, checked against the images' static shape
    # ------------------------------------------------------------------ #
    def sides(self, height: int, width: int) -> tuple[int, ...]:
        """The block grids drawn for `height x width` images: those of
        `block_num` that divide both sides, or a single block (1) when none
        does.

        Example:

        >>> from keras_sumix.layers.puzzle_mix import PuzzleMix
        >>> PuzzleMix().sides(32, 32), PuzzleMix().sides(12, 10)
        ((2, 4, 8), (2,))
        """
        sides = tuple(g for g in self.grids if height % g == 0 and width % g == 0)
        return sides or (1,)

    def layouts(self, height: Any, width: Any) -> tuple[list[GridLayout], tuple]:
        """The layout of each block grid drawn for `height x width` images
        (`sides`), and the common cell grid every layout's cells are unions
        of.

        Raises:
            ValueError: a side unknown (not static), or a transport grid
                over 16 cells a side.
        """
        if height is None or width is None:
            raise ValueError(
                "PuzzleMix needs the images' height and width statically "
                f"(received {height}x{width}): resize them to a fixed size first."
            )
        sides = self.sides(height, width)
        layouts = [
            grid_layout(height, width, g, self.neigh_size, self.t_size) for g in sides
        ]
        if self.transport:
            for lay in layouts:
                if max(lay.transport) > MAX_TRANSPORT_SIDE:
                    raise ValueError(
                        f"t_size={self.t_size} gives a transport grid of "
                        f"{lay.transport[0]}x{lay.transport[1]} cells on "
                        f"{height}x{width} images ({lay.side} blocks a side); "
                        f"at most {MAX_TRANSPORT_SIDE} a side. Pass a larger "
                        "`t_size` (or -1: whole blocks)."
                    )
        common = (
            math.lcm(
                *(lay.transport[0] if self.transport else lay.side for lay in layouts)
            ),
            math.lcm(
                *(lay.transport[1] if self.transport else lay.side for lay in layouts)
            ),
        )
        return layouts, common

    # ------------------------------------------------------------------ #
    # Saliency
    # ------------------------------------------------------------------ #
    def _check_saliency(self, saliency: Any, count: Any) -> Any:
        """The given saliency as float32 `(N, h, w)`, checked."""
        ops = self.backend
        maps = ops.cast(ops.convert_to_tensor(saliency), "float32")
        shape = tuple(maps.shape)
        if len(shape) != 3 or 0 in shape:
            raise ValueError(
                "`saliency` must be (N, H, W), one non-empty map per image. "
                f"Received shape {shape}."
            )
        if None not in (shape[0], count) and shape[0] != count:
            raise ValueError(
                f"`saliency` has {shape[0]} maps for a batch of {count} images."
            )
        return maps

    def _saliency(self, images: Any, saliency: Any) -> Any:
        """`(N, h, w)` float32 saliency: the given one or the spectral
        residual of `images`; never differentiated."""
        ops = self.backend
        if saliency is None:
            from keras_sumix.layers.saliency_mix import spectral_residual

            saliency = spectral_residual(images, self.saliency_size, backend=ops)
        return ops.core.stop_gradient(saliency)

    def _pooled_saliency(self, maps: Any, common: tuple[int, int]) -> Any:
        """Saliency averaged over the cells of the common grid."""
        ops = self.backend
        h, w = maps.shape[1], maps.shape[2]
        gh, gw = common
        if h is None or w is None or h % gh or w % gw:
            size = (
                gh * max(1, -(-(h or gh) // gh)),
                gw * max(1, -(-(w or gw) // gw)),
            )
            maps = ops.image.resize(
                maps[..., None],
                size,
                interpolation="bilinear",
                data_format="channels_last",
            )[..., 0]
        return _pool(ops, maps, gh, gw)

    # ------------------------------------------------------------------ #
    # One block grid: labelling and transport, on the common cell grid
    # ------------------------------------------------------------------ #
    def _grid_draw(self, lay, common, images, permutation, cells, lam):
        ops = self.backend
        g = lay.side
        blocks = _pool(ops, cells, g, g)
        own_sal = _normalised(ops, blocks)
        if g == 1:
            # One block: both images lose all their saliency either way, so
            # the prior alone picks the level.
            prior = prior_costs(ops, lam, self.n_labels, self.eta, 1)
            best = ops.cast(ops.numpy.argmin(prior, axis=-1), "int32")
            labels = ops.numpy.zeros_like(own_sal, dtype="int32") + best[:, None, None]
        else:
            labels = self._labels(lay, images, permutation, own_sal, lam)
        keep = ops.numpy.take(ops.convert_to_tensor(mask_levels(self.n_labels)), labels)
        gh, gw = common
        k = gh * gw
        block_mask = ops.numpy.repeat(
            ops.numpy.repeat(keep, gh // g, axis=1), gw // g, axis=2
        )
        if not self.transport:
            identity = ops.numpy.zeros_like(
                ops.numpy.reshape(block_mask, (-1, k)), dtype="int32"
            ) + ops.numpy.arange(k, dtype="int32")
            return block_mask, identity, identity
        th, tw = lay.transport
        t_keep = ops.numpy.reshape(
            ops.numpy.repeat(ops.numpy.repeat(keep, th // g, axis=1), tw // g, axis=2),
            (-1, th * tw),
        )
        t_sal = ops.numpy.reshape(
            _normalised(ops, _pool(ops, cells, th, tw)), (-1, th * tw)
        )
        own_order = transport_order(ops, t_keep, t_sal, self.t_eps, (th, tw))
        partner_order = transport_order(
            ops,
            1.0 - t_keep,
            ops.numpy.take(t_sal, permutation, axis=0),
            self.t_eps,
            (th, tw),
        )
        return (
            block_mask,
            self._refine_order(own_order, (th, tw), common),
            self._refine_order(partner_order, (th, tw), common),
        )

    def _labels(self, lay, images, permutation, saliency, lam):
        """The energy of `lay`'s grid for every pair, minimised."""
        ops = self.backend
        height, width = images.shape[1], images.shape[2]
        nh, nw = lay.neigh
        scale = 1.0 / (self.value_range[1] - self.value_range[0])
        pooled = _pool(ops, images, height // nh, width // nw) * scale
        partner = ops.numpy.take(pooled, permutation, axis=0)
        vertical, horizontal = smoothness_tables(ops, pooled, partner, lay.side)
        unary, w_v, w_h = energy_terms(
            ops,
            saliency,
            ops.numpy.take(saliency, permutation, axis=0),
            vertical,
            horizontal,
            lam,
            self.n_labels,
            self.beta,
            self.gamma,
            self.eta,
        )
        return solve_labels(ops, unary, w_v, w_h, self.solver, self.sweeps)

    def _refine_order(self, order: Any, grid: tuple, common: tuple) -> Any:
        """A permutation of `grid` cells as one of the finer `common` cells."""
        ops = self.backend
        th, tw = grid
        gh, gw = common
        fh, fw = gh // th, gw // tw
        y, x = np.divmod(np.arange(gh * gw, dtype="int32"), gw)
        src = ops.numpy.take(
            order, ops.convert_to_tensor((y // fh) * tw + x // fw), axis=1
        )
        rows = ops.numpy.floor_divide(src, tw) * fh + ops.convert_to_tensor(y % fh)
        cols = ops.numpy.mod(src, tw) * fw + ops.convert_to_tensor(x % fw)
        return ops.cast(rows * gw + cols, "int32")

    # ------------------------------------------------------------------ #
    # The mixer hooks
    # ------------------------------------------------------------------ #
    def _draw(
        self,
        images: Any,
        permutation: Any,
        lam: Any,
        seed: Any,
        saliency: Any = None,
    ) -> dict[str, Any]:
        ops = self.backend
        layouts, _ = self.layouts(images.shape[1], images.shape[2])
        if saliency is not None:
            saliency = self._check_saliency(saliency, images.shape[0])
        permutation = ops.cast(permutation, "int32")
        args = (images, permutation, lam, saliency)
        if len(layouts) == 1:
            choice, index = ops.convert_to_tensor(0, dtype="int32"), 0
        else:
            choice = ops.random.randint(
                (1,), 0, len(layouts), dtype="int32", seed=seed
            )[0]
            # Eager: label the drawn grid only (a switch would trace every
            # grid, and under JAX compile them all, at each call).
            index = int(choice) if self._concrete(choice) else None
        if index is None:
            branches = [
                (lambda i=i: self._draw_grid(i, *args)) for i in range(len(layouts))
            ]
            out = ops.core.switch(choice, branches)
        elif ops.name == "jax" and not any(
            jax_utils.is_in_jax_tracing_scope(a) for a in args if a is not None
        ):
            # Eager JAX runs it compiled: op by op, a first call at a new
            # shape would compile each of its hundreds of small ops.
            out = self._jitted(index, saliency is None)(*args)
        else:
            out = self._draw_grid(index, *args)
        block_mask, own, partner = out
        sides = np.array([lay.side for lay in layouts], dtype="int32")
        grid = ops.numpy.take(ops.convert_to_tensor(sides), choice)
        return {
            "block_mask": ops.cast(block_mask, "float32"),
            "own_order": own,
            "partner_order": partner,
            "grid": grid,
        }

    def _draw_grid(self, index, images, permutation, lam, saliency):
        """The mask and transport orders of block grid `index` of
        `layouts`."""
        ops = self.backend
        layouts, common = self.layouts(images.shape[1], images.shape[2])
        plain = ops.core.stop_gradient(ops.cast(images, "float32"))
        cells = self._pooled_saliency(self._saliency(plain, saliency), common)
        return self._grid_draw(layouts[index], common, plain, permutation, cells, lam)

    # What `_draw_grid` depends on (not the seed, name, dtype or layout).
    _LABELLING = (
        "block_num",
        "beta",
        "gamma",
        "eta",
        "neigh_size",
        "n_labels",
        "transport",
        "t_eps",
        "t_size",
        "solver",
        "sweeps",
        "value_range",
        "saliency_size",
    )

    def _jitted(self, index: int, fallback: bool):
        """`_draw_grid` for grid `index`, compiled with `jax.jit`; one per
        process for layers of the same settings (`_JIT_CACHE`)."""
        settings = tuple(getattr(self, k) for k in self._LABELLING)
        key = (type(self), settings, index, fallback)
        if key not in _JIT_CACHE:
            import jax

            # A private layer of the same settings computes it, so the cache
            # holds no user layer.
            template = type(self)(
                **dict(zip(self._LABELLING, settings, strict=True)),
                data_format="channels_last",
            )

            def draw(images, permutation, lam, saliency=None):
                return template._draw_grid(index, images, permutation, lam, saliency)

            _JIT_CACHE[key] = jax.jit(draw)
        fn = _JIT_CACHE[key]
        return (lambda i, p, lam, s: fn(i, p, lam)) if fallback else fn

    def _apply(self, images: Any, partner: Any, params: dict[str, Any]):
        args = (
            images,
            partner,
            params["block_mask"],
            params["own_order"],
            params["partner_order"],
        )
        if self.backend.name == "jax" and not any(
            jax_utils.is_in_jax_tracing_scope(a) for a in args
        ):
            key = (type(self), "apply", self.transport)
            if key not in _JIT_CACHE:
                import jax

                template = type(self)(
                    transport=self.transport, data_format="channels_last"
                )
                _JIT_CACHE[key] = jax.jit(template._apply_arrays)
            return _JIT_CACHE[key](*args)
        return self._apply_arrays(*args)

    def _apply_arrays(self, images, partner, block_mask, own_order, partner_order):
        ops = self.backend
        common = (block_mask.shape[1], block_mask.shape[2])
        if self.transport:
            images = move_cells(ops, images, own_order, common)
            partner = move_cells(ops, partner, partner_order, common)
        height, width = images.shape[1], images.shape[2]
        mask = ops.numpy.repeat(
            ops.numpy.repeat(block_mask, height // common[0], axis=1),
            width // common[1],
            axis=2,
        )
        return self._keep(images, partner, mask)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "block_num": self.block_num,
                "beta": self.beta,
                "gamma": self.gamma,
                "eta": self.eta,
                "neigh_size": self.neigh_size,
                "n_labels": self.n_labels,
                "transport": self.transport,
                "t_eps": self.t_eps,
                "t_size": self.t_size,
                "solver": self.solver,
                "sweeps": self.sweeps,
                "value_range": self.value_range,
                "saliency_size": self.saliency_size,
            }
        )
        return config


__all__ = [
    "EXACT_STATES",
    "PRESETS",
    "GridLayout",
    "PuzzleMix",
    "block_grids",
    "brute_force_np",
    "cost_matrix",
    "energy",
    "energy_np",
    "energy_terms",
    "grid_layout",
    "mask_levels",
    "move_cells",
    "prior_costs",
    "smoothness_tables",
    "solve_exact",
    "solve_labels",
    "solve_local",
    "transport_order",
]
