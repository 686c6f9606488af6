"""The labelling energy of PuzzleMix: the reference's (`graphcut_multi`, with
the unary and pairwise terms `mixup_graph` builds), built (`energy_terms`,
from `prior_costs` and `smoothness_tables`) and evaluated (`energy`) with
backend ops."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

_EPS = 1e-8  # the reference's `eps` in the prior's logarithm


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
