"""The momentum (EMA) encoder of a learned mixer (AutoMix): a frozen copy of
the backbone and classifier, read at one feature map, run in training mode
(batch norm on the batch's statistics, as the reference's `backbone_k`) and
moved towards the online network after every optimizer step."""

from __future__ import annotations

from typing import Any

import keras

from keras_sumix._keras_compat import no_automatic_dependency_tracking
from keras_sumix.models.pooling import pool_features, token_pooling_of


def _copy(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new layer (or model) of the same configuration, built."""
    return keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )


def feature_map(backbone: keras.Model, name: str) -> Any:
    """The symbolic output `name` of a functional `backbone`: a key of a
    keras-hub backbone's `pyramid_outputs`, else a layer's name.

    Raises:
        ValueError: `backbone` is not functional, or has no such output (the
            message lists the stages and pyramid keys it has).
    """
    output = _named_output(backbone, name)
    if len(output.shape) != 4:
        raise ValueError(
            f"AutoMix reads a 4-D feature map; `feature_layer={name!r}` has "
            f"shape {tuple(output.shape)}. Choose a convolutional stage (or "
            "a keras-hub pyramid output)."
        )
    return output


def _named_output(backbone: keras.Model, name: str) -> Any:
    pyramid = getattr(backbone, "pyramid_outputs", None) or {}
    if name in pyramid:
        return pyramid[name]
    if not isinstance(getattr(backbone, "inputs", None), list):
        raise ValueError(
            "AutoMix reads a feature map inside the backbone, so the backbone "
            "must be a functional or Sequential Keras model. Received "
            f"{type(backbone).__name__}."
        )
    try:
        return backbone.get_layer(name).output
    except ValueError:
        stages = [layer.name for layer in backbone.layers if "stage" in layer.name]
        raise ValueError(
            f"AutoMix(feature_layer={name!r}): the backbone {backbone.name!r} has "
            f"no layer or pyramid output of that name. Its stages: {stages}; "
            f"its pyramid outputs: {sorted(pyramid)}."
        ) from None


class MomentumEncoder(keras.layers.Layer):
    """A frozen copy of `backbone` and `classifier` that follows them by an
    exponential moving average, and reads `backbone`'s `feature_layer`.

    Its weights get no gradient and no optimizer update (they are not
    trainable) and start equal to the online ones (`reset`). As the
    reference (OpenMixup's `backbone_k`), the copy runs in training mode:
    its batch-norm layers normalise with the statistics of the batch they
    see (the clean batch for the features, the mixed one for the mix
    block's loss), its dropout (if any) is active. The EMA (`update`)
    averages the parameters only; the copy's moving statistics are its own,
    updated by its batch norm on those batches (the reference's buffers),
    and nothing in training reads them.

    Keras's `BatchNormalization` uses batch statistics only when it is
    trainable (`training and self.trainable`), so the copy's batch-norm
    layers are flagged trainable while each of their variables is not:
    they stay out of `trainable_variables`, hence out of every gradient and
    of the optimizer, on every backend.

    Args:
        backbone: the online backbone (functional).
        classifier: the online classifier head.
        feature_layer: the feature map to read (`feature_map`).
        data_format: the images' layout (for pooling the final features).
        **kwargs: base layer keyword arguments.
    """

    def __init__(
        self,
        backbone: keras.Model,
        classifier: keras.layers.Layer,
        feature_layer: str,
        data_format: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.encoder = _copy(backbone)
        inputs = self.encoder.inputs  # (`.input` fails on a Sequential copy)
        self._remember(
            keras.Model(
                inputs[0] if len(inputs) == 1 else inputs,
                feature_map(self.encoder, feature_layer),
                name="momentum_features",
            )
        )
        self.classifier = _copy(classifier)
        self.token_pooling = token_pooling_of(backbone)
        self.data_format = data_format
        self.trainable = False
        self._statistics = set()  # ids of batch norm's moving statistics
        for layer in (
            *self.encoder._flatten_layers(),
            *self.classifier._flatten_layers(),
        ):
            if isinstance(layer, keras.layers.BatchNormalization):
                self._normalise_by_batch(layer)

    def _normalise_by_batch(self, layer: keras.layers.BatchNormalization) -> None:
        """Make `layer` normalise with the batch's statistics in training
        mode, its variables still out of `trainable_variables`."""
        layer.trainable = True
        parameters = {id(w) for w in (layer.gamma, layer.beta) if w is not None}
        for variable in layer.weights:
            variable.trainable = False
            if id(variable) not in parameters:
                self._statistics.add(id(variable))

    @no_automatic_dependency_tracking
    def _remember(self, features: keras.Model) -> None:
        # The copy up to the feature map: its layers are `encoder`'s,
        # tracked (and saved) once, through `encoder`.
        self._features = features

    def build(self, input_shape: Any) -> None:
        self.built = True

    def feature_shape(self, input_shape: Any) -> tuple:
        """The feature map's shape for images of `input_shape`."""
        return tuple(self._features.compute_output_shape(tuple(input_shape)))

    def features(self, images: Any) -> Any:
        """The copy's feature map of `images` (its layers up to it only, in
        training mode), without gradient."""
        return keras.ops.stop_gradient(self._features(images, training=True))

    def call(self, images: Any) -> Any:
        """The copy's logits on `images` (training mode); the gradient flows
        to `images`, never to the copy's weights (they are not trainable)."""
        final = self.encoder(images, training=True)
        pooled = pool_features(final, self.token_pooling, self.data_format)
        return self.classifier(pooled, training=True)

    def pairs(
        self, backbone: keras.Model, classifier: keras.layers.Layer
    ) -> list[tuple[Any, Any]]:
        """`(online, copy)` parameter pairs: floating variables other than
        batch norm's moving statistics (seed states and the copy's own
        statistics are left alone). The copies were built from the online
        layers' configurations, so their weights come in the same order."""
        pairs = [
            *zip(backbone.weights, self.encoder.weights, strict=True),
            *zip(classifier.weights, self.classifier.weights, strict=True),
        ]
        for online, copy in pairs:
            if tuple(online.shape) != tuple(copy.shape):
                raise ValueError(
                    f"The momentum copy of {online.path} has shape "
                    f"{tuple(copy.shape)}, the online weight {tuple(online.shape)}."
                )
        return [
            (online, copy)
            for online, copy in pairs
            if "float" in keras.backend.standardize_dtype(copy.dtype)
            and id(copy) not in self._statistics
        ]

    def reset(self, backbone: keras.Model, classifier: keras.layers.Layer) -> None:
        """Copy the online parameters into the encoder (momentum 0), as new
        buffers (JAX donates each variable's buffer to the step)."""
        for online, copy in self.pairs(backbone, classifier):
            copy.assign(keras.ops.copy(online))

    def update(
        self, backbone: keras.Model, classifier: keras.layers.Layer, momentum: Any
    ) -> None:
        """`copy = momentum * copy + (1 - momentum) * online`, every pair
        (`pairs`: the parameters, not the moving statistics)."""
        momentum = keras.ops.convert_to_tensor(momentum, "float32")
        for online, copy in self.pairs(backbone, classifier):
            m = keras.ops.cast(momentum, copy.dtype)
            copy.assign(m * copy + (1.0 - m) * keras.ops.cast(online, copy.dtype))
