"""The static layout of PuzzleMix: the block grids a setting draws, the cells
each grid pools over, and the pooling itself."""

from __future__ import annotations

from typing import Any, NamedTuple

from keras_sumix._validation import check_int


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
