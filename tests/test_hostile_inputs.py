"""Hostile inputs at every public entry point: each either raises an error
naming the problem or has a documented behaviour, asserted here.

Entry points: the mixers (`keras_sumix.layers`), `sumix_loss`, the models'
`fit` / `train_on_batch` / `evaluate`, the directory loaders, CIFAR-100-C,
`make_pipeline`, `occluded_objects` and the command line. Shapes are few and
small (each new shape compiles under JAX); hypothesis varies values.
"""

from __future__ import annotations

import contextlib
import io
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import in_tf_data, source_of, tagged_images, to_np
from fixtures import aircraft_tree, cub_tree, write
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_sumix as ks
from keras_sumix import cli
from keras_sumix.callbacks import TrainingDiverged
from keras_sumix.data import (
    load_cifar100_c,
    load_cub200_2011,
    load_fgvc_aircraft,
    load_tiny_imagenet,
    make_pipeline,
    occluded_objects,
)
from keras_sumix.layers import MIXERS, CutMix, MixUp, RandomChoice, get_mixer

# AutoMix, which mixes by a model's features, and ManifoldMix, which mixes
# them inside a model, have their own: test_auto_mix.py, test_manifold_mix.py.
NAMES = sorted(
    name
    for name, cls in MIXERS.items()
    if not (cls.needs_features or cls.mixes_features)
)
N, H, W, C = 4, 8, 8, 3  # the one image shape most tests use
CLASSES = 4


def _derangement(perm: np.ndarray) -> None:
    assert sorted(perm.tolist()) == list(range(len(perm)))
    if len(perm) >= 2:
        assert np.all(perm != np.arange(len(perm)))


def _kept_share(images: np.ndarray, mixed: np.ndarray, perm: np.ndarray):
    """Share of each output's pixels taken from its own sample (tagged)."""
    src = source_of(mixed)
    own = src == np.arange(len(images))[:, None, None]
    assert np.all(own | (src == perm[:, None, None]))
    return own.mean(axis=(1, 2))


# --------------------------------------------------------------------------- #
# Mixers: dtypes
# --------------------------------------------------------------------------- #
@given(
    name=st.sampled_from(NAMES),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(["uint8", "bool"]),
)
def test_integer_and_bool_images_mix_as_their_float_values(name, seed, dtype):
    """Documented: cast to the compute dtype, not rescaled."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256 if dtype == "uint8" else 2, (N, H, W, C)).astype(dtype)
    cast = get_mixer(name, seed=seed).mix(x)
    ref = get_mixer(name, seed=seed).mix(x.astype("float32"))
    assert keras.backend.standardize_dtype(cast.images.dtype) == "float32"
    np.testing.assert_array_equal(to_np(cast.permutation), to_np(ref.permutation))
    np.testing.assert_allclose(to_np(cast.lam), to_np(ref.lam), atol=1e-6)
    np.testing.assert_allclose(to_np(cast.images), to_np(ref.images), atol=1e-4)
    if dtype == "uint8":  # values are not rescaled to [0, 1]
        assert to_np(cast.images).max() > 1.0


# --------------------------------------------------------------------------- #
# Mixers: NaN / Inf pixels
# --------------------------------------------------------------------------- #
@given(
    name=st.sampled_from(NAMES),
    sample=st.integers(0, N - 1),
    row=st.integers(0, H - 1),
    col=st.integers(0, W - 1),
    value=st.sampled_from([np.nan, np.inf, -np.inf]),
)
def test_non_finite_pixels_stay_in_the_samples_mixed_with_them(
    name, sample, row, col, value
):
    """Documented: NaN/Inf propagate to the samples they are mixed into;
    lam and the pairing stay finite and exact, other samples unchanged."""
    x = tagged_images(N, H, W, C, seed=1)
    clean = get_mixer(name, seed=7).mix(x)
    x[sample, row, col, 0] = value
    dirty = get_mixer(name, seed=7).mix(x)
    perm, lam = to_np(dirty.permutation), to_np(dirty.lam)
    _derangement(perm)
    np.testing.assert_array_equal(perm, to_np(clean.permutation))
    assert np.all(np.isfinite(lam)) and np.all((lam >= 0) & (lam <= 1))
    bad = ~np.isfinite(to_np(dirty.images)).reshape(N, -1).all(axis=1)
    touched = (np.arange(N) == sample) | (perm == sample)
    assert bad[sample]  # 0 * NaN is NaN: never silently dropped
    assert not np.any(bad & ~touched)
    others = ~touched
    np.testing.assert_allclose(
        to_np(dirty.images)[others], to_np(clean.images)[others], rtol=1e-6
    )
    np.testing.assert_allclose(lam[others], to_np(clean.lam)[others], atol=1e-6)


# --------------------------------------------------------------------------- #
# Mixers: batch sizes and image sizes
# --------------------------------------------------------------------------- #
def test_empty_batch_raises():
    # Loops rather than parametrization keep this file's run time down.
    layers = [get_mixer(name, seed=0) for name in NAMES]
    for layer in [*layers, RandomChoice([MixUp(), CutMix()], seed=0)]:
        for shape in [(0, H, W, C), (N, 0, W, C)]:
            match = rf"`images` must not be empty.*{re.escape(str(shape))}"
            with pytest.raises(ValueError, match=match):
                layer.mix(np.zeros(shape, "float32"))


@given(label=st.integers(0, CLASSES - 1))
def test_batch_of_one_is_returned_unmixed_with_its_own_label(label):
    # Every mixer's images: test_layers.py; the labels, here (shared code).
    x = tagged_images(1, H, W, C)
    out = CutMix(seed=label, num_classes=CLASSES)(
        {"images": x, "labels": np.array([label], "int32")}
    )
    np.testing.assert_allclose(to_np(out["images"]), x, rtol=1e-6)
    np.testing.assert_allclose(to_np(out["labels"]), np.eye(CLASSES)[[label]])


@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**16))
def test_one_pixel_images_keep_an_exact_lam(name, seed):
    """Documented: works down to 1x1; a cutting mixer keeps or replaces whole
    pixels, so a 1x1 image's lam is 0 or 1."""
    x = tagged_images(N, 1, 1, C, seed=seed)
    result = get_mixer(name, seed=seed).mix(x)
    perm, lam, mixed = (
        to_np(v) for v in (result.permutation, result.lam, result.images)
    )
    _derangement(perm)
    assert mixed.shape == x.shape and np.all((lam >= 0) & (lam <= 1))
    if name == "mixup":
        expected = (
            lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm]
        )
        np.testing.assert_allclose(mixed, expected, rtol=1e-6)
    elif get_mixer(name).in_place:
        np.testing.assert_allclose(_kept_share(x, mixed, perm), lam, atol=1e-6)
        assert set(lam.tolist()) <= {0.0, 1.0}
    else:
        # Moved or blended pixels (PuzzleMix): lam is the mask's mean.
        mask = to_np(result.mask)
        np.testing.assert_array_max_ulp(mask.mean(axis=(1, 2, 3)), lam)


def test_large_images_keep_an_exact_lam():
    # SaliencyMix downscales images larger than `saliency_size` (only here);
    # FMix's upsampled grid is tested from 32 px in test_layers.py; CutMix
    # boxes and ResizeMix's int32 limit (below) cover the other two. Each
    # new shape compiles every op under JAX, hence two mixers only.
    x = tagged_images(2, 384, 512, 1, seed=3)
    for name in ("cutmix", "saliencymix"):
        result = get_mixer(name, seed=5).mix(x)
        perm, lam = to_np(result.permutation), to_np(result.lam)
        np.testing.assert_allclose(
            _kept_share(x, to_np(result.images), perm), lam, atol=1e-6
        )


def test_resizemix_refuses_batches_too_large_for_int32_indices():
    # Traced only (a tf.function: no memory is allocated), on every backend.
    layer = get_mixer("resizemix", seed=0)
    traced = tf.function(lambda images: layer.mix(images).images)
    with pytest.raises(ValueError, match=r"N \* H \* W >= 2\*\*31"):
        traced.get_concrete_function(tf.TensorSpec((2**15, 256, 256, 1), "float32"))


# --------------------------------------------------------------------------- #
# Mixers: labels
# --------------------------------------------------------------------------- #
BAD_LABEL = st.one_of(st.integers(-1000, -1), st.integers(CLASSES, 1000))


@given(name=st.sampled_from(NAMES), bad=BAD_LABEL, at=st.integers(0, N - 1))
def test_out_of_range_labels_raise_before_mixing(name, bad, at):
    labels = np.arange(N, dtype="int64") % CLASSES
    labels[at] = bad
    layer = get_mixer(name, num_classes=CLASSES, seed=0)
    with pytest.raises(ValueError, match=rf"`labels`.*\[0, {CLASSES}\).*{bad}"):
        layer((tagged_images(N, H, W, C), labels))
    with pytest.raises(ValueError, match="`labels`"):
        layer({"images": tagged_images(N, H, W, C), "labels": labels.tolist()})


@in_tf_data
def test_out_of_range_labels_raise_inside_tf_data():
    """Labels computed with TensorFlow ops (any backend's tf.data) are
    checked by a run-time assertion."""
    layer = CutMix(num_classes=CLASSES, seed=0)
    for bad in (-1, CLASSES):
        labels = np.arange(N, dtype="int32") % CLASSES
        labels[2] = bad
        # (N,) and (N, 1) (keras.datasets' labels) are both class indices.
        for shaped in (labels, labels[:, None]):
            ds = tf.data.Dataset.from_tensors((tagged_images(N, H, W, C), shaped))
            ds = ds.map(layer)
            with pytest.raises(
                tf.errors.InvalidArgumentError, match=r"`labels`.*\[0, 4\)"
            ):
                list(ds.as_numpy_iterator())


@given(name=st.sampled_from(NAMES), size=st.sampled_from([1, 3, 5]))
def test_wrong_label_dtype_and_batch_size_raise(name, size):
    layer = get_mixer(name, num_classes=CLASSES, seed=0)
    x = tagged_images(N, H, W, C)
    with pytest.raises(TypeError, match=r"`labels`.*integer.*float32"):
        layer((x, np.arange(N, dtype="float32")))
    with pytest.raises(ValueError, match=rf"`labels` batch size \({size}\).*\(4\)"):
        layer((x, np.arange(size, dtype="int32") % CLASSES))


# --------------------------------------------------------------------------- #
# Mixers: channel order
# --------------------------------------------------------------------------- #
@given(name=st.sampled_from(NAMES))
def test_channels_first_batch_under_channels_last_config_raises(name):
    x = tagged_images(N, H, W, C)
    first = np.transpose(x, (0, 3, 1, 2))
    with pytest.raises(ValueError, match=r"look channels_first.*data_format="):
        get_mixer(name, seed=0).mix(first)
    # Given explicitly, channels_first mixes as the transposed batch.
    ok = get_mixer(name, seed=0, data_format="channels_first").mix(first)
    ref = get_mixer(name, seed=0).mix(x)
    np.testing.assert_allclose(
        np.transpose(to_np(ok.images), (0, 2, 3, 1)), to_np(ref.images), rtol=1e-6
    )


def test_an_explicit_data_format_and_small_feature_maps_are_trusted():
    # The check is shared (MixingLayer); MixUp is the cheapest to run it.
    first = np.transpose(tagged_images(N, H, W, C), (0, 3, 1, 2))
    same = MixUp(seed=0, data_format="channels_last").mix(first)
    assert to_np(same.images).shape == first.shape
    for shape in [(2, 3, 3, 16), (2, 4, 4, 8)]:  # sides of at most 4
        assert to_np(MixUp(seed=0).mix(np.ones(shape, "float32")).lam).shape == (2,)


def test_channels_last_batch_under_channels_first_config_raises():
    keras.config.set_image_data_format("channels_first")  # reset by conftest
    with pytest.raises(ValueError, match=r"look channels_last.*'channels_first'"):
        MixUp(seed=0).mix(tagged_images(N, 16, 16, C))


# --------------------------------------------------------------------------- #
# sumix_loss
# --------------------------------------------------------------------------- #
def _loss_batch(n=N, c=CLASSES, seed=0):
    rng = np.random.default_rng(seed)

    def head(z):
        p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        return (p / np.linalg.norm(p, axis=-1, keepdims=True)).astype("float32")

    return {
        "labels": (np.arange(n) % c).astype("int32"),
        "raw_logits": rng.normal(size=(n, c)).astype("float32"),
        "raw_uncertainty": head(rng.normal(size=(n, c))),
        "mix_logits": rng.normal(size=(n, c)).astype("float32"),
        "mix_uncertainty": head(rng.normal(size=(n, c))),
        "permutation": np.roll(np.arange(n), 1).astype("int32"),
        "lam": np.full((n,), 0.6, "float32"),
    }


@given(
    field=st.sampled_from(["labels", "permutation"]),
    bad=st.one_of(st.integers(-50, -1), st.integers(CLASSES, 50)),
    at=st.integers(0, N - 1),
)
def test_loss_rejects_out_of_range_indices(field, bad, at):
    batch = _loss_batch()
    batch[field][at] = bad
    with pytest.raises(ValueError, match=rf"`{field}`.*\[0, 4\).*{bad}"):
        ks.sumix_loss(**batch)


@given(
    lam=st.one_of(
        st.floats(1.001, 1e30),
        st.floats(-1e30, -0.001),
        st.sampled_from([np.nan, np.inf, -np.inf]),
    ),
    at=st.integers(0, N - 1),
)
def test_loss_rejects_lam_outside_unit_interval(lam, at):
    batch = _loss_batch()
    batch["lam"][at] = lam
    with pytest.raises(ValueError, match=r"`lam` must be finite and in \[0, 1\]"):
        ks.sumix_loss(**batch)
    with pytest.raises(ValueError, match="`lam`"):
        ks.sumix_loss(**{**_loss_batch(), "lam": np.float32(lam)})


@given(
    bad=st.sampled_from(
        [
            ("labels", np.zeros(N, "float32"), TypeError, "integer"),
            ("labels", np.zeros(N + 1, "int32"), ValueError, r"N=4"),
            ("labels", np.zeros(N - 1, "int32"), ValueError, r"N=4"),
            ("permutation", np.arange(N, dtype="float32"), TypeError, "integer"),
            ("mix_logits", np.zeros((N, CLASSES), "uint8"), TypeError, "floating"),
            ("raw_logits", np.zeros((N, CLASSES, 1), "float32"), ValueError, "N, C"),
        ]
    )
)
def test_loss_rejects_wrong_dtypes_and_batch_sizes(bad):
    field, value, error, match = bad
    with pytest.raises(error, match=rf"`{field}`.*{match}"):
        ks.sumix_loss(**{**_loss_batch(), field: value})


def test_loss_empty_batch_and_nan_logits():
    empty = {k: v[:0] for k, v in _loss_batch().items()}
    with pytest.raises(ValueError, match=r"`raw_logits`.*empty batch.*\(0, 4\)"):
        ks.sumix_loss(**empty)
    # Documented: logits are never checked; NaN logits give a NaN loss.
    batch = _loss_batch()
    batch["mix_logits"][1, 2] = np.nan
    assert np.isnan(float(to_np(ks.sumix_loss(**batch)["loss"])))


@given(lam=st.floats(0.0, 1.0), label=st.integers(0, CLASSES - 1))
def test_loss_of_a_batch_of_one_is_its_own_label_whatever_lam(lam, label):
    one = {k: v[:1] for k, v in _loss_batch(seed=label).items()}
    one.update(labels=np.array([label], "int32"), permutation=np.array([0], "int32"))
    out = ks.sumix_loss(**{**one, "lam": np.array([lam], "float32")})
    ref = ks.sumix_loss(**{**one, "lam": np.array([1.0], "float32")})
    for key in ("loss", "mix_loss", "reg_loss"):
        assert np.isfinite(float(to_np(out[key])))
        np.testing.assert_allclose(to_np(out[key]), to_np(ref[key]), rtol=1e-5)


# --------------------------------------------------------------------------- #
# Models
# --------------------------------------------------------------------------- #
def _backbone() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((H, W, C))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, x)


def _model(kind: str) -> ks.models.sumix_model.MixingModel:
    cls = ks.SUMixModel if kind == "sumix" else ks.MixupModel
    model = cls(_backbone(), CLASSES, CutMix(seed=0))
    model.compile(optimizer="sgd")
    return model


def _data(n=8, seed=0):
    x = np.random.default_rng(seed).random((n, H, W, C), dtype="float32")
    return x, (np.arange(n) % CLASSES).astype("int32")


def _corrupt(case: str, at: int, x: np.ndarray, y: np.ndarray):
    x, y = x.copy(), y.copy()
    if case == "label too large":
        y[at] = CLASSES + at
    elif case == "negative label":
        y[at] = -1 - at
    elif case == "float labels":
        y = y.astype("float32")
    elif case == "nan image":
        x[at, 1, 2, 0] = np.nan
    elif case == "inf image":
        x[at, 0, 0, 1] = np.inf
    elif case == "nan one-hot":
        y = np.eye(CLASSES, dtype="float32")[y]
        y[at, 0] = np.nan
    elif case == "mismatched batch":
        y = y[:-1]
    elif case == "empty":
        x, y = x[:0], y[:0]
    return x, y


BAD_DATA = {  # case -> (error, what the message must say)
    "label too large": (ValueError, r"`y` must be indices in \[0, 4\)"),
    "negative label": (ValueError, r"`y` must be indices in \[0, 4\)"),
    "float labels": (TypeError, r"`y` of shape \(N,\) must be integer.*float32"),
    "nan image": (ValueError, r"`x` holds non-finite values.*x\[\d\]"),
    "inf image": (ValueError, r"`x` holds non-finite values"),
    "nan one-hot": (ValueError, r"`y` \(one-hot/soft labels\).*non-finite"),
    "mismatched batch": (ValueError, r"`x` and `y`.*8 images and 7 labels"),
    "empty": (ValueError, r"`x` holds no samples"),
}


@given(
    kind=st.sampled_from(["mixup", "sumix"]),
    case=st.sampled_from(sorted(BAD_DATA)),
    at=st.integers(0, 7),
)
def test_fit_rejects_bad_numpy_data_before_training(kind, case, at):
    model = _model(kind)
    x, y = _corrupt(case, at, *_data())
    error, match = BAD_DATA[case]
    with pytest.raises(error, match=match):
        model.fit(x, y, batch_size=4, verbose=0)
    with pytest.raises(error, match=match):
        model.train_on_batch(x, y)
    assert int(to_np(model.optimizer.iterations)) == 0  # nothing was trained


def test_evaluate_and_validation_data_reject_bad_labels():
    model = _model("mixup")
    x, y = _data()
    bad = y.copy()
    bad[3] = 9
    with pytest.raises(ValueError, match=r"`y` must be indices.*y\[3\]=9"):
        model.evaluate(x, bad, verbose=0)
    with pytest.raises(ValueError, match=r"`validation_data\[1\]`.*\[3\]=9"):
        model.fit(x, y, validation_data=(x, bad), verbose=0)


def test_bad_values_inside_a_dataset_stop_fit_at_that_batch():
    """Tensors are not read ahead: a negative label (an all-zero one-hot
    row) makes the step's loss NaN, NaN images too, and fit raises."""
    # One model (one compiled step): the poisoned loss has no gradient, so
    # the weights survive a bad label. Both models share this code path.
    x, y = _data(16)
    y[11] = -1  # second batch of 8
    model = _model("mixup")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 0, batch 1"):
        model.fit(ds, epochs=2, verbose=0)
    assert all(np.all(np.isfinite(to_np(w))) for w in model.trainable_weights)
    x, y = _data(16)
    x[3, 0, 0, 0] = np.nan
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 0, batch 0"):
        model.fit(ds, epochs=2, verbose=0)
    # A TerminateOnNaN of the user's own stops without an error instead.
    history = model.fit(
        ds, epochs=3, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN()]
    )
    assert len(history.history["loss"]) == 1
    assert np.isnan(history.history["loss"][0])


def test_float_labels_in_a_dataset_raise_a_type_error():
    x, y = _data()
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("float32"))).batch(8)
    with pytest.raises(TypeError, match=r"Labels of shape \(N,\) must be integer"):
        _model("sumix").fit(ds, verbose=0)


def test_uint8_batch_of_one_trains_on_the_clean_sample_like_floats():
    """Documented: uint8 images are cast, not rescaled; a batch of one is
    not mixed (lam = 1, and the corrected lam too)."""
    x = np.random.default_rng(0).integers(0, 256, (1, H, W, C)).astype("uint8")
    y = np.array([2], "int32")
    # SUMixModel: its terms include MixupModel's (the area lam).
    as_uint8, _ = _model("sumix").training_terms(x, y)
    as_float, _ = _model("sumix").training_terms(x.astype("float32"), y)
    for key, value in as_uint8.items():
        np.testing.assert_allclose(to_np(value), to_np(as_float[key]), rtol=1e-5)
    assert float(to_np(as_uint8["lam_area"])) == 1.0
    assert float(to_np(as_uint8["lam_sumix"])) == pytest.approx(1.0)


def test_channels_first_images_for_a_channels_last_model_raise():
    x, y = _data()
    with pytest.raises(ValueError, match=r"\(None, 8, 8, 3\)|look channels_first"):
        _model("sumix").fit(np.transpose(x, (0, 3, 1, 2)), y, verbose=0)


# --------------------------------------------------------------------------- #
# Data: directory loaders and CIFAR-100-C
# --------------------------------------------------------------------------- #
LOADERS = [load_fgvc_aircraft, load_cub200_2011, load_tiny_imagenet]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    (root / "empty").mkdir()
    write(root / "a_file.txt", ["not a folder"])
    return root


@given(
    loader=st.sampled_from(LOADERS),
    value=st.sampled_from([None, 3, 1.5, ["/tmp"], b"/tmp"]),
)
def test_loaders_reject_non_path_data_dir(loader, value):
    with pytest.raises(TypeError, match=r"`data_dir` must be a path"):
        loader(value)


@given(
    loader=st.sampled_from(LOADERS),
    where=st.sampled_from(["empty", "missing", "a_file.txt"]),
)
def test_loaders_on_empty_or_missing_trees_name_the_layout(folders, loader, where):
    with pytest.raises(FileNotFoundError, match=r"not found.*Expected layout"):
        loader(folders / where)


def test_annotation_files_listing_no_image_raise(tmp_path):
    aircraft_tree(tmp_path)
    write(tmp_path / "fgvc-aircraft-2013b" / "data" / "images_variant_test.txt", [""])
    with pytest.raises(ValueError, match=r"FGVC-Aircraft.*list no image"):
        load_fgvc_aircraft(tmp_path, "test")
    cub_tree(tmp_path)
    split = tmp_path / "CUB_200_2011" / "train_test_split.txt"
    write(split, [f"{i} 1" for i in (1, 2, 3, 4, 10)])  # no test image
    with pytest.raises(ValueError, match=r"CUB-200-2011.*list no image"):
        load_cub200_2011(tmp_path, "test")


def _cifar_c(root, images, labels):
    folder = root / "CIFAR-100-C"
    folder.mkdir(exist_ok=True)
    np.save(folder / "fog.npy", images)
    np.save(folder / "labels.npy", labels)
    return root


def test_cifar100_c_rejects_files_it_would_misread(tmp_path):
    cases = [  # images, labels, what the message says
        (np.zeros((5, 4, 4, 3), "float32"), np.zeros(5, "int64"), "uint8"),
        (np.zeros((5, 4, 4, 1), "uint8"), np.zeros(5, "int64"), r"\(5 \* n, H, W, 3\)"),
        (np.zeros((5, 4, 4, 3), "uint8"), np.zeros(5, "float32"), "integer"),
        (np.zeros((5, 4, 4, 3), "uint8"), np.full(5, 100, "int64"), r"labels\.npy"),
        (np.zeros((0, 4, 4, 3), "uint8"), np.zeros(0, "int64"), r"5 \* n"),
    ]
    for k, (images, labels, match) in enumerate(cases):
        (tmp_path / str(k)).mkdir()
        with pytest.raises(ValueError, match=match):
            load_cifar100_c(_cifar_c(tmp_path / str(k), images, labels), "fog", 1)


# --------------------------------------------------------------------------- #
# Data: pipelines
# --------------------------------------------------------------------------- #
def _dataset(images, labels=None):
    if labels is None:
        labels = (np.arange(len(images)) % CLASSES).astype("int32")
    return tf.data.Dataset.from_tensor_slices((images, labels))


def _batches(pipeline):
    return list(pipeline.as_numpy_iterator())


@in_tf_data
@settings(max_examples=6)
@given(
    scale=st.sampled_from([255.0, 2.0, -1.0]),
    value=st.sampled_from([None, np.nan, np.inf]),
    recipe=st.sampled_from(["cifar", "fine_grained"]),
)
def test_pipelines_reject_float_images_outside_unit_range(scale, value, recipe):
    x = np.random.default_rng(0).random((4, 16, 16, 3), dtype="float32")
    if value is None:
        x = x * scale
    else:
        x[2, 3, 4, 1] = value
    kwargs = {"image_size": 8, "resize_size": 8} if recipe == "fine_grained" else {}
    pipeline = make_pipeline(_dataset(x), recipe, batch_size=2, seed=0, **kwargs)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"finite and in \[0, 1\]"):
        _batches(pipeline)


@in_tf_data
def test_pipelines_uint8_and_unit_floats_agree_and_tiny_images_work():
    x = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype("uint8")
    as_uint8 = _batches(make_pipeline(_dataset(x), training=False, batch_size=4))
    as_float = _batches(
        make_pipeline(_dataset(x.astype("float32") / 255), training=False, batch_size=4)
    )
    np.testing.assert_allclose(as_uint8[0][0], as_float[0][0], atol=1e-5)
    # 1x1 images: reflect padding cannot pad them; constant padding can.
    tiny = x[:, :1, :1]
    with pytest.raises(ValueError, match=r"padding=4.*'reflect'.*side 1"):
        make_pipeline(_dataset(tiny), batch_size=2, seed=0)
    out = _batches(
        make_pipeline(_dataset(tiny), batch_size=2, seed=0, padding_mode="constant")
    )
    assert out[0][0].shape == (2, 1, 1, 3)
    # An empty dataset gives an empty pipeline.
    assert _batches(make_pipeline(_dataset(x[:0]), batch_size=2, seed=0)) == []


@in_tf_data
def test_pipelines_reject_channels_first_images_and_bad_dtypes():
    x = np.zeros((4, 3, 16, 16), "uint8")
    with pytest.raises(ValueError, match=r"look channels-first.*\(H, W, C\)"):
        make_pipeline(_dataset(x), normalization="unit")
    with pytest.raises(TypeError, match=r"uint8.*uint16"):
        _batches(
            make_pipeline(_dataset(np.zeros((4, 8, 8, 3), "uint16")), batch_size=2)
        )


@in_tf_data
def test_pipeline_mixer_rejects_out_of_range_labels():
    x = np.zeros((4, 8, 8, 3), "uint8")
    labels = np.array([0, 1, 7, 2], "int32")
    pipeline = make_pipeline(
        _dataset(x, labels), batch_size=4, seed=0, mixer=CutMix(num_classes=CLASSES)
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`labels`.*\[0, 4\)"):
        _batches(pipeline)


# --------------------------------------------------------------------------- #
# Data: the embedded dataset
# --------------------------------------------------------------------------- #
@given(
    arg=st.sampled_from(
        [
            ("num_images", -1, ValueError),
            ("num_images", 2.0, TypeError),
            ("image_size", 7, ValueError),
            ("image_size", True, TypeError),
            ("seed", -3, ValueError),
            ("seed", 0.5, TypeError),
            ("seed", "0", TypeError),
            ("min_scale", "0.2", TypeError),
            ("min_scale", float("nan"), ValueError),
            ("max_scale", 0.5, ValueError),
            ("max_scale", 0.1, ValueError),  # below min_scale
            ("clutter", -1, ValueError),
        ]
    )
)
def test_occluded_objects_arguments(arg):
    name, value, error = arg
    with pytest.raises(error, match=name):
        occluded_objects(**{"num_images": 2, name: value})


def test_occluded_objects_of_no_image_is_empty():
    data = occluded_objects(0, image_size=8)
    assert data.images.shape == (0, 8, 8, 3) and data.labels.shape == (0,)
    assert data.masks.shape == (0, 8, 8)


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #
@given(batch=st.one_of(st.integers(-5, 0), st.sampled_from(["x", "1.5", ""])))
def test_cli_argparse_rejects_non_positive_sizes(batch):
    with pytest.raises(SystemExit) as raised:
        cli.main(["show", "cutmix", "--batch", str(batch)])
    assert raised.value.code == 2


@given(
    args=st.sampled_from(
        [
            (["show", "cutmix", "--alpha", "nan"], "alpha"),
            (["show", "cutmix", "--alpha", "-0.5"], "alpha"),
            (["show", "cutmix", "--size", "4"], "image_size"),
            (["show", "cutmix", "--seed", "-1"], "seed"),
            (["show", "warpmix"], "Unknown mixer"),
            (["train", "--batch-size", "1"], "batch_size"),
            (["train", "--gamma", "nan"], "gamma"),
            (["train", "--learning-rate", "inf"], "learning_rate"),
            (["train", "--limit", "1"], "limit"),
            (["train", "--dataset", "aircraft"], "data_dir"),
            (["evaluate", "no/such/run"], "RUN_DIR"),
        ]
    )
)
def test_cli_bad_values_exit_2_with_one_line_naming_them(args, tmp_path_factory):
    argv, name = args
    out = tmp_path_factory.getbasetemp() / "cli"
    if argv[0] == "show":
        argv = [*argv, "--output", str(out / "grid.png")]
    elif argv[0] == "train":
        argv = [*argv, "--output-dir", str(out / "run")]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(argv) == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and name in lines[0], lines


def test_cli_train_on_a_missing_dataset_folder(tmp_path, capsys):
    argv = ["train", "--dataset", "aircraft", "--data-dir", str(tmp_path / "none")]
    assert cli.main([*argv, "--output-dir", str(tmp_path / "run")]) == 2
    assert "FGVC-Aircraft not found" in capsys.readouterr().err


def test_cli_show_a_batch_of_one(tmp_path, capsys):
    out = tmp_path / "one.png"
    assert cli.main(["show", "cutmix", "--batch", "1", "--output", str(out)]) == 0
    row = next(
        r for r in capsys.readouterr().out.splitlines() if r.startswith("CutMix")
    )
    assert row.split()[1:] == ["1.00"] and out.exists()
