"""What the loaders and pipelines of `keras_sumix.data` share: TensorFlow,
imported when first needed, and the check of a bool argument."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from keras_sumix._optional import tensorflow

__all__ = ["check_bool", "require_tensorflow"]


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
