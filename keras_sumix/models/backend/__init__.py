"""Every piece of per-backend code, one small interface per concern:

- `train_step(model, *args)`: take the gradient of a mixing model's loss and
  apply it (`train_step.py`);
- `gradient_wrt_inputs(fn, x, has_aux=False)`: the gradient of a scalar
  function with respect to its input (`input_gradient.py`), what PuzzleMix's
  saliency and the FGSM evaluation differentiate;
- `replicas`: the global batch under data parallelism (`replicas.py`, the
  only code that knows about `tf.distribute`).

Everything else (mixing, the forward passes, the losses, the metrics) is
backend-agnostic. A new backend concern is one module here and one function
below.
"""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix.models.backend import input_gradient as _input_gradient
from keras_sumix.models.backend import replicas
from keras_sumix.models.backend import train_step as _train_step

__all__ = ["gradient_wrt_inputs", "replicas", "train_step"]


def _for_backend(implementations: dict[str, Any], concern: str) -> Any:
    """The current backend's entry of `implementations`."""
    backend = keras.backend.backend()
    if backend not in implementations:
        raise NotImplementedError(
            f"{concern} supports the {', '.join(implementations)} backends; "
            f"KERAS_BACKEND={backend!r}."
        )
    return implementations[backend]


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
    return _for_backend(_train_step.BY_BACKEND, "train_step")(model, *args)


def gradient_wrt_inputs(fn: Any, x: Any, has_aux: bool = False) -> Any:
    """The gradient of the scalar `fn(x)` with respect to `x`, on the
    current backend; traceable (inside a compiled train step too), and
    detached: no gradient flows back through it.

    With `has_aux=True`, `fn` returns `(value, aux)` and so does this
    function, `(gradient, aux)`: `aux` (e.g. the network's outputs of that
    same forward pass) is *not* detached. Inside a train step it carries
    gradient to the parameters like any other forward pass, so one forward
    pass gives both a saliency and outputs to train on
    (`SUMixModel(saliency_pass="raw")`). On JAX, what `fn` assigns (batch
    norm's moving statistics) is assigned after `jax.grad`, not inside its
    trace; on torch the parameters' `.grad` are left untouched (see
    `input_gradient.py` for each backend's mechanics).

    This is the backend primitive; `keras_sumix.evaluation.input_gradient(
    model, images, labels)` is the cross-entropy gradient of a model built
    on it.

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
    >>> from keras_sumix.models.backend import gradient_wrt_inputs
    >>> g = gradient_wrt_inputs(lambda x: keras.ops.sum(x**2), np.ones(3, "float32"))
    >>> keras.ops.convert_to_numpy(g).tolist()
    [2.0, 2.0, 2.0]
    >>> g, y = gradient_wrt_inputs(
    ...     lambda x: (keras.ops.sum(x**2), 3 * x), np.ones(3, "float32"),
    ...     has_aux=True,
    ... )
    >>> keras.ops.convert_to_numpy(y).tolist()
    [3.0, 3.0, 3.0]
    """
    if not isinstance(has_aux, bool):
        raise TypeError(f"`has_aux` must be a bool. Received: has_aux={has_aux!r}.")
    implementation = _for_backend(_input_gradient.BY_BACKEND, "gradient_wrt_inputs")
    return implementation(fn, x, has_aux)
