"""Checks a mixing model runs on NumPy (host) inputs before any tracing:
`fit`, `train_on_batch` and `evaluate` call them. Tensors and datasets
cannot be read ahead and pass through (see `MixingModel`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_sumix._validation import check_class_indices, host_array


def check_sample_weight(sample_weight: Any) -> None:
    """Raise if host `sample_weight` holds a negative or non-finite weight."""
    weights = host_array(sample_weight)
    if weights is None or weights.dtype.kind not in "fiub":
        return
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        raise ValueError(
            "`sample_weight` must hold finite weights >= 0. Received "
            f"{weights.reshape(-1)[np.argmax(bad.reshape(-1))]!r} at flat index "
            f"{int(np.argmax(bad.reshape(-1)))}."
        )


def check_batch(
    x: Any,
    y: Any,
    num_classes: int,
    model_name: str,
    training: bool = False,
    names: tuple[str, str] = ("x", "y"),
) -> None:
    """Check host images `x` and labels `y`.

    Always: `x` not empty, as many labels as images, `(N,)` labels integer
    class indices in `[0, num_classes)`, `(N, C)` labels finite. With
    `training`: images finite, `(N, num_classes)` labels one-hot (soft rows
    would be mixed twice).

    Args:
        x: images (checked if host data).
        y: labels (checked if host data).
        num_classes: the model's number of classes.
        model_name: the model's class name, for the messages.
        training: whether the batch is trained on.
        names: the argument names of `x` and `y` in the messages.

    Raises:
        ValueError, TypeError: naming the argument.
    """
    name_x, name_y = names
    images, labels = host_array(x), host_array(y)
    if images is not None and images.ndim >= 1:
        if len(images) == 0:
            raise ValueError(
                f"`{name_x}` holds no samples (shape {images.shape}): there "
                "is nothing to train on."
            )
        if training and images.dtype.kind in "fc":
            bad = ~np.isfinite(images.reshape(len(images), -1)).all(axis=1)
            if bad.any():
                raise ValueError(
                    f"`{name_x}` holds non-finite values (NaN or Inf) in "
                    f"{int(bad.sum())} sample(s), e.g. {name_x}"
                    f"[{int(np.argmax(bad))}]. Training on them would make "
                    "every weight NaN; clean or drop those samples."
                )
    if labels is None:
        return
    if labels.ndim == 2 and labels.shape[-1] == 1:
        labels = labels.reshape(-1)
    if images is not None and images.ndim >= 1 and labels.ndim >= 1:
        if len(images) != len(labels):
            raise ValueError(
                f"`{name_x}` and `{name_y}` must hold as many samples. "
                f"Received {len(images)} images and {len(labels)} labels."
            )
    if labels.ndim == 1:
        if labels.dtype.kind not in "iu":
            raise TypeError(
                f"`{name_y}` of shape (N,) must be integer class indices. "
                f"Received dtype {labels.dtype}; cast them (e.g. "
                f"`{name_y}.astype('int32')`) or pass one-hot labels "
                f"(N, {num_classes})."
            )
        check_class_indices(name_y, labels, num_classes)
    elif labels.dtype.kind in "fc" and not np.isfinite(labels).all():
        raise ValueError(f"`{name_y}` (one-hot/soft labels) holds non-finite values.")
    elif training and labels.ndim == 2 and labels.shape[-1] == num_classes:
        _check_one_hot(labels, name_y, model_name)


def _check_one_hot(labels: np.ndarray, name: str, model_name: str) -> None:
    """Raise if host training labels `(N, C)` have a row that is not
    one-hot (a soft row: already mixed, or smoothed)."""
    rows = labels.reshape(len(labels), -1)
    binary = ((rows == 0) | (rows == 1)).all(axis=1)
    bad = ~(binary & (rows.sum(axis=1) == 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"`{name}` must be integer class indices or one-hot rows, but "
            f"{int(bad.sum())} row(s) are soft, e.g. {name}[{i}] = "
            f"{np.round(rows[i], 4).tolist()}. {model_name} mixes "
            "the labels itself: labels already mixed (by a mixer in the "
            "data pipeline) would be mixed twice. Give the integer or "
            "one-hot labels and let the model mix (smoothing them with "
            "`label_smoothing=`), or train a plain `keras.Model` on the "
            "mixer's output."
        )
