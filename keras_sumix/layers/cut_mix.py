"""CutMix (Yun et al., 2019), as the reference toolbox draws its box."""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix.layers.base import BaseMixer


@keras.saving.register_keras_serializable(package="keras_sumix")
class CutMix(BaseMixer, name="cutmix", in_place=True):
    """CutMix: paste a box of the partner image.

    The box has side `floor(sqrt(1 - lam) * (H, W))` with `lam ~ Beta(alpha,
    alpha)`, a uniformly drawn centre, and is clipped to the image; the
    returned `lam` is recomputed from the pixels actually pasted.

    Inputs as every mixer takes them (`MixingLayer`): integer images are cast
    to float without rescaling, NaN pixels propagate to the samples they are
    mixed into, a batch of one is returned unmixed (`lam = 1`), an empty
    batch raises, 1x1 images keep an exact `lam`, and out-of-range integer
    labels raise where their values are known.

    Reference: [CutMix: Regularization Strategy to Train Strong Classifiers
    with Localizable Features](https://arxiv.org/abs/1905.04899).

    Args:
        alpha: Beta concentration. Defaults to 1.0 (the paper's CNN setting
            for SUMix is 0.2).
        mode: `"elem"` (one lam and box per sample) or `"batch"` (one for the
            whole batch).
        num_classes: number of classes, required for integer labels.
        seed: integer seed.
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: base layer keyword arguments.

    Example:

    >>> import numpy as np, keras_sumix
    >>> mixer = keras_sumix.layers.CutMix(alpha=0.2, seed=1)
    >>> result = mixer.mix(np.random.rand(8, 32, 32, 3))
    >>> tuple(result.lam.shape)
    (8,)
    """

    def _draw(self, images: Any, permutation: Any, lam: Any, seed: Any) -> dict:
        ops = self.backend
        shape = ops.shape(images)
        height, width = shape[1], shape[2]
        m = ops.shape(lam)[0]
        cy = ops.random.randint((m,), 0, height, dtype="int32", seed=seed)
        cx = ops.random.randint((m,), 0, width, dtype="int32", seed=seed)
        return {"box": self._centred_box(cy, cx, lam, height, width)}
