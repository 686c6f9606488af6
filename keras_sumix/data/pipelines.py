"""Input pipelines reproducing the paper's training recipes with `tf.data`.

The named pipelines (`PIPELINES`) are the augmentations of the reference
toolbox (OpenMixup) the paper's numbers come from:

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

The per-image operations and the two augmentations (`PadCropFlip`,
`ResizedCropFlip`) are in `keras_sumix.data.transforms`; each pipeline's
defaults are a `PipelineSpec` of `keras_sumix.data.pipeline_specs`; this
module assembles them.

RandAugment (`rand_augment=True`, or a configured `keras.layers.RandAugment`)
applies `keras.layers.RandAugment(value_range=(0, 1), num_ops=2, factor=0.5,
seed=seed)` (Keras's own operations and magnitudes; the reference toolbox
uses the FixMatch policy at magnitude 7 or 9 of 10, which Keras does not
reproduce op for op) to every training image at the size it is loaded
(32 px for CIFAR), BEFORE the pipeline's crop, resize and flip: at 224 px it
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
work with the resize pipelines and with `padding_mode="constant"`. Label
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

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keras_sumix._validation import check_choice, check_int, misplaced_channels
from keras_sumix.data.common import (
    SEED_WORD,
    check_bool,
    check_epoch,
    for_epoch,
    require_tensorflow,
)
from keras_sumix.data.pipeline_specs import PipelineSpec, pipeline_spec
from keras_sumix.data.transforms import (
    NORMALIZATIONS,
    normalize,
    rand_augment_layer,
    to_unit_float,
)

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = [
    "cifar_pipeline",
    "fine_grained_pipeline",
    "make_pipeline",
    "tiny_imagenet_pipeline",
]


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


def _check_applicable(spec: PipelineSpec, options: dict[str, Any]) -> None:
    """Augmentation options of the other pipelines must be left as None."""
    for name, value in options.items():
        if value is not None and name not in spec.options():
            raise ValueError(
                f"`{name}` does not apply to pipeline={spec.name!r}. Received: "
                f"{name}={value!r}."
            )


def _check_normalization(
    spec: PipelineSpec, normalization: str | None, image_spec: Any
) -> str:
    normalization = check_choice(
        "normalization",
        spec.normalization if normalization is None else normalization,
        tuple(NORMALIZATIONS),
    )
    channels = image_spec.shape[-1] if image_spec.shape.rank else None
    if normalization != "unit" and channels not in (None, 3):
        raise ValueError(
            f"normalization={normalization!r} needs RGB images (3 channels). "
            f"Received images with {channels} channels; convert them or pass "
            "normalization='unit'."
        )
    return normalization


def _check_rand_augment(
    rand_augment: Any, training: bool, seed: int | None, image_spec: Any
) -> Any:
    """The RandAugment layer to apply (None for none)."""
    import keras

    if rand_augment is False or rand_augment is None:
        return None
    if rand_augment is True:
        layer = rand_augment_layer(seed)
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
# Assembly: pairs -> (cache, RandAugment) -> shuffle and per-image seeds ->
# augmentation and normalisation -> batch -> (mixer) -> prefetch
# ---------------------------------------------------------------------- #
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


def _rand_augmented(tf: Any, ds: Any, layer: Any) -> Any:
    def augment(image, label):
        image = layer(to_unit_float(image), training=True)
        return tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 1.0), label

    # Sequential, before the shuffle: the layer's random state is then
    # consumed in one fixed order (the shuffle permutes the results).
    return ds.map(augment)


def _randomize(
    tf: Any,
    ds: Any,
    seed: Any,
    every_iteration: bool,
    *,
    training: bool,
    shuffle: bool,
    shuffle_buffer: int,
) -> Any:
    """Shuffle (if asked) and pair every example with the int64 its
    augmentation seeds come from (0 at test time)."""
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


def _preprocessor(
    tf: Any, augmentation: Callable, normalization: str, training: bool
) -> Callable:
    """The per-example map: unit float, augmentation, normalisation; int32
    labels."""

    def preprocess(pair, random_value):
        image, label = pair
        if label.dtype.is_integer:
            label = tf.cast(label, tf.int32)
        image_seed = tf.stack([random_value, tf.constant(SEED_WORD, tf.int64)])
        image = augmentation(to_unit_float(image), image_seed, training)
        return normalize(image, normalization), label

    return preprocess


def _batched(
    tf: Any, ds: Any, batch_size: int, drop_remainder: bool, mixer: Any
) -> Any:
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


# ---------------------------------------------------------------------- #
# Public API
# ---------------------------------------------------------------------- #
def make_pipeline(
    dataset: tf.data.Dataset,
    pipeline: str = "cifar",
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
    """Batched training or evaluation pipeline, one of the named `PIPELINES`.

    Args:
        dataset: unbatched `tf.data.Dataset` of `(image, label)` (or dicts
            with `"image"`/`"label"` keys), images `(H, W, C)` uint8 or float
            in [0, 1]; e.g. the output of `load_cifar100` or
            `load_fgvc_aircraft(...)[0]`.
        pipeline: the named pipeline whose defaults apply, one of
            `PIPELINES`: `"cifar"`, `"tiny_imagenet"`, `"fine_grained"` or
            `"cifar_vit"` (see the module docstring).
        training: augment, shuffle and drop the last partial batch (True), or
            the deterministic test transform (False).
        batch_size: batch size. Defaults to the pipeline's (100, 100, 16,
            100).
        seed: seed of the shuffle and of the augmentation; the same seed gives
            the same batches, epoch after epoch (each epoch differs). With
            `epoch=None`, `tf.data` pairs it with TensorFlow's global seed
            (`keras.utils.set_random_seed`, `tf.random.set_seed`): the same
            `seed` under another global seed gives other batches. With an
            `epoch`, the batches depend on `(seed, epoch)` alone.
        image_size: output side. Defaults: `"cifar"` keeps the input size
            (resizing first when given), 64 for `"tiny_imagenet"`, 224 for
            `"fine_grained"` and `"cifar_vit"`.
        resize_size: (resize pipelines) the shorter side is resized to this
            before cropping; must be >= `image_size`. Defaults to 64 /
            256 / 224, or `image_size` scaled by the pipeline's ratio when only
            `image_size` is given.
        crop_scale: (resize pipelines) area range of `RandomResizedCrop`.
            Defaults to (0.08, 1.0) for `"tiny_imagenet"`, (0.5, 1.0) for
            `"fine_grained"`, (0.8, 1.0) for `"cifar_vit"`.
        interpolation: (resize pipelines) `"bilinear"`, `"bicubic"`,
            `"nearest"` or `"area"`. Defaults to bicubic / bilinear.
        padding: (`"cifar"`) pixels of padding before the random crop.
            Defaults to 4.
        padding_mode: (`"cifar"`) `"reflect"` (default, as the reference),
            `"constant"` (zeros) or `"symmetric"`.
        normalization: `"cifar"` (CIFAR mean/std), `"imagenet"` (ImageNet
            mean/std) or `"unit"` (float32 in [0, 1]). Defaults to the
            pipeline's (`"cifar"`, `"imagenet"`, `"imagenet"`,
            `"cifar"`).
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
            to each image as loaded, before the pipeline's augmentation (see
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
    tf = require_tensorflow()
    spec = pipeline_spec(pipeline)
    training = check_bool("training", training)
    image_spec, label_spec = _element_layout(tf, dataset)
    options = {
        "padding": padding,
        "padding_mode": padding_mode,
        "resize_size": resize_size,
        "crop_scale": crop_scale,
        "interpolation": interpolation,
    }
    _check_applicable(spec, options)
    batch_size = check_int(
        "batch_size", spec.batch_size if batch_size is None else batch_size, 1
    )
    seed = check_int("seed", seed, 0, allow_none=True)
    image_size = check_int("image_size", image_size, 1, allow_none=True)
    normalization = _check_normalization(spec, normalization, image_spec)
    shuffle = check_bool("shuffle", training if shuffle is None else shuffle)
    shuffle_buffer = check_int(
        "shuffle_buffer",
        spec.shuffle_buffer if shuffle_buffer is None else shuffle_buffer,
        1,
    )
    drop_remainder = check_bool(
        "drop_remainder", training if drop_remainder is None else drop_remainder
    )
    cache = check_bool("cache", cache)
    epoch = check_epoch(tf, epoch, seed)
    rand_augment = _check_rand_augment(rand_augment, training, seed, image_spec)
    _check_mixer(mixer, training, label_spec)
    augmentation = spec.augmentation.with_options(
        image_size=image_size, **{name: options[name] for name in spec.options()}
    )
    augmentation.check_input(image_spec.shape, training)

    ds = _to_pair(tf, dataset)
    if cache:
        ds = ds.cache()
    if rand_augment is not None:
        ds = _rand_augmented(tf, ds, rand_augment)
    randomize = functools.partial(
        _randomize,
        tf,
        training=training,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
    )
    ds = for_epoch(tf, ds, seed, epoch, randomize)
    ds = ds.map(
        _preprocessor(tf, augmentation, normalization, training),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return _batched(tf, ds, batch_size, drop_remainder, mixer)


def cifar_pipeline(
    dataset: tf.data.Dataset,
    training: bool = True,
    batch_size: int = 100,
    seed: int | None = None,
    **kwargs: Any,
) -> tf.data.Dataset:
    """The `"cifar"` pipeline (CIFAR-100): pad-4 (reflect) random crop + horizontal flip
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
    """The `"tiny_imagenet"` pipeline: `RandomResizedCrop(64)` (bicubic, scale
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
    """The `"fine_grained"` pipeline (CUB-200, FGVC-Aircraft): resize 256,
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
