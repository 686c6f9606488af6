"""The transport of PuzzleMix: where each cell of a mixed image comes from
(`transport_order`, the reference's `mask_transport` completed into a
permutation of cells), and moving the cells there (`move_cells`)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Largest transport grid side (the reference's cost matrices go to 16).
MAX_TRANSPORT_SIDE = 16


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
