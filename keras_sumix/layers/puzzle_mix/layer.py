"""The PuzzleMix layer: draws a block grid, labels its blocks by minimising
the energy (`energy`, `solvers`) and transports each image's cells
(`transport`), for the whole batch on the device."""

from __future__ import annotations

import functools
import math
from typing import Any

import keras
import numpy as np

from keras_sumix._keras_compat import is_in_jax_tracing_scope
from keras_sumix._validation import check_choice, check_int, check_number
from keras_sumix.layers.base import BaseMixer
from keras_sumix.layers.puzzle_mix.energy import (
    energy_terms,
    mask_levels,
    prior_costs,
    smoothness_tables,
)
from keras_sumix.layers.puzzle_mix.layout import (
    GridLayout,
    _normalised,
    _pool,
    block_grids,
    grid_layout,
)
from keras_sumix.layers.puzzle_mix.solvers import MAX_EXACT_STATES, solve_labels
from keras_sumix.layers.puzzle_mix.transport import (
    MAX_TRANSPORT_SIDE,
    move_cells,
    transport_order,
)

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
# Eager JAX runs the draw and its application compiled: op by op, a first call
# at a new shape would compile each of their hundreds of small ops. Layers of
# the same settings share the compiled functions, each computed by a private
# layer of those settings (so no user layer is held); past `_COMPILED`
# functions the least recently used is dropped.
_COMPILED = 64


@functools.lru_cache(maxsize=_COMPILED)
def _compiled_draw(cls: type, settings: tuple, index: int) -> Any:
    """`cls._draw_grid` for grid `index`, with `jax.jit`, for the labelling
    settings `settings` (the values of `cls._LABELLING`)."""
    import jax

    template = cls(
        **dict(zip(cls._LABELLING, settings, strict=True)),
        data_format="channels_last",
    )

    def draw(images, permutation, lam, saliency):
        return template._draw_grid(index, images, permutation, lam, saliency)

    return jax.jit(draw)


@functools.lru_cache(maxsize=_COMPILED)
def _compiled_apply(cls: type, transport: bool) -> Any:
    """`cls._apply_arrays`, with `jax.jit`."""
    import jax

    template = cls(transport=transport, data_format="channels_last")
    return jax.jit(template._apply_arrays)


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
    def _draw_grid(self, index, images, permutation, lam, saliency):
        """The mask and transport orders of block grid `index` of `layouts`,
        on the common cell grid: `(block_mask, own_order, partner_order)`."""
        ops = self.backend
        layouts, common = self.layouts(images.shape[1], images.shape[2])
        lay = layouts[index]
        plain = ops.core.stop_gradient(ops.cast(images, "float32"))
        cells = self._pooled_saliency(self._saliency(plain, saliency), common)
        labels = self._labels(lay, plain, permutation, cells, lam)
        keep = ops.numpy.take(ops.convert_to_tensor(mask_levels(self.n_labels)), labels)
        g = lay.side
        gh, gw = common
        block_mask = ops.numpy.repeat(
            ops.numpy.repeat(keep, gh // g, axis=1), gw // g, axis=2
        )
        if not self.transport:
            k = gh * gw
            identity = ops.numpy.zeros_like(
                ops.numpy.reshape(block_mask, (-1, k)), dtype="int32"
            ) + ops.numpy.arange(k, dtype="int32")
            return block_mask, identity, identity
        own_order, partner_order = self._transport_orders(
            lay, common, keep, cells, permutation
        )
        return block_mask, own_order, partner_order

    def _labels(self, lay, images, permutation, cells, lam):
        """The label of each block of `lay`'s grid for every pair: the energy
        minimised."""
        ops = self.backend
        g = lay.side
        saliency = _normalised(ops, _pool(ops, cells, g, g))
        if g == 1:
            # One block: both images lose all their saliency either way, so
            # the prior alone picks the level.
            prior = prior_costs(ops, lam, self.n_labels, self.eta, 1)
            best = ops.cast(ops.numpy.argmin(prior, axis=-1), "int32")
            return ops.numpy.zeros_like(saliency, dtype="int32") + best[:, None, None]
        height, width = images.shape[1], images.shape[2]
        nh, nw = lay.neigh
        scale = 1.0 / (self.value_range[1] - self.value_range[0])
        pooled = _pool(ops, images, height // nh, width // nw) * scale
        partner = ops.numpy.take(pooled, permutation, axis=0)
        vertical, horizontal = smoothness_tables(ops, pooled, partner, g)
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

    def _transport_orders(self, lay, common, keep, cells, permutation):
        """Where each cell of the image (kept share `keep` per block) and of
        its partner goes, on `lay`'s transport grid, as permutations of the
        common cells."""
        ops = self.backend
        g = lay.side
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
            self._refine_order(own_order, (th, tw), common),
            self._refine_order(partner_order, (th, tw), common),
        )

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
            is_in_jax_tracing_scope(a) for a in args if a is not None
        ):
            # Eager JAX: compiled (`_compiled_draw`).
            settings = tuple(getattr(self, k) for k in self._LABELLING)
            out = _compiled_draw(type(self), settings, index)(*args)
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

    def _apply(self, images: Any, partner: Any, params: dict[str, Any]):
        args = (
            images,
            partner,
            params["block_mask"],
            params["own_order"],
            params["partner_order"],
        )
        if self.backend.name == "jax" and not any(
            is_in_jax_tracing_scope(a) for a in args
        ):
            return _compiled_apply(type(self), self.transport)(*args)
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
