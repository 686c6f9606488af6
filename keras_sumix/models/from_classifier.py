"""Train a complete Keras classifier a user already has with mixup or SUMix:
`MixupModel.from_classifier(model, mixer)` / `SUMixModel.from_classifier`.

The classifier is cut at its final linear layer: everything before it
becomes the training model's backbone (the same layer objects, so the same
weights), and the final layer itself becomes the head through a
`LogitHead`, which returns its PRE-activation output. Softmax outputs are
thereby handled: the mixed losses are cross-entropies on logits, and a
final `Dense(C, activation="softmax")` (or a trailing softmax `Activation`
/ `Softmax` layer) is trained on the logits it computes before the softmax.
After `fit`, the user's own model object predicts with the trained weights
(probabilities if it ends in a softmax).

The final linear layer is a `Dense(C)` acting on `(N, D)` features, or a
1x1 `Conv2D(C)` on a 1x1 map (MobileNetV3's head, a dense layer in all but
name). It may be followed by `Flatten` / `Reshape` layers and by a softmax
or linear `Activation` or `Softmax` layer; those are left out at training
time (only the logits are trained on) and stay in the user's model.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["LogitHead", "split_classifier"]

# Layers allowed after the final linear layer: they only reshape, or apply
# the softmax that the training losses apply themselves.
_RESHAPING = ("Flatten", "Reshape")
_ACTIVATIONS = ("linear", "softmax")


def _activation_name(function: Any) -> str:
    try:
        name = keras.activations.serialize(function)
    except (TypeError, ValueError):
        return getattr(function, "__name__", repr(function))
    if isinstance(name, dict):
        return str(name.get("config", name.get("class_name", name)))
    return str(name)


@keras.saving.register_keras_serializable(package="keras_sumix")
class LogitHead(keras.layers.Layer):
    """The pre-activation output of an existing linear layer, weights shared.

    `LogitHead(dense)(features)` is `features @ kernel + bias` with the
    `Dense` layer's own variables, whatever its activation: the logits of a
    softmax classifier. A 1x1 `Conv2D` (kernel `(1, 1, D, C)`) works the
    same way on `(N, D)` features. The training models use it as their
    classifier in `from_classifier`.

    Args:
        layer: a built or unbuilt `keras.layers.Dense`, or a 1x1, stride-1,
            ungrouped `keras.layers.Conv2D`.
        **kwargs: base layer keyword arguments.

    Example:

    >>> import numpy as np, keras
    >>> dense = keras.layers.Dense(3, activation="softmax")
    >>> x = np.random.rand(2, 4).astype("float32")
    >>> probabilities = np.asarray(dense(x))
    >>> logits = np.asarray(LogitHead(dense)(x))
    >>> bool(np.allclose(np.asarray(keras.ops.softmax(logits)), probabilities,
    ...                  atol=1e-6))
    True
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs: Any) -> None:
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(layer)
        _check_linear_layer(layer)
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(**kwargs)
        self.layer = layer

    @property
    def units(self) -> int:
        """The number of classes (the layer's units or filters)."""
        return int(getattr(self.layer, "units", None) or self.layer.filters)

    @property
    def kernel(self) -> Any:
        """The layer's kernel as a `(D, C)` matrix."""
        kernel = self.layer.kernel
        if len(kernel.shape) == 4:
            return ops.reshape(kernel, (kernel.shape[2], kernel.shape[3]))
        return kernel

    @property
    def bias(self) -> Any:
        """The layer's bias `(C,)`, or None."""
        return self.layer.bias if self.layer.use_bias else None

    def build(self, input_shape: Any) -> None:
        if not self.layer.built:
            if isinstance(self.layer, keras.layers.Conv2D):
                dim = input_shape[-1]
                shape = (
                    (input_shape[0], dim, 1, 1)
                    if self.layer.data_format == "channels_first"
                    else (input_shape[0], 1, 1, dim)
                )
                self.layer.build(shape)
            else:
                self.layer.build(input_shape)
        self.built = True

    def call(self, features: Any) -> Any:
        logits = ops.matmul(features, ops.cast(self.kernel, features.dtype))
        if self.layer.use_bias:
            logits = logits + ops.cast(self.layer.bias, features.dtype)
        return logits

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("dtype", None)  # the wrapped layer's
        return {**config, "layer": keras.saving.serialize_keras_object(self.layer)}


def _check_linear_layer(layer: Any) -> None:
    if isinstance(layer, keras.layers.Dense):
        return
    if isinstance(layer, keras.layers.Conv2D) and not isinstance(
        layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
    ):
        if (
            tuple(layer.kernel_size) == (1, 1)
            and tuple(layer.strides) == (1, 1)
            and tuple(layer.dilation_rate) == (1, 1)
            and layer.groups == 1
        ):
            return
    raise ValueError(
        "The head must be a `keras.layers.Dense` layer (or a 1x1, stride-1 "
        f"Conv2D). Received: {type(layer).__name__} {getattr(layer, 'name', '')!r}."
    )


def _producer(tensor: Any) -> tuple[Any, Any]:
    """The operation that produced a functional tensor and its inbound node."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, None
    operation, node_index = history[0], history[1]
    return operation, operation._inbound_nodes[node_index]


def _describe(layer: Any) -> str:
    return f"{type(layer).__name__} {getattr(layer, 'name', '')!r}"


def split_classifier(
    model: keras.Model, num_classes: int | None = None
) -> tuple[keras.Model, LogitHead, dict[str, Any]]:
    """Cut a classifier into (feature extractor, head) at its final linear
    layer; both share the classifier's layers and weights.

    Args:
        model: a functional or Sequential Keras classifier with one input and
            one `(N, C)` output (a `keras.applications` model with its top, a
            keras-hub `ImageClassifier`, ...).
        num_classes: the expected number of classes, or None to take the
            final layer's.

    Returns:
        `(features, head, info)`: `features` a `keras.Model` from the
        classifier's input to the input of its final linear layer, `head` a
        `LogitHead` on that layer, and `info` with `"num_classes"`, `"head"`
        (the layer's name), `"activation"` (the activation dropped:
        `"softmax"` or `"linear"`) and `"dropped"` (the names of the layers
        after it, dropped at training time).

    Raises:
        TypeError: `model` is not a Keras model.
        ValueError: not functional/Sequential, not one input and one output,
            no final Dense (the message names the layer found instead), a
            non-softmax, non-linear output activation, or `num_classes`
            disagreeing with the final layer's units.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras classifier (a functional or Sequential "
            f"keras.Model). Received: model={model!r} of type "
            f"{type(model).__name__}."
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            "`model` must be a built functional or Sequential model (its layers "
            "form a graph from `model.inputs` to `model.outputs`), so that its "
            f"final Dense layer can be found. Received: model={model.name!r} "
            f"({type(model).__name__}) without them; build it on a "
            "`keras.Input` first."
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            "`model` must have one image input and one output. Received: "
            f"model={model.name!r} with {len(inputs)} inputs and "
            f"{len(outputs)} outputs."
        )
    output = outputs[0]
    if len(output.shape) != 2:
        raise ValueError(
            "`model` must output class scores of shape (N, num_classes). "
            f"Received: model={model.name!r} with output shape "
            f"{tuple(output.shape)}."
        )
    dropped: list[str] = []
    activation = "linear"
    tensor = output
    while True:
        layer, node = _producer(tensor)
        if layer is None:
            raise ValueError(
                f"`model` {model.name!r} has no final Dense layer: its output "
                "is not produced by a layer."
            )
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            break
        name = type(layer).__name__
        if name == "Activation" or name == "Softmax":
            function = (
                "softmax" if name == "Softmax" else _activation_name(layer.activation)
            )
            if function not in _ACTIVATIONS:
                raise ValueError(
                    f"`model` {model.name!r} ends in {_describe(layer)} with "
                    f"activation {function!r}; from_classifier trains with a "
                    "softmax cross-entropy on logits, so the output activation "
                    "must be softmax or linear."
                )
            if function == "softmax":
                activation = "softmax"
        elif name not in _RESHAPING:
            raise ValueError(
                f"`model` {model.name!r} has no final Dense layer: its output "
                f"comes from {_describe(layer)}"
                + (f" (after {dropped})" if dropped else "")
                + ". from_classifier reuses the classifier's final "
                "`Dense(num_classes)` (or 1x1 Conv2D) as the head; give it a "
                "model that ends in one, or build `MixupModel(backbone, "
                "num_classes, mixer)` / `SUMixModel(...)` on a feature "
                "extractor instead."
            )
        dropped.append(layer.name)
        if len(node.input_tensors) != 1:
            raise ValueError(
                f"`model` {model.name!r}: {_describe(layer)} near the output has "
                f"{len(node.input_tensors)} inputs; expected a chain ending in "
                "the final Dense layer."
            )
        tensor = node.input_tensors[0]

    if isinstance(layer, keras.layers.Conv2D):
        try:
            _check_linear_layer(layer)
        except ValueError:
            raise ValueError(
                f"`model` {model.name!r} has no final Dense layer: its output "
                f"comes from {_describe(layer)} with kernel_size "
                f"{tuple(layer.kernel_size)} and strides {tuple(layer.strides)}; "
                "only a Dense or a 1x1, stride-1 Conv2D can be reused as the "
                "head."
            ) from None
        spatial = tuple(
            node.input_tensors[0].shape[2:]
            if layer.data_format == "channels_first"
            else node.input_tensors[0].shape[1:3]
        )
        if spatial != (1, 1):
            raise ValueError(
                f"`model` {model.name!r} ends in {_describe(layer)} on a "
                f"{spatial} map, not a 1x1 one: it is not a linear classifier "
                "on pooled features, so it cannot be reused as the head."
            )
    features = node.input_tensors[0]
    if isinstance(layer, keras.layers.Dense) and len(features.shape) != 2:
        raise ValueError(
            f"`model` {model.name!r}: the final {_describe(layer)} acts on "
            f"inputs of shape {tuple(features.shape)}; from_classifier needs it "
            "on pooled (N, D) features."
        )
    layer_activation = _activation_name(layer.activation)
    if layer_activation not in _ACTIVATIONS:
        raise ValueError(
            f"`model` {model.name!r}: the final {_describe(layer)} has activation "
            f"{layer_activation!r}; from_classifier trains with a softmax "
            "cross-entropy on its logits, so it must be softmax or linear."
        )
    if layer_activation == "softmax":
        activation = "softmax"
    head = LogitHead(layer, name="classifier")
    units = head.units
    if num_classes is not None and num_classes != units:
        raise ValueError(
            f"`num_classes`={num_classes!r} disagrees with the classifier: its "
            f"final layer {layer.name!r} has {units} units. Pass "
            f"num_classes={units} (or None), or give a model with "
            f"{num_classes} outputs."
        )
    if units < 2:
        raise ValueError(
            f"`model` {model.name!r}: the final {_describe(layer)} has {units} "
            "unit; mixup and SUMix train a softmax over at least 2 classes."
        )
    extractor = keras.Model(inputs[0], features, name=f"{model.name}_features")
    info = {
        "num_classes": units,
        "head": layer.name,
        "activation": activation,
        "dropped": dropped[::-1],
    }
    return extractor, head, info
