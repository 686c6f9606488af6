"""White-box FGSM robustness (the paper's Table 5): top-1 error on
`x_adv = clip(x + epsilon * sign(grad_x CE(model(x), y)))`.

The gradient with respect to the input is the backend-specific piece:
`keras_sumix.models.backend.gradient_wrt_inputs(fn, x)`, the primitive this
module's `input_gradient(model, images, labels)` is built on (on JAX inside
a function jit-compiled per model).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_sumix._validation import check_int, check_number
from keras_sumix.evaluation.reporting import (
    _as_images,
    _as_labels,
    _check_model,
    _count_correct,
    top1_accuracy,
)
from keras_sumix.models.backend import gradient_wrt_inputs

__all__ = ["fgsm_error", "input_gradient"]


def _cross_entropy_sum(outputs: Any, labels: Any, from_logits: bool) -> Any:
    """Sum over the batch of the per-sample cross-entropy (so each sample's
    input gradient is its own loss's, whatever the batch)."""
    outputs = ops.cast(outputs, "float32")
    one_hot = ops.one_hot(labels, outputs.shape[-1], dtype="float32")
    if from_logits:
        log_p = ops.log_softmax(outputs, axis=-1)
    else:
        log_p = ops.log(ops.clip(outputs, 1e-7, 1.0))
    return -ops.sum(one_hot * log_p)


def _check_from_logits(from_logits: Any) -> bool:
    if not isinstance(from_logits, (bool, np.bool_)):
        raise TypeError(
            f"`from_logits` must be a bool. Received: from_logits={from_logits!r}."
        )
    return bool(from_logits)


def _float_images(images: Any) -> np.ndarray:
    images = _as_images(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(
            "`images` must be float, in the model's input range (e.g. uint8 "
            f"images scaled to [0, 1]). Received: images of dtype {images.dtype}."
        )
    return images.astype("float32", copy=False)


def input_gradient(
    model: keras.Model, images: Any, labels: Any, from_logits: bool = True
) -> np.ndarray:
    """Gradient of the cross-entropy with respect to the input images.

    The loss is the sum over the batch of each sample's cross-entropy
    `-log softmax(model(x, training=False))[y]`, so row `i` of the result is
    the gradient of sample `i`'s own loss. Inference mode: batch norm uses
    its moving statistics and nothing is updated. The gradient is
    `keras_sumix.models.backend.gradient_wrt_inputs` (a `tf.GradientTape`,
    `jax.grad` of `model.stateless_call` jit-compiled once per model, or
    `torch.autograd.grad`, which leaves the parameters' `.grad` untouched).

    Args:
        model: a `keras.Model` mapping images to logits (or probabilities,
            with `from_logits=False`).
        images: float inputs `(N, ...)`, as the model takes them.
        labels: integer `(N,)` or one-hot `(N, C)`.
        from_logits: whether the model outputs logits (True) or
            probabilities (False).

    Returns:
        float32 NumPy array of the shape of `images`.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> g = input_gradient(model, np.ones((4, 3), "float32"), np.zeros(4, "int32"))
    >>> g.shape
    (4, 3)
    """
    model = _check_model(model)
    images = _float_images(images)
    labels = _as_labels(labels, len(images)).astype("int32")
    from_logits = _check_from_logits(from_logits)
    if keras.backend.backend() == "jax":
        return _jax_gradient(model, images, labels, from_logits)

    def loss(x):
        return _cross_entropy_sum(model(x, training=False), labels, from_logits)

    return np.asarray(
        keras.ops.convert_to_numpy(gradient_wrt_inputs(loss, images)),
        dtype="float32",
    )


# One jit-compiled gradient function per (model, from_logits); the weak keys
# let models be garbage-collected (the functions hold only a weak reference).
_JAX_GRADIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _jax_gradient(model, images, labels, from_logits):
    """JAX: `gradient_wrt_inputs` of a `stateless_call`, jit-compiled once per
    model (eager JAX would retrace the model every batch)."""
    import jax

    functions = _JAX_GRADIENTS.setdefault(model, {})
    if from_logits not in functions:
        model_ref = weakref.ref(model)

        def gradient(x, y, trainable, non_trainable):
            def loss(x):
                outputs, _ = model_ref().stateless_call(
                    trainable, non_trainable, x, training=False
                )
                return _cross_entropy_sum(outputs, y, from_logits)

            return gradient_wrt_inputs(loss, x)

        functions[from_logits] = jax.jit(gradient)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    gradient = functions[from_logits](images, labels, trainable, non_trainable)
    return np.asarray(gradient, dtype="float32")


def _check_clip(clip: Any) -> tuple[float, float] | None:
    if clip is None:
        return None
    if (
        isinstance(clip, (str, bytes))
        or not isinstance(clip, Sequence)
        or len(clip) != 2
    ):
        raise TypeError(
            f"`clip` must be a pair (low, high) or None. Received: clip={clip!r}."
        )
    low, high = check_number("clip", clip[0]), check_number("clip", clip[1])
    if not low < high:
        raise ValueError(f"`clip` must have low < high. Received: clip={clip!r}.")
    return low, high


def fgsm_error(
    model: keras.Model,
    images: Any,
    labels: Any,
    epsilon: float = 8 / 255,
    batch_size: int = 128,
    clip: tuple[float, float] | None = (0.0, 1.0),
    from_logits: bool = True,
) -> float:
    """White-box FGSM top-1 error (Goodfellow et al., 2015; the paper's
    Table 5, epsilon 8/255 on [0, 1] images).

    For every batch: `x_adv = clip(x + epsilon * sign(input_gradient(model,
    x, y)))`, then the top-1 error of the model on `x_adv`. With
    `epsilon=0` the images are evaluated unchanged (no gradient, no
    clipping): the result is exactly the clean error,
    `1 - top1_accuracy(model, images, labels, batch_size)`.

    `clip` and `epsilon` live in the model's input space: for a model fed
    [0, 1] images keep `clip=(0, 1)`; for a model fed normalised inputs
    (`(x - mean) / std`) pass `clip=None` (or the normalised bounds) and
    scale epsilon yourself (`epsilon / std`).

    Args:
        model: a `keras.Model` mapping images to logits (or probabilities,
            with `from_logits=False`).
        images: float inputs `(N, ...)`, as the model takes them.
        labels: integer `(N,)` or one-hot `(N, C)`.
        epsilon: the L-infinity size of the perturbation, >= 0.
        batch_size: attack and evaluation batch size.
        clip: `(low, high)` valid input range the adversarial images are
            clipped to, or None for no clipping.
        from_logits: whether the model outputs logits (True) or
            probabilities (False).

    Returns:
        The top-1 error on the adversarial images, a float in [0, 1].

    Example:

    >>> error = fgsm_error(model, x_test, y_test, epsilon=8 / 255)  # doctest: +SKIP
    """
    model = _check_model(model)
    images = _float_images(images)
    labels = _as_labels(labels, len(images))
    epsilon = check_number("epsilon", epsilon, 0.0, None, include_low=True)
    batch_size = check_int("batch_size", batch_size, 1)
    clip = _check_clip(clip)
    from_logits = _check_from_logits(from_logits)
    if epsilon == 0:
        return 1.0 - top1_accuracy(model, images, labels, batch_size)
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        y = labels[start : start + batch_size]
        gradient = input_gradient(model, x, y, from_logits)
        adversarial = x + np.float32(epsilon) * np.sign(gradient)
        if clip is not None:
            adversarial = np.clip(adversarial, clip[0], clip[1])
        correct += _count_correct(model, adversarial.astype("float32"), y)
    return 1.0 - correct / len(images)
