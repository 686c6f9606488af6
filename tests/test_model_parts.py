"""How the mixing models are cut: the loss terms they log are declared once,
a learned mixer meets a contract, and each backend concern is one
dispatching function (`keras_sumix.models.backend`)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import to_np

import keras_sumix as ks
from keras_sumix.layers.base import BaseMixer
from keras_sumix.models import backend
from keras_sumix.models.learned_mixer import LearnedMixer

CLASSES = 3


def _data(n: int = 4):
    rng = np.random.default_rng(0)
    x = rng.random((n, 8, 8, 3)).astype("float32")
    return x, np.arange(n, dtype="int32") % CLASSES


def _backbone():
    return ks.models.small_cnn((8, 8, 3), widths=(4,))


class UndeclaredTermModel(ks.MixupModel):
    def _terms(self, images, labels, dense, weight):
        terms, logits = super()._terms(images, labels, dense, weight)
        return {**terms, "extra": terms["loss"]}, logits


class DeclaredTermModel(UndeclaredTermModel):
    def _term_metrics(self):
        return [*super()._term_metrics(), keras.metrics.Mean(name="extra")]


def test_a_term_the_model_does_not_declare_raises():
    x, y = _data()
    model = UndeclaredTermModel(_backbone(), CLASSES, ks.layers.CutMix(seed=0))
    with pytest.raises(ValueError, match="extra"):
        model.training_terms(x, y)


def test_a_declared_term_is_logged_in_training_only():
    x, y = _data()
    model = DeclaredTermModel(_backbone(), CLASSES, ks.layers.CutMix(seed=0))
    model.compile(optimizer="sgd")
    logs = model.train_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss", "lam_area", "extra"}
    assert logs["extra"] == pytest.approx(logs["loss"], rel=1e-5)
    assert set(model.evaluate(x, y, return_dict=True, verbose=0)) == {"loss"}


class _FeaturesOnly(BaseMixer, needs_features=True):
    """Says it needs features, but is not a learned mixer (a test mixer:
    not registered)."""

    feature_layer = "stage1"


def test_a_mixer_needing_features_must_be_a_learned_mixer():
    assert isinstance(ks.layers.AutoMix(), LearnedMixer)
    with pytest.raises(TypeError, match="momentum_at"):
        ks.MixupModel(_backbone(), CLASSES, _FeaturesOnly())


def test_the_evaluation_input_gradient_is_built_on_the_backend_primitive():
    x, y = _data()
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten()])
    model.add(keras.layers.Dense(CLASSES))
    dense = keras.ops.one_hot(y, CLASSES)

    def loss(images):
        return -keras.ops.sum(dense * keras.ops.log_softmax(model(images)))

    np.testing.assert_allclose(
        ks.evaluation.input_gradient(model, x, y),
        to_np(backend.gradient_wrt_inputs(loss, x)),
        rtol=1e-5,
        atol=1e-7,
    )


def test_an_unknown_backend_is_named(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(NotImplementedError, match="numpy"):
        backend.gradient_wrt_inputs(lambda x: x, np.ones(1, "float32"))
    with pytest.raises(TypeError, match="has_aux"):
        backend.gradient_wrt_inputs(lambda x: x, np.ones(1, "float32"), 1)
