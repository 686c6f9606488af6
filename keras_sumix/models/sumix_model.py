"""`MixupModel` (mixed cross-entropy) and `SUMixModel`: classifiers that mix
their own batches inside `fit`, and the `UncertaintyHead` SUMix trains with.

Both share one training loop (`MixingModel`): mix with the mixer, run the
forward pass(es), compute the loss, apply the gradient (the backend-specific
part, in `train_step.py`). Evaluation and prediction use the plain classifier
on clean images.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_sumix._validation import (
    check_class_indices,
    check_int,
    check_number,
    host_array,
)
from keras_sumix.callbacks import StopOnNaN
from keras_sumix.layers.base import MixingLayer
from keras_sumix.losses import _reduce, sumix_loss
from keras_sumix.models import replicas
from keras_sumix.models import train_step as _train_step
from keras_sumix.models.momentum import MomentumEncoder
from keras_sumix.models.pooling import pool_features, token_pooling_of
from keras_sumix.models.variants import DEFAULT_VARIANT, resolve_options


def _check_num_classes(num_classes: Any) -> int:
    return check_int("num_classes", num_classes, 2)


def _summed_cross_entropy(dense: Any, logits: Any) -> Any:
    """The loss a saliency is the input gradient of: the cross-entropy
    summed over the batch, so that row `i` of its gradient is sample `i`'s."""
    log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    return -ops.sum(dense * log_p)


def _per_sample_cross_entropy(logits: Any, target: Any) -> Any:
    """Cross-entropy of each row of `logits` against soft targets, `(N,)`."""
    log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    return -ops.sum(target * log_p, axis=-1)


def _weighted_mean(values: Any, weight: Any | None) -> Any:
    """`mean(weight * values)` (all weights 1 when None): Keras's
    `"sum_over_batch_size"` reduction of a weighted loss."""
    return ops.mean(values if weight is None else weight * values)


def _mixed_weight(weight: Any | None, permutation: Any, lam: Any) -> Any | None:
    """A mixed sample's weight, `lam * w + (1 - lam) * w[permutation]`,
    float32 `(N,)` (None when `weight` is None)."""
    if weight is None:
        return None
    lam = ops.reshape(ops.cast(lam, "float32"), (-1,))
    return lam * weight + (1.0 - lam) * ops.take(weight, permutation, axis=0)


def _mixed_cross_entropy(
    logits: Any, dense: Any, permutation: Any, lam: Any, weight: Any | None = None
) -> Any:
    """MCE: the cross-entropy against `lam * y + (1 - lam) * y[permutation]`,
    each mixed sample weighted by `_mixed_weight` of `weight` (if given)."""
    lam = ops.reshape(ops.cast(lam, "float32"), (-1, 1))
    target = lam * dense + (1.0 - lam) * ops.take(dense, permutation, axis=0)
    return _weighted_mean(
        _per_sample_cross_entropy(logits, target),
        _mixed_weight(weight, permutation, lam),
    )


def _is_one_hot(dense: Any) -> Any:
    """Whether every row of `dense` `(N, C)` is one-hot: entries 0 or 1
    summing to 1 (a scalar bool tensor; False for NaN entries)."""
    binary = ops.all(ops.logical_or(ops.equal(dense, 0.0), ops.equal(dense, 1.0)))
    return ops.logical_and(binary, ops.all(ops.equal(ops.sum(dense, axis=-1), 1.0)))


def _check_sample_weight(sample_weight: Any) -> None:
    """Raise if host (NumPy) `sample_weight` holds a negative or non-finite
    weight (a tensor is not read back)."""
    weights = host_array(sample_weight)
    if weights is None or weights.dtype.kind not in "fiub":
        return
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        raise ValueError(
            "`sample_weight` must hold finite weights >= 0. Received "
            f"{weights.reshape(-1)[np.argmax(bad.reshape(-1))]!r} at flat index "
            f"{int(np.argmax(bad.reshape(-1)))}."
        )


def _gather_weight(weight: Any | None) -> Any | None:
    """The global batch's sample weights (see `replicas.gather`), or None."""
    return None if weight is None else replicas.gather(weight)


def _check_label_smoothing(value: Any) -> float:
    return check_number(
        "label_smoothing",
        value,
        low=0.0,
        high=1.0,
        include_low=True,
        include_high=False,
    )


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
        # Training-only trackers (the total loss goes to Keras's own "loss").
        self.lam_area_tracker = keras.metrics.Mean(name="lam_area")
        # A learned mixer (AutoMix) reads a momentum copy of the network.
        self.momentum_encoder = None
        if mixer.needs_features:
            self.momentum_encoder = MomentumEncoder(
                backbone,
                classifier,
                mixer.feature_layer,
                mixer.data_format,
                name="momentum_encoder",
            )
            self.mix_block_loss_tracker = keras.metrics.Mean(name="mix_block_loss")

    # ------------------------------------------------------------------ #
    # Inference: the plain classifier
    # ------------------------------------------------------------------ #
    def features(self, images: Any, training: bool = False) -> Any:
        """Backbone features, pooled to `(N, D)`: a 4-D map is
        global-average-pooled; `(N, L, D)` tokens give the class token of a
        keras-hub ViT/DeiT backbone, the mean of the tokens otherwise (see
        `keras_sumix.models.pooling`)."""
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
        encoder = self.momentum_encoder
        if encoder is not None:
            encoder.classifier.build((shape[0], dim))
            self.mixer.build_mix_block(encoder.feature_shape(shape))
            encoder.reset(self.backbone, self.classifier)
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
        Keras reduces a weighted loss (`sum(w * loss) / N`). SUMixModel's
        uncertainty regulariser is not weighted.

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
        self._check_host_data(given.get("x"), given.get("y"), finite=True)
        _check_sample_weight(given.get("sample_weight"))
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
        self._check_host_data(x, y, finite=True)
        return super().train_on_batch(x, y, *args, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any):
        """`keras.Model.evaluate`, with NumPy `y` checked first (class indices
        in range, batch sizes agreeing); images are not required finite."""
        self._check_host_data(x, y, finite=False)
        return super().evaluate(x, y, *args, **kwargs)

    def _check_host_data(
        self, x: Any, y: Any, finite: bool = False, names: tuple = ("x", "y")
    ) -> None:
        """Checks on NumPy (host) inputs; tensors and datasets pass through."""
        name_x, name_y = names
        images, labels = host_array(x), host_array(y)
        if images is not None and images.ndim >= 1:
            if len(images) == 0:
                raise ValueError(
                    f"`{name_x}` holds no samples (shape {images.shape}): there "
                    "is nothing to train on."
                )
            if finite and images.dtype.kind in "fc":
                bad = ~np.isfinite(images.reshape(len(images), -1)).all(axis=1)
                if bad.any():
                    raise ValueError(
                        f"`{name_x}` holds non-finite values (NaN or Inf) in "
                        f"{int(bad.sum())} sample(s), e.g. {name_x}"
                        f"[{int(np.argmax(bad))}]. Training on them would make "
                        "every weight NaN; clean or drop those samples."
                    )
        if labels is None:
            return
        if labels.ndim == 2 and labels.shape[-1] == 1:
            labels = labels.reshape(-1)
        if images is not None and images.ndim >= 1 and labels.ndim >= 1:
            if len(images) != len(labels):
                raise ValueError(
                    f"`{name_x}` and `{name_y}` must hold as many samples. "
                    f"Received {len(images)} images and {len(labels)} labels."
                )
        if labels.ndim == 1:
            if labels.dtype.kind not in "iu":
                raise TypeError(
                    f"`{name_y}` of shape (N,) must be integer class indices. "
                    f"Received dtype {labels.dtype}; cast them (e.g. "
                    f"`{name_y}.astype('int32')`) or pass one-hot labels "
                    f"(N, {self.num_classes})."
                )
            check_class_indices(name_y, labels, self.num_classes)
        elif labels.dtype.kind in "fc" and not np.isfinite(labels).all():
            raise ValueError(
                f"`{name_y}` (one-hot/soft labels) holds non-finite values."
            )
        elif finite and labels.ndim == 2 and labels.shape[-1] == self.num_classes:
            self._check_one_hot(labels, name_y)

    def _check_one_hot(self, labels: np.ndarray, name: str) -> None:
        """Raise if host training labels `(N, C)` have a row that is not
        one-hot (a soft row: already mixed, or smoothed)."""
        rows = labels.reshape(len(labels), -1)
        binary = ((rows == 0) | (rows == 1)).all(axis=1)
        bad = ~(binary & (rows.sum(axis=1) == 1))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"`{name}` must be integer class indices or one-hot rows, but "
                f"{int(bad.sum())} row(s) are soft, e.g. {name}[{i}] = "
                f"{np.round(rows[i], 4).tolist()}. {type(self).__name__} mixes "
                "the labels itself: labels already mixed (by a mixer in the "
                "data pipeline) would be mixed twice. Give the integer or "
                "one-hot labels and let the model mix (smoothing them with "
                "`label_smoothing=`), or train a plain `keras.Model` on the "
                "mixer's output."
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
        training-only trackers such as `lam_area` are left out)."""
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        return {k: v for k, v in logs.items() if k not in self._training_only()}

    def _training_only(self) -> set[str]:
        return {"lam_area", "mix_block_loss"}

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
        return _weighted_mean(_per_sample_cross_entropy(y_pred, dense), sample_weight)

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
            `(terms, y_pred)`: the loss terms (scalars, the ones logged) and
            the logits compiled metrics are computed on.
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
        # Label values cannot raise inside a traced step: an out-of-range
        # index (an all-zero one-hot row) or a row that is not one-hot
        # (non-finite, or soft: labels already mixed would be mixed twice)
        # makes the loss NaN rather than silently wrong, and `fit` stops on it.
        valid = ops.logical_and(
            ops.all((labels >= 0) & (labels < self.num_classes)),
            _is_one_hot(dense),
        )
        terms = {**terms, "loss": ops.where(valid, terms["loss"], float("nan"))}
        return terms, y_pred

    def update_training_metrics(
        self, terms: dict[str, Any], y: Any, y_pred: Any, sample_weight: Any = None
    ) -> dict[str, Any]:
        """Update the trackers and compiled metrics (weighted by each
        sample's own `sample_weight`, if given); return the logs."""
        for metric in self.metrics:
            if metric.name in terms:
                metric.update_state(terms[metric.name])
            elif metric.name == "compile_metrics":
                metric.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def _terms(self, images: Any, labels: Any, dense: Any, weight: Any | None):
        """The loss terms and the logits compiled metrics see.

        Args:
            images: the clean batch (this replica's).
            labels: integer labels `(N,)`.
            dense: one-hot labels `(N, C)` (hard: the saliency and a learned
                mixer's block use them; `_smoothed` gives the targets).
            weight: None or each clean sample's weight, float32 `(N,)`.
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
            `(mix, mixer_loss)`: the `MixResult`, and for a learned mixer
            (`needs_features`: AutoMix) its own loss (see `_learned_mix`),
            else None.
        """
        if self.mixer.needs_features:
            return self._learned_mix(images, dense)
        context = {}
        if self.mixer.needs_saliency:
            if saliency is None:
                saliency = self._saliency(images, dense)
            context["saliency"] = replicas.gather(saliency)
        return self.mixer.mix(replicas.gather(images), **context), None

    def _learned_mix(self, images: Any, dense: Any) -> tuple[Any, Any]:
        """AutoMix's two draws on the momentum encoder's features: the mix
        block's loss on the first (the frozen encoder's mixed cross-entropy
        with the drawn lam, and the mask loss; gradient to the block only),
        and the second, detached, as the mix the network trains on."""
        mixer, encoder = self.mixer, self.momentum_encoder
        features = replicas.gather(encoder.features(images))
        global_images, global_dense = replicas.gather(images), replicas.gather(dense)
        block = mixer.draw(global_images, features=features)
        block_images = mixer.apply(global_images, mixer.block_params(block)).images
        logits = encoder(replicas.local_rows(block_images, images))
        block_loss = mixer.mix_block_weight * _mixed_cross_entropy(
            replicas.gather(logits), global_dense, block["permutation"], block["lam"]
        )
        block_loss = block_loss + mixer.mask_loss(block)
        params = mixer.draw(global_images, features=features)
        return mixer.apply(global_images, params), block_loss

    def _with_mixer_loss(
        self,
        terms: dict[str, Any],
        mixer_loss: Any,
        clean_logits: Any,
        dense: Any,
        weight: Any | None = None,
    ) -> dict[str, Any]:
        """Add a learned mixer's terms: its own loss (logged as
        `mix_block_loss`) and `clean_weight` times the clean cross-entropy
        of the network's clean pass, each clean sample weighted by its own
        `weight` (if given)."""
        if mixer_loss is None:
            return terms
        clean = _weighted_mean(
            _per_sample_cross_entropy(
                replicas.gather(clean_logits), replicas.gather(dense)
            ),
            _gather_weight(weight),
        )
        loss = terms["loss"] + self.mixer.clean_weight * clean + mixer_loss
        return {**terms, "loss": loss, "mix_block_loss": mixer_loss}

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
        with keras.StatelessScope():  # drops the training-mode assignments
            return self.momentum_encoder.features(images)

    def after_optimizer_step(self) -> None:
        """What follows each optimizer step (the backend steps call it): a
        learned mixer's momentum encoder moves towards the network, with the
        mixer's momentum for the step just taken."""
        if self.momentum_encoder is None:
            return
        step = self.optimizer.iterations - 1
        self.momentum_encoder.update(
            self.backbone, self.classifier, self.mixer.momentum_at(step)
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
        def loss(x):
            return _summed_cross_entropy(dense, self(x, training=False))

        gradient = _train_step.input_gradient(loss, ops.cast(images, "float32"))
        return self._saliency_of(gradient)

    def _saliency_of(self, gradient: Any) -> Any:
        """The saliency map of an input gradient: `sqrt(mean over channels
        of gradient^2)`, `(N, H, W)`."""
        axis = 1 if self.mixer.data_format == "channels_first" else -1
        return ops.sqrt(ops.mean(ops.square(gradient), axis=axis))

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
        config = {
            **super().get_config(),  # name, trainable, dtype (the policy)
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "mixer": keras.saving.serialize_keras_object(self.mixer),
            "label_smoothing": self.label_smoothing,
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
        logits = self(replicas.local_rows(mix.images, images), training=True)
        loss = _mixed_cross_entropy(
            replicas.gather(logits),
            self._smoothed(replicas.gather(dense)),
            mix.permutation,
            mix.lam,
            _gather_weight(weight),
        )
        terms = {"loss": loss, "lam_area": ops.mean(mix.lam)}
        targets = self._smoothed(dense)
        terms = self._with_mixer_loss(terms, mixer_loss, clean, targets, weight)
        return terms, logits


@keras.saving.register_keras_serializable(package="keras_sumix")
class SUMixModel(MixingModel):
    """SUMix (ECCV 2024): a learned per-sample mix ratio and an uncertainty
    regulariser, inside `model.fit`.

    Each training step mixes the batch with `mixer.mix`, runs the network on
    the clean batch (raw pass) and on the mixed batch (mixed pass), both in
    training mode, and minimises `keras_sumix.sumix_loss` (see
    `docs/sumix.md`). The defaults (`variant="paper"`) reproduce the
    authors' code; `variant="recommended"` is the reading this project's
    study supports (`docs/study.md`). Evaluation and
    prediction use the plain classifier on clean images; the uncertainty
    head is a training-time device. Compiled metrics run on the raw pass.
    Bad data (NaN images, out-of-range or float labels, empty or mismatched
    batches, channels-first images) raises or stops `fit` with an error, as
    `MixingModel` documents; uint8 images are cast, not rescaled; a batch of
    one trains with lam = 1 (area and corrected).

    History reports `loss`, `mix_loss`, `reg_loss` (before gamma),
    `lam_area` (mean area lam) and `lam_sumix` (mean corrected lam); with
    `mixer=AutoMix(...)` also `mix_block_loss`, and the raw pass is
    AutoMix's clean pass (docs/sumix.md, "SUMix on AutoMix").

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
        gamma: weight of the uncertainty regulariser. Defaults to 0.5.
        lambda_mode: `"reference"` (the authors' formula), `"distance"`
            (the paper's prose) or `"area"` (no correction). None (default):
            the variant's (`"reference"` in `"paper"`, `"distance"` in
            `"recommended"`). So are the options below marked "variant".
        regularizer: which terms the regulariser's logits are made of:
            `"both"` (variant: both, `beta + alpha`), `"uncertainty"` (`beta`),
            `"semantic"` (`alpha`, no gradient) or `"none"` (no regulariser);
            their form is `regularizer_logits`.
        semantic_scale: the scale `s` of the semantic term; None (default)
            uses the batch size, as the reference does: the *global* batch
            under data parallelism (see `docs/scaling.md`).
        distance_scale: the temperature `t` of `lambda_mode="distance"`
            (variant: both, `keras_sumix.losses.DEFAULT_DISTANCE_SCALE`).
        reduction: `"reference"` (batch-mean weights; variant: paper) or
            `"per_sample"` (each sample its own ratio, as the paper says;
            variant: recommended).
        raw_pass_gradient: if False, no gradient flows through the raw pass
            (its outputs are treated as constants), which makes the step
            cheaper; the uncertainty head then learns from the mixed pass
            only. Variant: True in paper (faithful to the spec), False in
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
            (`"uncertainty"`) or `alpha` (`"semantic"`): `"exp"` (variant: both,
            the authors' code, `z = exp(-x) / T`) or `"negative"` (the
            SUMix-JAX port, `z = -x / T`). `"semantic"` sends no gradient
            in either form.
        regularizer_temperature: the `T` dividing the regulariser's
            logits, `> 0`. Defaults to 1.0 (no scaling).
        variant: the named set of the options marked "variant":
            `"paper"` (default, the published method) or `"recommended"`
            (`keras_sumix.models.variants.VARIANTS`); an option given
            explicitly wins over its variant's value.
        label_smoothing: share `e` in [0, 1) of each label spread over the
            classes, as in `keras.losses.CategoricalCrossentropy`: the
            one-hot labels are smoothed, `y * (1 - e) + e / C`, then mixed.
            It applies to the targets the classifier is trained on: the two
            terms of the mixed cross-entropy (`mix_loss`, with the corrected
            lam) and AutoMix's clean cross-entropy. The corrected lam and the
            uncertainty regulariser (which trains the uncertainty head on the
            class indices) keep the hard labels. Defaults to 0 (none).
        **kwargs: `keras.Model` keyword arguments (`name`, `dtype`: a dtype
            policy such as `"mixed_bfloat16"` for the heads, saved with the
            model), and `classifier` (see `MixupModel`).

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
        lambda_mode: str | None = None,
        regularizer: str | None = None,
        semantic_scale: float | None = None,
        distance_scale: float | None = None,
        reduction: str | None = None,
        raw_pass_gradient: bool | None = None,
        saliency_pass: str = "separate",
        regularizer_logits: str | None = None,
        regularizer_temperature: float = 1.0,
        variant: str = DEFAULT_VARIANT,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            backbone, num_classes, mixer, label_smoothing=label_smoothing, **kwargs
        )
        options = resolve_options(
            variant,
            gamma=gamma,
            lambda_mode=lambda_mode,
            regularizer=regularizer,
            semantic_scale=semantic_scale,
            distance_scale=distance_scale,
            reduction=reduction,
            raw_pass_gradient=raw_pass_gradient,
            saliency_pass=saliency_pass,
            regularizer_logits=regularizer_logits,
            regularizer_temperature=regularizer_temperature,
        )
        self.variant = variant
        self.gamma = options["gamma"]
        self.lambda_mode = options["lambda_mode"]
        self.regularizer = options["regularizer"]
        self.semantic_scale = options["semantic_scale"]
        self.distance_scale = options["distance_scale"]
        self.reduction = options["reduction"]
        self.regularizer_logits = options["regularizer_logits"]
        self.regularizer_temperature = options["regularizer_temperature"]
        self.raw_pass_gradient = options["raw_pass_gradient"]
        self.saliency_pass = options["saliency_pass"]
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
        self.mix_loss_tracker = keras.metrics.Mean(name="mix_loss")
        self.reg_loss_tracker = keras.metrics.Mean(name="reg_loss")
        self.lam_sumix_tracker = keras.metrics.Mean(name="lam_sumix")

    def _heads(self) -> list[keras.layers.Layer]:
        return [self.classifier, self.uncertainty_head]

    def _training_only(self) -> set[str]:
        return {*super()._training_only(), "lam_sumix", "mix_loss", "reg_loss"}

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
            "regularizer_logits": self.regularizer_logits,
            "regularizer_temperature": self.regularizer_temperature,
        }

    def _targets_loss(
        self, out: dict[str, Any], mix_logits: Any, dense: Any, mix: Any, weight: Any
    ) -> dict[str, Any]:
        """`sumix_loss`'s output with its mixed cross-entropy recomputed on
        smoothed targets and weighted samples (`label_smoothing`,
        `sample_weight`): `CE_a`, `CE_b` against `smooth(y_a)`,
        `smooth(y_b)`, each mixed sample's times its `_mixed_weight`, then
        reduced with the corrected lam as `reduction` says. The corrected lam
        and the regulariser stay on the hard labels, unweighted."""
        targets = self._smoothed(dense)
        ce_a = _per_sample_cross_entropy(mix_logits, targets)
        ce_b = _per_sample_cross_entropy(
            mix_logits, ops.take(targets, mix.permutation, axis=0)
        )
        mixed_weight = _mixed_weight(_gather_weight(weight), mix.permutation, mix.lam)
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
        mixed = self._outputs(mix.images, training=training)
        return self._loss(labels, raw, mixed, mix)["lam"]

    def _raw_pass_and_saliency(
        self, images: Any, dense: Any
    ) -> tuple[tuple[Any, Any], Any]:
        """The raw pass's outputs (with gradient) and the saliency of its
        summed cross-entropy, from one forward pass (`saliency_pass="raw"`)."""

        def loss(x):
            outputs = self._outputs(x)
            return _summed_cross_entropy(dense, outputs[0]), outputs

        gradient, outputs = _train_step.input_gradient(
            loss, ops.cast(images, "float32"), has_aux=True
        )
        return outputs, self._saliency_of(gradient)

    def _terms(self, images: Any, labels: Any, dense: Any, weight: Any | None):
        if self.saliency_pass == "raw":
            raw, saliency = self._raw_pass_and_saliency(images, dense)
            mix, mixer_loss = self._mix_global_batch(images, dense, saliency)
        else:  # the saliency pass (if any) runs before the raw pass
            mix, mixer_loss = self._mix_global_batch(images, dense)
            raw = self._outputs(images)
        clean_logits = raw[0]  # AutoMix's clean pass, with gradient
        if not self.raw_pass_gradient:
            raw = tuple(ops.stop_gradient(t) for t in raw)
        raw_logits, raw_uncertainty = raw
        mixed = self._outputs(replicas.local_rows(mix.images, images))
        out = self._loss(
            replicas.gather(labels),
            (replicas.gather(raw_logits), replicas.gather(raw_uncertainty)),
            tuple(replicas.gather(t) for t in mixed),
            mix,
        )
        if self.label_smoothing or weight is not None:
            out = self._targets_loss(
                out, replicas.gather(mixed[0]), replicas.gather(dense), mix, weight
            )
        terms = {
            "loss": out["loss"],
            "mix_loss": out["mix_loss"],
            "reg_loss": out["reg_loss"],
            "lam_area": ops.mean(mix.lam),
            "lam_sumix": ops.mean(out["lam"]),
        }
        targets = self._smoothed(dense)
        terms = self._with_mixer_loss(terms, mixer_loss, clean_logits, targets, weight)
        return terms, raw_logits

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **self._loss_options(),
            "raw_pass_gradient": self.raw_pass_gradient,
            "saliency_pass": self.saliency_pass,
            "variant": self.variant,
        }
