"""The one backend-specific piece of training: take the gradient of the
model's loss and apply it.

Everything else (mixing, the forward passes, the SUMix loss, metrics) is
backend-agnostic and lives on the model (`model.training_terms`,
`model.update_training_metrics`). Each function below follows the Keras
guide "Customizing what happens in `fit()`" for its backend.
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
