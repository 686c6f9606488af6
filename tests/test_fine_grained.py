"""The embedded fine-grained dataset: what its classes differ in, its masks,
its seeding (NumPy only: one backend is enough, it never touches Keras)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKEND

from keras_sumix.data import (
    FINE_GRAINED_CLASS_NAMES,
    FINE_GRAINED_NUM_CLASSES,
    fine_grained_objects,
    true_lam,
)
from keras_sumix.data.fine_grained import HEAD_COLOURS, PATTERNS, TAIL_COLOURS

pytestmark = pytest.mark.skipif(BACKEND != "jax", reason="NumPy only: run once")


@pytest.fixture(scope="module")
def data():
    return fine_grained_objects(640, seed=0)


def test_shapes_types_and_classes(data):
    assert FINE_GRAINED_NUM_CLASSES == 64 == len(set(FINE_GRAINED_CLASS_NAMES))
    assert data.images.shape == (640, 64, 64, 3) and data.images.dtype == np.float32
    assert data.labels.dtype == np.int32 and data.masks.dtype == bool
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    assert set(np.unique(data.labels)) == set(range(64))  # every class drawn
    assert data.masks.any((1, 2)).all()  # every image shows its object
    names = [FINE_GRAINED_CLASS_NAMES[k] for k in data.labels[:3]]
    assert all(n.endswith("_tail") and "_head_" in n for n in names)


def test_classes_differ_in_details_not_in_shape(data):
    """The object's area does not tell the class: per-class mean object area
    stays within a third of the overall mean (the size draw is the same for
    every class), while the head and tail colours are the class's."""
    area = data.masks.mean((1, 2))
    per_class = np.array([area[data.labels == k].mean() for k in range(64)])
    assert np.all(np.abs(per_class / area.mean() - 1) < 1 / 3)
    heads = np.array(list(HEAD_COLOURS.values()), "float32")
    tails = np.array(list(TAIL_COLOURS.values()), "float32")
    for i in range(32):
        label = data.labels[i]
        object_pixels = data.images[i][data.masks[i]]
        for palette, index in ((heads, label // 4 % 4), (tails, label % 4)):
            colour = palette[index]
            hits = np.all(np.abs(object_pixels - colour) < 1e-6, axis=-1)
            assert hits.sum() >= 3, (i, FINE_GRAINED_CLASS_NAMES[label])
            for other in np.delete(palette, index, axis=0):
                same = np.all(np.abs(object_pixels - other) < 1e-6, axis=-1)
                assert not same.any()
    assert len(PATTERNS) * len(HEAD_COLOURS) * len(TAIL_COLOURS) == 64


def test_seeded_and_sized():
    a, b = fine_grained_objects(16, seed=3), fine_grained_objects(16, seed=3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = fine_grained_objects(16, seed=4)
    assert not np.array_equal(a.images, c.images)
    big = fine_grained_objects(4, image_size=96, seed=0, clutter=0)
    assert big.images.shape == (4, 96, 96, 3) and big.masks.any((1, 2)).all()
    empty = fine_grained_objects(0)
    assert empty.images.shape == (0, 64, 64, 3) and empty.labels.shape == (0,)


def test_true_lam_of_a_cut(data):
    """The masks give the true label share of a mix, as on the coarse set:
    keeping the left half of every image, the share follows the objects."""
    masks, n = data.masks[:8], 8
    kept = np.zeros_like(masks, dtype="float32")
    kept[:, :, :32] = 1.0
    lam = true_lam(masks, np.roll(np.arange(n), 1), kept)
    assert lam.shape == (n,) and np.all((lam >= 0) & (lam <= 1))
    assert lam.std() > 0.05  # depends on where the objects are, not on area


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_images": -1}, ValueError, "num_images"),
        ({"num_images": 4, "image_size": 16}, ValueError, "image_size"),
        ({"num_images": 4, "seed": 1.5}, TypeError, "seed"),
        ({"num_images": 4, "clutter": -2}, ValueError, "clutter"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, error, match):
    with pytest.raises(error, match=match):
        fine_grained_objects(**kwargs)
