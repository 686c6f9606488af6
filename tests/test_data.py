"""Dataset loaders and `tf.data` pipelines, all offline.

TFDS loaders run on `tfds.testing.mock_data` with `MockPolicy.USE_CODE`: the
pip package of tensorflow-datasets ships no metadata files
(`testing/metadata/<name>/<version>/dataset_info.json` is absent for both
`cifar100` and `caltech_birds2011`), so the mock builds random examples from
the builders' feature specs in code (this is what `MockPolicy.AUTO` falls
back to anyway; naming it keeps the test independent of the installed
metadata). Directory loaders read tiny fixture trees written to `tmp_path`.
Pipelines run on TensorFlow whatever the Keras backend; the mixer inside
them switches itself to TensorFlow ops.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_once
from fixtures import (
    AIRCRAFT_CLASSES,
    COLOURS,
    aircraft_tree,
    cub_tree,
    image_folder,
    write,
    write_jpeg,
)

import keras_sumix.data
from keras_sumix.data import (
    CIFAR100_C_CORRUPTIONS,
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PIPELINES,
    cifar_pipeline,
    fine_grained_pipeline,
    load_caltech_birds2011,
    load_cifar100,
    load_cifar100_c,
    load_cub200_2011,
    load_fgvc_aircraft,
    load_image_folder,
    load_tiny_imagenet,
    make_pipeline,
    occluded_objects,
    pipeline_normalization,
    pipeline_spec,
    tiny_imagenet_pipeline,
)
from keras_sumix.data.transforms import PadCropFlip, ResizedCropFlip
from keras_sumix.layers import CutMix, MixUp
from keras_sumix.recipes import RECIPES

pytestmark = run_once(
    "torch",
    "loaders and tf.data pipelines: TensorFlow ops whatever the backend "
    "(tests/test_layers.py maps every mixer in tf.data on every backend)",
)


def _arrays(dataset, limit: int = 1000):
    """All (or `limit`) elements of a dataset as numpy arrays."""
    return [
        tuple(np.asarray(t) for t in element)
        for element in dataset.take(limit).as_numpy_iterator()
    ]


def _colour_index(image: np.ndarray) -> int:
    """Which of COLOURS a (JPEG-compressed) constant image is."""
    mean = image.reshape(-1, 3).mean(0)
    return int(np.argmin([np.abs(mean - np.array(c)).sum() for c in COLOURS]))


# ---------------------------------------------------------------------- #
# TFDS (mocked)
# ---------------------------------------------------------------------- #
def _mock(num_examples: int):
    tfds = pytest.importorskip("tensorflow_datasets")
    return tfds.testing.mock_data(
        num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE
    )


def test_tfds_cifar100_mocked():
    with _mock(5):
        train, test = load_cifar100(["train", "test"])
        items = _arrays(train)
        assert len(items) == 5 and len(_arrays(test)) == 5
    assert train.element_spec[0].shape == (32, 32, 3)
    assert train.element_spec[0].dtype == tf.uint8
    assert train.element_spec[1].dtype == tf.int32
    for image, label in items:
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert label.dtype == np.int32 and 0 <= label < 100


def test_tfds_caltech_birds2011_mocked_through_pipeline():
    with _mock(4):
        ds = load_caltech_birds2011("test")
        items = _arrays(ds)
        batches = _arrays(
            fine_grained_pipeline(
                ds, batch_size=2, seed=0, image_size=24, resize_size=28
            )
        )
    assert len(items) == 4
    for image, label in items:
        assert image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8
        assert label.dtype == np.int32 and 0 <= label < 200
    assert [b[0].shape for b in batches] == [(2, 24, 24, 3)] * 2


def test_tfds_not_prepared_raises_file_not_found(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match=r"download=True"):
        load_cifar100("train", data_dir=tmp_path)


def test_tfds_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r"keras-sumix\[data\]"):
        load_caltech_birds2011("train")


def test_tfds_argument_validation():
    with pytest.raises(ValueError, match="split"):
        load_cifar100("validation")
    with pytest.raises(TypeError, match="split"):
        load_cifar100(3)
    with pytest.raises(TypeError, match="download"):
        load_cifar100("train", download="yes")


# ---------------------------------------------------------------------- #
# Directory loaders
# ---------------------------------------------------------------------- #


def test_fgvc_aircraft_names_with_spaces_and_banner_crop(tmp_path):
    trainval, test = aircraft_tree(tmp_path)
    # The dataset folder itself, or its parent, both work.
    for data_dir in (tmp_path / "fgvc-aircraft-2013b", str(tmp_path)):
        ds, names = load_fgvc_aircraft(data_dir, "trainval")
        assert names == AIRCRAFT_CLASSES
        items = _arrays(ds)
        assert [int(y) for _, y in items] == [c for _, c in trainval]
        for image, label in items:
            assert image.shape == (30, 36, 3) and image.dtype == np.uint8
            assert _colour_index(image) == label
    assert ds.element_spec[1].dtype == tf.int32
    ds, _ = load_fgvc_aircraft(tmp_path, "test", crop_banner=False)
    items = _arrays(ds)
    assert [int(y) for _, y in items] == [c for _, c in test]
    assert all(image.shape == (50, 36, 3) for image, _ in items)
    shuffled, _ = load_fgvc_aircraft(tmp_path, "trainval", shuffle=True, seed=1)
    assert sorted(int(y) for _, y in _arrays(shuffled)) == sorted(
        c for _, c in trainval
    )


def test_fgvc_aircraft_bad_annotation_lines(tmp_path):
    aircraft_tree(tmp_path)
    base = tmp_path / "fgvc-aircraft-2013b" / "data"
    write(base / "images_variant_val.txt", ["0034309 Boeing 747-999"])
    with pytest.raises(ValueError, match="747-999"):
        load_fgvc_aircraft(tmp_path, "val")
    write(base / "images_variant_train.txt", ["0000001 A320"])
    with pytest.raises(FileNotFoundError, match=r"0000001\.jpg"):
        load_fgvc_aircraft(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"families\.txt"):
        load_fgvc_aircraft(tmp_path, "train", annotation="family")
    with pytest.raises(ValueError, match="split"):
        load_fgvc_aircraft(tmp_path, "training")


def test_cub200_2011_one_based_labels_and_split(tmp_path):
    classes = cub_tree(tmp_path)
    root = tmp_path / "CUB_200_2011"

    train, names = load_cub200_2011(tmp_path, "train")
    assert names == classes
    items = _arrays(train)
    # Sorted by image id: 1, 3, 4 -> 0-based classes 0, 2, 1.
    assert [int(y) for _, y in items] == [0, 2, 1]
    for image, label in items:
        assert image.shape == (20, 28, 3) and _colour_index(image) == label
    test, _ = load_cub200_2011(root, "test")
    assert [int(y) for _, y in _arrays(test)] == [1, 0]


def test_tiny_imagenet_train_and_val_annotations(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n09193705", "n01443537", "n02124075"]  # not sorted on disk
    write(root / "wnids.txt", wnids)
    ordered = sorted(wnids)
    for wnid in wnids:
        for j in range(2):
            write_jpeg(
                root / "train" / wnid / "images" / f"{wnid}_{j}.JPEG",
                64,
                64,
                COLOURS[ordered.index(wnid)],
            )
        write(root / "train" / wnid / f"{wnid}_boxes.txt", ["ignored"])
    val = [("val_0.JPEG", "n02124075"), ("val_1.JPEG", "n09193705")]
    write(
        root / "val" / "val_annotations.txt",
        [f"{f}\t{w}\t0\t0\t63\t63" for f, w in val],
    )
    for f, w in val:
        write_jpeg(root / "val" / "images" / f, 64, 64, COLOURS[ordered.index(w)])

    train, names = load_tiny_imagenet(root, "train")
    assert names == ordered
    items = _arrays(train)
    assert sorted(int(y) for _, y in items) == [0, 0, 1, 1, 2, 2]
    for image, label in items:
        assert image.shape == (64, 64, 3) and _colour_index(image) == label
    val_ds, _ = load_tiny_imagenet(tmp_path, "val")
    assert [int(y) for _, y in _arrays(val_ds)] == [1, 2]
    batches = _arrays(tiny_imagenet_pipeline(train, batch_size=3, seed=0))
    assert [b[0].shape for b in batches] == [(3, 64, 64, 3)] * 2


def test_cifar100_c_slices_by_severity(tmp_path):
    root = tmp_path / "CIFAR-100-C"
    root.mkdir()
    n = 4
    values = np.array([10 * s + i for s in range(1, 6) for i in range(n)], "uint8")
    images = np.broadcast_to(values[:, None, None, None], (5 * n, 32, 32, 3))
    np.save(root / "fog.npy", np.ascontiguousarray(images))
    np.save(root / "labels.npy", np.arange(5 * n, dtype="int64") % 7)

    assert len(CIFAR100_C_CORRUPTIONS) == 19 and "fog" in CIFAR100_C_CORRUPTIONS
    for severity in (1, 3, 5):
        x, y = load_cifar100_c(tmp_path, "fog", severity)
        assert x.shape == (n, 32, 32, 3) and x.dtype == np.uint8
        assert y.dtype == np.int32
        np.testing.assert_array_equal(x[:, 0, 0, 0], 10 * severity + np.arange(n))
        np.testing.assert_array_equal(
            y, np.arange((severity - 1) * n, severity * n) % 7
        )
    ds = load_cifar100_c(root, "fog", 2, as_dataset=True)
    items = _arrays(ds)
    assert [int(img[0, 0, 0]) for img, _ in items] == [20, 21, 22, 23]
    with pytest.raises(ValueError, match="severity"):
        load_cifar100_c(root, "fog", 6)
    with pytest.raises(ValueError, match="severity"):
        load_cifar100_c(root, "fog", 0)
    with pytest.raises(ValueError, match="corruption"):
        load_cifar100_c(root, "rain", 1)
    with pytest.raises(FileNotFoundError, match=r"snow\.npy"):
        load_cifar100_c(root, "snow", 1)


@pytest.mark.parametrize(
    "load, expected",
    [
        (
            lambda d: load_fgvc_aircraft(d),
            ["variants.txt", "images_variant_<split>.txt", "robots.ox.ac.uk"],
        ),
        (
            lambda d: load_cub200_2011(d),
            ["images.txt", "image_class_labels.txt", "train_test_split.txt"],
        ),
        (
            lambda d: load_tiny_imagenet(d),
            ["wnids.txt", "val_annotations.txt", "tiny-imagenet-200.zip"],
        ),
        (
            lambda d: load_cifar100_c(d, "fog", 1),
            ["labels.npy", "<corruption>.npy", "zenodo"],
        ),
    ],
    ids=["aircraft", "cub", "tiny_imagenet", "cifar100_c"],
)
def test_missing_directory_says_where_and_what(tmp_path, load, expected):
    with pytest.raises(FileNotFoundError) as info:
        load(tmp_path / "nowhere")
    message = str(info.value)
    assert "Download" in message and "Expected layout" in message
    for text in expected:
        assert text in message


def test_loader_argument_types(tmp_path):
    with pytest.raises(TypeError, match="data_dir"):
        load_cub200_2011(42)
    with pytest.raises(TypeError, match="shuffle"):
        load_tiny_imagenet(tmp_path, shuffle="yes")


def test_file_order_of_an_epoch_depends_on_seed_and_epoch_alone(tmp_path):
    """`epoch=` (what `train` passes to the loaders): each iteration's file
    order is a function of `(seed, epoch)`, whatever TensorFlow's global
    seed and however often the dataset was iterated, so a resumed run
    replays the order of the epoch it resumes."""
    image_folder(tmp_path, classes=("a", "b", "c", "d"), per_class=5)
    epoch = tf.Variable(0, dtype=tf.int64)

    def order(ds):  # each image by its label and its pixels' sum
        return [(int(y), int(x.sum())) for x, y in _arrays(ds)]

    kwargs = {"shuffle": True, "seed": 3, "epoch": epoch}
    loaded, _ = load_image_folder(tmp_path, "train", **kwargs)
    seen = []
    for index in range(3):
        epoch.assign(index)
        seen.append(order(loaded))
    assert sorted(seen[0]) == sorted(seen[1]) and seen[0] != seen[1]
    assert len(set(seen[0])) == 16  # every image told apart
    for global_seed in (1, 2):  # a fresh dataset, as in a resumed process
        tf.random.set_seed(global_seed)
        fresh, _ = load_image_folder(tmp_path, "train", **kwargs)
        assert order(fresh) == seen[2]
        fixed, _ = load_image_folder(tmp_path, "train", **{**kwargs, "epoch": 2})
        assert order(fixed) == seen[2]
    tf.random.set_seed(None)
    with pytest.raises(ValueError, match="seed"):
        load_image_folder(tmp_path, "train", shuffle=True, epoch=1)
    with pytest.raises(TypeError, match="epoch"):
        load_image_folder(tmp_path, "train", **{**kwargs, "epoch": tf.Variable(1.0)})


# ---------------------------------------------------------------------- #
# A folder of the user's own images
# ---------------------------------------------------------------------- #
def test_image_folder_splits_each_class_the_same_way_every_time(tmp_path):
    image_folder(tmp_path, classes=("cats", "dogs", "owls"), per_class=5)
    (tmp_path / ".hidden").mkdir()  # skipped, as are non-image files
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    train, names = load_image_folder(tmp_path, "train")
    val, same = load_image_folder(tmp_path, "val")
    assert names == same == ["cats", "dogs", "owls"]
    train, val = _arrays(train), _arrays(val)
    # 20% of 5 images per class held out: 1 per class, 4 trained on.
    assert [int(y) for _, y in train] == [0] * 4 + [1] * 4 + [2] * 4
    assert [int(y) for _, y in val] == [0, 1, 2]
    for image, label in train + val:  # any size, labelled by its folder
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert _colour_index(image) == label
    sizes = {image.shape for image, _ in train}
    assert len(sizes) > 1
    again = _arrays(load_image_folder(tmp_path, "val")[0])
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(val, again, strict=True))
    half = _arrays(load_image_folder(tmp_path, "val", validation_fraction=0.5)[0])
    assert len(half) == 3 * 2  # round(2.5) = 2 per class


def test_image_folder_with_train_and_val_folders(tmp_path):
    image_folder(tmp_path, per_class=3, split=True)
    train, names = load_image_folder(tmp_path, "train")
    val, _ = load_image_folder(tmp_path, "val")
    assert names == ["cats", "dogs"]
    assert [int(y) for _, y in _arrays(train)] == [0, 0, 0, 1, 1, 1]
    assert [int(y) for _, y in _arrays(val)] == [0, 0, 1, 1]
    # The split is given: a fraction would be ignored, hence refused.
    with pytest.raises(ValueError, match="validation_fraction"):
        load_image_folder(tmp_path, "train", validation_fraction=0.3)


def test_image_folder_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="data_dir"):
        load_image_folder(42)
    image_folder(tmp_path / "one", classes=("cats",))
    with pytest.raises(ValueError, match="one subfolder per class"):
        load_image_folder(tmp_path / "one")
    image_folder(tmp_path / "empty")
    (tmp_path / "empty" / "owls").mkdir()
    with pytest.raises(ValueError, match=r"owls.*holds no image"):
        load_image_folder(tmp_path / "empty")
    image_folder(tmp_path / "two")
    for fraction in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="validation_fraction"):
            load_image_folder(tmp_path / "two", validation_fraction=fraction)
    with pytest.raises(ValueError, match="split"):
        load_image_folder(tmp_path / "two", "test")
    image_folder(tmp_path / "split", split=True)
    (tmp_path / "split" / "val" / "owls").mkdir()
    with pytest.raises(ValueError, match="owls"):
        load_image_folder(tmp_path / "split", "val")


# ---------------------------------------------------------------------- #
# Pipelines
# ---------------------------------------------------------------------- #
def _uint8_dataset(n: int, height: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, height, width, 3)).astype("uint8")
    y = (np.arange(n) % 10).astype("int64")
    return tf.data.Dataset.from_tensor_slices((x, y)), x


def _varying_sizes_dataset():
    sizes = [(60, 80), (90, 70), (64, 64), (100, 50)]

    def generate():
        rng = np.random.default_rng(0)
        for k, (h, w) in enumerate(sizes):
            yield rng.integers(0, 256, (h, w, 3)).astype("uint8"), k

    return tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec((None, None, 3), tf.uint8),
            tf.TensorSpec((), tf.int32),
        ),
    )


IMAGENET_LOW = min(
    (0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)
)
IMAGENET_HIGH = max(
    (1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)
)


@pytest.mark.parametrize("training", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("recipe", ["cifar", "tiny_imagenet", "fine_grained"])
def test_recipe_output_shapes_dtypes_ranges(recipe, training):
    if recipe == "cifar":
        ds, size, kwargs = _uint8_dataset(6, 32, 32)[0], 32, {}
    elif recipe == "tiny_imagenet":
        ds, size, kwargs = _uint8_dataset(6, 64, 64)[0], 64, {}
    else:
        ds, size, kwargs = _varying_sizes_dataset(), 224, {}
    batches = _arrays(
        make_pipeline(ds, recipe, training=training, batch_size=2, seed=0, **kwargs)
    )
    assert len(batches) >= 2
    for images, labels in batches:
        assert images.shape == (2, size, size, 3) and images.dtype == np.float32
        assert labels.shape == (2,) and labels.dtype == np.int32
        if recipe == "cifar":
            assert -2.5 < images.min() and images.max() < 2.8
        else:
            assert images.min() >= IMAGENET_LOW - 1e-4
            assert images.max() <= IMAGENET_HIGH + 1e-4
    unit = _arrays(
        make_pipeline(ds, recipe, training=training, batch_size=2, normalization="unit")
    )
    assert all(0.0 <= b[0].min() and b[0].max() <= 1.0 for b in unit)


def _shift_and_flip(padded: np.ndarray, out: np.ndarray):
    """The (dy, dx, flipped) such that `out` is that crop of `padded`."""
    size = out.shape[0]
    for dy in range(padded.shape[0] - size + 1):
        for dx in range(padded.shape[1] - size + 1):
            crop = padded[dy : dy + size, dx : dx + size]
            for flipped in (False, True):
                if np.allclose(out, crop[:, ::-1] if flipped else crop, atol=1e-6):
                    return dy, dx, flipped
    return None


def test_cifar_pad_crop_keeps_32_and_is_a_shifted_window():
    ds, x = _uint8_dataset(16, 32, 32, seed=1)
    (images, labels), *_ = _arrays(
        cifar_pipeline(ds, batch_size=16, seed=5, shuffle=False, normalization="unit")
    )
    assert images.shape == (16, 32, 32, 3)
    np.testing.assert_array_equal(labels, np.arange(16) % 10)
    padded = np.pad(x / 255.0, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    found = [_shift_and_flip(padded[i], images[i]) for i in range(16)]
    assert all(f is not None for f in found), found
    assert len({(dy, dx) for dy, dx, _ in found}) > 1  # the crop moves


@pytest.mark.parametrize("recipe", ["cifar", "fine_grained"])
def test_flip_happens_sometimes(recipe):
    # Left half black, right half white: a flip swaps the halves.
    image = np.zeros((32, 32, 3), "uint8")
    image[:, 16:] = 255
    ds = tf.data.Dataset.from_tensor_slices(
        (np.repeat(image[None], 40, 0), np.zeros(40, "int32"))
    )
    kwargs = (
        {"padding": 0}
        if recipe == "cifar"
        else {"image_size": 32, "resize_size": 32, "crop_scale": (1.0, 1.0)}
    )
    (images, _), *_ = _arrays(
        make_pipeline(ds, recipe, batch_size=40, seed=0, normalization="unit", **kwargs)
    )
    left = images[:, :, :8].mean(axis=(1, 2, 3))
    right = images[:, :, -8:].mean(axis=(1, 2, 3))
    flipped = left > right
    assert 0 < flipped.sum() < 40
    # Only the flip is random here (no padding / a whole-image crop).
    for out, was_flipped in zip(images, flipped, strict=True):
        expected = image[:, ::-1] if was_flipped else image
        np.testing.assert_allclose(out, expected / 255.0, atol=1e-6)


@pytest.mark.parametrize("recipe", ["cifar", "fine_grained"])
def test_same_seed_same_batches(recipe):
    ds, _ = _uint8_dataset(12, 40, 40)
    kwargs = {} if recipe == "cifar" else {"image_size": 24, "resize_size": 32}

    def run(seed):
        pipeline = make_pipeline(ds, recipe, batch_size=4, seed=seed, **kwargs)
        return [_arrays(pipeline), _arrays(pipeline)]  # two epochs

    first, again, other = run(7), run(7), run(8)
    for a, b in zip(first, again, strict=True):
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    epoch1, epoch2 = first
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])  # reshuffled per epoch
    assert not np.array_equal(epoch1[0][0], other[0][0][0])


def test_random_resized_crop_box_within_scale_and_ratio():
    # Pixel values encode their own coordinates; nearest interpolation keeps
    # them, so each output's value range is the box that was cropped.
    rows, cols = np.meshgrid(np.arange(100), np.arange(120), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], -1).astype("uint8")
    ds = tf.data.Dataset.from_tensor_slices(
        (np.repeat(image[None], 32, 0), np.zeros(32, "int32"))
    )
    (images, _), *_ = _arrays(
        fine_grained_pipeline(
            ds,
            batch_size=32,
            seed=0,
            image_size=50,
            resize_size=100,
            interpolation="nearest",
            normalization="unit",
        )
    )
    coords = np.round(images * 255.0)
    height = coords[..., 0].max((1, 2)) - coords[..., 0].min((1, 2)) + 1
    width = coords[..., 1].max((1, 2)) - coords[..., 1].min((1, 2)) + 1
    area = height * width / (100 * 120)
    assert np.all((area > 0.5 - 0.03) & (area <= 1.0))
    assert np.all((width / height > 0.75 - 0.03) & (width / height < 4 / 3 + 0.03))
    assert len(set(area.round(3))) > 10  # the boxes vary


def test_centre_crop_at_test_time_is_exact_and_deterministic():
    ds, x = _uint8_dataset(3, 64, 80)
    pipeline = make_pipeline(
        ds,
        "fine_grained",
        training=False,
        batch_size=3,
        image_size=48,
        resize_size=64,
        normalization="unit",
    )
    (images, labels), *_ = _arrays(pipeline)
    # Shorter side already 64: no resize; centre 48x48 crop of 64x80.
    np.testing.assert_allclose(images, x[:, 8:56, 16:64] / 255.0, atol=1e-6)
    (again, _), *_ = _arrays(pipeline)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, [0, 1, 2])


def test_test_time_keeps_order_and_last_partial_batch():
    ds, _ = _uint8_dataset(10, 32, 32)
    test = _arrays(cifar_pipeline(ds, training=False, batch_size=4))
    assert [len(y) for _, y in test] == [4, 4, 2]
    np.testing.assert_array_equal(
        np.concatenate([y for _, y in test]), np.arange(10) % 10
    )
    train = _arrays(cifar_pipeline(ds, training=True, batch_size=4, seed=0))
    assert [len(y) for _, y in train] == [4, 4]


@pytest.mark.parametrize("mixer_cls", [CutMix, MixUp])
def test_mixer_gives_soft_labels(mixer_cls):
    data = occluded_objects(8, seed=0)  # float images in [0, 1]
    ds = tf.data.Dataset.from_tensor_slices(
        {"image": data.images, "label": data.labels}
    )

    def build():
        mixer = mixer_cls(alpha=1.0, num_classes=10, seed=1)
        return cifar_pipeline(ds, batch_size=4, seed=0, mixer=mixer)

    pipeline = build()
    assert pipeline.element_spec[1].shape.as_list() == [4, 10]
    batches = _arrays(pipeline)
    for (x, y), (x2, y2) in zip(batches, _arrays(build()), strict=True):
        np.testing.assert_array_equal(x, x2)  # same seeds, same mixed batches
        np.testing.assert_array_equal(y, y2)
    assert len(batches) == 2
    for images, labels in batches:
        assert images.shape == (4, 32, 32, 3) and images.dtype == np.float32
        assert labels.shape == (4, 10) and labels.dtype == np.float32
        np.testing.assert_allclose(labels.sum(-1), 1.0, atol=1e-6)
        assert labels.min() >= 0.0
        assert np.sum(labels > 1e-6, axis=-1).max() <= 2


def test_pipeline_argument_validation():
    ds, _ = _uint8_dataset(4, 32, 32)
    with pytest.raises(ValueError, match="`pipeline` must be one of"):
        make_pipeline(ds, "imagenet")
    with pytest.raises(TypeError, match="dataset"):
        make_pipeline(np.zeros((4, 32, 32, 3)), "cifar")
    with pytest.raises(ValueError, match="unbatched"):
        make_pipeline(ds.batch(2), "cifar")
    with pytest.raises(ValueError, match="batch_size"):
        make_pipeline(ds, "cifar", batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        make_pipeline(ds, "cifar", batch_size=2.5)
    with pytest.raises(ValueError, match="crop_scale"):
        make_pipeline(ds, "cifar", crop_scale=(0.5, 1.0))
    with pytest.raises(ValueError, match="padding"):
        make_pipeline(ds, "fine_grained", padding=4)
    with pytest.raises(ValueError, match="resize_size"):
        make_pipeline(ds, "fine_grained", image_size=64, resize_size=32)
    with pytest.raises(ValueError, match="crop_scale"):
        make_pipeline(ds, "fine_grained", crop_scale=(0.9, 0.5))
    with pytest.raises(ValueError, match="normalization"):
        make_pipeline(ds, "cifar", normalization="z-score")
    with pytest.raises(ValueError, match="num_classes"):
        make_pipeline(ds, "cifar", mixer=CutMix())
    with pytest.raises(ValueError, match="training"):
        make_pipeline(ds, "cifar", training=False, mixer=CutMix(num_classes=10))
    with pytest.raises(TypeError, match="mixer"):
        make_pipeline(ds, "cifar", mixer="cutmix")


def test_named_pipelines_and_their_defaults():
    assert PIPELINES == ("cifar", "tiny_imagenet", "fine_grained", "cifar_vit")
    # One name per concept: every training recipe names one of PIPELINES.
    assert {recipe["pipeline"] for recipe in RECIPES.values()} <= set(PIPELINES)
    assert not hasattr(keras_sumix.data, "RECIPES")
    assert not hasattr(keras_sumix.data, "NUM_CLASSES")
    assert pipeline_normalization("cifar") == (CIFAR_MEAN, CIFAR_STD)
    assert pipeline_normalization("fine_grained") == (IMAGENET_MEAN, IMAGENET_STD)
    spec = pipeline_spec("tiny_imagenet")
    assert (spec.batch_size, spec.normalization) == (100, "imagenet")
    assert spec.augmentation == ResizedCropFlip(64, 64, (0.08, 1.0), "bicubic")
    assert pipeline_spec("cifar").augmentation == PadCropFlip(4, "reflect")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.batch_size = 1
    for bad in ("recipe", "cifar100-r18", None):
        with pytest.raises(ValueError, match=r"`pipeline` must be one of"):
            pipeline_normalization(bad)
    # The pipeline is also a keyword argument, as in TrainConfig.
    ds, _ = _uint8_dataset(4, 20, 20)
    (images, _), *_ = _arrays(
        make_pipeline(ds, pipeline="cifar_vit", training=False, image_size=8)
    )
    assert images.shape == (4, 8, 8, 3)


def test_augmentations_are_validated_and_keep_their_ratio():
    fine = pipeline_spec("fine_grained").augmentation
    assert fine.with_options(image_size=112).resize_size == 128  # 256 / 224
    assert fine.with_options(image_size=112, resize_size=112).resize_size == 112
    assert fine.with_options(crop_scale=[0.2, 0.4]).crop_scale == (0.2, 0.4)
    with pytest.raises(ValueError, match="resize_size"):
        fine.with_options(image_size=64, resize_size=32)
    with pytest.raises(ValueError, match="interpolation"):
        ResizedCropFlip(8, 8, (0.5, 1.0), "lanczos")
    with pytest.raises(TypeError, match="image_size"):
        fine.with_options(image_size=2.5)
    with pytest.raises(ValueError, match="padding"):
        PadCropFlip(padding=-1)
    with pytest.raises(ValueError, match="padding_mode"):
        PadCropFlip().with_options(padding_mode="wrap")


def test_data_modules_import_no_private_names_of_each_other():
    folder = Path(keras_sumix.data.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and "keras_sumix" in (
                node.module or ""
            ):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private}"


# ---------------------------------------------------------------------- #
# Recorded outputs: every pipeline and its defaults, pinned
# ---------------------------------------------------------------------- #
# Outputs of small pipelines (two iterations each) recorded by the library
# as it was when the recording was made: a refactoring must reproduce them.
# Regenerate only for an intended change of outputs, with
# `KERAS_BACKEND=jax python tests/test_data.py`.
RECORDED = Path(__file__).parent / "data" / "pipeline_outputs.npz"


def _rgb(n: int, height: int, width: int, channels: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, height, width, channels)).astype("uint8")


def _pairs(images, label_dtype: str = "int32"):
    labels = (np.arange(len(images)) % 10).astype(label_dtype)
    return tf.data.Dataset.from_tensor_slices((images, labels))


def _ragged_rgb():
    """Four images of different sizes, shape `(None, None, 3)`."""
    images = [
        _rgb(1, h, w, seed=k)[0]
        for k, (h, w) in enumerate(((20, 30), (26, 18), (24, 24), (16, 32)))
    ]

    return tf.data.Dataset.from_generator(
        lambda: ((image, k) for k, image in enumerate(images)),
        output_signature=(
            tf.TensorSpec((None, None, 3), tf.uint8),
            tf.TensorSpec((), tf.int32),
        ),
    )


# name: (dataset, pipeline, make_pipeline keyword arguments); built per call
# (mixers hold a seeded random state).
RECORDED_CASES = {
    "cifar-train": lambda: (_pairs(_rgb(8, 32, 32)), "cifar", {"seed": 0}),
    "cifar-test": lambda: (_pairs(_rgb(6, 32, 32)), "cifar", {"training": False}),
    "cifar-resized-symmetric": lambda: (
        _pairs(_rgb(8, 20, 20, seed=1), "int64"),
        "cifar",
        {"seed": 1, "image_size": 16, "padding": 2, "padding_mode": "symmetric"},
    ),
    "cifar-resized-test": lambda: (
        _pairs(_rgb(6, 20, 20, seed=1)),
        "cifar",
        {"training": False, "image_size": 16},
    ),
    "cifar-constant-unshuffled": lambda: (
        _pairs(_rgb(6, 20, 20, seed=2)),
        "cifar",
        {
            "seed": 2,
            "padding_mode": "constant",
            "shuffle": False,
            "drop_remainder": False,
            "cache": True,
        },
    ),
    "cifar-grey-unit": lambda: (
        _pairs(_rgb(8, 20, 20, channels=1, seed=3)),
        "cifar",
        {"seed": 3, "normalization": "unit", "shuffle_buffer": 3},
    ),
    "cifar-epoch": lambda: (
        _pairs(_rgb(8, 20, 20, seed=4)),
        "cifar",
        {"seed": 4, "epoch": 1},
    ),
    "cifar-cutmix": lambda: (
        _pairs(_rgb(8, 32, 32)),
        "cifar",
        {"seed": 0, "mixer": CutMix(alpha=1.0, num_classes=10, seed=1)},
    ),
    "cifar-mixup-dict-float": lambda: (
        tf.data.Dataset.from_tensor_slices(
            {
                "image": _rgb(8, 20, 20, seed=5).astype("float32") / 255.0,
                "label": np.arange(8, dtype="int32"),
            }
        ),
        "cifar",
        {"seed": 5, "mixer": MixUp(alpha=1.0, num_classes=10, seed=2)},
    ),
    "cifar-rand-augment": lambda: (
        _pairs(_rgb(8, 20, 20, seed=6)),
        "cifar",
        {"seed": 6, "rand_augment": True},
    ),
    "tiny_imagenet-train": lambda: (
        _pairs(_rgb(8, 32, 32)),
        "tiny_imagenet",
        {"seed": 0},
    ),
    "tiny_imagenet-test": lambda: (
        _pairs(_rgb(6, 32, 32)),
        "tiny_imagenet",
        {"training": False},
    ),
    "tiny_imagenet-image-size": lambda: (
        _pairs(_rgb(8, 32, 32, seed=7)),
        "tiny_imagenet",
        {"seed": 7, "image_size": 24},
    ),
    "fine_grained-train": lambda: (_ragged_rgb(), "fine_grained", {"seed": 0}),
    "fine_grained-test": lambda: (
        _ragged_rgb(),
        "fine_grained",
        {"training": False},
    ),
    "fine_grained-bicubic-unit": lambda: (
        _pairs(_rgb(8, 20, 30, seed=8)),
        "fine_grained",
        {
            "seed": 8,
            "image_size": 20,
            "resize_size": 28,
            "crop_scale": (0.3, 0.9),
            "interpolation": "bicubic",
            "normalization": "unit",
        },
    ),
    "cifar_vit-train": lambda: (_pairs(_rgb(8, 32, 32)), "cifar_vit", {"seed": 0}),
    "cifar_vit-test": lambda: (
        _pairs(_rgb(6, 32, 32)),
        "cifar_vit",
        {"training": False},
    ),
}


def _recorded_outputs(name: str) -> dict[str, np.ndarray]:
    """Two iterations of the case's pipeline (batch size 4), summarised: all
    labels and batch sizes, a 16x16 grid of pixels (every pixel up to 16 px)
    and per-image, per-channel sums and sums of squares."""
    dataset, pipeline, kwargs = RECORDED_CASES[name]()
    batches = make_pipeline(dataset, pipeline, batch_size=4, **kwargs)
    epochs = [_arrays(batches), _arrays(batches)]
    images = np.concatenate([x for epoch in epochs for x, _ in epoch])
    step = -(-images.shape[1] // 16)
    wide = images.astype("float64")
    return {
        "sizes": np.array([len(y) for epoch in epochs for _, y in epoch]),
        "labels": np.concatenate([y for epoch in epochs for _, y in epoch]),
        "shape": np.array(images.shape),
        "dtype": np.array(str(images.dtype)),
        "grid": images[:, ::step, ::step],
        "sums": wide.sum((1, 2)),
        "squares": (wide**2).sum((1, 2)),
    }


@pytest.mark.parametrize("name", sorted(RECORDED_CASES))
def test_pipeline_outputs_match_the_recording(name):
    # tf.data pairs make_pipeline's seeds with TensorFlow's global seed, which
    # other tests set (keras.utils.set_random_seed): the recording was made
    # without one.
    tf.random.set_seed(None)
    recorded = np.load(RECORDED)
    outputs = _recorded_outputs(name)
    for key in ("sizes", "shape", "dtype"):
        np.testing.assert_array_equal(outputs[key], recorded[f"{name}/{key}"], key)
    # Float noise only (resizes may round differently on another CPU).
    np.testing.assert_allclose(
        outputs["labels"], recorded[f"{name}/labels"], rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(
        outputs["grid"], recorded[f"{name}/grid"], rtol=0, atol=1e-5
    )
    for key in ("sums", "squares"):
        np.testing.assert_allclose(
            outputs[key], recorded[f"{name}/{key}"], rtol=1e-6, atol=1e-3
        )


if __name__ == "__main__":
    RECORDED.parent.mkdir(exist_ok=True)
    np.savez_compressed(
        RECORDED,
        **{
            f"{name}/{key}": value
            for name in sorted(RECORDED_CASES)
            for key, value in _recorded_outputs(name).items()
        },
    )
