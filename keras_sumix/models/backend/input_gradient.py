"""The gradient of a scalar function with respect to its input, one
implementation per backend (`keras_sumix.models.backend.gradient_wrt_inputs`
picks the current backend's and documents the contract)."""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix._keras_compat import get_stateless_scope


def _split(out: Any, has_aux: bool) -> tuple[Any, Any]:
    return out if has_aux else (out, None)


def _join(gradient: Any, aux: Any, has_aux: bool) -> Any:
    return (gradient, aux) if has_aux else gradient


def _tensorflow(fn: Any, x: Any, has_aux: bool) -> Any:
    """A `tf.GradientTape` watching `x`, nested in a train step's tape; the
    gradient is `tf.stop_gradient`-ed, `aux` returned as it is (the step's
    tape recorded it too)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value, aux = _split(fn(x), has_aux)
    return _join(tf.stop_gradient(tape.gradient(value, x)), aux, has_aux)


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


def _jax(fn: Any, x: Any, has_aux: bool) -> Any:
    """`jax.grad(fn, has_aux=True)`, with the gradient
    `jax.lax.stop_gradient`-ed. `fn` runs in a `keras.StatelessScope` of its
    own, seeded with the values of the enclosing one (inside a step, the
    step's variable values), so that variables `fn` assigns (batch norm's
    moving statistics in training mode, seed states) are not assigned from
    inside the `jax.grad` trace, whose tracers would leak: their new values
    come out of `jax.grad` as part of `aux` and are assigned after it, where
    the enclosing scope (or, eagerly, the variable itself) takes them."""
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


def _torch_eager(fn: Any, x: Any, has_aux: bool) -> Any:
    import torch

    x = keras.ops.convert_to_tensor(x).detach().clone().requires_grad_()
    with torch.enable_grad():
        value, aux = _split(fn(x), has_aux)
        (gradient,) = torch.autograd.grad(value, x, retain_graph=has_aux)
    return _join(gradient.detach(), aux, has_aux)


def _torch(fn: Any, x: Any, has_aux: bool) -> Any:
    """`x` as a detached leaf with `requires_grad_()` and
    `torch.autograd.grad`, which leaves the parameters' `.grad` untouched;
    with `has_aux`, `retain_graph=True`, so that the step's `backward()` can
    still go through `aux`. That graph then has two backward passes, which a
    `torch.compile`d graph does not allow (its saved buffers are donated to
    one), so with `has_aux` this function and `fn` run eagerly
    (`torch.compiler.disable`) inside a compiled step
    (`compile(jit_compile=True)`)."""
    import torch

    if has_aux:  # a graph two backward passes go through is not compiled
        return torch.compiler.disable(_torch_eager)(fn, x, has_aux)
    return _torch_eager(fn, x, has_aux)


#: `gradient_wrt_inputs(fn, x, has_aux)` of each backend.
BY_BACKEND = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}
