"""The paper's networks: parameter counts pinned to the reference architectures,
feature dims, a small forward pass, weight round trips and argument errors.

Reference counts (PyTorch counts BatchNorm running stats as buffers, Keras
counts them in `count_params()` as non-trainable weights, so the Keras
*trainable* count is the one compared with PyTorch):

* torchvision `resnet18`: 11,689,512 with its 1000-class fc (513,000).
* torchvision `resnext50_32x4d`: 25,028,904 with its fc (2,049,000).
* CIFAR ResNet-18 (kuangliu / OpenMixup `ResNet_CIFAR`): 11,220,132 with a
  100-class fc, 11,168,832 without (torchvision's minus the 7x7 stem conv,
  9,408, plus a 3x3 one, 1,728).
* CIFAR ResNeXt-50 32x4d (OpenMixup `ResNeXt_CIFAR`): torchvision's backbone
  with the same stem swap, 22,979,904 - 9,408 + 1,728 = 22,972,224.
* WRN-28-8 (OpenMixup `WideResNet`, convs with bias): 23,357,792, i.e.
  23,409,092 with a 100-class fc.
"""

from __future__ import annotations

import pathlib
import re

import keras
import numpy as np
import pytest
from conftest import BACKEND, run_once, to_np

from keras_sumix import models

# name -> (builder, kwargs, count_params, trainable, batchnorm channels, dim)
SPECS = {
    "resnet18_cifar": (models.resnet18_cifar, {}, 11_178_432, 11_168_832, 4_800, 512),
    "resnext50_cifar": (
        models.resnext50_cifar,
        {},
        23_040_448,
        22_972_224,
        34_112,
        2048,
    ),
    "wide_resnet28_8": (
        models.wide_resnet28_8,
        {},
        23_372_160,
        23_357_792,
        7_184,
        512,
    ),
    "resnet18": (
        models.resnet18,
        {"input_shape": (64, 64, 3)},
        11_186_112,
        11_176_512,
        4_800,
        512,
    ),
    "resnext50_32x4d": (
        models.resnext50_32x4d,
        {"input_shape": (64, 64, 3)},
        23_048_128,
        22_979_904,
        34_112,
        2048,
    ),
}
BUILDERS = [spec[0] for spec in SPECS.values()]

# PyTorch parameter counts of the full reference classifiers.
TORCHVISION_RESNET18 = 11_689_512
TORCHVISION_RESNEXT50_32X4D = 25_028_904
CIFAR_RESNET18_100 = 11_220_132
CIFAR_WRN28_8_100 = 23_409_092


def _trainable(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _images(model: keras.Model, batch: int = 2, seed: int = 0) -> np.ndarray:
    shape = model.input_shape[1:]
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *shape)).astype("float32")


@pytest.fixture(scope="module")
def built():
    """Every network built once for the whole module."""
    cache: dict[str, keras.Model] = {}

    def get(name: str) -> keras.Model:
        if name not in cache:
            builder, kwargs, *_ = SPECS[name]
            cache[name] = builder(**kwargs)
        return cache[name]

    return get


@run_once("torch", "a parameter count does not depend on the backend")
@pytest.mark.parametrize("name", list(SPECS))
def test_parameter_counts(built, name):
    _, _, total, trainable, bn_channels, _ = SPECS[name]
    model = built(name)
    assert model.name == name
    assert _trainable(model) == trainable
    assert model.count_params() == total
    # The only non-trainable weights are BN moving mean and variance.
    bn = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert sum(int(layer.gamma.shape[0]) for layer in bn) == bn_channels
    assert total - trainable == 2 * bn_channels


def test_counts_match_references(built):
    fc = lambda dim, classes: dim * classes + classes  # noqa: E731
    assert _trainable(built("resnet18")) + fc(512, 1000) == TORCHVISION_RESNET18
    assert (
        _trainable(built("resnext50_32x4d")) + fc(2048, 1000)
        == TORCHVISION_RESNEXT50_32X4D
    )
    # The CIFAR variants only swap the 7x7 stem conv for a 3x3 one.
    stem_diff = 7 * 7 * 3 * 64 - 3 * 3 * 3 * 64
    assert _trainable(built("resnet18_cifar")) == 11_176_512 - stem_diff
    assert _trainable(built("resnext50_cifar")) == 22_979_904 - stem_diff
    # With the paper's 100-class head, through `classifier`.
    head = models.classifier(built("resnet18_cifar"), 100)
    assert _trainable(head) == CIFAR_RESNET18_100
    head = models.classifier(built("wide_resnet28_8"), 100)
    assert _trainable(head) == CIFAR_WRN28_8_100


@pytest.mark.parametrize("name", list(SPECS))
def test_forward_pooled_features(built, name):
    dim = SPECS[name][-1]
    model = built(name)
    assert model.output_shape == (None, dim)
    out = to_np(model(_images(model), training=False))
    assert out.shape == (2, dim)
    assert np.all(np.isfinite(out))


def test_torchvision_layer_structure(built):
    model = built("resnext50_32x4d")
    stem_pad = model.get_layer("conv1_pad")
    assert tuple(map(tuple, stem_pad.padding)) == ((3, 3), (3, 3))
    assert model.get_layer("conv1").kernel.shape == (7, 7, 3, 64)
    pool_pad = model.get_layer("maxpool_pad")
    assert tuple(map(tuple, pool_pad.padding)) == ((1, 1), (1, 1))
    grouped = model.get_layer("layer1_0_conv2")
    assert grouped.groups == 32
    assert grouped.kernel.shape == (3, 3, 4, 128)
    assert model.get_layer("layer4_2_conv3").kernel.shape == (1, 1, 1024, 2048)
    assert model.get_layer("layer2_0_downsample_0").strides == (2, 2)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert not layer.use_bias, layer.name
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.epsilon == pytest.approx(1e-5)
            assert layer.momentum == pytest.approx(0.9)
    # CIFAR stem: 3x3 stride 1, no max-pool.
    cifar = built("resnext50_cifar")
    assert cifar.get_layer("conv1").kernel.shape == (3, 3, 3, 64)
    assert cifar.get_layer("conv1").strides == (1, 1)
    assert not any(isinstance(x, keras.layers.MaxPooling2D) for x in cifar.layers)
    # WRN: widths 16 -> 128 -> 256 -> 512, 4 blocks per stage, no dropout.
    wrn = built("wide_resnet28_8")
    assert wrn.get_layer("conv1").kernel.shape == (3, 3, 3, 16)
    assert wrn.get_layer("block1_layer_3_conv2").kernel.shape == (3, 3, 128, 128)
    assert wrn.get_layer("block3_layer_0_convShortcut").kernel.shape == (
        1,
        1,
        256,
        512,
    )
    assert not any(isinstance(x, keras.layers.Dropout) for x in wrn.layers)


def test_weights_round_trip(built, tmp_path):
    model = built("resnet18_cifar")
    images = _images(model)
    expected = to_np(model(images, training=False))
    path = tmp_path / "resnet18_cifar.weights.h5"
    model.save_weights(str(path))
    # The new model starts from a different random init, so equal outputs
    # mean the file was loaded; its image size may differ (None x None).
    loaded = models.resnet18_cifar(input_shape=(None, None, 3), weights=str(path))
    np.testing.assert_allclose(
        to_np(loaded(images, training=False)), expected, rtol=1e-5, atol=1e-5
    )
    bigger = np.zeros((1, 40, 40, 3), "float32")
    assert to_np(loaded(bigger, training=False)).shape == (1, 512)


def test_weights_errors(tmp_path):
    # Anything but None or a local `.weights.h5` path: no downloads.
    for builder in BUILDERS:
        with pytest.raises(ValueError, match=r"cannot download pretrained.*keras_hub"):
            builder(weights="imagenet")
    for weights in ["model.h5", "model.keras", ""]:
        with pytest.raises(ValueError, match=r"\.weights\.h5"):
            models.resnet18_cifar(weights=weights)
    path = tmp_path / "nowhere.weights.h5"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        models.resnext50_cifar(weights=str(path))
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        models.wide_resnet28_8(weights=pathlib.Path(path))
    with pytest.raises(TypeError, match="weights"):
        models.resnet18(weights=1)


BAD_INPUT_SHAPES = [
    (32, 32),
    (32, 32, 3, 1),
    (32, 32, 1),
    (32, 32, None),
    (0, 32, 3),
    (-1, 32, 3),
    (32.0, 32, 3),
    (True, 32, 3),
    "32x32x3",
    32,
]


def test_bad_input_shape():
    for builder in BUILDERS:
        for input_shape in BAD_INPUT_SHAPES:
            with pytest.raises(ValueError, match="input_shape") as info:
                builder(input_shape=input_shape)
            assert repr(input_shape) in str(info.value)


def test_wrn_bad_dropout():
    for dropout in [-0.1, 1.0, 2, "0.3", None, True]:
        with pytest.raises(ValueError, match="dropout"):
            models.wide_resnet28_8(dropout=dropout)


def _tensorflow_without_gpu() -> bool:
    if BACKEND != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")


def test_channels_first_builds():
    keras.config.set_image_data_format("channels_first")  # reset by conftest
    model = models.resnet18_cifar()
    assert model.input_shape == (None, 3, 32, 32)
    assert model.count_params() == SPECS["resnet18_cifar"][2]
    with pytest.raises(ValueError, match="channels_first"):
        models.resnet18_cifar(input_shape=(32, 32, 3))


@pytest.mark.skipif(
    _tensorflow_without_gpu(),
    reason="TensorFlow implements Conv2D only for NHWC on the CPU: a "
    "channels_first network builds there but runs only on a GPU (documented "
    "on the models page)",
)
def test_channels_first_runs():
    keras.config.set_image_data_format("channels_first")  # reset by conftest
    model = models.resnet18_cifar()
    out = to_np(model(_images(model), training=False))
    assert out.shape == (2, 512)


def test_classifier(built):
    backbone = built("resnet18_cifar")
    model = models.classifier(backbone, num_classes=10)
    assert model.name == "resnet18_cifar_classifier"
    assert model.output_shape == (None, 10)
    assert model.get_layer("resnet18_cifar") is backbone  # shared weights
    assert model.count_params() == backbone.count_params() + 512 * 10 + 10
    images = _images(backbone)
    logits = to_np(model(images, training=False))
    features = to_np(backbone(images, training=False))
    fc = model.get_layer("fc")
    kernel, bias = (to_np(w) for w in fc.weights)
    np.testing.assert_allclose(logits, features @ kernel + bias, rtol=1e-4, atol=1e-4)
    assert models.classifier(backbone, 3, name="head").name == "head"


def test_classifier_pools_feature_maps():
    inputs = keras.Input((8, 8, 3))
    feature_map = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    backbone = keras.Model(inputs, feature_map, name="tiny")
    model = models.classifier(backbone, num_classes=5)
    assert model.output_shape == (None, 5)
    assert to_np(model(np.ones((2, 8, 8, 3), "float32"))).shape == (2, 5)


def test_classifier_bad_num_classes(built):
    for num_classes in [0, -3, 2.5, "10", None, True]:
        with pytest.raises(ValueError, match="num_classes"):
            models.classifier(built("resnet18_cifar"), num_classes)


def test_classifier_bad_backbone():
    with pytest.raises(TypeError, match="backbone"):
        models.classifier(keras.layers.Dense(3), 10)
    inputs = keras.Input((2, 4, 4, 3))
    volume = keras.Model(inputs, keras.layers.Dense(2)(inputs))  # 5-D output
    with pytest.raises(ValueError, match=r"backbone.*tokens \(N, L, D\)"):
        models.classifier(volume, 10)
    # (N, L, D) tokens of a non-keras-hub model are averaged over the tokens
    inputs = keras.Input((4, 3))
    sequence = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    head = models.classifier(sequence, 10)
    x = np.random.default_rng(0).random((2, 4, 3)).astype("float32")
    fc = head.get_layer("fc")
    expected = to_np(sequence(x)).mean(axis=1) @ to_np(fc.kernel) + to_np(fc.bias)
    np.testing.assert_allclose(to_np(head(x)), expected, rtol=1e-5, atol=1e-6)


SHAPED_BUILDERS = [*BUILDERS, models.small_cnn]


@pytest.mark.parametrize("builder", SHAPED_BUILDERS, ids=lambda b: b.__name__)
def test_shape_in_the_other_layout_is_named(builder):
    """A channels-first shape given to a channels-last network (and the
    converse) raises the ValueError naming the layout, before any layer."""
    with pytest.raises(ValueError, match=r"looks like a channels-first shape"):
        builder(input_shape=(3, 32, 32))
    keras.config.set_image_data_format("channels_first")  # reset by conftest
    with pytest.raises(ValueError, match=r"looks like a channels-last shape"):
        builder(input_shape=(32, 32, 3))


def test_small_cnn_channels_and_layouts():
    """small_cnn takes grayscale, RGB and RGBA images, in the configured
    layout (its default shape follows it too)."""
    assert models.small_cnn((28, 28, 1), widths=(4,)).output_shape == (None, 4)
    assert models.small_cnn((None, None, 4), widths=(4,)).output_shape == (None, 4)
    with pytest.raises(ValueError, match=r"1, 3 or 4 channels.*\(32, 32, 2\)"):
        models.small_cnn((32, 32, 2))
    keras.config.set_image_data_format("channels_first")  # reset by conftest
    assert models.small_cnn(widths=(4,)).input_shape == (None, 3, 32, 32)
