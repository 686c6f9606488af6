"""MixUp (Zhang et al., 2018)."""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix.layers.base import BaseMixer


@keras.saving.register_keras_serializable(package="keras_sumix")
class MixUp(BaseMixer, name="mixup"):
    """MixUp: `lam * x + (1 - lam) * x[permutation]`, `lam ~ Beta(alpha, alpha)`.

    Safe inside a `tf.data` pipeline whatever the Keras backend, and inside a
    compiled train step.

    Inputs as every mixer takes them (`MixingLayer`): integer images are cast
    to float without rescaling, NaN pixels propagate to the samples they are
    mixed into, a batch of one is returned unmixed (`lam = 1`), an empty
    batch raises, 1x1 images keep an exact `lam`, and out-of-range integer
    labels raise where their values are known.

    Reference: [mixup: Beyond Empirical Risk Minimization](
    https://arxiv.org/abs/1710.09412).

    Args:
        alpha: Beta concentration. Defaults to 1.0.
        mode: `"elem"` (one lam per sample) or `"batch"` (one per batch).
        num_classes: number of classes, required for integer labels.
        seed: integer seed.
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: base layer keyword arguments.

    Example:

    >>> import numpy as np, keras_sumix
    >>> mixer = keras_sumix.layers.MixUp(alpha=0.2, num_classes=10, seed=1)
    >>> out = mixer({"images": np.random.rand(8, 32, 32, 3),
    ...              "labels": np.arange(8)})
    >>> tuple(out["labels"].shape)
    (8, 10)
    """

    def _apply(self, images: Any, partner: Any, params: dict):
        # No mask: every pixel is a blend of weight lam (of any rank, batch
        # first: ManifoldMix blends hidden feature maps with it).
        rank = len(images.shape)
        weight = self.backend.cast(
            self.backend.numpy.reshape(params["lam"], (-1,) + (1,) * (rank - 1)),
            images.dtype,
        )
        return weight * images + (1.0 - weight) * partner, None
