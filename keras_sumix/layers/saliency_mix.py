"""SaliencyMix (Uddin et al., 2021): the box is centred on the source's
saliency peak."""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix._keras_compat import DynamicBackend
from keras_sumix._validation import check_int
from keras_sumix.layers.base import BaseMixer


@keras.saving.register_keras_serializable(package="keras_sumix")
class SaliencyMix(BaseMixer, name="saliencymix", in_place=True):
    """SaliencyMix: a CutMix box centred on the saliency peak of the image it
    is cut from.

    Saliency is the spectral residual of Hou & Zhang (2007), computed with
    FFTs per colour channel on the image downscaled to at most
    `saliency_size` pixels a side, Hann-windowed, then smoothed (the
    reference toolbox calls OpenCV's saliency module; this layer needs no
    OpenCV and runs on any backend). The box has
    side `floor(sqrt(1 - lam) * (H, W))`, is clipped to the image, and `lam`
    is recomputed from the pixels actually pasted. In `"batch"` mode one box,
    centred on the first partner's peak, serves the whole batch (as the
    reference does).

    Inputs as every mixer takes them (`MixingLayer`): integer images are cast
    to float without rescaling, NaN pixels propagate to the samples they are
    mixed into, a batch of one is returned unmixed (`lam = 1`), an empty
    batch raises, 1x1 images keep an exact `lam`, and out-of-range integer
    labels raise where their values are known.

    Reference: [SaliencyMix: A Saliency Guided Data Augmentation Strategy for
    Better Regularization](https://arxiv.org/abs/2006.01791).

    Args:
        alpha: Beta concentration. Defaults to 1.0 (the paper's CNN setting
            for SUMix is 0.2).
        saliency_size: side of the grid saliency is computed on. Defaults to
            64.

    Keyword Args:
        mode: `"elem"` or `"batch"`.
        num_classes: number of classes, required for integer labels.
        seed: integer seed.
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: base layer keyword arguments.

    Example:

    >>> import numpy as np, keras_sumix
    >>> mixer = keras_sumix.layers.SaliencyMix(alpha=0.2, seed=1)
    >>> result = mixer.mix(np.random.rand(4, 32, 32, 3))
    >>> tuple(result.permutation.shape)
    (4,)
    """

    def __init__(
        self,
        alpha: float = 1.0,
        saliency_size: int = 64,
        **kwargs: Any,
    ) -> None:
        # mode, num_classes, seed, data_format and layer arguments: BaseMixer.
        super().__init__(alpha=alpha, **kwargs)
        self.saliency_size = check_int("saliency_size", saliency_size, 4)

    def saliency(self, images: Any) -> Any:
        """Spectral-residual saliency maps `(M, h, w)` of channels-last images
        `(M, H, W, C)`, on a grid of at most `saliency_size` a side (see
        `spectral_residual`)."""
        return spectral_residual(images, self.saliency_size, backend=self.backend)

    def _draw(self, images: Any, permutation: Any, lam: Any, seed: Any) -> dict:
        ops = self.backend
        shape = ops.shape(images)
        height, width = shape[1], shape[2]
        count = ops.shape(lam)[0]
        # Output i's box is centred on its partner's peak. Maps are per
        # image: in elem mode the whole batch's maps, then permuted (small),
        # rather than the batch permuted first (a copy of every image).
        if self.mode == "elem":
            maps = ops.numpy.take(self.saliency(images), permutation, axis=0)
        else:
            maps = self.saliency(ops.numpy.take(images, permutation[:1], axis=0))
        grid_w = ops.shape(maps)[2]
        peak = ops.cast(
            ops.numpy.argmax(ops.numpy.reshape(maps, (count, -1)), axis=-1), "int32"
        )
        py = ops.numpy.floor_divide(peak, grid_w)
        px = peak - py * grid_w

        def to_image(coord, grid, full):
            scale = ops.cast(full, "float32") / ops.cast(grid, "float32")
            return ops.cast(
                ops.numpy.floor((ops.cast(coord, "float32") + 0.5) * scale), "int32"
            )

        cy = to_image(py, ops.shape(maps)[1], height)
        cx = to_image(px, grid_w, width)
        return {"box": self._centred_box(cy, cx, lam, height, width)}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"saliency_size": self.saliency_size})
        return config


def _smooth(ops: Any, maps: Any, size: int, times: int = 1) -> Any:
    """Box filter of side `size` over `(M, h, w)` maps (same size), `times`
    over. The maps are pooled as the channels of one image: pooling kernels
    stream over channels, and one single-channel image per map is 20 times
    slower on TensorFlow's CPU kernels (5 x 5, 64 maps of 64 x 64: 37 ms
    against 1.8 ms)."""
    stack = ops.numpy.transpose(maps, (1, 2, 0))[None]
    for _ in range(times):
        stack = ops.nn.average_pool(
            stack,
            pool_size=size,
            strides=1,
            padding="same",
            data_format="channels_last",
        )
    return ops.numpy.transpose(stack[0], (2, 0, 1))


def _window(ops: Any, length: Any) -> Any:
    """Hann window of `length` samples (1 for a single sample)."""
    n = ops.numpy.arange(length, dtype="float32")
    span = ops.numpy.maximum(ops.cast(length, "float32") - 1.0, 1.0)
    return 0.5 - 0.5 * ops.numpy.cos(2.0 * 3.141592653589793 * n / span)


def spectral_residual(images: Any, size: int = 64, backend: Any = None) -> Any:
    """Spectral-residual saliency maps `(M, h, w)` of channels-last images
    `(M, H, W, C)`, on a grid of at most `size` a side (SaliencyMix's, and
    PuzzleMix's when no saliency is given).

    Each channel's spectral residual (Hou & Zhang, 2007) is computed on the
    mean-free, Hann-windowed channel (the window removes the wrap-around
    edges an FFT otherwise finds salient); the channels' maps are summed
    and smoothed.

    Args:
        images: channels-last batch `(M, H, W, C)`.
        size: largest side of the grid the maps are computed on.
        backend: the namespace to compute with (a layer's `backend`); None
            uses the current Keras backend.

    Returns:
        float32 `(M, min(H, size), min(W, size))`.
    """
    ops = backend if backend is not None else DynamicBackend()
    images = ops.cast(images, "float32")
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None or height > size or width > size:
        images = ops.image.resize(
            images,
            (min(height or size, size), min(width or size, size)),
            interpolation="bilinear",
            data_format="channels_last",
        )
    shape = ops.shape(images)
    count, h, w, channels = shape[0], shape[1], shape[2], shape[3]
    planes = ops.numpy.transpose(images, (0, 3, 1, 2))
    planes = planes - ops.numpy.mean(planes, axis=(2, 3), keepdims=True)
    planes = planes * (_window(ops, h)[:, None] * _window(ops, w)[None, :])
    planes = ops.numpy.reshape(planes, (-1, h, w))
    real, imag = ops.math.fft2((planes, ops.numpy.zeros_like(planes)))
    amplitude = ops.numpy.sqrt(real * real + imag * imag) + 1e-8
    log_amplitude = ops.numpy.log(amplitude)
    residual = ops.numpy.exp(log_amplitude - _smooth(ops, log_amplitude, 3))
    real, imag = ops.math.ifft2(
        (residual * real / amplitude, residual * imag / amplitude)
    )
    maps = ops.numpy.reshape(real * real + imag * imag, (count, channels, h, w))
    return _smooth(ops, ops.numpy.sum(maps, axis=1), 5, times=3)
