"""The backend-specific pieces of training, each behind one function:

- `train_step`: take the gradient of the model's loss and apply it;
- `input_gradient`: the gradient of a scalar function with respect to its
  input (PuzzleMix's saliency inside a step, the FGSM evaluation).

Everything else (mixing, the forward passes, the SUMix loss, metrics) is
backend-agnostic and lives on the model (`model.training_terms`,
`model.update_training_metrics`). Each step below follows the Keras guide
"Customizing what happens in `fit()`" for its backend.
"""

from __future__ import annotations

from typing import Any

import keras
from keras.src.trainers.data_adapters import data_adapter_utils

from keras_sumix.models import replicas


def _unpack(model: keras.Model, data: Any):
    x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
    if y is None:
        raise ValueError(
            f"{type(model).__name__}.fit needs labels: pass `(images, labels)`."
        )
    if sample_weight is not None:
        raise ValueError(
            f"{type(model).__name__} does not support `sample_weight` in training "
            "(the mixed loss pairs samples across the batch); drop it."
        )
    return x, y


def train_step(model: keras.Model, *args: Any) -> Any:
    """One optimisation step of a mixing model on the current backend.

    Args:
        model: a `MixupModel` or `SUMixModel` (anything with
            `training_terms(x, y)` and `update_training_metrics(...)`).
        *args: `(data,)` on TensorFlow and torch, `(state, data)` on JAX, as
            Keras's trainers call `train_step`.

    Returns:
        What Keras's trainer of that backend expects: the logs, and on JAX
        `(logs, state)`.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_step(model, *args)
    if backend == "jax":
        return _jax_step(model, *args)
    if backend == "torch":
        return _torch_step(model, *args)
    raise NotImplementedError(
        f"keras-sumix trains on tensorflow, jax or torch; KERAS_BACKEND={backend!r}."
    )


def input_gradient(fn: Any, x: Any) -> Any:
    """The gradient of the scalar `fn(x)` with respect to `x`, on the
    current backend; traceable (inside a compiled train step too), and
    detached: no gradient flows back through it.

    - TensorFlow: a `tf.GradientTape` watching `x` (nested in a train
      step's tape, whose recording stops at the result).
    - JAX: `jax.grad(fn)(x)` (inside a step, `fn` reads the step's variable
      values through its `StatelessScope`).
    - torch: `x` as a detached leaf with `requires_grad_()` and
      `torch.autograd.grad`, which leaves the parameters' `.grad` untouched.

    Args:
        fn: a function of one tensor returning a scalar tensor (e.g. the
            summed cross-entropy of a model in inference mode).
        x: the point, a float tensor.

    Returns:
        A tensor of the shape of `x`.

    Example:

    >>> import keras, numpy as np
    >>> from keras_sumix.models.train_step import input_gradient
    >>> g = input_gradient(lambda x: keras.ops.sum(x**2), np.ones(3, "float32"))
    >>> keras.ops.convert_to_numpy(g).tolist()
    [2.0, 2.0, 2.0]
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = fn(x)
        return tf.stop_gradient(tape.gradient(value, x))
    if backend == "jax":
        import jax

        return jax.lax.stop_gradient(jax.grad(fn)(keras.ops.convert_to_tensor(x)))
    if backend == "torch":
        import torch

        x = keras.ops.convert_to_tensor(x).detach().clone().requires_grad_()
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(fn(x), x)
        return gradient.detach()
    raise NotImplementedError(
        "input_gradient supports the tensorflow, jax and torch backends; "
        f"KERAS_BACKEND={backend!r}."
    )


def _tensorflow_step(model, data):
    import tensorflow as tf

    x, y = _unpack(model, data)
    with tf.GradientTape() as tape:
        terms, y_pred = model.training_terms(x, y)
        # Under tf.distribute the loss is the global one on every replica.
        loss = model.optimizer.scale_loss(replicas.scale_for_gradient(terms["loss"]))
    variables = model.trainable_variables
    gradients = tape.gradient(loss, variables)
    model.optimizer.apply(gradients, variables)
    return model.update_training_metrics(terms, y, y_pred)


def _torch_step(model, data):
    import torch

    x, y = _unpack(model, data)
    model.zero_grad()
    terms, y_pred = model.training_terms(x, y)
    model.optimizer.scale_loss(terms["loss"]).backward()
    variables = model.trainable_variables
    gradients = [v.value.grad for v in variables]
    with torch.no_grad():
        model.optimizer.apply(gradients, variables)
    return model.update_training_metrics(terms, y, y_pred)


def _current(scope, variables, values):
    out = []
    for variable, value in zip(variables, values, strict=True):
        new = scope.get_current_value(variable)
        out.append(value if new is None else new)
    return out


def _jax_step(model, state, data):
    import jax

    trainable, non_trainable, optimizer_vars, metrics_vars = state
    x, y = _unpack(model, data)

    def loss_fn(trainable, non_trainable):
        mapping = [
            *zip(model.trainable_variables, trainable, strict=True),
            *zip(model.non_trainable_variables, non_trainable, strict=True),
            *zip(model.optimizer.variables, optimizer_vars, strict=True),
        ]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            terms, y_pred = model.training_terms(x, y)
            loss = model.optimizer.scale_loss(terms["loss"])
        non_trainable = _current(scope, model.non_trainable_variables, non_trainable)
        return loss, (terms, y_pred, non_trainable)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, (terms, y_pred, non_trainable)), grads = grad_fn(trainable, non_trainable)
    trainable, optimizer_vars = model.optimizer.stateless_apply(
        optimizer_vars, grads, trainable
    )
    mapping = list(zip(model.metrics_variables, metrics_vars, strict=True))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = model.update_training_metrics(terms, y, y_pred)
    metrics_vars = _current(scope, model.metrics_variables, metrics_vars)
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)
