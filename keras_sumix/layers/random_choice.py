"""Pick one mixer per batch (the reference toolbox's multi-mode training)."""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix.layers.base import MixingLayer, MixResult


@keras.saving.register_keras_serializable(package="keras_sumix")
class RandomChoice(MixingLayer):
    """Apply one of several mixers, drawn anew for every batch.

    Only the chosen mixer runs (a `switch` on the drawn index:
    `tf.switch_case` in a TensorFlow graph, `lax.switch` under JAX, a Python
    branch on torch), so a batch costs what its mixer costs. The choice and
    the chosen mixer's draws all come from this layer's random stream (the
    candidates' own seeds are not used): the candidate mixes with an explicit
    seed drawn outside the branch, so no random state is assigned inside it,
    and the choice stays random inside a compiled step and a `tf.data` graph
    on every backend.

    Inputs are handled as by every mixer (`MixingLayer`); each candidate
    checks the images it mixes. The result's `mask` is the chosen mixer's
    (for a candidate without one, MixUp, a mask filled with its lam). A
    `saliency` given to `mix` reaches the candidates that use it.

    Args:
        mixers: list of mixing layers (`MixUp`, `CutMix`, ...).
        probabilities: optional probabilities, one per mixer (normalised);
            uniform by default.
        num_classes: number of classes, required for integer labels.
        seed: integer seed of the choice and of the candidates' draws.
        data_format: `"channels_last"` or `"channels_first"`; must match the
            mixers'.
        label_smoothing: share in [0, 1) of each label spread over the
            classes before mixing (see `MixingLayer`).
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
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            seed=seed,
            data_format=data_format,
            label_smoothing=label_smoothing,
            **kwargs,
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
        learned = [
            type(m).__name__ for m in mixers if m.needs_features or m.mixes_features
        ]
        if learned:
            raise ValueError(
                "RandomChoice draws among model-free mixers; a learned mixer "
                "trains with its model (two draws and a loss of its own each "
                "step), and a mixer of hidden features (ManifoldMix) runs inside "
                f"the network: neither can be one of them. Received: {learned}."
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

    def _mix(
        self, images: Any, masks: Any = None, **context: Any
    ) -> tuple[MixResult, Any]:
        self._check_context(context)
        ops = self.backend
        seed = self._seed()
        u = ops.random.uniform((), dtype="float32", seed=seed)
        cumulative = 0.0
        choice = ops.cast(0, "int32")
        for probability in self.probabilities[:-1]:
            cumulative += probability
            choice = choice + ops.cast(u >= cumulative, "int32")
        # The chosen mixer's seed is drawn here, outside the branches: a
        # branch then assigns no random state.
        mixer_seed = seed.next()

        def branch(mixer: MixingLayer):
            own = context if mixer.needs_saliency else {}

            def run(images, mixer_seed, *masks):
                result, mixed = mixer._run(
                    images, masks[0] if masks else None, mixer_seed, own
                )
                mask = result.mask
                if mask is None:
                    # A mixer without a mask (MixUp) keeps lam everywhere.
                    mask = ops.numpy.broadcast_to(
                        ops.numpy.reshape(result.lam, (-1, 1, 1, 1)),
                        self._mask_shape(result.images),
                    )
                out = (result.images, result.permutation, result.lam, mask)
                return out if mixed is None else (*out, mixed)

            return run

        operands = (
            (images, mixer_seed) if masks is None else (images, mixer_seed, masks)
        )
        branches = [branch(mixer) for mixer in self.mixers]
        if self._concrete(choice):  # eager: run the branch, nothing to trace
            out = branches[int(choice)](*operands)
        else:
            out = ops.core.switch(choice, branches, *operands)
        return MixResult(*out[:4]), (out[4] if masks is not None else None)

    def _mask_shape(self, images: Any) -> tuple:
        """The shape of a mask of `images`: one channel."""
        shape = self.backend.shape(images)
        if self.data_format == "channels_first":
            return (shape[0], 1, shape[2], shape[3])
        return (shape[0], shape[1], shape[2], 1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "mixers": [keras.saving.serialize_keras_object(m) for m in self.mixers],
                "probabilities": self.probabilities,
            }
        )
        return config
