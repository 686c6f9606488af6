"""The `"cifar_vit"` pipeline recipe (CIFAR-100 at 224 px for DeiT-S / Swin-T)
and `make_pipeline(rand_augment=...)`."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import run_once

from keras_sumix.data import CIFAR_MEAN, CIFAR_STD, make_pipeline
from keras_sumix.data.transforms import rand_augment_layer

pytestmark = run_once(
    "torch",
    "tf.data pipelines: TensorFlow ops whatever the backend",
)

tf = pytest.importorskip("tensorflow")

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (6, 32, 32, 3), dtype="uint8")
LABELS = np.arange(6, dtype="int32")


def _dataset(images=IMAGES):
    return tf.data.Dataset.from_tensor_slices((images, LABELS[: len(images)]))


def _batches(ds):
    return [
        (np.asarray(x), np.asarray(y)) for x, y in ds.as_numpy_iterator()
    ]  # fmt: skip


def test_cifar_vit_test_pipeline_is_a_bicubic_resize_to_224():
    ((images, labels),) = _batches(
        make_pipeline(_dataset(), "cifar_vit", training=False)
    )
    assert images.shape == (6, 224, 224, 3) and labels.tolist() == LABELS.tolist()
    resized = tf.image.resize(IMAGES / 255.0, (224, 224), "bicubic", antialias=True)
    expected = (np.clip(resized.numpy(), 0, 1) - CIFAR_MEAN) / CIFAR_STD
    np.testing.assert_allclose(images, expected, atol=1e-4)


def test_cifar_vit_training_crops_and_is_seeded():
    def run():
        return _batches(
            make_pipeline(_dataset(), "cifar_vit", batch_size=3, seed=1, image_size=64)
        )

    first, again = run(), run()
    assert [x.shape for x, _ in first] == [(3, 64, 64, 3)] * 2
    for (a, la), (b, lb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    test = _batches(
        make_pipeline(_dataset(), "cifar_vit", training=False, image_size=64)
    )
    by_label = dict(zip(test[0][1].tolist(), test[0][0], strict=True))
    # a random resized crop (scale 0.8-1) + flip is not the plain resize
    assert any(
        not np.allclose(image, by_label[label], atol=1e-3)
        for x, y in first
        for image, label in zip(x, y, strict=True)
    )


def test_rand_augment_changes_images_and_is_reproducible():
    def run(rand_augment):
        return _batches(
            make_pipeline(
                _dataset(),
                "cifar",
                batch_size=6,
                seed=3,
                padding=0,
                shuffle=False,
                rand_augment=rand_augment,
            )
        )

    plain, augmented, again = run(False), run(True), run(True)
    assert plain[0][0].shape == augmented[0][0].shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(augmented[0][0], again[0][0])  # same seed
    np.testing.assert_array_equal(augmented[0][1], plain[0][1])  # labels kept
    changed = ~np.isclose(augmented[0][0], plain[0][0], atol=1e-4).all(axis=(1, 2, 3))
    assert changed.sum() >= 3  # most images get at least one visible op
    unit = augmented[0][0] * np.asarray(CIFAR_STD) + np.asarray(CIFAR_MEAN)
    assert unit.min() >= -1e-4 and unit.max() <= 1 + 1e-4  # clipped to [0, 1]


def test_rand_augment_equalization_matches_keras():
    """The pipeline's RandAugment replaces Keras's Equalization by one that
    uses bincount inside tf.data (Keras unrolls a 256-step loop there under
    JAX); the result must be Keras's."""
    ours = rand_augment_layer(seed=0).equalization
    reference = keras.layers.Equalization(value_range=(0, 1))
    images = tf.data.Dataset.from_tensor_slices(
        RNG.random((2, 16, 16, 3)).astype("float32") ** 2
    )
    got = [np.asarray(x) for x in images.map(ours).as_numpy_iterator()]
    want = [np.asarray(x) for x in images.map(reference).as_numpy_iterator()]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
        assert not np.allclose(a, b * 0)  # not trivially empty


def test_rand_augment_errors():
    with pytest.raises(ValueError, match="training=False"):
        make_pipeline(_dataset(), training=False, rand_augment=True)
    with pytest.raises(TypeError, match="rand_augment"):
        make_pipeline(_dataset(), rand_augment="yes")
    with pytest.raises(ValueError, match=r"value_range=\(0, 1\)"):
        make_pipeline(_dataset(), rand_augment=keras.layers.RandAugment())
    grey = tf.data.Dataset.from_tensor_slices(
        (np.zeros((2, 8, 8, 1), "uint8"), LABELS[:2])
    )
    with pytest.raises(ValueError, match="3 channels"):
        make_pipeline(grey, normalization="unit", padding=0, rand_augment=True)
    if keras.backend.backend() == "jax":
        return  # a plain Keras RandAugment builds slowly in tf.data under JAX
    custom = keras.layers.RandAugment(value_range=(0, 1), num_ops=1, seed=0)
    ((images, _),) = _batches(
        make_pipeline(_dataset(), batch_size=6, seed=0, rand_augment=custom)
    )
    assert images.shape == (6, 32, 32, 3)
