"""Top-1 accuracy and the paper's reporting protocol: the median top-1 of
the last epochs (last 10 epochs; last 5 on ImageNet).

`top1_accuracy` is the single place where every protocol of
`keras_sumix.evaluation` turns a model's outputs into top-1 accuracy, so the
numbers they report are computed the same way (same batching, same arg-max):
e.g. occlusion at ratio 0 and FGSM at epsilon 0 equal `top1_accuracy` on the
clean images exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
import numpy as np

from keras_sumix._validation import check_int

__all__ = ["MedianTop1", "median_of_last", "top1_accuracy"]


# ---------------------------------------------------------------------- #
# Shared helpers (used by the other evaluation modules)
# ---------------------------------------------------------------------- #
def _to_numpy(value: Any) -> np.ndarray:
    """NumPy arrays (and memory maps) as they are, without a round trip
    through the backend; lists and backend tensors converted."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return np.asarray(keras.ops.convert_to_numpy(value))


def _as_labels(labels: Any, n: int | None = None, name: str = "labels") -> np.ndarray:
    """Integer `(N,)` labels from integer `(N,)`/`(N, 1)` or one-hot `(N, C)`."""
    try:
        labels = _to_numpy(labels)
    except Exception as error:
        raise TypeError(
            f"`{name}` must be an array of class indices or one-hot rows. "
            f"Received: {name} of type {type(labels).__name__}."
        ) from error
    if labels.ndim == 2 and labels.shape[-1] == 1:
        labels = labels.reshape(-1)
    elif labels.ndim == 2:
        labels = np.argmax(labels, axis=-1)
    if labels.ndim != 1:
        raise ValueError(
            f"`{name}` must be integer (N,) or one-hot (N, C). Received: "
            f"{name} of shape {labels.shape}."
        )
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError(
                f"`{name}` must hold integer class indices. Received: "
                f"{name} of dtype {labels.dtype} with non-integer values."
            )
    if n is not None and len(labels) != n:
        raise ValueError(
            f"`{name}` must have one entry per image: {n}. Received: {name} of "
            f"length {len(labels)}."
        )
    return labels.astype("int64")


def _as_images(images: Any, name: str = "images", ndim: int | None = None) -> Any:
    """A NumPy array of images with at least one sample."""
    try:
        images = _to_numpy(images)
    except Exception as error:
        raise TypeError(
            f"`{name}` must be an array. Received: {name} of type "
            f"{type(images).__name__}."
        ) from error
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(
            f"`{name}` must be a non-empty batch (N, ...). Received: {name} of "
            f"shape {images.shape}."
        )
    if ndim is not None and images.ndim != ndim:
        raise ValueError(
            f"`{name}` must be {ndim}-D (N, H, W, C) or (N, C, H, W). Received: "
            f"{name} of shape {images.shape}."
        )
    return images


def _check_model(model: Any) -> keras.Model:
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model mapping images to class scores. "
            f"Received: model={model!r} of type {type(model).__name__}."
        )
    return model


def _check_preprocess(preprocess: Any) -> Callable[[np.ndarray], Any]:
    if preprocess is None:
        return _default_preprocess
    if not callable(preprocess):
        raise TypeError(
            "`preprocess` must be a callable (images -> model inputs) or None. "
            f"Received: preprocess={preprocess!r}."
        )
    return preprocess


def _default_preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1]; anything else -> float32 as is."""
    if images.dtype == np.uint8:
        return images.astype("float32") / np.float32(255.0)
    return images.astype("float32", copy=False)


def _count_correct(model: keras.Model, images: Any, labels: np.ndarray) -> int:
    """Number of rows whose arg-max prediction is the label (one batch)."""
    scores = np.asarray(model.predict_on_batch(images))
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(
            "`model` must return class scores of shape (N, C). Received an "
            f"output of shape {scores.shape} for {len(labels)} images."
        )
    return int(np.sum(np.argmax(scores, axis=-1) == labels))


def _top1_of_batches(
    model: keras.Model, batches: Iterable[tuple[Any, np.ndarray]]
) -> float:
    """Top-1 over `(inputs, integer labels)` batches."""
    correct = total = 0
    for x, y in batches:
        correct += _count_correct(model, x, y)
        total += len(y)
    return correct / total


# ---------------------------------------------------------------------- #
# Public API
# ---------------------------------------------------------------------- #
def top1_accuracy(
    model: keras.Model,
    images: Any,
    labels: Any,
    batch_size: int = 256,
    preprocess: Callable[[np.ndarray], Any] | None = None,
) -> float:
    """Top-1 accuracy of `model` (arg-max of its outputs) on `images`.

    Inference mode (`predict_on_batch`, so batch norm uses its moving
    statistics), in consecutive batches of `batch_size`.

    Args:
        model: a `keras.Model` mapping images to logits or probabilities
            `(N, C)` (e.g. `classifier(...)`, a `MixupModel`, a `SUMixModel`).
        images: the inputs, `(N, ...)`.
        labels: integer `(N,)` class indices or one-hot `(N, C)` rows.
        batch_size: evaluation batch size.
        preprocess: applied to each batch of `images` before the model; the
            default turns uint8 into float32 in [0, 1] and leaves float
            images unchanged (as float32).

    Returns:
        The share of correctly classified images, a float in [0, 1].

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x, y = np.zeros((8, 4), "float32"), np.zeros(8, "int32")
    >>> top1_accuracy(model, x, y)  # all-zero inputs: bias 0, ties -> class 0
    1.0
    """
    model = _check_model(model)
    images = _as_images(images)
    labels = _as_labels(labels, len(images))
    batch_size = check_int("batch_size", batch_size, 1)
    preprocess = _check_preprocess(preprocess)
    return _top1_of_batches(
        model,
        (
            (preprocess(images[i : i + batch_size]), labels[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        ),
    )


def median_of_last(values: Sequence[float], last: int = 10) -> float:
    """Median of the last `last` values (all of them if there are fewer).

    The paper reports the median top-1 of the last 10 epochs (the last 5 on
    ImageNet).

    Args:
        values: per-epoch values (e.g. validation top-1), oldest first.
        last: how many of the most recent values to take, >= 1.

    Returns:
        `float(np.median(values[-last:]))`.

    Raises:
        ValueError: `values` is empty or `last < 1`.

    Example:

    >>> median_of_last([0.1, 0.5, 0.7, 0.6, 0.9], last=3)
    0.7
    """
    last = check_int("last", last, 1)
    try:
        array = np.asarray(values, dtype="float64").reshape(-1)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`values` must be a sequence of numbers. Received: values={values!r}."
        ) from error
    if array.size == 0:
        raise ValueError("`values` must hold at least one value. Received: [].")
    return float(np.median(array[-last:]))


class MedianTop1(keras.callbacks.Callback):
    """Record validation top-1 every epoch and report the median of the
    last `last` epochs, the paper's reporting protocol.

    Each epoch's top-1 is either computed on `validation_data` (when given:
    it takes precedence) or read from the epoch logs under `monitor`
    (`"val_accuracy"`, what `fit(validation_data=...)` logs with
    `compile(metrics=["accuracy"])`). The running median is written into the
    epoch logs as `"median_top1"` (so it shows in the progress bar and in
    `History`), and kept as `.median`; `.history` lists every epoch's top-1.
    Both are reset when training begins.

    Args:
        validation_data: `(images, labels)` to evaluate on at the end of
            every epoch, or None to read `logs[monitor]`.
        last: the number of final epochs the median is taken over: 10 (the
            paper's CIFAR, Tiny-ImageNet and fine-grained runs) or 5
            (ImageNet).
        monitor: the log key read when `validation_data` is None.
        batch_size: evaluation batch size for `validation_data`.
        preprocess: applied to `validation_data` images batch by batch (see
            `top1_accuracy`).

    Example:

    >>> median = MedianTop1(last=10)  # doctest: +SKIP
    >>> model.fit(x, y, validation_data=(xv, yv), epochs=200,
    ...           callbacks=[median])  # doctest: +SKIP
    >>> median.median  # doctest: +SKIP
    0.81
    """

    def __init__(
        self,
        validation_data: tuple[Any, Any] | None = None,
        last: int = 10,
        monitor: str = "val_accuracy",
        batch_size: int = 256,
        preprocess: Callable[[np.ndarray], Any] | None = None,
    ) -> None:
        super().__init__()
        self.last = check_int("last", last, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(
                f"`monitor` must be a non-empty log key. Received: monitor={monitor!r}."
            )
        self.monitor = monitor
        self.preprocess = _check_preprocess(preprocess)
        if validation_data is not None:
            if (
                not isinstance(validation_data, (tuple, list))
                or len(validation_data) != 2
            ):
                raise ValueError(
                    "`validation_data` must be `(images, labels)` or None. "
                    f"Received: validation_data of type "
                    f"{type(validation_data).__name__}."
                )
            images = _as_images(validation_data[0], "validation_data[0]")
            labels = _as_labels(validation_data[1], len(images), "validation_data[1]")
            validation_data = (images, labels)
        self.validation_data = validation_data
        self.history: list[float] = []

    @property
    def median(self) -> float | None:
        """Median top-1 of the last `last` recorded epochs (None before the
        first epoch ends)."""
        return median_of_last(self.history, self.last) if self.history else None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.history = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.validation_data is not None:
            images, labels = self.validation_data
            top1 = top1_accuracy(
                self.model, images, labels, self.batch_size, self.preprocess
            )
        elif logs is not None and self.monitor in logs:
            top1 = float(np.asarray(keras.ops.convert_to_numpy(logs[self.monitor])))
        else:
            raise ValueError(
                f"MedianTop1 found no {self.monitor!r} in the epoch logs "
                f"(keys: {sorted(logs or {})}). Pass `validation_data=` to "
                "`fit` with `compile(metrics=['accuracy'])`, or to MedianTop1."
            )
        self.history.append(float(top1))
        if logs is not None:
            logs["median_top1"] = self.median
