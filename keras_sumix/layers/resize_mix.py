"""ResizeMix (Qin et al., 2020): paste the whole partner, resized."""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix.layers.base import BaseMixer


@keras.saving.register_keras_serializable(package="keras_sumix")
class ResizeMix(BaseMixer, name="resizemix"):
    """ResizeMix: shrink the whole partner image into a box and paste it.

    The box has side `int(tau * (H, W))`, lies wholly inside the image at a
    uniform position, and the partner is resized into it by nearest
    neighbour (the reference toolbox's default). `tau ~ U(scope)`, or with
    `use_alpha=True` `tau = scope[0] + (scope[1] - scope[0]) * Beta(alpha,
    alpha)` (the paper's setting). `lam = 1 - box area / image area`, exact.

    Inputs as every mixer takes them (`MixingLayer`): integer images are cast
    to float without rescaling, NaN pixels propagate to the samples they are
    mixed into, a batch of one is returned unmixed (`lam = 1`), an empty
    batch raises, 1x1 images keep an exact `lam`, and out-of-range integer
    labels raise where their values are known.

    Reference: [ResizeMix: Mixing Data with Preserved Object Information and
    True Labels](https://arxiv.org/abs/2012.11101).

    Args:
        alpha: Beta concentration, used when `use_alpha=True`. Defaults to 1.0.
        scope: `(low, high)` range of `tau`, within (0, 1]. Defaults to
            `(0.1, 0.8)`.
        use_alpha: draw `tau` from the Beta distribution mapped into `scope`
            instead of uniformly. Defaults to False.

    Keyword Args:
        mode: `"elem"` (one box per sample) or `"batch"` (one for the batch).
        num_classes: number of classes, required for integer labels.
        seed: integer seed.
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: base layer keyword arguments.

    Example:

    >>> import numpy as np, keras_sumix
    >>> mixer = keras_sumix.layers.ResizeMix(use_alpha=True, seed=1)
    >>> result = mixer.mix(np.random.rand(4, 32, 32, 3))
    >>> bool((result.lam >= 1 - 0.8 ** 2).all())
    True
    """

    def __init__(
        self,
        alpha: float = 1.0,
        scope: tuple[float, float] = (0.1, 0.8),
        use_alpha: bool = False,
        **kwargs: Any,
    ) -> None:
        # mode, num_classes, seed, data_format and layer arguments: BaseMixer.
        super().__init__(alpha=alpha, **kwargs)
        if (
            not isinstance(scope, (tuple, list))
            or len(scope) != 2
            or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in scope
            )
            or not 0.0 < scope[0] <= scope[1] <= 1.0
        ):
            raise ValueError(
                "`scope` must be a pair (low, high) with 0 < low <= high <= 1. "
                f"Received: scope={scope!r}."
            )
        if not isinstance(use_alpha, bool):
            raise TypeError(
                f"`use_alpha` must be a bool. Received: use_alpha={use_alpha!r}."
            )
        self.scope = (float(scope[0]), float(scope[1]))
        self.use_alpha = use_alpha

    def _draw_lam(self, n: Any, seed: Any) -> Any:
        """Draws `tau`, the box's side as a share of the image's (not lam)."""
        low, high = self.scope
        if self.use_alpha:
            return low + (high - low) * super()._draw_lam(n, seed)
        return self.backend.random.uniform(
            (self._num_draws(n),), low, high, dtype="float32", seed=seed
        )

    def _draw(self, images: Any, permutation: Any, lam: Any, seed: Any) -> dict:
        ops = self.backend
        shape = ops.shape(images)
        height, width = shape[1], shape[2]
        tau, count = lam, ops.shape(lam)[0]

        def span(length):
            side = ops.numpy.maximum(
                ops.cast(ops.numpy.floor(tau * ops.cast(length, "float32")), "int32"),
                1,
            )
            start = ops.cast(
                ops.numpy.floor(
                    ops.random.uniform((count,), dtype="float32", seed=seed)
                    * ops.cast(length - side + 1, "float32")
                ),
                "int32",
            )
            return start, start + side

        top, bottom = span(height)
        left, right = span(width)
        area = ops.cast((bottom - top) * (right - left), "float32")
        return {
            "tau": tau,
            "lam": 1.0 - area / ops.cast(height * width, "float32"),
            "box": ops.numpy.stack([top, left, bottom, right], axis=1),
        }

    def _apply(self, images: Any, partner: Any, params: dict):
        ops = self.backend
        shape = ops.shape(images)
        n, height, width = shape[0], shape[1], shape[2]
        box = ops.cast(params["box"], "int32")

        def source(start, stop, length):
            # Nearest-neighbour source index of every output position.
            position = ops.numpy.arange(length, dtype="int32")[None, :]
            offset = ops.cast(position - start[:, None], "float32")
            side = ops.cast(stop - start, "float32")[:, None]
            index = ops.numpy.floor(offset * ops.cast(length, "float32") / side)
            index = ops.numpy.clip(ops.cast(index, "int32"), 0, length - 1)
            return ops.numpy.broadcast_to(index, (n, length))

        rows = source(box[:, 0], box[:, 2], height)
        cols = source(box[:, 1], box[:, 3], width)
        # One gather: output pixel (n, y, x) reads partner pixel
        # (n, rows[n, y], cols[n, x]) of the flattened batch, by an int32
        # index (JAX has no int64 by default): fail rather than overflow.
        static = images.shape[:3]
        if None not in static and static[0] * static[1] * static[2] >= 2**31:
            raise ValueError(
                "ResizeMix indexes the pixels of a batch with int32: `images` "
                f"of shape {tuple(images.shape)} hold N * H * W >= 2**31 pixels. "
                "Mix smaller batches."
            )
        sample = ops.numpy.arange(n, dtype="int32")[:, None, None]
        index = (sample * height + rows[:, :, None]) * width + cols[:, None, :]
        flat = ops.numpy.reshape(partner, (-1, shape[3]))
        resized = ops.numpy.reshape(
            ops.numpy.take(flat, ops.numpy.reshape(index, (-1,)), axis=0), shape
        )
        return self._paste_box(images, resized, box)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"scope": self.scope, "use_alpha": self.use_alpha})
        return config
