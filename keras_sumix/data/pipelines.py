"""Input pipelines reproducing the paper's training recipes with `tf.data`.

The recipes are those of the reference toolbox (OpenMixup) the paper's
numbers come from:

- `"cifar"` (CIFAR-100, 32x32): training takes a random 32x32 crop of the
  image padded by 4 pixels (reflect padding) and flips it horizontally with
  probability 0.5; test images are unchanged. Images are normalised with the
  reference's CIFAR mean/std (`CIFAR_MEAN`, `CIFAR_STD`).
- `"tiny_imagenet"` (Tiny-ImageNet, 64x64, CIFAR-style networks): training
  takes a `RandomResizedCrop` to 64 px (scale (0.08, 1), ratio (3/4, 4/3),
  bicubic) and a flip; test images are used at their native 64x64 (resize of
  the shorter side to 64 then centre crop 64: a no-op on Tiny-ImageNet).
  ImageNet mean/std.
- `"fine_grained"` (CUB-200, FGVC-Aircraft, fine-tuning at 224 px): training
  resizes the shorter side to 256, takes a `RandomResizedCrop` to 224 with
  scale (0.5, 1) and flips; test resizes the shorter side to 256 and takes
  the centre 224x224 crop. ImageNet mean/std.
- `"cifar_vit"` (CIFAR-100 at 224 px for DeiT-S / Swin-T, the reference
  configs of the paper's Table 3): training resizes to 224 (bicubic), takes a
  `RandomResizedCrop` to 224 with scale (0.8, 1) (bicubic) and flips; test
  resizes to 224 (bicubic). CIFAR mean/std. The ViT recipes add RandAugment
  (`rand_augment=True`, below).

RandAugment (`rand_augment=True`, or a configured `keras.layers.RandAugment`)
applies `keras.layers.RandAugment(value_range=(0, 1), num_ops=2, factor=0.5,
seed=seed)` (Keras's own operations and magnitudes; the reference toolbox
uses the FixMatch policy at magnitude 7 or 9 of 10, which Keras does not
reproduce op for op) to every training image at the size it is loaded
(32 px for CIFAR), BEFORE the recipe's crop, resize and flip: at 224 px it
costs about ten times more (measured on a CPU core: ~4.5 ms per 32 px image,
~50 ms per 224 px image). It runs in a sequential `map` (the layer draws
from its own seeded random state, which parallel calls would consume in a
nondeterministic order), so it is reproducible for a seed within a process;
a run resumed in a new process restarts that random state (resume is then
exact except for RandAugment's draws).

Every default can be changed (`image_size`, `resize_size`, `crop_scale`,
`interpolation`, `padding`, `normalization`); e.g. Tiny-ImageNet at 224 px
is `image_size=224, resize_size=256, crop_scale=(0.5, 1.0)`.

Output images are float32, channels-last, normalised as `normalization`
says (`"unit"` keeps them in [0, 1]). Input images may be uint8 (0..255) or
float in [0, 1].

Hostile inputs: a float image that is not finite or not in [0, 1] (within
1e-3), e.g. 0..255 floats or NaN, raises an `InvalidArgumentError` when it
is produced (a `tf.debugging` assertion, per image); other integer dtypes
raise a TypeError. Images that look channels-first (`(C, H, W)` with `C`
in (1, 3, 4) and `H`, `W` > 4), batched datasets, padding larger than
static images allow and integer labels without a mixer's `num_classes`
raise a ValueError when the pipeline is built. Tiny images (down to 1x1)
work with the resize recipes and with `padding_mode="constant"`. Label
values are not read by the pipeline; a mixer checks them (see
`keras_sumix.layers.MixingLayer`). An empty dataset gives an empty
pipeline.

A pipeline: shuffle (seeded, reshuffled every epoch) -> per-image
augmentation (stateless random ops whose seeds come from a seeded
`tf.data.Dataset.random`, so the same `seed` gives the same batches) ->
batch -> optional mixer -> prefetch, with `AUTOTUNE` parallelism and
deterministic ordering. It runs on TensorFlow whatever `KERAS_BACKEND` is,
and its output feeds `model.fit` on any backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keras_sumix._validation import (
    check_choice,
    check_int,
    check_number,
    misplaced_channels,
)
from keras_sumix.data.directories import _check_bool, _tensorflow

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RECIPES",
    "cifar_pipeline",
    "fine_grained_pipeline",
    "make_pipeline",
    "tiny_imagenet_pipeline",
]

RECIPES: tuple[str, ...] = ("cifar", "tiny_imagenet", "fine_grained", "cifar_vit")
#: Per-channel mean and std of the reference toolbox's CIFAR configs.
CIFAR_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR_STD: tuple[float, float, float] = (0.2023, 0.1994, 0.201)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_NORMALIZATIONS = {
    "cifar": (CIFAR_MEAN, CIFAR_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "unit": None,
}
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")
_PADDING_MODES = {
    "reflect": "REFLECT",
    "constant": "CONSTANT",
    "symmetric": "SYMMETRIC",
}
_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
# Float input images may overshoot [0, 1] by this much (rounding, resizing).
_UNIT_TOLERANCE = 1e-3
_RRC_ATTEMPTS = 10

# Recipe defaults (None: the input's own size).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "cifar": {
        "image_size": None,
        "padding": 4,
        "padding_mode": "reflect",
        "normalization": "cifar",
        "batch_size": 100,
        "shuffle_buffer": 50_000,
    },
    "tiny_imagenet": {
        "image_size": 64,
        "resize_size": 64,
        "crop_scale": (0.08, 1.0),
        "interpolation": "bicubic",
        "normalization": "imagenet",
        "batch_size": 100,
        "shuffle_buffer": 10_000,
    },
    "fine_grained": {
        "image_size": 224,
        "resize_size": 256,
        "crop_scale": (0.5, 1.0),
        "interpolation": "bilinear",
        "normalization": "imagenet",
        "batch_size": 16,
        "shuffle_buffer": 1_000,
    },
    "cifar_vit": {
        "image_size": 224,
        "resize_size": 224,
        "crop_scale": (0.8, 1.0),
        "interpolation": "bicubic",
        "normalization": "cifar",
        "batch_size": 100,
        "shuffle_buffer": 50_000,
    },
}
#: `keras.layers.RandAugment` arguments of `rand_augment=True`.
RAND_AUGMENT = {"num_ops": 2, "factor": 0.5}
_CIFAR_ONLY = ("padding", "padding_mode")
_RESIZE_ONLY = ("resize_size", "crop_scale", "interpolation")


# ---------------------------------------------------------------------- #
# Per-image operations (TensorFlow, float32 images in [0, 1])
# ---------------------------------------------------------------------- #
def _to_unit_float(tf: Any, image: Any) -> Any:
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


def _resize(tf: Any, image: Any, size: Any, method: str) -> Any:
    """Resize to `size` (h, w), skipped when the image already has it."""
    size = tf.cast(size, tf.int32)
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    return tf.cond(
        same,
        lambda: image,
        lambda: tf.image.resize(image, size, method=method, antialias=True),
    )


def _resize_shorter(tf: Any, image: Any, size: int, method: str) -> Any:
    """torchvision's `Resize(size)`: shorter side to `size`, longer side
    `int(size * long / short)`, aspect ratio kept."""
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    short = tf.minimum(h, w)
    side = tf.constant(size, tf.float64)
    new_h = tf.where(h <= w, side, tf.floor(side * h / short))
    new_w = tf.where(h <= w, tf.floor(side * w / short), side)
    return _resize(tf, image, tf.stack([new_h, new_w]), method)


def _centre_crop(tf: Any, image: Any, size: int) -> Any:
    """torchvision's `CenterCrop(size)` (top = round((h - size) / 2))."""
    shape = tf.shape(image)
    top = tf.cast(tf.round(tf.cast(shape[0] - size, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(shape[1] - size, tf.float32) / 2.0), tf.int32)
    return image[top : top + size, left : left + size]


def _random_resized_crop(
    tf: Any, image: Any, size: int, scale: tuple[float, float], method: str, seed: Any
) -> Any:
    """torchvision's `RandomResizedCrop(size, scale, ratio=(3/4, 4/3))`.

    Up to 10 boxes of area `U(scale) * H * W` and log-uniform aspect ratio
    are drawn; the first that fits is used, placed uniformly at random;
    if none fits, the centre crop of the largest box within the ratio range.
    """
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
    return _resize(tf, crop, tf.constant([size, size]), method)


def _normalize(tf: Any, image: Any, normalization: str) -> Any:
    stats = _NORMALIZATIONS[normalization]
    if stats is None:
        return image
    mean, std = stats
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


# ---------------------------------------------------------------------- #
# Validation
# ---------------------------------------------------------------------- #
def _element_layout(tf: Any, dataset: Any) -> tuple[Any, Any]:
    """Return (image spec, label spec) and check the element structure."""
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "`dataset` must be a `tf.data.Dataset` of `(image, label)`. "
            f"Received: dataset of type {type(dataset).__name__}."
        )
    spec = dataset.element_spec
    if isinstance(spec, dict):
        keys = [k for k in ("image", "images") if k in spec]
        lab = [k for k in ("label", "labels") if k in spec]
        if not keys or not lab:
            raise ValueError(
                "A dict-structured `dataset` must have 'image' and 'label' keys. "
                f"Received keys: {sorted(spec)}."
            )
        spec = (spec[keys[0]], spec[lab[0]])
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            "`dataset` elements must be `(image, label)` pairs. Received "
            f"element_spec={dataset.element_spec}."
        )
    image, label = spec
    if image.shape.rank is not None and image.shape.rank != 3:
        raise ValueError(
            "`dataset` must hold single images `(H, W, C)`, not batches: "
            f"received images of shape {image.shape}. Pass an unbatched "
            "dataset (the pipeline batches it)."
        )
    if image.shape.rank == 3 and misplaced_channels(
        tuple(image.shape), "channels_last"
    ):
        raise ValueError(
            f"`dataset` images of shape {image.shape} look channels-first "
            "(C, H, W); pipelines take channels-last (H, W, C) images. "
            "Transpose them first, e.g. `dataset.map(lambda x, y: "
            "(tf.transpose(x, (1, 2, 0)), y))`."
        )
    return image, label


def _to_pair(tf: Any, dataset: Any) -> Any:
    spec = dataset.element_spec
    if not isinstance(spec, dict):
        return dataset
    image_key = "image" if "image" in spec else "images"
    label_key = "label" if "label" in spec else "labels"
    return dataset.map(
        lambda e: (e[image_key], e[label_key]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


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


def _check_epoch(tf: Any, epoch: Any, seed: int | None) -> Any:
    if epoch is None:
        return None
    if seed is None:
        raise ValueError(
            "`epoch` makes every epoch's shuffle and augmentation a function of "
            "`(seed, epoch)`: it needs a `seed`. Received: seed=None."
        )
    if isinstance(epoch, (tf.Variable, tf.Tensor)):
        if not epoch.dtype.is_integer or epoch.shape.rank != 0:
            raise TypeError(
                "`epoch` must be an int or an integer scalar `tf.Variable`. "
                f"Received: dtype {epoch.dtype.name}, shape {epoch.shape}."
            )
        return epoch
    return check_int("epoch", epoch, 0)


#: Graph-level seed of the per-epoch randomness (`make_pipeline(epoch=...)`).
_EPOCH_SEED = 0x5EED


def _for_epoch(tf: Any, ds: Any, seed: int, epoch: Any, randomize: Callable) -> Any:
    """`randomize(ds, epoch_seed, False)`, with `epoch_seed` a hash of
    `(seed, epoch)` computed when an iteration begins (so a `tf.Variable`
    epoch is read then)."""

    def one_epoch(_):
        # tf.data pairs an op seed with the graph-level seed. Setting the
        # latter inside this traced function affects this function only: the
        # order then depends on (seed, epoch) alone, not on the global seed
        # (a global seed of 0 would also reject a tensor op seed).
        tf.random.set_seed(_EPOCH_SEED)
        key = tf.random.experimental.stateless_fold_in(
            tf.constant([seed, _EPOCH_SEED], tf.int64), tf.cast(epoch, tf.int64)
        )
        epoch_seed = tf.random.stateless_uniform(
            [], key, minval=0, maxval=2**31 - 1, dtype=tf.int64
        )
        return randomize(ds, epoch_seed, False)

    out = tf.data.Dataset.range(1).flat_map(one_epoch)
    cardinality = int(ds.cardinality())  # flat_map loses it: restore it
    if cardinality != tf.data.UNKNOWN_CARDINALITY:
        out = out.apply(tf.data.experimental.assert_cardinality(cardinality))
    return out


def _rand_augment_layer(seed: int | None) -> Any:
    """`keras.layers.RandAugment(value_range=(0, 1), **RAND_AUGMENT)`, with
    its equalisation made fast inside `tf.data` under the JAX backend.

    Keras's `Equalization` chooses its histogram by the *global* backend:
    under JAX it unrolls a 256-step Python loop (JAX cannot jit `bincount`)
    even inside a `tf.data` graph, where the layer runs TensorFlow ops. That
    makes the pipeline's graph take ~20 s to build and ~0.3 s per image to
    run (measured on a CPU). The replacement uses `bincount` whenever the
    layer runs TensorFlow ops, with the same result.
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


def _check_rand_augment(
    rand_augment: Any, training: bool, seed: int | None, image_spec: Any
) -> Any:
    """The RandAugment layer to apply (None for none)."""
    import keras

    if rand_augment is False or rand_augment is None:
        return None
    if rand_augment is True:
        layer = _rand_augment_layer(seed)
    elif isinstance(rand_augment, keras.layers.RandAugment):
        layer = rand_augment
        if tuple(layer.value_range) != (0, 1):
            raise ValueError(
                "`rand_augment` must work on images in [0, 1] (the pipeline's "
                "scale before normalisation): build it with value_range=(0, 1). "
                f"Received: value_range={tuple(layer.value_range)!r}."
            )
    else:
        raise TypeError(
            "`rand_augment` must be a bool or a `keras.layers.RandAugment`. "
            f"Received: rand_augment={rand_augment!r}."
        )
    if not training:
        raise ValueError(
            "`rand_augment` is a training-time augmentation; it cannot be used "
            "with training=False."
        )
    channels = image_spec.shape[-1] if image_spec.shape.rank else None
    if channels not in (None, 3):
        raise ValueError(
            "`rand_augment` needs RGB images (3 channels). Received images with "
            f"{channels} channels."
        )
    return layer


def _check_mixer(mixer: Any, training: bool, label_spec: Any) -> None:
    if mixer is None:
        return
    if not callable(mixer):
        raise TypeError(
            "`mixer` must be a keras_sumix mixing layer (or a callable taking "
            f"`(images, labels)` batches). Received: mixer={mixer!r}."
        )
    if not training:
        raise ValueError(
            "`mixer` is a training-time augmentation; it cannot be used with "
            "training=False."
        )
    from keras_sumix.layers.base import MixingLayer

    if (
        isinstance(mixer, MixingLayer)
        and mixer.num_classes is None
        and label_spec.shape.rank == 0
        and label_spec.dtype.is_integer
    ):
        raise ValueError(
            "The dataset has integer labels, so `mixer` needs `num_classes` to "
            f"build one-hot targets. Build it as e.g. "
            f"{type(mixer).__name__}(num_classes=..., seed=...)."
        )
    if isinstance(mixer, MixingLayer) and mixer.data_format != "channels_last":
        raise ValueError(
            "Pipelines produce channels-last images; `mixer` has "
            f"data_format={mixer.data_format!r}."
        )


# ---------------------------------------------------------------------- #
# Public API
# ---------------------------------------------------------------------- #
def make_pipeline(
    dataset: tf.data.Dataset,
    recipe: str = "cifar",
    training: bool = True,
    batch_size: int | None = None,
    seed: int | None = None,
    image_size: int | None = None,
    *,
    resize_size: int | None = None,
    crop_scale: tuple[float, float] | None = None,
    interpolation: str | None = None,
    padding: int | None = None,
    padding_mode: str | None = None,
    normalization: str | None = None,
    mixer: Callable[[Any], Any] | None = None,
    shuffle: bool | None = None,
    shuffle_buffer: int | None = None,
    drop_remainder: bool | None = None,
    cache: bool = False,
    epoch: Any = None,
    rand_augment: Any = False,
) -> tf.data.Dataset:
    """Batched training or evaluation pipeline following a paper recipe.

    Args:
        dataset: unbatched `tf.data.Dataset` of `(image, label)` (or dicts
            with `"image"`/`"label"` keys), images `(H, W, C)` uint8 or float
            in [0, 1]; e.g. the output of `load_cifar100` or
            `load_fgvc_aircraft(...)[0]`.
        recipe: `"cifar"`, `"tiny_imagenet"`, `"fine_grained"` or
            `"cifar_vit"` (see the module docstring).
        training: augment, shuffle and drop the last partial batch (True), or
            the deterministic test transform (False).
        batch_size: batch size. Defaults to the recipe's (100, 100, 16,
            100).
        seed: seed of the shuffle and of the augmentation; the same seed gives
            the same batches, epoch after epoch (each epoch differs).
        image_size: output side. Defaults: `"cifar"` keeps the input size
            (resizing first when given), 64 for `"tiny_imagenet"`, 224 for
            `"fine_grained"`.
        resize_size: (resize recipes) the shorter side is resized to this
            before cropping; must be >= `image_size`. Defaults to 64 /
            256, or `image_size` scaled by the recipe's ratio when only
            `image_size` is given.
        crop_scale: (resize recipes) area range of `RandomResizedCrop`.
            Defaults to (0.08, 1.0) for `"tiny_imagenet"`, (0.5, 1.0) for
            `"fine_grained"`.
        interpolation: (resize recipes) `"bilinear"`, `"bicubic"`,
            `"nearest"` or `"area"`. Defaults to bicubic / bilinear.
        padding: (`"cifar"`) pixels of padding before the random crop.
            Defaults to 4.
        padding_mode: (`"cifar"`) `"reflect"` (default, as the reference),
            `"constant"` (zeros) or `"symmetric"`.
        normalization: `"cifar"` (CIFAR mean/std), `"imagenet"` (ImageNet
            mean/std) or `"unit"` (float32 in [0, 1]). Defaults to the
            recipe's (`"cifar"`, `"imagenet"`, `"imagenet"`).
        mixer: a keras_sumix mixing layer (e.g. `CutMix(num_classes=100,
            seed=0)`) applied to every batch, which then carries mixed
            one-hot labels `(N, C)`. Integer labels need the mixer's
            `num_classes`. Training only.
        shuffle: shuffle the examples. Defaults to `training`.
        shuffle_buffer: shuffle buffer size, in decoded images. Defaults to
            50,000 / 10,000 / 1,000 (full-size fine-grained images are large:
            shuffle their file list in the loader, `shuffle=True`, instead).
        drop_remainder: drop the last partial batch. Defaults to `training`.
        cache: cache the decoded images in memory before shuffling (sensible
            for CIFAR and Tiny-ImageNet).
        epoch: None (default), an int, or an integer scalar `tf.Variable`
            holding the current epoch (needs `seed`). With None, the shuffle
            order and the augmentation change every time the dataset is
            iterated, so epoch `k` depends on how many times *this* dataset
            object was iterated before: a run resumed in a new process (e.g.
            by `keras.callbacks.BackupAndRestore`) replays the orders of
            epochs 0, 1, ... instead. With an epoch, each iteration's order
            and augmentation are a function of `(seed, epoch)` alone, the
            variable being read when the iteration begins: assign it at
            every epoch start, e.g. with
            `keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, _:
            epoch.assign(e))` (what `keras_sumix.training.train` does).
        rand_augment: False (default), True for
            `keras.layers.RandAugment(value_range=(0, 1), num_ops=2,
            factor=0.5, seed=seed)`, or a `keras.layers.RandAugment` of your
            own (its `value_range` must be `(0, 1)`). Training only; applied
            to each image as loaded, before the recipe's augmentation (see
            the module docstring).

    Returns:
        A `tf.data.Dataset` of `(images float32 (N, S, S, C), labels)`;
        labels are int32 `(N,)`, or float32 `(N, C)` summing to 1 with a
        mixer.

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> from keras_sumix.data import make_pipeline
    >>> ds = tf.data.Dataset.from_tensor_slices(
    ...     (np.zeros((8, 32, 32, 3), "uint8"), np.arange(8, dtype="int32")))
    >>> batches = make_pipeline(ds, "cifar", training=True, batch_size=4, seed=0)
    >>> images, labels = next(iter(batches))
    >>> tuple(images.shape), images.dtype.name, tuple(labels.shape)
    ((4, 32, 32, 3), 'float32', (4,))
    """
    tf = _tensorflow()
    recipe = check_choice("recipe", recipe, RECIPES)
    training = _check_bool("training", training)
    image_spec, label_spec = _element_layout(tf, dataset)
    given = {
        "padding": padding,
        "padding_mode": padding_mode,
        "resize_size": resize_size,
        "crop_scale": crop_scale,
        "interpolation": interpolation,
    }
    foreign = _RESIZE_ONLY if recipe == "cifar" else _CIFAR_ONLY
    for name in foreign:
        if given[name] is not None:
            raise ValueError(
                f"`{name}` does not apply to recipe={recipe!r}. Received: "
                f"{name}={given[name]!r}."
            )
    defaults = _DEFAULTS[recipe]
    batch_size = check_int(
        "batch_size", defaults["batch_size"] if batch_size is None else batch_size, 1
    )
    seed = check_int("seed", seed, 0, allow_none=True)
    image_size = check_int("image_size", image_size, 1, allow_none=True)
    normalization = check_choice(
        "normalization",
        defaults["normalization"] if normalization is None else normalization,
        tuple(_NORMALIZATIONS),
    )
    shuffle = _check_bool("shuffle", training if shuffle is None else shuffle)
    shuffle_buffer = check_int(
        "shuffle_buffer",
        defaults["shuffle_buffer"] if shuffle_buffer is None else shuffle_buffer,
        1,
    )
    drop_remainder = _check_bool(
        "drop_remainder", training if drop_remainder is None else drop_remainder
    )
    cache = _check_bool("cache", cache)
    epoch = _check_epoch(tf, epoch, seed)
    rand_augment = _check_rand_augment(rand_augment, training, seed, image_spec)
    channels = image_spec.shape[-1] if image_spec.shape.rank else None
    if normalization != "unit" and channels not in (None, 3):
        raise ValueError(
            f"normalization={normalization!r} needs RGB images (3 channels). "
            f"Received images with {channels} channels; convert them or pass "
            "normalization='unit'."
        )
    _check_mixer(mixer, training, label_spec)

    if recipe == "cifar":
        pad = check_int(
            "padding", defaults["padding"] if padding is None else padding, 0
        )
        pad_mode = _PADDING_MODES[
            check_choice(
                "padding_mode",
                defaults["padding_mode"] if padding_mode is None else padding_mode,
                tuple(_PADDING_MODES),
            )
        ]
        # Reflect padding needs a side larger than the padding (symmetric at
        # least as large): checked where the side is static, else tf.pad
        # fails when the element is produced.
        dims = [image_size] * 2 if image_size else []
        if not dims and image_spec.shape.rank == 3:
            dims = [d for d in image_spec.shape[:2] if d is not None]
        need = {"REFLECT": pad + 1, "SYMMETRIC": pad}.get(pad_mode, 0)
        if training and dims and min(dims) < need:
            raise ValueError(
                f"padding={pad} with padding_mode="
                f"{pad_mode.lower()!r} needs images of at least {need} pixels a "
                f"side. Received images of side {min(dims)}; lower `padding` or "
                "use padding_mode='constant'."
            )

        def transform(image, image_seed):
            image = _to_unit_float(tf, image)
            if image_size is not None:
                image = _resize(
                    tf, image, tf.constant([image_size, image_size]), "bilinear"
                )
                image.set_shape((image_size, image_size, image.shape[-1]))
            if training:
                static = image.shape
                dynamic = tf.shape(image)
                size = [
                    static[i] if static[i] is not None else dynamic[i] for i in range(3)
                ]
                seeds = tf.random.experimental.stateless_split(image_seed, num=2)
                if pad:
                    image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], pad_mode)
                image = tf.image.stateless_random_crop(image, size, seed=seeds[0])
                image = tf.image.stateless_random_flip_left_right(image, seeds[1])
                image.set_shape(static)
            return image

    else:
        size = defaults["image_size"] if image_size is None else image_size
        if resize_size is None:
            ratio = defaults["resize_size"] / defaults["image_size"]
            resize_size = round(size * ratio)
        resize_size = check_int("resize_size", resize_size, 1)
        if resize_size < size:
            raise ValueError(
                "`resize_size` must be >= `image_size` (the crop is taken from "
                f"the resized image). Received: resize_size={resize_size}, "
                f"image_size={size}."
            )
        scale = _check_scale(
            defaults["crop_scale"] if crop_scale is None else crop_scale
        )
        method = check_choice(
            "interpolation",
            defaults["interpolation"] if interpolation is None else interpolation,
            _INTERPOLATIONS,
        )

        def transform(image, image_seed):
            channels = image.shape[-1]
            image = _to_unit_float(tf, image)
            image = _resize_shorter(tf, image, resize_size, method)
            if training:
                seeds = tf.random.experimental.stateless_split(image_seed, num=2)
                image = _random_resized_crop(tf, image, size, scale, method, seeds[0])
                image = tf.image.stateless_random_flip_left_right(image, seeds[1])
            else:
                image = _centre_crop(tf, image, size)
            image = tf.clip_by_value(image, 0.0, 1.0)
            image.set_shape((size, size, channels))
            return image

    def preprocess(pair, random_value):
        image, label = pair
        if label.dtype.is_integer:
            label = tf.cast(label, tf.int32)
        image_seed = tf.stack([random_value, tf.constant(0x5EED, tf.int64)])
        image = _normalize(tf, transform(image, image_seed), normalization)
        return image, label

    ds = _to_pair(tf, dataset)
    if cache:
        ds = ds.cache()
    if rand_augment is not None:

        def augment(image, label):
            image = rand_augment(_to_unit_float(tf, image), training=True)
            return tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 1.0), label

        # Sequential, before the shuffle: the layer's random state is then
        # consumed in one fixed order (the shuffle permutes the results).
        ds = ds.map(augment)

    def randomize(ds, seed, every_iteration):
        if shuffle:
            ds = ds.shuffle(
                shuffle_buffer, seed=seed, reshuffle_each_iteration=every_iteration
            )
        if not training:
            return ds.map(lambda *pair: (pair, tf.constant(0, tf.int64)))
        # One random int64 per example, from a seeded stream that differs
        # every epoch: the seeds of the stateless augmentation ops.
        randoms = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=every_iteration
        )
        return tf.data.Dataset.zip((ds, randoms))

    if epoch is None:
        ds = randomize(ds, seed, True)
    else:
        ds = _for_epoch(tf, ds, seed, epoch, randomize)
    ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if mixer is not None:
        # Sequential: the mixer draws from a stateful seed generator, and
        # parallel calls would take its draws in a nondeterministic order.
        ds = ds.map(
            lambda images, labels: tuple(mixer((images, labels), training=True))
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def cifar_pipeline(
    dataset: tf.data.Dataset,
    training: bool = True,
    batch_size: int = 100,
    seed: int | None = None,
    **kwargs: Any,
) -> tf.data.Dataset:
    """The CIFAR-100 recipe: pad-4 (reflect) random crop + horizontal flip
    for training, CIFAR mean/std normalisation.

    Args:
        dataset: unbatched `(image, label)` dataset (e.g. `load_cifar100()`).
        training: training (augmented, shuffled) or test pipeline.
        batch_size: batch size. Defaults to 100, as the paper.
        seed: seed of shuffling and augmentation.
        **kwargs: any other `make_pipeline` argument (`mixer`,
            `normalization`, `padding`, ...).

    Returns:
        A batched `tf.data.Dataset` (see `make_pipeline`).

    Example:

    >>> train = cifar_pipeline(load_cifar100("train"), seed=0)  # doctest: +SKIP
    """
    return make_pipeline(
        dataset, "cifar", training=training, batch_size=batch_size, seed=seed, **kwargs
    )


def tiny_imagenet_pipeline(
    dataset: tf.data.Dataset,
    training: bool = True,
    batch_size: int = 100,
    seed: int | None = None,
    **kwargs: Any,
) -> tf.data.Dataset:
    """The Tiny-ImageNet recipe: `RandomResizedCrop(64)` (bicubic, scale
    (0.08, 1)) + flip for training, native 64x64 for test, ImageNet
    mean/std normalisation.

    Args:
        dataset: unbatched `(image, label)` dataset (e.g.
            `load_tiny_imagenet(...)[0]`).
        training: training (augmented, shuffled) or test pipeline.
        batch_size: batch size. Defaults to 100, as the paper.
        seed: seed of shuffling and augmentation.
        **kwargs: any other `make_pipeline` argument (`mixer`, `image_size`,
            `resize_size`, `crop_scale`, ...).

    Returns:
        A batched `tf.data.Dataset` (see `make_pipeline`).

    Example:

    >>> ds, _ = load_tiny_imagenet("tiny-imagenet-200")  # doctest: +SKIP
    >>> train = tiny_imagenet_pipeline(ds, seed=0)  # doctest: +SKIP
    """
    return make_pipeline(
        dataset,
        "tiny_imagenet",
        training=training,
        batch_size=batch_size,
        seed=seed,
        **kwargs,
    )


def fine_grained_pipeline(
    dataset: tf.data.Dataset,
    training: bool = True,
    batch_size: int = 16,
    seed: int | None = None,
    **kwargs: Any,
) -> tf.data.Dataset:
    """The fine-grained (CUB-200, FGVC-Aircraft) recipe: resize 256,
    `RandomResizedCrop(224, scale=(0.5, 1))` + flip for training; resize 256
    and centre crop 224 for test; ImageNet mean/std normalisation.

    Args:
        dataset: unbatched `(image, label)` dataset (e.g.
            `load_fgvc_aircraft(...)[0]` or `load_caltech_birds2011()`).
        training: training (augmented, shuffled) or test pipeline.
        batch_size: batch size. Defaults to 16, as the paper.
        seed: seed of shuffling and augmentation.
        **kwargs: any other `make_pipeline` argument (`mixer`, `image_size`,
            `resize_size`, `crop_scale`, ...).

    Returns:
        A batched `tf.data.Dataset` (see `make_pipeline`).

    Example:

    >>> ds, names = load_fgvc_aircraft("fgvc-aircraft-2013b")  # doctest: +SKIP
    >>> train = fine_grained_pipeline(ds, seed=0)  # doctest: +SKIP
    """
    return make_pipeline(
        dataset,
        "fine_grained",
        training=training,
        batch_size=batch_size,
        seed=seed,
        **kwargs,
    )
