"""`MixupModel` (mixed cross-entropy) and `SUMixModel`: classifiers that mix
their own batches inside `fit`, and the `UncertaintyHead` SUMix trains with.

Both share one training loop (`MixingModel`): mix with the mixer, run the
forward pass(es), compute the loss terms, apply the gradient (the
backend-specific part, `keras_sumix.models.backend`). A mixer that needs the
model gets it from a module of its own: a saliency (`saliency.py`,
PuzzleMix) or a momentum copy's features and a loss (`learned_mixer.py`,
AutoMix). Evaluation and prediction use the plain classifier on clean
images.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
from keras import ops

from keras_sumix._validation import check_choice, check_int, check_number
from keras_sumix.callbacks import StopOnNaN
from keras_sumix.layers.base import MixingLayer
from keras_sumix.losses import _decoupled_terms, _reduce, sumix_loss
from keras_sumix.models import (
    backend,
    cross_entropy,
    host_data,
    learned_mixer,
    stages,
    transmix,
)
from keras_sumix.models import saliency as saliency_step
from keras_sumix.models.backend import replicas
from keras_sumix.models.pooling import pool_features, token_pooling_of
from keras_sumix.models.variants import DEFAULT_VARIANT, resolve_options
from keras_sumix.options import LOSS_OPTIONS, NAMES

#: The metric that logs DecoupleMix's regulariser (`decouple_weight > 0`).
DECOUPLE_LOSS = "decouple_loss"


def _check_num_classes(num_classes: Any) -> int:
    return check_int("num_classes", num_classes, 2)


def _check_label_smoothing(value: Any) -> float:
    return check_number(
        "label_smoothing",
        value,
        low=0.0,
        high=1.0,
        include_low=True,
        include_high=False,
    )


def _means(*names: str) -> list[keras.metrics.Metric]:
    """A `keras.metrics.Mean` of each name (`_term_metrics`)."""
    return [keras.metrics.Mean(name=name) for name in names]


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

    Subclasses implement `_terms(images, labels, dense, weight)`, which
    returns the loss terms as a mapping: `"loss"` (what is differentiated)
    and the terms declared once, each with the metric that logs it in
    training, by `_term_metrics` (a term a model computes but does not
    declare, or declares but does not compute, raises).

    Hostile inputs:

    - NumPy inputs of `fit`, `train_on_batch` and `evaluate` are checked
      before any tracing: an empty `x`, non-finite (NaN/Inf) training images,
      integer labels outside `[0, num_classes)`, float `(N,)` labels,
      non-finite one-hot labels and `x`/`y` batch sizes that differ raise a
      ValueError or TypeError naming the argument. Training labels `(N, C)`
      must be one-hot: soft rows (labels already mixed by a mixer, or
      smoothed) raise a ValueError, since the model mixes (and smooths, see
      `label_smoothing`) the labels itself and would otherwise mix twice.
    - Tensors and datasets cannot be read ahead. Float `(N,)` labels still
      raise a TypeError (their dtype is static), and so do static batch
      sizes that differ (ValueError). An out-of-range integer label or a
      training label row that is not one-hot (non-finite, or soft: e.g.
      from a mixer mapped over a `tf.data` pipeline) makes that step's loss
      NaN (instead of the silently wrong loss an all-zero one-hot row, or
      labels mixed twice, would give), and so do NaN images (through the
      network). `fit` stops at the first NaN or Inf loss with
      `keras_sumix.callbacks.TrainingDiverged`, whose message names these
      causes (it adds a `keras_sumix.callbacks.StopOnNaN` unless a
      `keras.callbacks.TerminateOnNaN` is among the callbacks).
    - uint8 images are cast to float by the mixer and the backbone, not
      rescaled (see `MixingLayer`): give the images the scale the backbone
      expects.
    - A batch of one trains on the clean sample (the mixer returns it
      unmixed with `lam = 1`; for SUMixModel the corrected lam is 1 too).
    - Channels-first images with a channels-last backbone (or the converse)
      raise a ValueError, from the mixer or from the backbone's input spec.
    """

    def __init__(
        self,
        backbone: keras.Model,
        num_classes: int,
        mixer: MixingLayer,
        classifier: keras.layers.Layer | None = None,
        label_smoothing: float = 0.0,
        decouple_weight: float = 0.0,
        label_lam: str = "area",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        if isinstance(classifier, dict):
            classifier = keras.saving.deserialize_keras_object(classifier)
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
        self.label_smoothing = _check_label_smoothing(label_smoothing)
        self.decouple_weight = check_number(
            "decouple_weight", decouple_weight, low=0.0, include_low=True
        )
        if getattr(mixer, "label_smoothing", 0.0):
            raise ValueError(
                f"{type(self).__name__} makes its own targets, so the mixer's "
                "`label_smoothing` would be ignored. Received: mixer with "
                f"label_smoothing={mixer.label_smoothing!r}; pass "
                f"`label_smoothing={mixer.label_smoothing!r}` to "
                f"{type(self).__name__} and leave the mixer's at 0."
            )
        self.backbone = backbone
        self.mixer = mixer
        self.label_lam = check_choice("label_lam", label_lam, transmix.LABEL_LAMS)
        # TransMix reads the class token's attention of a keras-hub ViT/DeiT.
        self._attention = None
        if self.label_lam == "attention":
            transmix.check_mixer(mixer)
            self._attention = transmix.attention_source(backbone)
        # A given classifier is an existing model's head (`from_classifier`).
        self._custom_classifier = classifier is not None
        if classifier is None:
            classifier = keras.layers.Dense(
                num_classes, dtype=self.dtype_policy, name="classifier"
            )
        elif not isinstance(classifier, keras.layers.Layer):
            raise TypeError(
                "`classifier` must be None or a Keras layer from features to "
                f"{num_classes} logits. Received: classifier={classifier!r}."
            )
        self.classifier = classifier
        # A learned mixer (AutoMix) reads a momentum copy of the network.
        self.momentum_encoder = None
        if mixer.needs_features:
            self.momentum_encoder = learned_mixer.momentum_encoder(
                backbone, classifier, mixer
            )
        # A mixer of hidden features (ManifoldMix) runs the backbone in stages.
        self._staged = None
        if mixer.mixes_features:
            self._staged = stages.StagedBackbone(backbone, mixer)
        # The loss terms besides "loss", keyed by the name of the metric
        # that logs each (training only; the total goes to Keras's "loss").
        self._term_trackers = {m.name: m for m in self._term_metrics()}

    def _term_metrics(self) -> list[keras.metrics.Metric]:
        """The metrics of the loss terms `_terms` returns besides `"loss"`:
        the metric named `k` logs `terms[k]`, in training only. Every mixing
        model logs `lam_area` (the mean area lam), with
        `label_lam="attention"` `lam_transmix` (the mean lam its labels are
        mixed with), and with a learned mixer its block loss
        (`learned_mixer.BLOCK_LOSS`)."""
        names = ["lam_area"]
        if self._attention is not None:
            names.append("lam_transmix")
        if self.momentum_encoder is not None:
            names.append(learned_mixer.BLOCK_LOSS)
        if self.decouple_weight:
            names.append(DECOUPLE_LOSS)
        return _means(*names)

    # ------------------------------------------------------------------ #
    # Inference: the plain classifier
    # ------------------------------------------------------------------ #
    def features(self, images: Any, training: bool = False) -> Any:
        """Backbone features, pooled to `(N, D)`: a 4-D map is
        global-average-pooled; `(N, L, D)` tokens give the class token of a
        keras-hub ViT/DeiT backbone, the mean of the tokens otherwise (see
        `keras_sumix.models.pooling`)."""
        if self._staged is not None and self._staged.active is not None:
            return self._staged(images, training=training)  # the mixed pass
        features = self.backbone(images, training=training)
        return pool_features(
            features, token_pooling_of(self.backbone), self.mixer.data_format
        )

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
        if self.momentum_encoder is not None:
            learned_mixer.build(
                self.momentum_encoder,
                self.mixer,
                shape,
                dim,
                self.backbone,
                self.classifier,
            )
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
                `jit_compile=True` compiles the whole step (mixing included)
                with XLA on TensorFlow and JAX, and wraps it in
                `torch.compile` on torch, where it trains exactly as the
                eager step (tested) but breaks the graph at `backward()` and
                at Keras's random seeding: its first step compiles for tens
                of seconds and on a CPU it is no faster than eager.

        Example:

        ```python
        model = keras_sumix.MixupModel(backbone, 10, keras_sumix.layers.MixUp())
        model.compile(optimizer="sgd", metrics=["accuracy"], jit_compile=True)
        ```
        """
        if loss is not None:
            raise ValueError(
                f"{type(self).__name__} has its loss built in; `compile(loss=...)` "
                f"is not supported. Received: loss={loss!r}. Configure the loss "
                "through the model's arguments (e.g. gamma, lambda_mode)."
            )
        super().compile(optimizer=optimizer, **kwargs)

    def fit(self, *args: Any, **kwargs: Any) -> keras.callbacks.History:
        """`keras.Model.fit`, with mixed samples weighted by their sources.

        `class_weight` and `sample_weight` (or weights in the dataset's
        `(x, y, sample_weight)` elements) work as in Keras: a sample's weight
        is its class's weight (of its label's class) or its sample weight.
        A mixed sample takes the weights of its two sources in the mixing
        ratio, `lam * w_a + (1 - lam) * w_b`, and weights its mixed
        cross-entropy (the terms of its two labels); the loss is reduced as
        Keras reduces a weighted loss (`sum(w * loss) / N`). DecoupleMix's
        regulariser (`decouple_weight`) is weighted as the mixed
        cross-entropy; SUMixModel's uncertainty regulariser is not weighted.

        NumPy `x`, `y`, `sample_weight` and `validation_data` are checked
        first (see the class docstring), and training stops with
        `TrainingDiverged` (a `FloatingPointError`) at the first NaN or Inf
        loss: a `keras_sumix.callbacks.StopOnNaN` is added to `callbacks`
        unless one (any `keras.callbacks.TerminateOnNaN`) is already there.
        It reads each batch's loss where Keras reads the batch logs anyway,
        so it adds no device sync to the training loop (see `StopOnNaN`).
        """
        bound = inspect.signature(keras.Model.fit).bind_partial(self, *args, **kwargs)
        given = bound.arguments
        self._check_host_data(given.get("x"), given.get("y"), training=True)
        host_data.check_sample_weight(given.get("sample_weight"))
        validation = given.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) == 2:
            names = ("validation_data[0]", "validation_data[1]")
            self._check_host_data(*validation, names=names)
        callbacks = given.get("callbacks")
        if callbacks is None or isinstance(callbacks, (list, tuple)):
            callbacks = list(callbacks or [])
            if not any(
                isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks
            ):
                callbacks.append(StopOnNaN())
            given["callbacks"] = callbacks
        return super().fit(*bound.args[1:], **bound.kwargs)

    def train_on_batch(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any):
        """`keras.Model.train_on_batch`, with NumPy `x` and `y` checked first
        (see the class docstring). Tensors are not read back: a bad batch
        then shows as a NaN loss in the returned value."""
        self._check_host_data(x, y, training=True)
        return super().train_on_batch(x, y, *args, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any):
        """`keras.Model.evaluate`, with NumPy `y` checked first (class indices
        in range, batch sizes agreeing); images are not required finite."""
        self._check_host_data(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def _check_host_data(
        self, x: Any, y: Any, training: bool = False, names: tuple = ("x", "y")
    ) -> None:
        """`host_data.check_batch` for this model's classes."""
        host_data.check_batch(
            x, y, self.num_classes, type(self).__name__, training, names
        )

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
        training-only loss terms such as `lam_area` are left out)."""
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        return {k: v for k, v in logs.items() if k not in self._term_trackers}

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """Clean cross-entropy of the classifier (what `evaluate` reports),
        weighted as the training loss is (`sum(w * loss) / N`)."""
        del x, training
        _, dense = self._labels(y)
        if sample_weight is not None:
            sample_weight = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        return cross_entropy.weighted_mean(
            cross_entropy.per_sample(y_pred, dense), sample_weight
        )

    # ------------------------------------------------------------------ #
    # Training
    # ------------------------------------------------------------------ #
    def train_step(self, *args: Any) -> Any:
        return backend.train_step(self, *args)

    def _labels(self, y: Any) -> tuple[Any, Any]:
        """Integer `(N,)` and one-hot/soft float32 `(N, C)` forms of `y`."""
        y = ops.convert_to_tensor(y)
        if len(y.shape) == 2 and y.shape[-1] == 1:
            y = ops.reshape(y, (-1,))
        if len(y.shape) == 1:
            dtype = keras.backend.standardize_dtype(y.dtype)
            if "int" not in dtype:
                raise TypeError(
                    "Labels of shape (N,) must be integer class indices. "
                    f"Received dtype {dtype}; cast them, or pass one-hot "
                    f"labels (N, {self.num_classes})."
                )
            labels = ops.cast(y, "int32")
            return labels, ops.one_hot(labels, self.num_classes, dtype="float32")
        if len(y.shape) == 2 and y.shape[-1] in (None, self.num_classes):
            dense = ops.cast(y, "float32")
            return ops.cast(ops.argmax(dense, axis=-1), "int32"), dense
        raise ValueError(
            f"Labels must be integer (N,) or one-hot (N, {self.num_classes}). "
            f"Received shape {tuple(y.shape)}."
        )

    def training_terms(
        self, x: Any, y: Any, sample_weight: Any = None
    ) -> tuple[dict[str, Any], Any]:
        """Mix the batch, run the forward pass(es) and compute the loss.

        Backend-agnostic; the backend-specific step differentiates
        `terms["loss"]`.

        Args:
            x: the clean images.
            y: their labels, integer `(N,)` / `(N, 1)` or one-hot `(N, C)`.
            sample_weight: None or each clean sample's weight `(N,)` (what
                Keras makes of `class_weight` or `sample_weight`); a mixed
                sample is weighted by `lam * w_a + (1 - lam) * w_b`.

        Returns:
            `(terms, y_pred)`: the loss terms (scalars: `"loss"` and those
            of `_term_metrics`, the ones logged) and the logits compiled
            metrics are computed on.
        """
        if not self.built:  # TF and torch build lazily, in the first step
            self.build(tuple(x.shape))
        labels, dense = self._labels(y)
        n_x, n_y = x.shape[0], labels.shape[0]
        if n_x is not None and n_y is not None and n_x != n_y:
            raise ValueError(
                f"The labels' batch size ({n_y}) does not match the images' ({n_x})."
            )
        weight = None
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        terms, y_pred = self._terms(x, labels, dense, weight)
        declared = {"loss", *self._term_trackers}
        if set(terms) != declared:
            raise ValueError(
                f"{type(self).__name__}._terms returned the terms "
                f"{sorted(terms)}, but the model declares {sorted(declared)} "
                "(`loss` and those of `_term_metrics`)."
            )
        # Label values cannot raise inside a traced step: an out-of-range
        # index (an all-zero one-hot row) or a row that is not one-hot
        # (non-finite, or soft: labels already mixed would be mixed twice)
        # makes the loss NaN rather than silently wrong, and `fit` stops on it.
        valid = ops.logical_and(
            ops.all((labels >= 0) & (labels < self.num_classes)),
            cross_entropy.is_one_hot(dense),
        )
        terms = {**terms, "loss": ops.where(valid, terms["loss"], float("nan"))}
        return terms, y_pred

    def update_training_metrics(
        self, terms: dict[str, Any], y: Any, y_pred: Any, sample_weight: Any = None
    ) -> dict[str, Any]:
        """Update Keras's loss tracker with `terms["loss"]`, each declared
        term's metric, and the compiled metrics (weighted by each sample's
        own `sample_weight`, if given); return the logs."""
        self._loss_tracker.update_state(terms["loss"])
        for name, metric in self._term_trackers.items():
            metric.update_state(terms[name])
        return super().compute_metrics(None, y, y_pred, sample_weight)

    def _terms(self, images: Any, labels: Any, dense: Any, weight: Any | None):
        """The loss terms and the logits compiled metrics see.

        Args:
            images: the clean batch (this replica's).
            labels: integer labels `(N,)`.
            dense: one-hot labels `(N, C)` (hard: the saliency and a learned
                mixer's block use them; `_smoothed` gives the targets).
            weight: None or each clean sample's weight, float32 `(N,)`.

        Returns:
            `(terms, y_pred)`: `terms` maps `"loss"` and each name of
            `_term_metrics` to a scalar.
        """
        raise NotImplementedError

    def _smoothed(self, dense: Any) -> Any:
        """The training targets: one-hot `dense` smoothed by
        `label_smoothing` `e`, `dense * (1 - e) + e / C` (Keras's and timm's
        convention), before they are mixed."""
        if not self.label_smoothing:
            return dense
        e = self.label_smoothing
        return dense * (1.0 - e) + e / self.num_classes

    def _mix_global_batch(
        self, images: Any, dense: Any, saliency: Any | None = None
    ) -> tuple[Any, Any]:
        """Mix the global batch (see `replicas`): one device's batch, or
        under `tf.distribute` the replicas' shards gathered, so that the
        pairing and the batch statistics never depend on the device count.
        The `MixResult` is global; a replica takes its rows with
        `replicas.local_rows`. A mixer with `needs_saliency` (PuzzleMix) is
        given `saliency`, this replica's saliency of its clean batch, or if
        None the model's (`saliency`), gathered like the images.

        Returns:
            `(mix, mixer_loss)`: the `MixResult` (for a mixer of hidden
            features, ManifoldMix, the draw: `stages.StagedMix`, which the
            mixed pass applies), and for a learned mixer
            (`needs_features`: AutoMix) its block loss
            (`learned_mixer.mix`), else None.
        """
        if self.momentum_encoder is not None:
            return learned_mixer.mix(self.momentum_encoder, self.mixer, images, dense)
        if self._staged is not None:  # ManifoldMix: `stages.StagedMix`
            return stages.draw(self.mixer, replicas.gather(images)), None
        context = {}
        if self.mixer.needs_saliency:
            if saliency is None:
                saliency = self._saliency(images, dense)
            context["saliency"] = replicas.gather(saliency)
        return self.mixer.mix(replicas.gather(images), **context), None

    def _mixed_pass(self, forward: Any, mix: Any, images: Any) -> tuple[Any, Any]:
        """`forward` on this replica's rows of the mixed batch, and the lam
        the labels are mixed with: the area lam `mix.lam`, or with
        `label_lam="attention"` TransMix's, from the class token's attention
        of this very pass (`keras_sumix.models.transmix`). For a mixer of
        hidden features (ManifoldMix) `forward` runs on the clean images and
        `features` runs the backbone in stages, blending at the drawn stage
        (`keras_sumix.models.stages`).

        Returns:
            `(outputs, lam)`: what `forward` returns, and the global float32
            `(N,)` lam.
        """
        if self._staged is not None:  # ManifoldMix: the clean images, staged
            with self._staged.mixing(mix):
                return forward(images), mix.lam
        mixed_images = replicas.local_rows(mix.images, images)
        if self._attention is None:
            return forward(mixed_images), mix.lam
        with transmix.recording(self._attention) as record:
            outputs = forward(mixed_images)
        lam = transmix.label_lam(
            self._attention, record, mix, images, self.mixer.data_format
        )
        return outputs, lam

    def _label_lam_terms(self, lam: Any) -> dict[str, Any]:
        """The `lam_transmix` term with `label_lam="attention"`, else none."""
        return {} if self._attention is None else {"lam_transmix": ops.mean(lam)}

    def _with_mixer_loss(
        self,
        terms: dict[str, Any],
        mixer_loss: Any,
        clean_logits: Any,
        targets: Any,
        weight: Any | None = None,
    ) -> dict[str, Any]:
        """`terms` with a learned mixer's (`learned_mixer.add_losses`), or
        as they are when `mixer_loss` is None (any other mixer)."""
        if mixer_loss is None:
            return terms
        return learned_mixer.add_losses(
            terms, self.mixer, mixer_loss, clean_logits, targets, weight
        )

    def _with_decoupled(
        self,
        terms: dict[str, Any],
        logits: Any,
        dense: Any,
        mix: Any,
        weight: Any | None,
        lam: Any | None = None,
        reduction: str = "per_sample",
    ) -> dict[str, Any]:
        """`terms` with DecoupleMix's regulariser when `decouple_weight > 0`
        (as they are otherwise): `D_a`, `D_b` of the mixed pass
        (`keras_sumix.losses.decoupled_regularizer`) against the smoothed
        targets, each mixed sample's times its `mixed_weight` (from the
        label lam, as its mixed cross-entropy), reduced with `lam` as
        `reduction` says (`_reduce`), logged as `decouple_loss` and added to
        `terms["loss"]` times `decouple_weight`.

        Args:
            terms: the model's loss terms, `"loss"` among them.
            logits: this replica's logits of the mixed pass.
            dense: this replica's one-hot labels `(N, C)`.
            mix: the global `MixResult`, with the lam its labels are mixed
                with.
            weight: None or each clean sample's weight (this replica's).
            lam: the ratio of `D_a` (SUMix: the corrected lam); None:
                `mix.lam`.
            reduction: `"per_sample"` or `"reference"`.
        """
        if not self.decouple_weight:
            return terms
        d_a, d_b = _decoupled_terms(
            replicas.gather(logits),
            self._smoothed(replicas.gather(dense)),
            mix.permutation,
        )
        mixed_weight = cross_entropy.mixed_weight(
            replicas.gather(weight), mix.permutation, mix.lam
        )
        if mixed_weight is not None:
            d_a, d_b = mixed_weight * d_a, mixed_weight * d_b
        lam = ops.reshape(ops.cast(mix.lam if lam is None else lam, "float32"), (-1,))
        decoupled = _reduce(reduction, lam, d_a, d_b)
        loss = terms["loss"] + self.decouple_weight * decoupled
        return {**terms, "loss": loss, DECOUPLE_LOSS: decoupled}

    def mix_features(self, images: Any) -> Any:
        """The feature map a mixer with `needs_features` (AutoMix) mixes
        by: the momentum encoder's `feature_layer` on `images`, as in
        training (batch norm on the statistics of `images`). It assigns
        nothing: the copy's moving statistics and seed states stay as they
        are.

        Args:
            images: the clean batch, as the model takes it.

        Returns:
            The feature map, in the images' data format.

        Raises:
            ValueError: the mixer takes no features.
        """
        if self.momentum_encoder is None:
            raise ValueError(
                f"{type(self.mixer).__name__} takes no features (`needs_features` "
                "is False); only a learned mixer such as AutoMix does."
            )
        images = ops.convert_to_tensor(images)
        if not self.built:
            self.build(tuple(images.shape))
        return learned_mixer.features(self.momentum_encoder, images)

    def after_optimizer_step(self) -> None:
        """What follows each optimizer step (the backend steps call it): a
        learned mixer's momentum encoder moves towards the network, with the
        mixer's momentum for the step just taken."""
        if self.momentum_encoder is None:
            return
        learned_mixer.follow(
            self.momentum_encoder,
            self.mixer,
            self.backbone,
            self.classifier,
            self.optimizer.iterations - 1,
        )

    def saliency(self, images: Any, labels: Any) -> Any:
        """The saliency a mixer with `needs_saliency` (PuzzleMix) mixes by:
        `sqrt(mean over channels of (dL/dx)^2)`, `L` the summed cross-entropy
        of the classifier in inference mode on the clean batch (one extra
        forward and backward pass, as the reference PuzzleMix runs it). No
        gradient flows through it. (`SUMixModel(saliency_pass="raw")` mixes
        by the same map of its raw pass instead, in training mode.)

        Args:
            images: the clean batch, as the model takes it.
            labels: integer `(N,)` or one-hot `(N, C)`.

        Returns:
            float32 `(N, H, W)`.
        """
        return self._saliency(ops.convert_to_tensor(images), self._labels(labels)[1])

    def _saliency(self, images: Any, dense: Any) -> Any:
        return saliency_step.separate(
            lambda x: self(x, training=False), images, dense, self.mixer.data_format
        )

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
            float32 `(N,)`: the label lam for MixupModel (the area lam, or
            TransMix's with `label_lam="attention"`), the corrected lam for
            SUMixModel.
        """
        del labels
        if self._attention is None:
            return ops.cast(mix.lam, "float32")
        _, lam = self._mixed_pass(lambda x: self(x, training=training), mix, images)
        return lam

    # ------------------------------------------------------------------ #
    # Serialization
    # ------------------------------------------------------------------ #
    def get_config(self) -> dict[str, Any]:
        config = {
            **super().get_config(),  # name, trainable, dtype (the policy)
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "mixer": keras.saving.serialize_keras_object(self.mixer),
            "label_smoothing": self.label_smoothing,
            "decouple_weight": self.decouple_weight,
            "label_lam": self.label_lam,
        }
        if self._custom_classifier:
            config["classifier"] = keras.saving.serialize_keras_object(self.classifier)
        return config

    @classmethod
    def from_classifier(
        cls,
        model: keras.Model,
        mixer: MixingLayer,
        num_classes: int | None = None,
        **kwargs: Any,
    ) -> MixingModel:
        """Train a complete Keras classifier you already have with this
        model's method, reusing its final Dense layer as the head.

        `model` (a `keras.applications` model with its top, a keras-hub
        `ImageClassifier`, a Sequential or functional model ending in
        `Dense(num_classes)`) is cut before its final Dense (or MobileNetV3's
        1x1 `Conv2D` head): the layers before it become the backbone, the
        Dense the classifier, all shared with `model`, so after `fit` the
        original `model` object predicts with the trained weights. Training
        uses the Dense's pre-activation logits: a softmax Dense (or a
        trailing softmax `Activation` / `Softmax` layer, which is left out)
        is trained on the logits before its softmax; a linear one as it is.
        `predict` of the returned model gives those logits; `model.predict`
        gives what `model` always gave (probabilities for a softmax head).

        Preprocessing that is not a layer of `model` (a keras-hub
        classifier's `preprocessor`, `keras.applications.*.preprocess_input`)
        is not applied: feed images as `model` itself takes them.

        Args:
            model: the classifier (functional or Sequential, one input, one
                `(N, C)` output).
            mixer: a keras_sumix mixing layer.
            num_classes: None (the final Dense's units) or the expected
                number of classes, checked against them.
            **kwargs: the model's other arguments (`gamma`, `lambda_mode`,
                ... for SUMixModel; `name`).

        Returns:
            A `MixupModel` / `SUMixModel` whose `backbone` and `classifier`
            share `model`'s layers. It saves and loads like any other
            (`model.save(...)`, `keras.saving.load_model(...)`); the loaded
            copy is standalone.

        Raises:
            ValueError: `model` has no final Dense (the message names the
                layer found instead), is not functional/Sequential, has an
                output activation other than softmax/linear, or `num_classes`
                disagrees with the Dense's units.

        Example:

        ```python
        net = keras.applications.MobileNetV3Small(
            weights=None, input_shape=(32, 32, 3), classes=5
        )
        model = keras_sumix.SUMixModel.from_classifier(
            net, keras_sumix.layers.CutMix(1.0)
        )
        model.compile(optimizer="adam", metrics=["accuracy"])
        model.fit(images, labels, epochs=2)
        net.predict(images)  # the trained classifier, softmax outputs
        ```
        """
        from keras_sumix.models.from_classifier import split_classifier

        if num_classes is not None:
            num_classes = _check_num_classes(num_classes)
        backbone, head, info = split_classifier(model, num_classes)
        return cls(backbone, info["num_classes"], mixer, classifier=head, **kwargs)


@keras.saving.register_keras_serializable(package="keras_sumix")
class MixupModel(MixingModel):
    """The baseline: mixed cross-entropy with the area lam (MCE).

    Each training step mixes the batch with `mixer.mix`, runs one forward
    pass on the mixed images and minimises
    `mean(lam * CE(logits, y_a) + (1 - lam) * CE(logits, y_b))`. Evaluation
    and prediction use the plain classifier on clean images. Training-time
    compiled metrics are measured on the mixed batch against each sample's
    own label.

    Bad data (NaN images, out-of-range or float labels, empty or mismatched
    batches, channels-first images) raises or stops `fit` with an error, as
    `MixingModel` documents; uint8 images are cast, not rescaled.

    Args:
        backbone: a Keras model from images to features (4-D maps are
            global-average-pooled, `(N, L, D)` tokens pooled as
            `keras_sumix.models.pooling` says), e.g.
            `keras_sumix.models.resnet18_cifar()` or
            `keras.applications.ResNet50(include_top=False)`.
        num_classes: number of classes.
        mixer: a keras_sumix mixing layer. A learned one (`AutoMix`) adds
            its mix block's loss and a clean pass with its cross-entropy,
            and the model keeps and updates its momentum encoder
            (`keras_sumix.layers.AutoMix`); history then logs
            `mix_block_loss`.
        label_smoothing: share `e` in [0, 1) of each label spread over the
            classes, as in `keras.losses.CategoricalCrossentropy`: the
            one-hot labels are smoothed, `y * (1 - e) + e / C`, then mixed
            (timm's convention), for the mixed cross-entropy and AutoMix's
            clean one. Defaults to 0 (none). Set it here, not on the mixer
            (the model makes its own targets: a mixer's `label_smoothing`
            raises a ValueError).
        label_lam: the lam the labels are mixed with. `"area"` (default):
            the mixer's, the share of pixels kept. `"attention"`: TransMix
            (Chen et al., CVPR 2022) for a vision transformer and a mixer
            with a pixel mask (CutMix, FMix, SaliencyMix, ResizeMix,
            PuzzleMix, AutoMix): the mean of the area lam and the share of
            the class token's attention (last block, mean over heads) on the
            patches each image keeps, read from the mixed pass itself, with
            no gradient (`keras_sumix.models.transmix`); history then logs
            `lam_transmix`. It needs a keras-hub ViT (with class token) or
            DeiT backbone, e.g. `keras_sumix.models.deit_small`: another
            backbone (Swin, a CNN) or a mixer without a mask (MixUp,
            ManifoldMix) raises a ValueError, at construction or at the
            first step (MixUp).
        decouple_weight: the weight `eta >= 0` of DecoupleMix's decoupled
            regulariser (Liu et al., NeurIPS 2023;
            `keras_sumix.losses.decoupled_regularizer`), added to the mixed
            cross-entropy: `loss = MCE + eta * mean(lam * D_a + (1 - lam) *
            D_b)`, with the label lam, the smoothed targets and the mixed
            samples' weights of the MCE. Defaults to 0 (off); the
            reference's base configs use 0.1. With a positive weight history
            logs `decouple_loss` (before the weight). Any mixer.
        **kwargs: `keras.Model` keyword arguments (`name`, `dtype`: a dtype
            policy such as `"mixed_bfloat16"` for the classifier, saved with
            the model), and `classifier`: None (a new `Dense(num_classes)`)
            or an existing head layer, which `from_classifier` sets.

    Example:

    ```python
    model = keras_sumix.MixupModel(
        keras_sumix.models.resnet18_cifar(), 100, keras_sumix.layers.CutMix(0.2)
    )
    model.compile(optimizer="sgd", metrics=["accuracy"])
    model.fit(images, labels, epochs=10)
    ```
    """

    def _terms(self, images: Any, labels: Any, dense: Any, weight: Any | None):
        mix, mixer_loss = self._mix_global_batch(images, dense)
        # A learned mixer (AutoMix) adds the clean cross-entropy.
        clean = None if mixer_loss is None else self(images, training=True)
        logits, lam = self._mixed_pass(lambda x: self(x, training=True), mix, images)
        loss = cross_entropy.mixed(
            replicas.gather(logits),
            self._smoothed(replicas.gather(dense)),
            mix.permutation,
            lam,
            replicas.gather(weight),
        )
        terms = {"loss": loss, "lam_area": ops.mean(mix.lam)}
        terms.update(self._label_lam_terms(lam))
        terms = self._with_decoupled(
            terms, logits, dense, mix._replace(lam=lam), weight
        )
        targets = self._smoothed(dense)
        terms = self._with_mixer_loss(terms, mixer_loss, clean, targets, weight)
        return terms, logits


@keras.saving.register_keras_serializable(package="keras_sumix")
class SUMixModel(MixingModel):
    """SUMix (ECCV 2024): a learned per-sample mix ratio and an uncertainty
    regulariser, inside `model.fit`.

    Each training step mixes the batch with `mixer.mix`, runs the network on
    the clean batch (raw pass) and on the mixed batch (mixed pass), both in
    training mode, and minimises `keras_sumix.sumix_loss` (the
    documentation's SUMix page). The defaults (`variant="paper"`) reproduce
    the authors' code; `variant="recommended"` is the reading this project's
    study supports (the SUMix page, section Variants). Evaluation and
    prediction use the plain classifier on clean images; the uncertainty
    head is a training-time device. Compiled metrics run on the raw pass.
    Bad data (NaN images, out-of-range or float labels, empty or mismatched
    batches, channels-first images) raises or stops `fit` with an error, as
    `MixingModel` documents; uint8 images are cast, not rescaled; a batch of
    one trains with lam = 1 (area and corrected).

    History reports `loss`, `mix_loss`, `reg_loss` (before gamma),
    `lam_area` (mean area lam) and `lam_sumix` (mean corrected lam); with
    `mixer=AutoMix(...)` also `mix_block_loss`, and the raw pass is
    AutoMix's clean pass (the SUMix page, section "SUMix on AutoMix"); with
    `decouple_weight > 0` also `decouple_loss`.

    Mixed precision: under `keras.mixed_precision.set_global_policy(
    "mixed_float16")` or `"mixed_bfloat16"` the networks run in half
    precision while the SUMix loss is computed in float32 (its `exp(-N x)`
    terms underflow in float16); with `"mixed_float16"`, `compile` wraps the
    optimizer in a `LossScaleOptimizer` and the train step scales the loss
    and unscales the gradients as Keras's own step does. Both policies train
    on TensorFlow, JAX and torch (CPU included).

    Resume: the mixer's random state is saved with the weights (and the
    optimizer's), so `keras.callbacks.BackupAndRestore(save_freq="epoch")`
    resumes a crashed run exactly, provided the data of each epoch does not
    depend on how many epochs this process has run (see
    `keras_sumix.data.make_pipeline(epoch=...)`). With an integer
    `save_freq`, Keras restarts the interrupted epoch from its first batch on
    top of weights that had already seen some of it.

    Args:
        backbone: a Keras model from images to features (4-D maps are
            global-average-pooled, `(N, L, D)` tokens pooled as
            `keras_sumix.models.pooling` says).
        num_classes: number of classes.
        mixer: a keras_sumix mixing layer.
        variant: the named set of SUMix options (`"paper"`, the default:
            the published method, every option at its default; or
            `"recommended"`, `keras_sumix.models.variants.VARIANTS`); an
            option given explicitly wins over its variant's value.
        label_smoothing: share `e` in [0, 1) of each label spread over the
            classes, as in `keras.losses.CategoricalCrossentropy`: the
            one-hot labels are smoothed, `y * (1 - e) + e / C`, then mixed.
            It applies to the targets the classifier is trained on: the two
            terms of the mixed cross-entropy (`mix_loss`, with the corrected
            lam) and AutoMix's clean cross-entropy. The corrected lam and the
            uncertainty regulariser (which trains the uncertainty head on the
            class indices) keep the hard labels. Defaults to 0 (none).
        label_lam: `"area"` (default) or `"attention"`: the lam SUMix
            corrects (TransMix's, see `MixupModel`); the regulariser
            weighs its two terms by it too. With `lambda_mode="area"` the
            TransMix lam is used as it is.
        decouple_weight: the weight `eta >= 0` of DecoupleMix's decoupled
            regulariser, as for `MixupModel`, added to SUMix's loss:
            `loss = mix_loss + gamma * reg_loss + eta * decouple_loss`. Its
            two terms are weighted by the corrected lam and reduced as
            `reduction` says, like `mix_loss`, the mixed cross-entropy it
            regularises (the area lam would split the sample by the ratio
            SUMix has just corrected); targets smoothed and samples
            weighted as `mix_loss`. Defaults to 0 (off).
        **kwargs: SUMix's options by name (`keras_sumix.options.OPTIONS`
            describes each, with its default and validation; not given or
            None: the variant's value, else the default), then
            `keras.Model` keyword arguments (`name`, `dtype`: a dtype policy
            such as `"mixed_bfloat16"` for the heads, saved with the model)
            and `classifier` (see `MixupModel`). The options follow.
        gamma: weight of the uncertainty regulariser (paper: 0.5).
        lambda_mode: `"reference"` (the authors' formula; paper),
            `"distance"` (the paper's prose; recommended) or `"area"` (no
            correction).
        regularizer: which terms the regulariser's logits are made of:
            `"both"` (`beta + alpha`), `"uncertainty"` (`beta`),
            `"semantic"` (`alpha`, no gradient) or `"none"` (no regulariser);
            their form is `regularizer_logits`.
        semantic_scale: the scale `s` of the semantic term; None (default)
            uses the batch size, as the reference does: the *global* batch
            under data parallelism (the documentation's Scaling out page).
        distance_scale: the temperature `t` of `lambda_mode="distance"`
            (4.0, `keras_sumix.losses.DEFAULT_DISTANCE_SCALE`).
        reduction: `"reference"` (batch-mean weights; paper) or
            `"per_sample"` (each sample its own ratio, as the paper says;
            recommended).
        raw_pass_gradient: if False, no gradient flows through the raw pass
            (its outputs are treated as constants), which makes the step
            cheaper; the uncertainty head then learns from the mixed pass
            only. True in paper (faithful to the spec), False in
            recommended.
        saliency_pass: where a mixer with `needs_saliency` (PuzzleMix) gets
            its saliency, `sqrt(mean over channels of (dL/dx)^2)` with `L`
            the summed cross-entropy of the clean batch. `"separate"`
            (default, as the reference PuzzleMix): from an extra forward
            and input-backward pass in inference mode (batch norm's moving
            statistics, no dropout), before the raw pass. `"raw"`: from the
            raw pass itself, in training mode (batch norm's batch
            statistics, dropout active), differentiated with respect to
            the clean images; this saves one forward pass per step but not
            the input backward, which must run before the mixed pass.
            `"raw"` needs a mixer with `needs_saliency`.
        regularizer_logits: the form of the regulariser's logits, made of
            `x = beta + alpha` (`regularizer="both"`), `beta`
            (`"uncertainty"`) or `alpha` (`"semantic"`): `"exp"` (the
            authors' code, `z = exp(-x) / T`) or `"negative"` (the
            SUMix-JAX port, `z = -x / T`). `"semantic"` sends no gradient
            in either form.
        regularizer_temperature: the `T` dividing the regulariser's
            logits, `> 0` (paper: 1.0, no scaling).

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
        variant: str = DEFAULT_VARIANT,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        given = {name: kwargs.pop(name) for name in NAMES if name in kwargs}
        super().__init__(
            backbone, num_classes, mixer, label_smoothing=label_smoothing, **kwargs
        )
        # Every SUMix option becomes an attribute of the same name.
        for name, value in resolve_options(variant, **given).items():
            setattr(self, name, value)
        self.variant = variant
        if self.saliency_pass == "raw" and not self.mixer.needs_saliency:
            raise ValueError(
                "`saliency_pass='raw'` takes the saliency of a mixer with "
                "`needs_saliency` (PuzzleMix) from the raw pass, but the mixer "
                f"{type(self.mixer).__name__} takes no saliency "
                "(`needs_saliency` is False). Received: saliency_pass='raw'; "
                "use saliency_pass='separate' (the default) with this mixer."
            )
        self.uncertainty_head = UncertaintyHead(
            num_classes, dtype=self.dtype_policy, name="uncertainty_head"
        )
        # Only these regularisers send gradient to the head; otherwise it is
        # frozen (rather than handed empty gradients every step).
        self.uncertainty_head.trainable = self.regularizer in ("both", "uncertainty")

    def _heads(self) -> list[keras.layers.Layer]:
        return [self.classifier, self.uncertainty_head]

    def _term_metrics(self) -> list[keras.metrics.Metric]:
        """`MixingModel`'s terms, and `mix_loss`, `reg_loss` (before gamma)
        and `lam_sumix` (the mean corrected lam)."""
        return [*super()._term_metrics(), *_means("mix_loss", "reg_loss", "lam_sumix")]

    def _outputs(self, images: Any, training: bool = True) -> tuple[Any, Any]:
        features = self.features(images, training=training)
        return self.classifier(features), self.uncertainty_head(features)

    def _loss(self, labels, raw, mixed, mix) -> dict[str, Any]:
        return sumix_loss(
            labels, *raw, *mixed, mix.permutation, mix.lam, **self._loss_options()
        )

    def _loss_options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in LOSS_OPTIONS}

    def _targets_loss(
        self, out: dict[str, Any], mix_logits: Any, dense: Any, mix: Any, weight: Any
    ) -> dict[str, Any]:
        """`sumix_loss`'s output with its mixed cross-entropy recomputed on
        smoothed targets and weighted samples (`label_smoothing`,
        `sample_weight`): `CE_a`, `CE_b` against `smooth(y_a)`,
        `smooth(y_b)`, each mixed sample's times its `mixed_weight`, then
        reduced with the corrected lam as `reduction` says. The corrected lam
        and the regulariser stay on the hard labels, unweighted."""
        targets = self._smoothed(dense)
        ce_a = cross_entropy.per_sample(mix_logits, targets)
        ce_b = cross_entropy.per_sample(
            mix_logits, ops.take(targets, mix.permutation, axis=0)
        )
        mixed_weight = cross_entropy.mixed_weight(
            replicas.gather(weight), mix.permutation, mix.lam
        )
        if mixed_weight is not None:
            ce_a, ce_b = mixed_weight * ce_a, mixed_weight * ce_b
        mix_loss = _reduce(self.reduction, out["lam"], ce_a, ce_b)
        return {
            **out,
            "loss": mix_loss + self.gamma * out["reg_loss"],
            "mix_loss": mix_loss,
        }

    def training_lam(
        self, images: Any, labels: Any, mix: Any, training: bool = False
    ) -> Any:
        labels, _ = self._labels(labels)
        raw = self._outputs(images, training=training)
        mixed, lam = self._mixed_pass(
            lambda x: self._outputs(x, training=training), mix, images
        )
        return self._loss(labels, raw, mixed, mix._replace(lam=lam))["lam"]

    def _terms(self, images: Any, labels: Any, dense: Any, weight: Any | None):
        if self.saliency_pass == "raw":
            raw, saliency = saliency_step.from_raw_pass(
                self._outputs, images, dense, self.mixer.data_format
            )
            mix, mixer_loss = self._mix_global_batch(images, dense, saliency)
        else:  # the saliency pass (if any) runs before the raw pass
            mix, mixer_loss = self._mix_global_batch(images, dense)
            raw = self._outputs(images)
        clean_logits = raw[0]  # AutoMix's clean pass, with gradient
        if not self.raw_pass_gradient:
            raw = tuple(ops.stop_gradient(t) for t in raw)
        raw_logits, raw_uncertainty = raw
        mixed, lam = self._mixed_pass(self._outputs, mix, images)
        labelled = mix._replace(lam=lam)  # SUMix corrects the label lam
        out = self._loss(
            replicas.gather(labels),
            (replicas.gather(raw_logits), replicas.gather(raw_uncertainty)),
            tuple(replicas.gather(t) for t in mixed),
            labelled,
        )
        if self.label_smoothing or weight is not None:
            out = self._targets_loss(
                out,
                replicas.gather(mixed[0]),
                replicas.gather(dense),
                labelled,
                weight,
            )
        terms = {
            "loss": out["loss"],
            "mix_loss": out["mix_loss"],
            "reg_loss": out["reg_loss"],
            "lam_area": ops.mean(mix.lam),
            "lam_sumix": ops.mean(out["lam"]),
            **self._label_lam_terms(lam),
        }
        # DecoupleMix splits the sample with the corrected lam, as mix_loss.
        terms = self._with_decoupled(
            terms, mixed[0], dense, labelled, weight, out["lam"], self.reduction
        )
        targets = self._smoothed(dense)
        terms = self._with_mixer_loss(terms, mixer_loss, clean_logits, targets, weight)
        return terms, raw_logits

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **{name: getattr(self, name) for name in NAMES},
            "variant": self.variant,
        }
