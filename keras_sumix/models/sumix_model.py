"""`MixupModel` (mixed cross-entropy) and `SUMixModel`: classifiers that mix
their own batches inside `fit`, and the `UncertaintyHead` SUMix trains with.

Both share one training loop (`MixingModel`): mix with the mixer, run the
forward pass(es), compute the loss, apply the gradient (the backend-specific
part, in `train_step.py`). Evaluation and prediction use the plain classifier
on clean images.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_sumix._validation import check_int
from keras_sumix.layers.base import MixingLayer
from keras_sumix.losses import DEFAULT_DISTANCE_SCALE, check_loss_options, sumix_loss
from keras_sumix.models import train_step as _train_step


def _check_num_classes(num_classes: Any) -> int:
    return check_int("num_classes", num_classes, 2)


@keras.saving.register_keras_serializable(package="keras_sumix")
class UncertaintyHead(keras.layers.Layer):
    """SUMix's uncertainty head: `l2norm(softmax(W_u f))` (Eq. 5 of the paper).

    A dense layer of the classifier's shape whose softmax output is
    l2-normalised per sample. Output is float32 whatever the dtype policy.

    Args:
        num_classes: number of classes `C`.
        **kwargs: base layer keyword arguments.

    Example:

    >>> import numpy as np, keras_sumix
    >>> head = keras_sumix.UncertaintyHead(10)
    >>> u = head(np.random.rand(4, 64).astype("float32"))
    >>> np.allclose(np.linalg.norm(np.asarray(u), axis=-1), 1.0, atol=1e-5)
    True
    """

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = _check_num_classes(num_classes)
        self.dense = keras.layers.Dense(
            num_classes, dtype=self.dtype_policy, name="dense"
        )

    def build(self, input_shape: Any) -> None:
        self.dense.build(input_shape)
        self.built = True

    def call(self, features: Any) -> Any:
        probabilities = ops.softmax(ops.cast(self.dense(features), "float32"), axis=-1)
        norm = ops.sqrt(ops.sum(ops.square(probabilities), axis=-1, keepdims=True))
        return probabilities / ops.maximum(norm, 1e-12)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (*input_shape[:-1], self.num_classes)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes}


class MixingModel(keras.Model):
    """Shared base: a backbone, a linear classifier and a mixer, trained on
    mixed batches by `fit`, evaluated as a plain classifier.

    Subclasses implement `_terms(images, labels_int, labels_dense)`.
    """

    def __init__(
        self,
        backbone: keras.Model,
        num_classes: int,
        mixer: MixingLayer,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        if isinstance(mixer, dict):
            mixer = keras.saving.deserialize_keras_object(mixer)
        if not isinstance(backbone, keras.layers.Layer):
            raise TypeError(
                "`backbone` must be a Keras model or layer mapping images to "
                f"features. Received: backbone={backbone!r}."
            )
        if not isinstance(mixer, MixingLayer):
            raise TypeError(
                "`mixer` must be a keras_sumix mixing layer (MixUp, CutMix, ...). "
                f"Received: mixer={mixer!r}."
            )
        self.num_classes = _check_num_classes(num_classes)
        self.backbone = backbone
        self.mixer = mixer
        self.classifier = keras.layers.Dense(num_classes, name="classifier")
        # Training-only trackers (the total loss goes to Keras's own "loss").
        self.lam_area_tracker = keras.metrics.Mean(name="lam_area")

    # ------------------------------------------------------------------ #
    # Inference: the plain classifier
    # ------------------------------------------------------------------ #
    def features(self, images: Any, training: bool = False) -> Any:
        """Backbone features, global-average-pooled if they are a 4-D map."""
        features = self.backbone(images, training=training)
        if len(features.shape) == 4:
            axes = (2, 3) if self.mixer.data_format == "channels_first" else (1, 2)
            features = ops.mean(features, axis=axes)
        elif len(features.shape) != 2:
            raise ValueError(
                "The backbone must return (N, D) features or an (N, H, W, D) map. "
                f"Received features of shape {tuple(features.shape)}."
            )
        return features

    def call(self, images: Any, training: bool = False) -> Any:
        return self.classifier(self.features(images, training=training))

    def build(self, input_shape: Any) -> None:
        shape = tuple(input_shape)
        self.mixer.build(shape)
        if not self.backbone.built:
            self.backbone.build(shape)
        features = self.backbone.compute_output_shape(shape)
        channels_first = self.mixer.data_format == "channels_first"
        dim = features[1] if channels_first and len(features) == 4 else features[-1]
        for head in self._heads():
            if not head.built:
                head.build((shape[0], dim))
        self.built = True

    def _heads(self) -> list[keras.layers.Layer]:
        return [self.classifier]

    # ------------------------------------------------------------------ #
    # Compile / evaluate
    # ------------------------------------------------------------------ #
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, **kwargs: Any):
        """Configure training. The loss is built in, so `loss` must be None.

        Args:
            optimizer: any Keras optimizer.
            loss: must be None: the mixed loss is configured through the model's
                own arguments. Evaluation uses clean cross-entropy.
            **kwargs: other `keras.Model.compile` arguments (`metrics`,
                `jit_compile`, ...). Compiled metrics see the clean (raw) pass
                of SUMixModel, the mixed pass of MixupModel.
        """
        if loss is not None:
            raise ValueError(
                f"{type(self).__name__} has its loss built in; `compile(loss=...)` "
                f"is not supported. Received: loss={loss!r}. Configure the loss "
                "through the model's arguments (e.g. gamma, lambda_mode)."
            )
        super().compile(optimizer=optimizer, **kwargs)

    def fit(self, *args: Any, **kwargs: Any) -> keras.callbacks.History:
        """`keras.Model.fit`; `sample_weight` is not supported (the mixed loss
        pairs samples), and is rejected before any tracing."""
        if kwargs.get("sample_weight") is not None:
            raise ValueError(
                f"{type(self).__name__} does not support `sample_weight` in "
                "training: the mixed loss pairs samples across the batch."
            )
        return super().fit(*args, **kwargs)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Restore the compile state saved with the model (`.keras` files)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_metrics(
        self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None
    ) -> dict[str, Any]:
        """Evaluation logs: the clean loss and compiled metrics (the
        training-only trackers such as `lam_area` are left out)."""
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        return {k: v for k, v in logs.items() if k not in self._training_only()}

    def _training_only(self) -> set[str]:
        return {"lam_area"}

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """Clean cross-entropy of the classifier (what `evaluate` reports)."""
        del x, training
        logits = ops.cast(y_pred, "float32")
        _, dense = self._labels(y)
        per_sample = -ops.sum(dense * ops.log_softmax(logits, axis=-1), axis=-1)
        if sample_weight is not None:
            weight = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
            return ops.sum(per_sample * weight) / ops.maximum(ops.sum(weight), 1e-12)
        return ops.mean(per_sample)

    # ------------------------------------------------------------------ #
    # Training
    # ------------------------------------------------------------------ #
    def train_step(self, *args: Any) -> Any:
        return _train_step.train_step(self, *args)

    def _labels(self, y: Any) -> tuple[Any, Any]:
        """Integer `(N,)` and one-hot/soft float32 `(N, C)` forms of `y`."""
        y = ops.convert_to_tensor(y)
        if len(y.shape) == 2 and y.shape[-1] == 1:
            y = ops.reshape(y, (-1,))
        if len(y.shape) == 1:
            labels = ops.cast(y, "int32")
            return labels, ops.one_hot(labels, self.num_classes, dtype="float32")
        if len(y.shape) == 2 and y.shape[-1] in (None, self.num_classes):
            dense = ops.cast(y, "float32")
            return ops.cast(ops.argmax(dense, axis=-1), "int32"), dense
        raise ValueError(
            f"Labels must be integer (N,) or one-hot (N, {self.num_classes}). "
            f"Received shape {tuple(y.shape)}."
        )

    def training_terms(self, x: Any, y: Any) -> tuple[dict[str, Any], Any]:
        """Mix the batch, run the forward pass(es) and compute the loss.

        Backend-agnostic; the backend-specific step differentiates
        `terms["loss"]`.

        Returns:
            `(terms, y_pred)`: the loss terms (scalars, the ones logged) and
            the logits compiled metrics are computed on.
        """
        if not self.built:  # TF and torch build lazily, in the first step
            self.build(tuple(x.shape))
        labels, dense = self._labels(y)
        return self._terms(x, labels, dense)

    def update_training_metrics(
        self, terms: dict[str, Any], y: Any, y_pred: Any
    ) -> dict[str, Any]:
        """Update the trackers and compiled metrics; return the logs."""
        for metric in self.metrics:
            if metric.name in terms:
                metric.update_state(terms[metric.name])
            elif metric.name == "compile_metrics":
                metric.update_state(y, y_pred)
        return self.get_metrics_result()

    def _terms(self, images: Any, labels: Any, dense: Any):
        raise NotImplementedError

    def training_lam(
        self, images: Any, labels: Any, mix: Any, training: bool = False
    ) -> Any:
        """The per-sample lam this model trains with on a given mix.

        Args:
            images: the clean batch.
            labels: its labels (integer or one-hot).
            mix: the `MixResult` of mixing `images`.
            training: run the network in training mode (as in a train step;
                batch-norm statistics then update) or inference mode.

        Returns:
            float32 `(N,)`: the area lam for MixupModel, the corrected lam
            for SUMixModel.
        """
        del images, labels, training
        return ops.cast(mix.lam, "float32")

    # ------------------------------------------------------------------ #
    # Serialization
    # ------------------------------------------------------------------ #
    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "mixer": keras.saving.serialize_keras_object(self.mixer),
        }


@keras.saving.register_keras_serializable(package="keras_sumix")
class MixupModel(MixingModel):
    """The baseline: mixed cross-entropy with the area lam (MCE).

    Each training step mixes the batch with `mixer.mix`, runs one forward
    pass on the mixed images and minimises
    `mean(lam * CE(logits, y_a) + (1 - lam) * CE(logits, y_b))`. Evaluation
    and prediction use the plain classifier on clean images. Training-time
    compiled metrics are measured on the mixed batch against each sample's
    own label.

    Args:
        backbone: a Keras model from images to features (4-D maps are
            global-average-pooled), e.g. `keras_sumix.models.resnet18_cifar()`
            or `keras.applications.ResNet50(include_top=False)`.
        num_classes: number of classes.
        mixer: a keras_sumix mixing layer.
        **kwargs: `keras.Model` keyword arguments (`name`, ...).

    Example:

    ```python
    model = keras_sumix.MixupModel(
        keras_sumix.models.resnet18_cifar(), 100, keras_sumix.layers.CutMix(0.2)
    )
    model.compile(optimizer="sgd", metrics=["accuracy"])
    model.fit(images, labels, epochs=10)
    ```
    """

    def _terms(self, images: Any, labels: Any, dense: Any):
        mix = self.mixer.mix(images)
        logits = self(mix.images, training=True)
        lam = ops.expand_dims(mix.lam, -1)
        target = lam * dense + (1.0 - lam) * ops.take(dense, mix.permutation, axis=0)
        log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        loss = ops.mean(-ops.sum(target * log_p, axis=-1))
        return {"loss": loss, "lam_area": ops.mean(mix.lam)}, logits


@keras.saving.register_keras_serializable(package="keras_sumix")
class SUMixModel(MixingModel):
    """SUMix (ECCV 2024): a learned per-sample mix ratio and an uncertainty
    regulariser, inside `model.fit`.

    Each training step mixes the batch with `mixer.mix`, runs the network on
    the clean batch (raw pass) and on the mixed batch (mixed pass), both in
    training mode, and minimises `keras_sumix.sumix_loss` (see
    `SUMIX_SPEC.md`). The defaults reproduce the authors' code. Evaluation and
    prediction use the plain classifier on clean images; the uncertainty
    head is a training-time device. Compiled metrics run on the raw pass.

    History reports `loss`, `mix_loss`, `reg_loss` (before gamma),
    `lam_area` (mean area lam) and `lam_sumix` (mean corrected lam).

    Args:
        backbone: a Keras model from images to features (4-D maps are
            global-average-pooled).
        num_classes: number of classes.
        mixer: a keras_sumix mixing layer.
        gamma: weight of the uncertainty regulariser. Defaults to 0.5.
        lambda_mode: `"reference"` (the authors' formula, default),
            `"distance"` (the paper's prose) or `"area"` (no correction).
        regularizer: `"both"` (default), `"uncertainty"`, `"semantic"` or
            `"none"`.
        semantic_scale: the scale `s` of the semantic term; None (default)
            uses the batch size, as the reference does.
        distance_scale: the temperature `t` of `lambda_mode="distance"`.
        reduction: `"reference"` (batch-mean weights, default) or
            `"per_sample"` (each sample its own ratio, as the paper says).
        raw_pass_gradient: if False, no gradient flows through the raw pass
            (its outputs are treated as constants), which makes the step
            cheaper; the uncertainty head then learns from the mixed pass
            only. Defaults to True (faithful to the spec).
        **kwargs: `keras.Model` keyword arguments.

    Example:

    ```python
    model = keras_sumix.SUMixModel(
        keras_sumix.models.resnet18_cifar(), 100, keras_sumix.layers.CutMix(0.2)
    )
    model.compile(optimizer="sgd", metrics=["accuracy"])
    history = model.fit(images, labels, epochs=10)
    history.history["lam_sumix"]
    ```
    """

    def __init__(
        self,
        backbone: keras.Model,
        num_classes: int,
        mixer: MixingLayer,
        gamma: float = 0.5,
        lambda_mode: str = "reference",
        regularizer: str = "both",
        semantic_scale: float | None = None,
        distance_scale: float = DEFAULT_DISTANCE_SCALE,
        reduction: str = "reference",
        raw_pass_gradient: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, num_classes, mixer, **kwargs)
        options = check_loss_options(
            gamma=gamma,
            lambda_mode=lambda_mode,
            regularizer=regularizer,
            semantic_scale=semantic_scale,
            distance_scale=distance_scale,
            reduction=reduction,
        )
        self.gamma = options["gamma"]
        self.lambda_mode = options["lambda_mode"]
        self.regularizer = options["regularizer"]
        self.semantic_scale = options["semantic_scale"]
        self.distance_scale = options["distance_scale"]
        self.reduction = options["reduction"]
        if not isinstance(raw_pass_gradient, bool):
            raise TypeError(
                "`raw_pass_gradient` must be a bool. Received: "
                f"raw_pass_gradient={raw_pass_gradient!r}."
            )
        self.raw_pass_gradient = raw_pass_gradient
        self.uncertainty_head = UncertaintyHead(num_classes, name="uncertainty_head")
        # Only these regularisers send gradient to the head; otherwise it is
        # frozen (rather than handed empty gradients every step).
        self.uncertainty_head.trainable = regularizer in ("both", "uncertainty")
        self.mix_loss_tracker = keras.metrics.Mean(name="mix_loss")
        self.reg_loss_tracker = keras.metrics.Mean(name="reg_loss")
        self.lam_sumix_tracker = keras.metrics.Mean(name="lam_sumix")

    def _heads(self) -> list[keras.layers.Layer]:
        return [self.classifier, self.uncertainty_head]

    def _training_only(self) -> set[str]:
        return {"lam_area", "lam_sumix", "mix_loss", "reg_loss"}

    def _outputs(self, images: Any, training: bool = True) -> tuple[Any, Any]:
        features = self.features(images, training=training)
        return self.classifier(features), self.uncertainty_head(features)

    def _loss(self, labels, raw, mixed, mix) -> dict[str, Any]:
        return sumix_loss(
            labels, *raw, *mixed, mix.permutation, mix.lam, **self._loss_options()
        )

    def _loss_options(self) -> dict[str, Any]:
        return {
            "gamma": self.gamma,
            "lambda_mode": self.lambda_mode,
            "regularizer": self.regularizer,
            "semantic_scale": self.semantic_scale,
            "distance_scale": self.distance_scale,
            "reduction": self.reduction,
        }

    def training_lam(
        self, images: Any, labels: Any, mix: Any, training: bool = False
    ) -> Any:
        labels, _ = self._labels(labels)
        raw = self._outputs(images, training=training)
        mixed = self._outputs(mix.images, training=training)
        return self._loss(labels, raw, mixed, mix)["lam"]

    def _terms(self, images: Any, labels: Any, dense: Any):
        mix = self.mixer.mix(images)
        raw_logits, raw_uncertainty = self._outputs(images)
        if not self.raw_pass_gradient:
            raw_logits = ops.stop_gradient(raw_logits)
            raw_uncertainty = ops.stop_gradient(raw_uncertainty)
        mixed = self._outputs(mix.images)
        out = self._loss(labels, (raw_logits, raw_uncertainty), mixed, mix)
        terms = {
            "loss": out["loss"],
            "mix_loss": out["mix_loss"],
            "reg_loss": out["reg_loss"],
            "lam_area": ops.mean(mix.lam),
            "lam_sumix": ops.mean(out["lam"]),
        }
        return terms, raw_logits

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **self._loss_options(),
            "raw_pass_gradient": self.raw_pass_gradient,
        }
