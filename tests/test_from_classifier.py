"""`MixupModel.from_classifier` / `SUMixModel.from_classifier`: a complete
Keras classifier trained with mixup or SUMix through its own final Dense,
weights shared with the user's model, softmax heads trained on their
logits, save / load round trips and the errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import run_once, to_np
from fixtures import tiny_resnet_backbone

import keras_sumix as ks
from keras_sumix.models import LogitHead

RNG = np.random.default_rng(0)
IMAGES = RNG.random((4, 32, 32, 3)).astype("float32")
LABELS = np.array([0, 1, 2, 3], "int32")


def _softmax(logits):
    return to_np(keras.ops.softmax(keras.ops.convert_to_tensor(logits), axis=-1))


def _fit(model, epochs=1):
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(IMAGES, LABELS, batch_size=4, epochs=epochs, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@run_once("torch", "a whole Keras application, trained end to end")
def test_keras_application_with_its_top_trains_with_sumix(tmp_path):
    """MobileNetV3Small ends in a 1x1 Conv2D head, Flatten and a softmax
    Activation: the conv is the Dense, trained on its logits."""
    net = keras.applications.MobileNetV3Small(
        weights=None, input_shape=(32, 32, 3), classes=5
    )
    images = IMAGES * 255.0  # the model rescales its own inputs
    before = net.predict(images, verbose=0)
    model = ks.SUMixModel.from_classifier(net, ks.layers.CutMix(1.0, seed=0))
    assert model.num_classes == 5
    assert model.classifier.layer is net.get_layer("logits")
    assert all(
        model.backbone.get_layer(layer.name) is layer for layer in net.layers[-8:-3]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(images, np.array([0, 1, 2, 4], "int32"), batch_size=4, verbose=0)
    after = net.predict(images, verbose=0)
    assert not np.allclose(after, before, atol=1e-6)  # the user's model trained
    logits = model.predict(images, verbose=0)
    np.testing.assert_allclose(_softmax(logits), after, atol=1e-5)
    model.save(tmp_path / "mobilenet.keras")
    loaded = keras.saving.load_model(tmp_path / "mobilenet.keras")
    assert isinstance(loaded, ks.SUMixModel)
    assert isinstance(loaded.classifier, LogitHead)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), logits, atol=1e-4)


def test_keras_hub_image_classifier_trains_with_mixup(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    classifier = keras_hub.models.ResNetImageClassifier(
        backbone=tiny_resnet_backbone(image_shape=(32, 32, 3)),
        num_classes=4,
        activation="softmax",
    )
    model = ks.MixupModel.from_classifier(
        classifier, ks.layers.MixUp(1.0, seed=0), num_classes=4
    )
    assert model.classifier.layer is classifier.output_dense
    assert model.backbone.get_layer(classifier.backbone.name) is classifier.backbone
    _fit(model)
    probabilities = classifier.predict(IMAGES, verbose=0)
    logits = model.predict(IMAGES, verbose=0)
    np.testing.assert_allclose(_softmax(logits), probabilities, atol=1e-5)
    model.save(tmp_path / "hub.keras")
    loaded = keras.saving.load_model(tmp_path / "hub.keras")
    assert isinstance(loaded, ks.MixupModel)
    np.testing.assert_allclose(loaded.predict(IMAGES, verbose=0), logits, atol=1e-5)


def test_sequential_softmax_and_functional_logit_classifiers():
    sequential = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model = ks.SUMixModel.from_classifier(sequential, ks.layers.FMix(seed=0))
    _fit(model)
    np.testing.assert_allclose(
        _softmax(model.predict(IMAGES, verbose=0)),
        sequential.predict(IMAGES, verbose=0),
        atol=1e-5,
    )
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    logits = keras.layers.Dense(4, name="logits")(x)
    probabilities = keras.layers.Softmax()(logits)
    for net in (keras.Model(inputs, logits), keras.Model(inputs, probabilities)):
        model = ks.MixupModel.from_classifier(net, ks.layers.CutMix(seed=0))
        expected = to_np(net(IMAGES))
        got = to_np(model(IMAGES))
        if net.outputs[0] is probabilities:
            got = _softmax(got)  # a trailing Softmax layer is left out
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_logit_head_is_the_pre_activation_output():
    dense = keras.layers.Dense(3, activation="softmax")
    x = RNG.random((2, 5)).astype("float32")
    probabilities = to_np(dense(x))
    head = LogitHead(dense)
    logits = to_np(head(x))
    expected = x @ to_np(dense.kernel) + to_np(dense.bias)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_softmax(logits), probabilities, atol=1e-6)
    assert head.units == 3 and tuple(head.kernel.shape) == (5, 3)
    with pytest.raises(ValueError, match="Dense"):
        LogitHead(keras.layers.Conv2D(3, 3))


def _model(*layers, shape=(32, 32, 3)):
    return keras.Sequential([keras.Input(shape), *layers])


@pytest.mark.parametrize(
    "net, num_classes, match",
    [
        (
            lambda: _model(
                keras.layers.Conv2D(4, 3), keras.layers.GlobalMaxPooling2D()
            ),
            None,
            r"no final Dense layer: its output comes from GlobalMaxPooling2D",
        ),
        (
            lambda: _model(keras.layers.Flatten(), keras.layers.Dense(4)),
            7,
            r"`num_classes`=7 disagrees.*has 4 units",
        ),
        (
            lambda: _model(keras.layers.Flatten(), keras.layers.Dense(4, "sigmoid")),
            None,
            r"activation 'sigmoid'",
        ),
        (
            lambda: _model(keras.layers.Flatten(), keras.layers.Dense(1)),
            None,
            r"1 unit",
        ),
        (
            lambda: _model(keras.layers.Conv2D(4, 3), keras.layers.Flatten()),
            None,
            r"kernel_size \(3, 3\)",
        ),
        (
            lambda: _model(keras.layers.Dense(4)),
            None,
            r"class scores of shape \(N, num_classes\)",
        ),
    ],
    ids=["no-dense", "num-classes", "sigmoid", "one-unit", "conv-head", "rank"],
)
def test_bad_classifiers_raise(net, num_classes, match):
    with pytest.raises(ValueError, match=match):
        ks.MixupModel.from_classifier(net(), ks.layers.MixUp(), num_classes)


def test_not_a_functional_model_raises():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="functional or Sequential"):
        ks.SUMixModel.from_classifier(Net(), ks.layers.MixUp())
    with pytest.raises(TypeError, match=r"keras\.Model"):
        ks.SUMixModel.from_classifier(keras.layers.Dense(3), ks.layers.MixUp())
