"""FMix (Harris et al., 2020): masks from thresholded low-frequency noise."""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix._validation import check_number
from keras_sumix.layers.base import BaseMixer


@keras.saving.register_keras_serializable(package="keras_sumix")
class FMix(BaseMixer, name="fmix", in_place=True):
    """FMix: keep the highest `lam` share of the pixels of a random
    low-frequency Fourier field, take the rest from the partner.

    The field is complex Gaussian noise whose spectrum is scaled by
    `1 / f ** decay_power`, transformed back to image space. It is drawn on a
    grid a quarter of the image's side (at least 16; the `1/f^3` spectrum
    leaves nothing above that grid's frequencies worth drawing) and
    upsampled bilinearly; the top `round(lam * H * W)` pixels of the
    upsampled field are kept, the threshold found by bisection on its values
    (no sort). The returned `lam` is the exact share of the final mask. All
    masks of a batch come from one vectorised computation (one small FFT,
    a fixed number of comparisons).

    Inputs as every mixer takes them (`MixingLayer`): integer images are cast
    to float without rescaling, NaN pixels propagate to the samples they are
    mixed into, a batch of one is returned unmixed (`lam = 1`), an empty
    batch raises, 1x1 images keep an exact `lam`, and out-of-range integer
    labels raise where their values are known.

    Reference: [FMix: Enhancing Mixed Sample Data Augmentation](
    https://arxiv.org/abs/2002.12047).

    Args:
        alpha: Beta concentration. Defaults to 1.0 (the paper's CNN setting
            for SUMix is 0.2).
        decay_power: decay of the spectrum; larger gives smoother, blobbier
            masks. Defaults to 3 (the paper's setting).
        max_soft: half-width, as a share of the pixels, of the linear ramp
            between kept and pasted pixels (FMix's soft masks; the ramp is
            linear in the field's value between the quantiles `lam -
            max_soft` and `lam + max_soft`). 0 (default) gives binary masks.
            With a soft mask `lam` is the mean mask weight.

    Keyword Args:
        mode: `"elem"` (one lam and mask per sample) or `"batch"` (one for
            the whole batch).
        num_classes: number of classes, required for integer labels.
        seed: integer seed.
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: base layer keyword arguments.

    Example:

    >>> import numpy as np, keras_sumix
    >>> mixer = keras_sumix.layers.FMix(alpha=0.2, seed=1)
    >>> result = mixer.mix(np.random.rand(4, 32, 32, 3))
    >>> tuple(result.images.shape)
    (4, 32, 32, 3)
    """

    def __init__(
        self,
        alpha: float = 1.0,
        decay_power: float = 3.0,
        max_soft: float = 0.0,
        **kwargs: Any,
    ) -> None:
        # mode, num_classes, seed, data_format and layer arguments: BaseMixer.
        super().__init__(alpha=alpha, **kwargs)
        self.decay_power = check_number(
            "decay_power", decay_power, low=0.0, include_low=True
        )
        self.max_soft = check_number(
            "max_soft", max_soft, low=0.0, high=0.5, include_low=True
        )

    def _frequencies(self, length: Any) -> Any:
        """`numpy.fft.fftfreq(length)` with backend ops."""
        ops = self.backend
        index = ops.numpy.arange(length, dtype="float32")
        length = ops.cast(length, "float32")
        half = ops.numpy.floor((length + 1.0) / 2.0)
        return ops.numpy.where(index < half, index, index - length) / length

    # Halvings of the value range when thresholding: float32 resolution.
    _BISECTION_STEPS = 24

    @staticmethod
    def _grid(length: Any) -> Any:
        """Side of the grid the field is drawn on: a quarter of the image
        (at least 16, at most the image), or the image's own when unknown."""
        if not isinstance(length, int):
            return length
        return min(length, max(16, -(-length // 4)))

    def _noise(self, count: Any, height: Any, width: Any, seed: Any) -> Any:
        """Low-frequency Gaussian fields, float32 `(count, height, width)`."""
        ops = self.backend
        fy = self._frequencies(height)[:, None]
        fx = self._frequencies(width)[None, :]
        freq = ops.numpy.sqrt(fy * fy + fx * fx)
        floor = 1.0 / ops.cast(ops.numpy.maximum(height, width), "float32")
        scale = 1.0 / ops.numpy.power(ops.numpy.maximum(freq, floor), self.decay_power)
        shape = (count, height, width)
        real = ops.random.normal(shape, dtype="float32", seed=seed) * scale
        imag = ops.random.normal(shape, dtype="float32", seed=seed) * scale
        return ops.math.ifft2((real, imag))[0]

    def _value_at_rank(self, field: Any, rank: Any) -> Any:
        """Per sample, the threshold `t` with exactly `rank` values of `field`
        `(M, H, W)` at or above it (bisection on the value: no sort)."""
        ops = self.backend
        low = ops.numpy.min(field, axis=(1, 2)) - 1.0
        high = ops.numpy.max(field, axis=(1, 2)) + 1.0
        for _ in range(self._BISECTION_STEPS):
            middle = (low + high) / 2.0
            above = ops.numpy.sum(
                ops.cast(field >= middle[:, None, None], "float32"), axis=(1, 2)
            )
            too_many = above > rank
            low = ops.numpy.where(too_many, middle, low)
            high = ops.numpy.where(too_many, high, middle)
        return high[:, None, None]

    def _draw(self, images: Any, permutation: Any, lam: Any, seed: Any) -> dict:
        ops = self.backend
        shape = ops.shape(images)
        height, width = shape[1], shape[2]
        grid_h, grid_w = self._grid(images.shape[1]), self._grid(images.shape[2])
        if grid_h is None or grid_w is None:
            grid_h, grid_w = height, width
        count = ops.shape(lam)[0]
        field = self._noise(count, grid_h, grid_w, seed)
        if grid_h != height or grid_w != width:
            field = ops.image.resize(
                field[..., None],
                (height, width),
                interpolation="bilinear",
                data_format="channels_last",
            )[..., 0]
        pixels = ops.cast(height * width, "float32")
        keep = ops.numpy.round(lam * pixels)
        if self.max_soft == 0.0:
            weight = ops.cast(field >= self._value_at_rank(field, keep), "float32")
        else:
            # FMix's soft masks: a linear ramp between the values ranked
            # keep - soft and keep + soft.
            soft = ops.numpy.minimum(self.max_soft, ops.numpy.minimum(lam, 1.0 - lam))
            soft = ops.numpy.floor(soft * pixels)
            upper = self._value_at_rank(field, keep - soft)
            lower = self._value_at_rank(field, keep + soft)
            span = ops.numpy.maximum(upper - lower, 1e-12)
            weight = ops.numpy.clip((field - lower) / span, 0.0, 1.0)
            weight = ops.numpy.where(keep[:, None, None] > 0.0, weight, 0.0)
        return {"mask": weight}

    def _apply(self, images: Any, partner: Any, params: dict[str, Any]):
        if self.max_soft > 0.0:
            return super()._apply(images, partner, params)
        # A hard mask: each pixel selected from one image, as CutMix's box
        # (a weighted sum writes the batch several times over).
        mask = params["mask"]
        taken = self._rows(self.backend.numpy.less(mask, 0.5), images)
        return self._select(images, partner, taken), mask

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"decay_power": self.decay_power, "max_soft": self.max_soft})
        return config
