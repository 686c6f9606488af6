"""Robustness to common corruptions.

- `cifar100_c_robustness`: the paper's protocol, top-1 on the official
  CIFAR-100-C files (Hendrycks & Dietterich, 2019), per corruption and
  severity, and the mean over all of them.
- `corrupt` / `generated_corruption_robustness`: for datasets without a -C
  version, a small GENERATED SUBSET of corruptions in the spirit of
  ImageNet-C (gaussian noise, gaussian blur, contrast, fog-like haze,
  JPEG-like compression, five severities each), written here in NumPy.
  They are approximations, not the official corruption code, and numbers
  obtained with them are NOT comparable to CIFAR-100-C / ImageNet-C
  results: the returned dict says so in its `"source"` entry.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from keras_sumix._validation import check_choice, check_int
from keras_sumix.data.directories import CIFAR100_C_CORRUPTIONS, load_cifar100_c
from keras_sumix.evaluation.reporting import (
    _as_images,
    _as_labels,
    _check_model,
    _check_preprocess,
    _top1_of_batches,
    top1_accuracy,
)

__all__ = [
    "CIFAR100_C_SOURCE",
    "GENERATED_CORRUPTIONS",
    "GENERATED_SOURCE",
    "cifar100_c_robustness",
    "corrupt",
    "generated_corruption_robustness",
]

#: `"source"` of `cifar100_c_robustness` results.
CIFAR100_C_SOURCE = "CIFAR-100-C"
#: `"source"` of `generated_corruption_robustness` results.
GENERATED_SOURCE = "generated subset (not CIFAR-100-C)"

#: Severity parameters of the generated corruptions (severity 1 .. 5), after
#: the CIFAR-10-C settings of Hendrycks & Dietterich (2019).
_PARAMETERS: dict[str, tuple[Any, ...]] = {
    # standard deviation of the additive noise (images in [0, 1])
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    # standard deviation of the blur kernel, in pixels
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    # factor the deviation from the image mean is scaled by
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    # (haze strength, decay of the haze's finer octaves)
    "fog": ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)),
    # JPEG quality factor of the quantisation tables
    "jpeg_compression": (80, 65, 58, 50, 40),
}

#: The generated corruptions (`corrupt`), a representative subset of the
#: noise, blur, weather and digital families of CIFAR-100-C.
GENERATED_CORRUPTIONS: tuple[str, ...] = tuple(_PARAMETERS)

_SEVERITIES = (1, 2, 3, 4, 5)

# The JPEG standard's luminance quantisation table (ITU T.81, Annex K).
_JPEG_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype="float32",
)


# ---------------------------------------------------------------------- #
# Generated corruptions (NumPy, channels-last, float32 in [0, 1])
# ---------------------------------------------------------------------- #
def _gaussian_noise(x: np.ndarray, sigma: float, rng: np.random.Generator):
    return x + rng.normal(0.0, sigma, x.shape).astype("float32")


def _blur_axis(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    radius = len(kernel) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(x, pad, mode="reflect" if x.shape[axis] > radius else "edge")
    size = x.shape[axis]
    out = np.zeros_like(x)
    for offset, weight in enumerate(kernel):
        out += weight * np.take(padded, np.arange(offset, offset + size), axis=axis)
    return out


def _gaussian_blur(x: np.ndarray, sigma: float, rng: np.random.Generator):
    del rng
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.arange(-radius, radius + 1, dtype="float32")
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    return _blur_axis(_blur_axis(x, kernel, 1), kernel, 2)


def _contrast(x: np.ndarray, factor: float, rng: np.random.Generator):
    del rng
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * np.float32(factor) + mean


def _resize_bilinear(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """`(N, h, w)` -> `(N, height, width)`, aligned corners."""
    _, h, w = grid.shape
    ys = np.linspace(0, h - 1, height, dtype="float32")
    xs = np.linspace(0, w - 1, width, dtype="float32")
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    ty, tx = (ys - y0)[None, :, None], (xs - x0)[None, None, :]
    top = grid[:, y0][:, :, x0] * (1 - tx) + grid[:, y0][:, :, x1] * tx
    bottom = grid[:, y1][:, :, x0] * (1 - tx) + grid[:, y1][:, :, x1] * tx
    return top * (1 - ty) + bottom * ty


def _haze(n: int, height: int, width: int, decay: float, rng: np.random.Generator):
    """Low-frequency fractal noise `(N, H, W)` in [0, 1]: octaves of random
    grids of 2x2, 3x3, 5x5, ... cells, upsampled, weights `decay ** -k`."""
    haze = np.zeros((n, height, width), "float32")
    cells, k = 2, 0
    while cells <= max(height, width) // 2 + 1:
        grid = rng.random((n, cells, cells), dtype="float32")
        haze += np.float32(decay ** (-k)) * _resize_bilinear(grid, height, width)
        cells, k = 2 * cells - 1, k + 1
    low = haze.min(axis=(1, 2), keepdims=True)
    high = haze.max(axis=(1, 2), keepdims=True)
    return (haze - low) / np.maximum(high - low, 1e-6)


def _fog(x: np.ndarray, parameters: tuple[float, float], rng: np.random.Generator):
    strength, decay = parameters
    top = x.max(axis=(1, 2, 3), keepdims=True)
    haze = _haze(len(x), x.shape[1], x.shape[2], decay, rng)[..., None]
    strength = np.float32(strength)
    return (x + strength * haze) * top / (top + strength)


def _dct_matrix(size: int = 8) -> np.ndarray:
    k, i = np.arange(size)[:, None], np.arange(size)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * size)) * np.sqrt(2 / size)
    matrix[0] /= np.sqrt(2)
    return matrix.astype("float32")


def _jpeg(x: np.ndarray, quality: int, rng: np.random.Generator):
    """Quantise the 8x8 block DCT of every channel with the JPEG luminance
    table at `quality` (no colour conversion, no chroma subsampling, no
    entropy coding: the lossy step of JPEG only)."""
    del rng
    n, height, width, channels = x.shape
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    table = np.maximum(np.floor((_JPEG_TABLE * scale + 50) / 100), 1)
    ph, pw = -height % 8, -width % 8
    pixels = np.pad(x * 255.0 - 128.0, [(0, 0), (0, ph), (0, pw), (0, 0)], "edge")
    bh, bw = pixels.shape[1] // 8, pixels.shape[2] // 8
    blocks = pixels.reshape(n, bh, 8, bw, 8, channels).transpose(0, 1, 3, 5, 2, 4)
    dct = _dct_matrix()
    coefficients = dct @ blocks @ dct.T
    coefficients = np.round(coefficients / table) * table
    blocks = dct.T @ coefficients @ dct
    pixels = blocks.transpose(0, 1, 4, 2, 5, 3).reshape(n, bh * 8, bw * 8, channels)
    return (pixels[:, :height, :width] + 128.0) / 255.0


_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "gaussian_noise": _gaussian_noise,
    "gaussian_blur": _gaussian_blur,
    "contrast": _contrast,
    "fog": _fog,
    "jpeg_compression": _jpeg,
}


def _check_severity(severity: Any, name: str = "severity") -> int:
    severity = check_int(name, severity, 1)
    if severity > 5:
        raise ValueError(f"`{name}` must be in 1..5. Received: {name}={severity}.")
    return severity


def _check_severities(severities: Any) -> tuple[int, ...]:
    if isinstance(severities, (str, bytes)) or not isinstance(severities, Sequence):
        raise TypeError(
            "`severities` must be a sequence of ints in 1..5. Received: "
            f"severities={severities!r}."
        )
    if not severities:
        raise ValueError("`severities` must hold at least one severity.")
    return tuple(_check_severity(s, "severities") for s in severities)


def _check_corruptions(corruptions: Any, known: tuple[str, ...]) -> tuple[str, ...]:
    if corruptions is None:
        return known
    if isinstance(corruptions, str):
        corruptions = (corruptions,)
    if not isinstance(corruptions, Sequence):
        raise TypeError(
            f"`corruptions` must be a sequence of names of {known} or None. "
            f"Received: corruptions={corruptions!r}."
        )
    if not corruptions:
        raise ValueError("`corruptions` must hold at least one corruption.")
    names = tuple(check_choice("corruptions", c, known) for c in corruptions)
    if len(set(names)) != len(names):
        raise ValueError(
            f"`corruptions` must not repeat a name. Received: corruptions={names!r}."
        )
    return names


def _data_format(data_format: str | None) -> str:
    return check_choice(
        "data_format",
        data_format or keras.config.image_data_format(),
        ("channels_last", "channels_first"),
    )


def corrupt(
    images: Any,
    corruption: str,
    severity: int,
    seed: int | None = 0,
    data_format: str | None = None,
) -> np.ndarray:
    """Apply one GENERATED corruption (not the official CIFAR-100-C /
    ImageNet-C code) at one severity.

    A representative subset of the common corruptions, re-implemented in
    NumPy with the CIFAR-10-C severity parameters, for datasets that have
    no -C version. Use it to compare models with one another, not with
    published CIFAR-100-C / ImageNet-C numbers.

    - `"gaussian_noise"`: additive normal noise, std 0.04 .. 0.10.
    - `"gaussian_blur"`: separable Gaussian blur, std 0.4 .. 1 pixel
      (reflect padding).
    - `"contrast"`: deviation from the per-image mean scaled by 0.75 .. 0.15.
    - `"fog"`: fog-like low-frequency haze (fractal noise of upsampled
      random grids) added with strength 0.2 .. 1.5, then rescaled to the
      image's maximum (as in the fog of ImageNet-C, with another fractal).
    - `"jpeg_compression"`: JPEG-like, the 8x8 block DCT of every channel
      quantised with the JPEG luminance table at quality 80 .. 40 (no colour
      conversion, chroma subsampling or entropy coding).

    Results are clipped to the valid range. The corruption grows with the
    severity (e.g. the mean absolute change does).

    Args:
        images: a batch `(N, H, W, C)` (or `(N, C, H, W)` with
            `data_format="channels_first"`), uint8 in [0, 255] or float in
            [0, 1].
        corruption: one of `GENERATED_CORRUPTIONS`.
        severity: 1 (mildest) to 5.
        seed: seed of the random corruptions (noise, fog); same seed, same
            output. None draws fresh randomness.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.

    Returns:
        The corrupted images, of the same shape and dtype as `images`.

    Raises:
        ValueError: unknown corruption, severity outside 1..5, float images
            outside [0, 1].

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    >>> y = corrupt(x, "gaussian_noise", 3, seed=0, data_format="channels_last")
    >>> y.shape, y.dtype
    ((2, 32, 32, 3), dtype('float32'))
    """
    images = _as_images(images, ndim=4)
    check_choice("corruption", corruption, GENERATED_CORRUPTIONS)
    severity = _check_severity(severity)
    check_int("seed", seed, 0, allow_none=True)
    channels_first = _data_format(data_format) == "channels_first"
    dtype = images.dtype
    if dtype == np.uint8:
        x = images.astype("float32") / np.float32(255.0)
    elif np.issubdtype(dtype, np.floating):
        x = images.astype("float32")
        if x.min() < -1e-6 or x.max() > 1 + 1e-6:
            raise ValueError(
                "Float `images` must lie in [0, 1] (corrupt raw images, then "
                f"normalise). Received values in [{x.min()}, {x.max()}]."
            )
    else:
        raise TypeError(
            f"`images` must be uint8 or float. Received: images of dtype {dtype}."
        )
    if channels_first:
        x = x.transpose(0, 2, 3, 1)
    rng = np.random.default_rng(seed)
    parameter = _PARAMETERS[corruption][severity - 1]
    out = np.clip(_FUNCTIONS[corruption](x, parameter, rng), 0.0, 1.0)
    if channels_first:
        out = out.transpose(0, 3, 1, 2)
    if dtype == np.uint8:
        return np.round(out * 255.0).astype("uint8")
    return np.ascontiguousarray(out, dtype=dtype)


def _summary(
    source: str,
    top1: dict[str, dict[int, float]],
    severities: tuple[int, ...],
    num_images: int,
) -> dict[str, Any]:
    per_corruption = {c: float(np.mean(list(v.values()))) for c, v in top1.items()}
    mean = float(np.mean([a for v in top1.values() for a in v.values()]))
    return {
        "source": source,
        "corruptions": list(top1),
        "severities": list(severities),
        "num_images": num_images,
        "top1": top1,
        "mean_top1_per_corruption": per_corruption,
        "mean_top1": mean,
        "mean_error": 1.0 - mean,
    }


def cifar100_c_robustness(
    model: keras.Model,
    data_dir: str | os.PathLike,
    severities: Sequence[int] = _SEVERITIES,
    corruptions: Sequence[str] | None = None,
    limit: int | None = None,
    batch_size: int = 256,
    preprocess: Callable[[np.ndarray], Any] | None = None,
) -> dict[str, Any]:
    """Top-1 on CIFAR-100-C, per corruption and severity, and the mean over
    all of them (the paper's corruption-robustness protocol).

    Reads each `<corruption>.npy` slice with
    `keras_sumix.data.load_cifar100_c` (uint8 `(n, 32, 32, 3)`), applies
    `preprocess` batch by batch and classifies. `preprocess` must be the
    preprocessing the model was trained with.

    Args:
        model: a `keras.Model` mapping images to logits or probabilities.
        data_dir: the extracted `CIFAR-100-C/` folder or its parent.
        severities: severities to evaluate, in 1..5.
        corruptions: names of `CIFAR100_C_CORRUPTIONS`; None: all 19 (the
            standard mean; every file must be present).
        limit: evaluate only the first `limit` images of each slice (quick
            checks); None: all of them.
        batch_size: evaluation batch size.
        preprocess: uint8 NHWC batch -> model inputs. Default: scale to
            float32 in [0, 1]. E.g. for a model trained on normalised
            inputs: `lambda x: (x / 255 - CIFAR_MEAN) / CIFAR_STD`
            (transposed for channels_first models).

    Returns:
        A plain dict: `"source"` (where the corrupted images come from),
        `"corruptions"` and `"severities"` (lists, as evaluated),
        `"num_images"` (images per corruption and severity), `"top1"`
        (`{corruption: {severity: top1}}`, int severity keys),
        `"mean_top1_per_corruption"` (`{corruption: mean over severities}`),
        `"mean_top1"` (the mean over all corruptions and severities) and
        `"mean_error"` (`1 - mean_top1`). Accuracies are floats in [0, 1].
        JSON-serialisable (`json.dumps` writes the int keys as strings).
        `"source"` is `"CIFAR-100-C"`.

    Raises:
        FileNotFoundError: a requested file is missing.

    Example:

    >>> r = cifar100_c_robustness(model, "~/data/CIFAR-100-C")  # doctest: +SKIP
    >>> r["mean_top1"], r["top1"]["fog"][5]  # doctest: +SKIP
    (0.52, 0.31)
    """
    model = _check_model(model)
    severities = _check_severities(severities)
    corruptions = _check_corruptions(corruptions, CIFAR100_C_CORRUPTIONS)
    limit = check_int("limit", limit, 1, allow_none=True)
    batch_size = check_int("batch_size", batch_size, 1)
    preprocess = _check_preprocess(preprocess)
    top1: dict[str, dict[int, float]] = {}
    num_images = 0
    for corruption in corruptions:
        top1[corruption] = {}
        for severity in severities:
            images, labels = load_cifar100_c(data_dir, corruption, severity)
            if limit is not None:
                images, labels = images[:limit], labels[:limit]
            num_images = len(images)
            top1[corruption][severity] = top1_accuracy(
                model, images, labels, batch_size, preprocess
            )
    return _summary(CIFAR100_C_SOURCE, top1, severities, num_images)


def generated_corruption_robustness(
    model: keras.Model,
    images: Any,
    labels: Any,
    severities: Sequence[int] = _SEVERITIES,
    corruptions: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int = 256,
    preprocess: Callable[[np.ndarray], Any] | None = None,
    data_format: str | None = None,
) -> dict[str, Any]:
    """Top-1 under the GENERATED corruption subset (`corrupt`), for datasets
    without a -C version; same result layout as `cifar100_c_robustness`.

    NOT CIFAR-100-C / ImageNet-C: the result's `"source"` is
    `"generated subset (not CIFAR-100-C)"`. Each batch of `batch_size`
    clean images is corrupted (seeded by `seed`, the corruption, the
    severity and the batch's position: reproducible for a given `seed` and
    `batch_size`), preprocessed and classified.

    Args:
        model: a `keras.Model` mapping images to logits or probabilities.
        images: clean raw images `(N, H, W, C)` (or channels-first), uint8
            in [0, 255] or float in [0, 1].
        labels: integer `(N,)` or one-hot `(N, C)`.
        severities: severities to evaluate, in 1..5.
        corruptions: names of `GENERATED_CORRUPTIONS`; None: all five.
        seed: seed of the random corruptions.
        batch_size: evaluation (and corruption) batch size.
        preprocess: corrupted batch -> model inputs. Default: uint8 to
            float32 in [0, 1], float unchanged.
        data_format: layout of `images`; defaults to
            `keras.config.image_data_format()`.

    Returns:
        A plain dict: `"source"` (where the corrupted images come from),
        `"corruptions"` and `"severities"` (lists, as evaluated),
        `"num_images"` (images per corruption and severity), `"top1"`
        (`{corruption: {severity: top1}}`, int severity keys),
        `"mean_top1_per_corruption"` (`{corruption: mean over severities}`),
        `"mean_top1"` (the mean over all corruptions and severities) and
        `"mean_error"` (`1 - mean_top1`). Accuracies are floats in [0, 1].
        JSON-serialisable (`json.dumps` writes the int keys as strings).

    Example:

    >>> r = generated_corruption_robustness(model, x, y)  # doctest: +SKIP
    >>> r["source"]  # doctest: +SKIP
    'generated subset (not CIFAR-100-C)'
    """
    model = _check_model(model)
    images = _as_images(images, ndim=4)
    labels = _as_labels(labels, len(images))
    severities = _check_severities(severities)
    corruptions = _check_corruptions(corruptions, GENERATED_CORRUPTIONS)
    seed = check_int("seed", seed, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    preprocess = _check_preprocess(preprocess)
    data_format = _data_format(data_format)

    def batches(corruption: str, severity: int):
        index = GENERATED_CORRUPTIONS.index(corruption)
        for start in range(0, len(images), batch_size):
            stream = np.random.SeedSequence([seed, index, severity, start])
            x = corrupt(
                images[start : start + batch_size],
                corruption,
                severity,
                seed=int(stream.generate_state(1)[0]),
                data_format=data_format,
            )
            yield preprocess(x), labels[start : start + batch_size]

    top1 = {
        c: {s: _top1_of_batches(model, batches(c, s)) for s in severities}
        for c in corruptions
    }
    return _summary(GENERATED_SOURCE, top1, severities, len(images))
