"""Pick one mixer per batch (the reference toolbox's multi-mode training)."""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix.layers.base import MixingLayer, MixResult


@keras.saving.register_keras_serializable(package="keras_sumix")
class RandomChoice(MixingLayer):
    """Apply one of several mixers, drawn anew for every batch.

    Every candidate is computed and one result is kept, so the choice stays
    random inside a compiled step and a `tf.data` graph on every backend
    (branching would freeze the draw at tracing time, or carry random state
    out of a JAX branch). The cost is the sum of the candidates' costs.

    Inputs are handled as by every mixer (`MixingLayer`); each candidate
    checks the images it mixes. The result's `mask` is the chosen mixer's
    (for a candidate without one, MixUp, a mask filled with its lam), or
    None when no candidate has a mask. A `saliency` given to `mix` reaches
    the candidates that use it.

    Args:
        mixers: list of mixing layers (`MixUp`, `CutMix`, ...).
        probabilities: optional probabilities, one per mixer (normalised);
            uniform by default.
        num_classes: number of classes, required for integer labels.
        seed: integer seed of the choice.
        data_format: `"channels_last"` or `"channels_first"`; must match the
            mixers'.
        **kwargs: base layer keyword arguments.

    Example:

    >>> import numpy as np, keras_sumix
    >>> L = keras_sumix.layers
    >>> mixer = L.RandomChoice([L.MixUp(alpha=0.2), L.CutMix(alpha=0.2)], seed=1)
    >>> tuple(mixer.mix(np.random.rand(4, 8, 8, 3)).lam.shape)
    (4,)
    """

    def __init__(
        self,
        mixers: list[MixingLayer],
        probabilities: list[float] | None = None,
        num_classes: int | None = None,
        seed: int | None = None,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes=num_classes, seed=seed, data_format=data_format, **kwargs
        )
        mixers = [
            keras.saving.deserialize_keras_object(m) if isinstance(m, dict) else m
            for m in mixers
        ]
        if not mixers or not all(isinstance(m, MixingLayer) for m in mixers):
            raise TypeError(
                "`mixers` must be a non-empty list of keras_sumix mixing layers. "
                f"Received: mixers={mixers!r}."
            )
        learned = [type(m).__name__ for m in mixers if m.needs_features]
        if learned:
            raise ValueError(
                "RandomChoice draws among model-free mixers; a learned mixer "
                "trains with its model (two draws and a loss of its own each "
                f"step) and cannot be one of them. Received: {learned}."
            )
        formats = {m.data_format for m in mixers}
        if formats != {self.data_format}:
            raise ValueError(
                f"All `mixers` must use data_format={self.data_format!r}. "
                f"Received formats {sorted(formats)}."
            )
        if probabilities is None:
            probabilities = [1.0] * len(mixers)
        if (
            len(probabilities) != len(mixers)
            or any(
                isinstance(p, bool) or not isinstance(p, (int, float)) or p < 0
                for p in probabilities
            )
            or sum(probabilities) <= 0
        ):
            raise ValueError(
                "`probabilities` must hold one non-negative number per mixer, not "
                f"all zero. Received: probabilities={probabilities!r} for "
                f"{len(mixers)} mixers."
            )
        self.mixers = mixers
        # The facts of the candidates together: a saliency reaches those that
        # use it; masks give the true share only if every candidate's does.
        self.needs_saliency = any(m.needs_saliency for m in mixers)
        self.in_place = all(m.in_place for m in mixers)
        self.true_share = all(m.true_share for m in mixers)
        total = sum(probabilities)
        self.probabilities = [float(p) / total for p in probabilities]

    def build(self, input_shape: Any) -> None:
        for mixer in self.mixers:
            mixer.build(input_shape)
        self.built = True

    def _mix(self, images: Any, **context: Any) -> MixResult:
        self._check_context(context)
        ops = self.backend
        results = [
            mixer.mix(images, **(context if mixer.needs_saliency else {}))
            for mixer in self.mixers
        ]
        u = ops.random.uniform((), dtype="float32", seed=self._seed())
        cumulative = 0.0
        choice = ops.cast(0, "int32")
        for probability in self.probabilities[:-1]:
            cumulative += probability
            choice = choice + ops.cast(u >= cumulative, "int32")
        if all(r.mask is None for r in results):
            masks = None
        else:
            # A mixer without a mask (MixUp) keeps the share lam everywhere.
            shape = ops.shape(next(r.mask for r in results if r.mask is not None))
            masks = [
                r.mask
                if r.mask is not None
                else ops.numpy.broadcast_to(
                    ops.numpy.reshape(r.lam, (-1, 1, 1, 1)), shape
                )
                for r in results
            ]
        fields = [[getattr(r, f) for r in results] for f in MixResult._fields[:3]]
        fields.append(masks)
        return MixResult(
            *(
                None
                if field is None
                else ops.numpy.take(ops.numpy.stack(field), choice, axis=0)
                for field in fields
            )
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "mixers": [keras.saving.serialize_keras_object(m) for m in self.mixers],
                "probabilities": self.probabilities,
            }
        )
        return config
