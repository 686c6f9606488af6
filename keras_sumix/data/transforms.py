"""Per-image transforms of the pipelines (TensorFlow ops, run inside
`tf.data`), on float32 images `(H, W, C)` in [0, 1].

- Small operations: `to_unit_float`, `resize`, `resize_shorter` (torchvision's
  `Resize(size)`), `centre_crop` (`CenterCrop`), `random_resized_crop`
  (`RandomResizedCrop`), `random_flip`, `normalize`.
- The two augmentations the named pipelines are made of, frozen and
  validated when built: `PadCropFlip` (the CIFAR recipe: pad, random crop,
  flip) and `ResizedCropFlip` (the resize recipes: shorter side resized,
  then a random resized crop and a flip for training, the centre crop for
  test). Each is called as `augmentation(image, seed, training)`, with
  `seed` a stateless-random seed (an int64 pair).
- `rand_augment_layer`: the `keras.layers.RandAugment` of
  `make_pipeline(rand_augment=True)`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from keras_sumix._validation import check_choice, check_int, check_number
from keras_sumix.data.common import require_tensorflow

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "NORMALIZATIONS",
    "PADDING_MODES",
    "RAND_AUGMENT",
    "PadCropFlip",
    "ResizedCropFlip",
    "centre_crop",
    "normalize",
    "rand_augment_layer",
    "random_flip",
    "random_resized_crop",
    "resize",
    "resize_shorter",
    "to_unit_float",
]

#: Per-channel mean and std of the reference toolbox's CIFAR configs.
CIFAR_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR_STD: tuple[float, float, float] = (0.2023, 0.1994, 0.201)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Normalisation name -> (per-channel mean, per-channel std), or None for
#: `"unit"` (images stay in [0, 1]).
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "cifar": (CIFAR_MEAN, CIFAR_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "unit": None,
}
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic", "nearest", "area")
#: `padding_mode` -> the `tf.pad` mode.
PADDING_MODES: dict[str, str] = {
    "reflect": "REFLECT",
    "constant": "CONSTANT",
    "symmetric": "SYMMETRIC",
}
#: `keras.layers.RandAugment` arguments of `rand_augment=True`.
RAND_AUGMENT: dict[str, Any] = {"num_ops": 2, "factor": 0.5}

_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
# Float input images may overshoot [0, 1] by this much (rounding, resizing).
_UNIT_TOLERANCE = 1e-3
_RRC_ATTEMPTS = 10


# ---------------------------------------------------------------------- #
# Small operations
# ---------------------------------------------------------------------- #
def to_unit_float(image: Any) -> Any:
    """uint8 (0..255) or float (in [0, 1]) image -> float32 in [0, 1].

    Raises:
        TypeError: another integer dtype.
        InvalidArgumentError: (when the element is produced) a float image
            that is not finite or not in [0, 1] (within 1e-3).
    """
    tf = require_tensorflow()
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 255.0
    if image.dtype.is_integer:
        raise TypeError(
            f"Images must be uint8 (0..255) or float (in [0, 1]). Received "
            f"dtype {image.dtype.name}."
        )
    image = tf.cast(image, tf.float32)
    # Float images are taken as they are: 0..255 floats, already-normalised
    # or NaN images would come out silently wrong (the resize recipes clip
    # to [0, 1]), so they fail here, when the element is produced.
    low, high = -_UNIT_TOLERANCE, 1.0 + _UNIT_TOLERANCE
    in_range = tf.reduce_all((image >= low) & (image <= high))
    check = tf.debugging.Assert(
        in_range,
        [
            "Float images must be finite and in [0, 1] (uint8 images are "
            "divided by 255; divide 0..255 float images by 255). Received "
            "an image with min, max:",
            tf.reduce_min(image),
            tf.reduce_max(image),
        ],
    )
    with tf.control_dependencies([check] if check is not None else []):
        return tf.identity(image)


def resize(image: Any, size: Any, method: str) -> Any:
    """Resize to `size` (h, w), antialiased; skipped when the image already
    has it."""
    tf = require_tensorflow()
    size = tf.cast(size, tf.int32)
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    return tf.cond(
        same,
        lambda: image,
        lambda: tf.image.resize(image, size, method=method, antialias=True),
    )


def resize_shorter(image: Any, size: int, method: str) -> Any:
    """torchvision's `Resize(size)`: shorter side to `size`, longer side
    `int(size * long / short)`, aspect ratio kept."""
    tf = require_tensorflow()
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    short = tf.minimum(h, w)
    side = tf.constant(size, tf.float64)
    new_h = tf.where(h <= w, side, tf.floor(side * h / short))
    new_w = tf.where(h <= w, tf.floor(side * w / short), side)
    return resize(image, tf.stack([new_h, new_w]), method)


def centre_crop(image: Any, size: int) -> Any:
    """torchvision's `CenterCrop(size)` (top = round((h - size) / 2))."""
    tf = require_tensorflow()
    shape = tf.shape(image)
    top = tf.cast(tf.round(tf.cast(shape[0] - size, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(shape[1] - size, tf.float32) / 2.0), tf.int32)
    return image[top : top + size, left : left + size]


def random_resized_crop(
    image: Any, size: int, scale: tuple[float, float], method: str, seed: Any
) -> Any:
    """torchvision's `RandomResizedCrop(size, scale, ratio=(3/4, 4/3))`.

    Up to 10 boxes of area `U(scale) * H * W` and log-uniform aspect ratio
    are drawn; the first that fits is used, placed uniformly at random;
    if none fits, the centre crop of the largest box within the ratio range.
    """
    tf = require_tensorflow()
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    area = h * w
    target = area * tf.random.stateless_uniform(
        [_RRC_ATTEMPTS], seeds[0], minval=scale[0], maxval=scale[1]
    )
    log_ratio = tf.random.stateless_uniform(
        [_RRC_ATTEMPTS],
        seeds[1],
        minval=math.log(_CROP_RATIO[0]),
        maxval=math.log(_CROP_RATIO[1]),
    )
    ratio = tf.exp(log_ratio)
    crop_w = tf.cast(tf.round(tf.sqrt(target * ratio)), tf.int32)
    crop_h = tf.cast(tf.round(tf.sqrt(target / ratio)), tf.int32)
    fits = (crop_w > 0) & (crop_h > 0) & (crop_w <= width) & (crop_h <= height)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)

    # Fallback: the whole image, clamped to the ratio range.
    in_ratio = w / h
    fb_w = tf.where(
        in_ratio < _CROP_RATIO[0],
        w,
        tf.where(in_ratio > _CROP_RATIO[1], tf.round(h * _CROP_RATIO[1]), w),
    )
    fb_h = tf.where(
        in_ratio < _CROP_RATIO[0],
        tf.round(w / _CROP_RATIO[0]),
        tf.where(in_ratio > _CROP_RATIO[1], h, h),
    )
    found = tf.reduce_any(fits)
    box_h = tf.where(found, crop_h[first], tf.cast(fb_h, tf.int32))
    box_w = tf.where(found, crop_w[first], tf.cast(fb_w, tf.int32))
    top = tf.where(
        found,
        tf.random.stateless_uniform(
            [], seeds[2], minval=0, maxval=height - box_h + 1, dtype=tf.int32
        ),
        (height - box_h) // 2,
    )
    left = tf.where(
        found,
        tf.random.stateless_uniform(
            [], seeds[3], minval=0, maxval=width - box_w + 1, dtype=tf.int32
        ),
        (width - box_w) // 2,
    )
    crop = image[top : top + box_h, left : left + box_w]
    return resize(crop, tf.constant([size, size]), method)


def random_flip(image: Any, seed: Any) -> Any:
    """Horizontal flip with probability 0.5 (stateless, `seed`)."""
    tf = require_tensorflow()
    return tf.image.stateless_random_flip_left_right(image, seed)


def normalize(image: Any, normalization: str) -> Any:
    """`(image - mean) / std` with the `NORMALIZATIONS` entry's statistics
    (`"unit"`: the image unchanged)."""
    stats = NORMALIZATIONS[normalization]
    if stats is None:
        return image
    tf = require_tensorflow()
    mean, std = stats
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


# ---------------------------------------------------------------------- #
# The augmentations of the named pipelines
# ---------------------------------------------------------------------- #
class _Augmentation:
    """What both augmentations share: options given as None keep the
    augmentation's own value."""

    def with_options(self, **options: Any) -> Any:
        """A copy with the options that are not None replaced (validated)."""
        given = {name: value for name, value in options.items() if value is not None}
        return dataclasses.replace(self, **given)

    def check_input(self, image_shape: Any, training: bool) -> None:
        """Raise a ValueError if images of `image_shape` (a static
        `tf.TensorShape`) cannot be augmented; the default accepts all."""


@dataclasses.dataclass(frozen=True)
class PadCropFlip(_Augmentation):
    """The CIFAR recipe: for training, a random crop of the image's own size
    from the image padded on every side, then a horizontal flip with
    probability 0.5 (torchvision's `RandomCrop(size, padding,
    padding_mode)` + `RandomHorizontalFlip`); test images are unchanged.

    Args:
        padding: pixels of padding before the random crop.
        padding_mode: `"reflect"`, `"constant"` (zeros) or `"symmetric"`.
        image_size: bilinear resize to this square side first (training and
            test); None keeps the input size.

    Example:

    >>> PadCropFlip(padding=2).padding_mode
    'reflect'
    """

    padding: int = 4
    padding_mode: str = "reflect"
    image_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", check_int("padding", self.padding, 0))
        check_choice("padding_mode", self.padding_mode, tuple(PADDING_MODES))
        object.__setattr__(
            self,
            "image_size",
            check_int("image_size", self.image_size, 1, allow_none=True),
        )

    def check_input(self, image_shape: Any, training: bool) -> None:
        """Reflect padding needs a side larger than the padding (symmetric at
        least as large): checked where the side is static, else `tf.pad`
        fails when the element is produced."""
        dims = [self.image_size] * 2 if self.image_size else []
        if not dims and image_shape.rank == 3:
            dims = [d for d in image_shape[:2] if d is not None]
        need = {"reflect": self.padding + 1, "symmetric": self.padding}.get(
            self.padding_mode, 0
        )
        if training and dims and min(dims) < need:
            raise ValueError(
                f"padding={self.padding} with padding_mode={self.padding_mode!r} "
                f"needs images of at least {need} pixels a side. Received images "
                f"of side {min(dims)}; lower `padding` or use "
                "padding_mode='constant'."
            )

    def __call__(self, image: Any, seed: Any, training: bool) -> Any:
        tf = require_tensorflow()
        if self.image_size is not None:
            side = self.image_size
            image = resize(image, tf.constant([side, side]), "bilinear")
            image.set_shape((side, side, image.shape[-1]))
        if not training:
            return image
        static = image.shape
        dynamic = tf.shape(image)
        size = [static[i] if static[i] is not None else dynamic[i] for i in range(3)]
        seeds = tf.random.experimental.stateless_split(seed, num=2)
        if self.padding:
            pad = self.padding
            image = tf.pad(
                image,
                [[pad, pad], [pad, pad], [0, 0]],
                PADDING_MODES[self.padding_mode],
            )
        image = tf.image.stateless_random_crop(image, size, seed=seeds[0])
        image = random_flip(image, seeds[1])
        image.set_shape(static)
        return image


@dataclasses.dataclass(frozen=True)
class ResizedCropFlip(_Augmentation):
    """The resize recipes: the shorter side is resized to `resize_size`;
    training then takes a `RandomResizedCrop` to `image_size` (area range
    `crop_scale`, aspect ratio (3/4, 4/3)) and a horizontal flip, test the
    centre `image_size` crop. Outputs are clipped to [0, 1].

    Args:
        image_size: output side.
        resize_size: the shorter side before cropping; >= `image_size`.
        crop_scale: `(low, high)` area fractions of the random crop.
        interpolation: `"bilinear"`, `"bicubic"`, `"nearest"` or `"area"`.

    Example:

    >>> ResizedCropFlip(224, 256, (0.5, 1.0), "bilinear").with_options(
    ...     image_size=112).resize_size
    128
    """

    image_size: int
    resize_size: int
    crop_scale: tuple[float, float]
    interpolation: str

    def __post_init__(self) -> None:
        size = check_int("image_size", self.image_size, 1)
        resize_size = check_int("resize_size", self.resize_size, 1)
        if resize_size < size:
            raise ValueError(
                "`resize_size` must be >= `image_size` (the crop is taken from "
                f"the resized image). Received: resize_size={resize_size}, "
                f"image_size={size}."
            )
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "resize_size", resize_size)
        object.__setattr__(self, "crop_scale", _check_scale(self.crop_scale))
        check_choice("interpolation", self.interpolation, INTERPOLATIONS)

    def with_options(self, **options: Any) -> ResizedCropFlip:
        """A copy with the options that are not None replaced (validated); a
        new `image_size` without a `resize_size` keeps this one's ratio
        `resize_size / image_size`."""
        size = options.get("image_size")
        size = self.image_size if size is None else check_int("image_size", size, 1)
        if options.get("resize_size") is None:
            options["resize_size"] = round(size * self.resize_size / self.image_size)
        return super().with_options(**options)

    def __call__(self, image: Any, seed: Any, training: bool) -> Any:
        tf = require_tensorflow()
        channels = image.shape[-1]
        size = self.image_size
        image = resize_shorter(image, self.resize_size, self.interpolation)
        if training:
            seeds = tf.random.experimental.stateless_split(seed, num=2)
            image = random_resized_crop(
                image, size, self.crop_scale, self.interpolation, seeds[0]
            )
            image = random_flip(image, seeds[1])
        else:
            image = centre_crop(image, size)
        image = tf.clip_by_value(image, 0.0, 1.0)
        image.set_shape((size, size, channels))
        return image


def _check_scale(value: Any) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(
            "`crop_scale` must be a pair (low, high) of area fractions. "
            f"Received: crop_scale={value!r}."
        )
    low = check_number("crop_scale[0]", value[0], low=0.0)
    high = check_number("crop_scale[1]", value[1], low=0.0, high=1.0)
    if low > high:
        raise ValueError(
            f"`crop_scale` must have low <= high. Received: crop_scale={value!r}."
        )
    return low, high


# ---------------------------------------------------------------------- #
# RandAugment
# ---------------------------------------------------------------------- #
def rand_augment_layer(seed: int | None) -> Any:
    """`keras.layers.RandAugment(value_range=(0, 1), **RAND_AUGMENT)`, with
    its equalisation made fast inside `tf.data` under the JAX backend.

    Keras's `Equalization` chooses its histogram by the *global* backend:
    under JAX it unrolls a 256-step Python loop (JAX cannot jit `bincount`)
    even inside a `tf.data` graph, where the layer runs TensorFlow ops. That
    makes the pipeline's graph take ~20 s to build and ~0.3 s per image to
    run (measured on a CPU). The replacement uses `bincount` whenever the
    layer runs TensorFlow ops, with the same result.

    Args:
        seed: the layer's seed (None: unseeded).

    Returns:
        A `keras.layers.RandAugment`.
    """
    import keras

    class _Equalization(keras.layers.Equalization):
        def _custom_histogram_fixed_width(self, values, value_range, nbins):
            if getattr(self.backend, "_backend", None) != "tensorflow":
                return super()._custom_histogram_fixed_width(values, value_range, nbins)
            values = self.backend.cast(values, "float32")
            low, high = (float(v) for v in value_range)
            indices = self.backend.cast(
                (values - low) * (nbins - 1) / (high - low), "int32"
            )
            indices = self.backend.numpy.clip(indices, 0, nbins - 1)
            flat = self.backend.numpy.reshape(indices, [-1])
            return self.backend.numpy.bincount(flat, minlength=nbins)

    layer = keras.layers.RandAugment(value_range=(0, 1), seed=seed, **RAND_AUGMENT)
    if hasattr(layer, "equalization"):
        original = layer.equalization
        layer.equalization = _Equalization(
            value_range=original.value_range,
            bins=original.bins,
            data_format=original.data_format,
            name=original.name,
        )
    return layer
