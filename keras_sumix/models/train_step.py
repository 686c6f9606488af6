"""The backend-specific pieces of training, each behind one function:

- `train_step`: take the gradient of the model's loss and apply it;
- `input_gradient`: the gradient of a scalar function with respect to its
  input (PuzzleMix's saliency inside a step, the FGSM evaluation), and with
  `has_aux=True` the outputs of that same forward pass, not detached, to
  train on (SUMix's raw pass giving PuzzleMix's saliency: on JAX, what the
  pass assigns, such as batch norm's moving statistics, is assigned after
  `jax.grad`, not inside its trace).

Everything else (mixing, the forward passes, the SUMix loss, metrics) is
backend-agnostic and lives on the model (`model.training_terms`,
`model.update_training_metrics`). Each step below follows the Keras guide
"Customizing what happens in `fit()`" for its backend.
"""

from __future__ import annotations

from typing import Any

import keras
from keras.src.backend.common.stateless_scope import get_stateless_scope
from keras.src.trainers.data_adapters import data_adapter_utils

from keras_sumix.models import replicas


def _unpack(model: keras.Model, data: Any):
    """`(x, y, sample_weight)` of a batch (`sample_weight` None or what Keras
    made of `class_weight` / `sample_weight`)."""
    x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
    if y is None:
        raise ValueError(
            f"{type(model).__name__}.fit needs labels: pass `(images, labels)`."
        )
    return x, y, sample_weight


def train_step(model: keras.Model, *args: Any) -> Any:
    """One optimisation step of a mixing model on the current backend.

    Args:
        model: a `MixupModel` or `SUMixModel` (anything with
            `training_terms(x, y, sample_weight)`, `after_optimizer_step()` and
            `update_training_metrics(...)`).
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


def input_gradient(fn: Any, x: Any, has_aux: bool = False) -> Any:
    """The gradient of the scalar `fn(x)` with respect to `x`, on the
    current backend; traceable (inside a compiled train step too), and
    detached: no gradient flows back through it.

    With `has_aux=True`, `fn` returns `(value, aux)` and so does this
    function, `(gradient, aux)`: `aux` (e.g. the network's outputs of that
    same forward pass) is *not* detached. Inside a train step it carries
    gradient to the parameters like any other forward pass, so one forward
    pass gives both a saliency and outputs to train on
    (`SUMixModel(saliency_pass="raw")`).

    - TensorFlow: a `tf.GradientTape` watching `x`, nested in a train
      step's tape; the gradient is `tf.stop_gradient`-ed, `aux` returned as
      it is (the step's tape recorded it too).
    - JAX: `jax.grad(fn, has_aux=True)`, with the gradient
      `jax.lax.stop_gradient`-ed. `fn` runs in a `keras.StatelessScope` of
      its own, seeded with the values of the enclosing one (inside a step,
      the step's variable values), so that variables `fn` assigns (batch
      norm's moving statistics in training mode, seed states) are not
      assigned from inside the `jax.grad` trace, whose tracers would leak:
      their new values come out of `jax.grad` as part of `aux` and are
      assigned after it, where the enclosing scope (or, eagerly, the
      variable itself) takes them.
    - torch: `x` as a detached leaf with `requires_grad_()` and
      `torch.autograd.grad`, which leaves the parameters' `.grad`
      untouched; with `has_aux`, `retain_graph=True`, so that the step's
      `backward()` can still go through `aux`. That graph then has two
      backward passes, which a `torch.compile`d graph does not allow (its
      saved buffers are donated to one), so with `has_aux` this function
      and `fn` run eagerly (`torch.compiler.disable`) inside a compiled
      step (`compile(jit_compile=True)`).

    Args:
        fn: a function of one tensor returning a scalar tensor (e.g. the
            summed cross-entropy of a model in inference mode), or with
            `has_aux=True` a pair `(scalar, aux)`, `aux` any nest of
            tensors.
        x: the point, a float tensor.
        has_aux: whether `fn` returns `(value, aux)`.

    Returns:
        A tensor of the shape of `x`; with `has_aux=True`, `(gradient,
        aux)`.

    Example:

    >>> import keras, numpy as np
    >>> from keras_sumix.models.train_step import input_gradient
    >>> g = input_gradient(lambda x: keras.ops.sum(x**2), np.ones(3, "float32"))
    >>> keras.ops.convert_to_numpy(g).tolist()
    [2.0, 2.0, 2.0]
    >>> g, y = input_gradient(
    ...     lambda x: (keras.ops.sum(x**2), 3 * x), np.ones(3, "float32"),
    ...     has_aux=True,
    ... )
    >>> keras.ops.convert_to_numpy(y).tolist()
    [3.0, 3.0, 3.0]
    """
    if not isinstance(has_aux, bool):
        raise TypeError(f"`has_aux` must be a bool. Received: has_aux={has_aux!r}.")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value, aux = _split(fn(x), has_aux)
        return _join(tf.stop_gradient(tape.gradient(value, x)), aux, has_aux)
    if backend == "jax":
        return _jax_input_gradient(fn, x, has_aux)
    if backend == "torch":
        import torch

        if has_aux:  # a graph two backward passes go through is not compiled
            return torch.compiler.disable(_torch_input_gradient)(fn, x, has_aux)
        return _torch_input_gradient(fn, x, has_aux)
    raise NotImplementedError(
        "input_gradient supports the tensorflow, jax and torch backends; "
        f"KERAS_BACKEND={backend!r}."
    )


def _split(out: Any, has_aux: bool) -> tuple[Any, Any]:
    return out if has_aux else (out, None)


def _join(gradient: Any, aux: Any, has_aux: bool) -> Any:
    return (gradient, aux) if has_aux else gradient


def _torch_input_gradient(fn: Any, x: Any, has_aux: bool) -> Any:
    import torch

    x = keras.ops.convert_to_tensor(x).detach().clone().requires_grad_()
    with torch.enable_grad():
        value, aux = _split(fn(x), has_aux)
        (gradient,) = torch.autograd.grad(value, x, retain_graph=has_aux)
    return _join(gradient.detach(), aux, has_aux)


class _RecordingScope(keras.StatelessScope):
    """A `StatelessScope` nested in the current one (if any): it reads the
    variable values the enclosing scope holds and records which variables
    are assigned inside it."""

    def __init__(self) -> None:
        super().__init__()
        outer = get_stateless_scope()
        if outer is not None:
            self.state_mapping = dict(outer.state_mapping)
        self.assigned: dict[int, Any] = {}

    def add_update(self, update: tuple[Any, Any]) -> None:
        super().add_update(update)
        self.assigned[id(update[0])] = update[0]


def _jax_input_gradient(fn: Any, x: Any, has_aux: bool) -> Any:
    import jax

    assigned = []

    def traced(x):
        with _RecordingScope() as scope:
            value, aux = _split(fn(x), has_aux)
        assigned.extend(scope.assigned.values())
        return value, (aux, [scope.get_current_value(v) for v in assigned])

    grad_fn = jax.grad(traced, has_aux=True)
    gradient, (aux, values) = grad_fn(keras.ops.convert_to_tensor(x))
    for variable, value in zip(assigned, values, strict=True):
        variable.assign(value)
    return _join(jax.lax.stop_gradient(gradient), aux, has_aux)


def _tensorflow_step(model, data):
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


def _torch_step(model, data):
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


def _jax_step(model, state, data):
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
