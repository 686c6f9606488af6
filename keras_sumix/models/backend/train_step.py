"""One optimisation step of a mixing model, one implementation per backend
(`keras_sumix.models.backend.train_step` picks the current backend's).

Each follows the Keras guide "Customizing what happens in `fit()`" for its
backend. What they call on the model is backend-agnostic:
`model.training_terms(x, y, sample_weight)` (mixing, the forward passes,
the loss), `model.after_optimizer_step()` (a learned mixer's momentum
encoder) and `model.update_training_metrics(...)` (the logs).
"""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix.models.backend import replicas


def _unpack(model: keras.Model, data: Any):
    """`(x, y, sample_weight)` of a batch (`sample_weight` None or what Keras
    made of `class_weight` / `sample_weight`)."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if y is None:
        raise ValueError(
            f"{type(model).__name__}.fit needs labels: pass `(images, labels)`."
        )
    return x, y, sample_weight


def _tensorflow(model, data):
    import tensorflow as tf

    x, y, sample_weight = _unpack(model, data)
    with tf.GradientTape() as tape:
        terms, y_pred = model.training_terms(x, y, sample_weight)
        # Under tf.distribute the loss is the global one on every replica.
        loss = model.optimizer.scale_loss(replicas.scale_for_gradient(terms["loss"]))
    variables = model.trainable_variables
    gradients = tape.gradient(loss, variables)
    model.optimizer.apply(gradients, variables)
    model.after_optimizer_step()
    return model.update_training_metrics(terms, y, y_pred, sample_weight)


def _torch(model, data):
    import torch

    x, y, sample_weight = _unpack(model, data)
    model.zero_grad()
    terms, y_pred = model.training_terms(x, y, sample_weight)
    model.optimizer.scale_loss(terms["loss"]).backward()
    variables = model.trainable_variables
    gradients = [v.value.grad for v in variables]
    with torch.no_grad():
        model.optimizer.apply(gradients, variables)
        model.after_optimizer_step()
    return model.update_training_metrics(terms, y, y_pred, sample_weight)


def _current(scope, variables, values):
    out = []
    for variable, value in zip(variables, values, strict=True):
        new = scope.get_current_value(variable)
        out.append(value if new is None else new)
    return out


def _jax(model, state, data):
    import jax

    trainable, non_trainable, optimizer_vars, metrics_vars = state
    x, y, sample_weight = _unpack(model, data)

    def loss_fn(trainable, non_trainable):
        mapping = [
            *zip(model.trainable_variables, trainable, strict=True),
            *zip(model.non_trainable_variables, non_trainable, strict=True),
            *zip(model.optimizer.variables, optimizer_vars, strict=True),
        ]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            terms, y_pred = model.training_terms(x, y, sample_weight)
            loss = model.optimizer.scale_loss(terms["loss"])
        non_trainable = _current(scope, model.non_trainable_variables, non_trainable)
        return loss, (terms, y_pred, non_trainable)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, (terms, y_pred, non_trainable)), grads = grad_fn(trainable, non_trainable)
    trainable, optimizer_vars = model.optimizer.stateless_apply(
        optimizer_vars, grads, trainable
    )
    # The step's after-update work (a momentum encoder) reads the new values.
    mapping = [
        *zip(model.trainable_variables, trainable, strict=True),
        *zip(model.non_trainable_variables, non_trainable, strict=True),
        *zip(model.optimizer.variables, optimizer_vars, strict=True),
    ]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        model.after_optimizer_step()
    non_trainable = _current(scope, model.non_trainable_variables, non_trainable)
    mapping = list(zip(model.metrics_variables, metrics_vars, strict=True))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = model.update_training_metrics(terms, y, y_pred, sample_weight)
    metrics_vars = _current(scope, model.metrics_variables, metrics_vars)
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)


#: `train_step(model, *args)` of each backend: `(data,)` on TensorFlow and
#: torch, `(state, data)` on JAX, as Keras's trainers call `train_step`.
BY_BACKEND = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}
