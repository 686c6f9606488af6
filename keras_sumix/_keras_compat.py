"""Every use of Keras internals (`keras.src`), in one place.

Keras 3 has no public API for the few things below; each is a small,
named function (or alias) so that a Keras release that moves one of them
breaks this module alone, and `make test-latest` (the suite against the
newest releases) shows where. Nothing else in `keras_sumix` imports
`keras.src` (`tests/test_compat.py` checks it).

Each entry was checked against Keras 3.9.0 (the floor in `pyproject.toml`)
and 3.15.1 (the version in `requirements/lock.txt`), and against Keras's
main branch of August 2026. When raising the Keras cap, check them again.

The last three functions are read by the tests only (to check how Keras
treats the library's callbacks and layers); they live here so that the
tests, too, read Keras internals in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
from keras.src import backend as _backend
from keras.src.backend.common import global_state as _global_state
from keras.src.backend.common import stateless_scope as _stateless_scope
from keras.src.trainers import trainer as _trainer
from keras.src.utils import backend_utils as _backend_utils
from keras.src.utils import jax_utils as _jax_utils
from keras.src.utils import tracking as _tracking

DynamicBackend = _backend_utils.DynamicBackend
"""The `keras.ops`-like namespace of a backend chosen at run time (what
Keras's own preprocessing layers compute with): a mixer inside a `tf.data`
graph computes with TensorFlow ops whatever the Keras backend is.
`keras.src.utils.backend_utils.DynamicBackend`, Keras 3.9 to 3.15."""

no_automatic_dependency_tracking = _tracking.no_automatic_dependency_tracking
"""Decorator: attributes a method sets are not tracked as the layer's state
(a mixer's seed stream, the momentum encoder's handle on the online
network). `keras.src.utils.tracking`, Keras 3.9 to 3.15."""


def in_tf_graph() -> bool:
    """Whether the caller runs inside a TensorFlow graph (`tf.data`,
    `tf.function`), whatever the Keras backend is.

    `keras.src.utils.backend_utils.in_tf_graph`, Keras 3.9 to 3.15.
    """
    return _backend_utils.in_tf_graph()


def is_in_jax_tracing_scope(value: Any = None) -> bool:
    """Whether `value` is a JAX tracer, or (`value` None) whether the caller
    runs inside a JAX trace (`jax.jit`, `jax.grad`).

    `keras.src.utils.jax_utils.is_in_jax_tracing_scope`, Keras 3.9 to 3.15.
    """
    return _jax_utils.is_in_jax_tracing_scope(value)


def in_stateless_scope() -> bool:
    """Whether a `keras.StatelessScope` is active (variables are read from
    and assigned to its mapping, not in place).

    `keras.src.backend.common.stateless_scope`, Keras 3.9 to 3.15.
    """
    return _stateless_scope.in_stateless_scope()


def get_stateless_scope() -> keras.StatelessScope | None:
    """The innermost active `keras.StatelessScope`, or None.

    `keras.src.backend.common.stateless_scope`, Keras 3.9 to 3.15.
    """
    return _stateless_scope.get_stateless_scope()


def current_call_context() -> Any:
    """Keras's context of the outermost layer call in progress (its
    `entry_layer` is the layer or model that started it), or None outside
    any call.

    The global attribute `"current_call_ctx"` of
    `keras.src.backend.common.global_state`, Keras 3.9 to 3.15.
    """
    return _global_state.get_global_attribute("current_call_ctx")


@contextlib.contextmanager
def inputs_not_converted(layer: keras.Layer) -> Iterator[None]:
    """Inside the scope, calling `layer` leaves its inputs as they are.

    `Layer.__call__` converts its positional inputs to tensors of the Keras
    backend; a mixer running inside `tf.data` under JAX or torch receives
    TensorFlow tensors and must keep them. This flips the private
    `Layer._convert_input_args` (set in `Layer.__init__`, read in
    `Layer.__call__`), Keras 3.9 to 3.15, and restores it on exit.
    """
    convert = layer._convert_input_args
    layer._convert_input_args = False
    try:
        yield
    finally:
        layer._convert_input_args = convert


def backend_is_thread_safe() -> bool:
    """Whether Keras may run callbacks on another thread with this backend
    (False on TensorFlow). For the tests.

    `keras.src.backend.IS_THREAD_SAFE`, Keras 3.9 to 3.15.
    """
    return _backend.IS_THREAD_SAFE


def callbacks_run_async(callbacks: keras.callbacks.CallbackList) -> bool:
    """Whether `callbacks` run their batch-end hooks off the training loop
    (so that the loop does not wait for each batch's results). For the
    tests.

    The private `CallbackList._async_train`, Keras 3.9 to 3.15.
    """
    return callbacks._async_train


def model_supports_jit(model: keras.Model) -> bool:
    """Whether every layer of `model` allows XLA compilation (what
    `jit_compile="auto"` decides on). For the tests.

    `keras.src.trainers.trainer.model_supports_jit`, Keras 3.9 to 3.15.
    """
    return _trainer.model_supports_jit(model)
