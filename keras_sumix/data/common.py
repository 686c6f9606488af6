"""What the loaders and pipelines of `keras_sumix.data` share: TensorFlow,
imported when first needed, the check of a bool argument, and the
per-epoch randomness of `epoch=` (an iteration's shuffle and augmentation
as a function of `(seed, epoch)` alone)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from keras_sumix._optional import tensorflow
from keras_sumix._validation import check_int

__all__ = ["check_bool", "check_epoch", "for_epoch", "require_tensorflow"]

#: Graph-level seed of the per-epoch randomness (`epoch=`) and second word of
#: every per-image seed of the pipelines.
SEED_WORD = 0x5EED


def require_tensorflow() -> ModuleType:
    """TensorFlow, imported lazily, with the extra to install if missing.

    Returns:
        The `tensorflow` module (`tf.data` runs on TensorFlow whatever the
        Keras backend).

    Raises:
        ImportError: TensorFlow is not installed (the message names the
            extra that installs it).
    """
    return tensorflow(
        "keras_sumix.data builds `tf.data` pipelines (whatever the Keras backend) and"
    )


def check_bool(name: str, value: Any) -> bool:
    """Validate a bool argument (Python or NumPy).

    Args:
        name: the argument's name, for the error message.
        value: the value received.

    Returns:
        `value` as a Python bool.

    Raises:
        TypeError: `value` is not a bool.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"`{name}` must be a bool. Received: {name}={value!r} of type "
            f"{type(value).__name__}."
        )
    return bool(value)


def check_epoch(tf: Any, epoch: Any, seed: int | None) -> Any:
    """Validate an `epoch=` argument: None, a non-negative int, or an integer
    scalar `tf.Variable` (or tensor); anything but None needs a `seed`.

    Returns:
        `epoch` (an int as a Python int).

    Raises:
        ValueError: an epoch without `seed`, or a negative one.
        TypeError: a float, or a non-scalar, variable.
    """
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


def for_epoch(
    tf: Any, ds: Any, seed: int | None, epoch: Any, randomize: Callable
) -> Any:
    """`randomize(ds, epoch_seed, False)`, with `epoch_seed` a hash of
    `(seed, epoch)` computed when an iteration begins (so a `tf.Variable`
    epoch is read then): an iteration's random order (and augmentation)
    depends on `(seed, epoch)` alone, not on TensorFlow's global seed nor on
    how many times the dataset was iterated before. With `epoch=None`,
    `randomize(ds, seed, True)`: new draws at every iteration."""
    if epoch is None:
        return randomize(ds, seed, True)

    def one_epoch(_):
        # tf.data pairs an op seed with the graph-level seed. Setting the
        # latter inside this traced function affects this function only: the
        # order then depends on (seed, epoch) alone, not on the global seed
        # (a global seed of 0 would also reject a tensor op seed).
        tf.random.set_seed(SEED_WORD)
        key = tf.random.experimental.stateless_fold_in(
            tf.constant([seed, SEED_WORD], tf.int64), tf.cast(epoch, tf.int64)
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
