"""Evaluation protocols: median top-1 reporting, occlusion, CIFAR-100-C and
generated corruptions, white-box FGSM (on every backend)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import keras_sumix as ks
from keras_sumix.data import OCCLUDED_NUM_CLASSES, occluded_objects
from keras_sumix.evaluation import (
    CIFAR100_C_SOURCE,
    DEFAULT_OCCLUSION_RATIOS,
    GENERATED_CORRUPTIONS,
    GENERATED_SOURCE,
    MedianTop1,
    cifar100_c_robustness,
    corrupt,
    fgsm_error,
    generated_corruption_robustness,
    input_gradient,
    median_of_last,
    occlusion_masks,
    occlusion_robustness,
    top1_accuracy,
)


def _tiny_classifier(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    # Three stages: still tiny, and it learns the embedded set in a few epochs.
    backbone = ks.models.small_cnn((32, 32, 3), widths=(8, 16, 32))
    model = ks.models.classifier(backbone, OCCLUDED_NUM_CLASSES)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained a few epochs on the embedded dataset, and held-out
    data it classifies well above chance."""
    model = _tiny_classifier()
    train = occluded_objects(1024, seed=0)
    model.fit(train.images, train.labels, batch_size=32, epochs=5, verbose=0)
    test = occluded_objects(96, seed=1)
    return model, test.images, test.labels


@pytest.fixture(scope="module")
def clean(trained):
    model, x, y = trained
    return top1_accuracy(model, x, y, batch_size=32)


def test_trained_model_beats_chance(clean):
    # The robustness checks below are meaningful only for a model that
    # actually recognises the objects (chance: 0.1).
    assert clean > 0.4


# ---------------------------------------------------------------------- #
# Occlusion
# ---------------------------------------------------------------------- #
def test_occlusion_ratio_zero_is_clean_accuracy(trained, clean):
    model, x, y = trained
    result = occlusion_robustness(model, x, y, patch_size=8, batch_size=32)
    assert list(result) == [float(r) for r in DEFAULT_OCCLUSION_RATIOS]
    assert all(isinstance(k, float) and isinstance(v, float) for k, v in result.items())
    assert all(0.0 <= v <= 1.0 for v in result.values())
    assert result[0.0] == clean  # exactly: ratio 0 leaves the images unchanged
    assert result[0.9] <= result[0.0]
    assert json.loads(json.dumps(result))["0.9"] == result[0.9]


def test_occlusion_grid_and_full_mask(trained, clean):
    model, x, y = trained
    result = occlusion_robustness(
        model, x, y, ratios=(0.0, 0.5, 1.0), grid=(4, 4), batch_size=32, seed=3
    )
    assert result[0.0] == clean
    assert result[1.0] <= result[0.0]
    # Everything masked: the model sees all-zero images.
    assert result[1.0] == top1_accuracy(model, np.zeros_like(x), y, batch_size=32)
    # One-hot labels give the same numbers; the seed makes it reproducible.
    again = occlusion_robustness(
        model,
        x,
        np.eye(OCCLUDED_NUM_CLASSES)[y],
        ratios=(0.0, 0.5, 1.0),
        grid=(4, 4),
        batch_size=32,
        seed=3,
    )
    assert again == result


def test_occlusion_masks():
    # Grid cells: exactly round(ratio * cells) masked per image.
    masks = occlusion_masks(5, (32, 32), 0.3, grid=(4, 4), seed=1)
    assert masks.shape == (5, 32, 32) and masks.dtype == np.float32
    cells = masks[:, ::8, ::8]  # one pixel per 8x8 cell
    assert np.all((1 - cells).sum(axis=(1, 2)) == 5)  # round(0.3 * 16)
    assert np.all(np.repeat(np.repeat(cells, 8, 1), 8, 2) == masks)
    assert not np.all(masks[0] == masks[1])  # random per image
    # Seeded, and nested across ratios.
    np.testing.assert_array_equal(
        masks, occlusion_masks(5, (32, 32), 0.3, grid=(4, 4), seed=1)
    )
    more = occlusion_masks(5, (32, 32), 0.6, grid=(4, 4), seed=1)
    assert np.all(more <= masks)
    # Fixed-size patches with a partial last row/column (30 = 16 + 14).
    patches = occlusion_masks(4, (30, 30), 0.5, patch_size=16, seed=0)
    assert np.all((1 - patches[:, ::16, ::16]).sum(axis=(1, 2)) == 2)
    # Uneven grids on non-multiple sizes cover every pixel.
    uneven = occlusion_masks(2, (10, 7), 1.0, grid=(3, 2))
    assert uneven.shape == (2, 10, 7) and np.all(uneven == 0)
    assert np.all(occlusion_masks(2, (10, 7), 0.0, grid=(3, 2)) == 1)


def test_occlusion_channels_first():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3, 8, 8)), keras.layers.Flatten(), keras.layers.Dense(4)]
    )
    x = np.random.default_rng(0).random((6, 3, 8, 8), dtype="float32")
    y = np.arange(6) % 4
    result = occlusion_robustness(
        model, x, y, ratios=(0.0, 1.0), grid=(2, 2), data_format="channels_first"
    )
    assert result[0.0] == top1_accuracy(model, x, y)
    assert result[1.0] == top1_accuracy(model, np.zeros_like(x), y)


# ---------------------------------------------------------------------- #
# FGSM
# ---------------------------------------------------------------------- #
def test_fgsm_epsilon_zero_is_clean_error(trained, clean):
    model, x, y = trained
    assert fgsm_error(model, x, y, epsilon=0.0, batch_size=32) == 1.0 - clean


def test_fgsm_increases_error(trained, clean):
    model, x, y = trained
    error = fgsm_error(model, x, y, epsilon=8 / 255, batch_size=48)
    assert 0.0 <= error <= 1.0
    assert error >= 1.0 - clean
    # Without clipping (inputs of another range) it still runs.
    assert 0.0 <= fgsm_error(model, x[:48], y[:48], batch_size=48, clip=None) <= 1.0


def _numeric_gradient(kernel, bias, x, y, h=1e-4):
    """Central finite differences (float64) of sum_i CE_i for a linear model
    `Flatten -> Dense(kernel, bias)`."""

    def loss(inputs):
        logits = inputs.reshape(len(inputs), -1) @ kernel + bias
        logits = logits - logits.max(-1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return -log_p[np.arange(len(y)), y].sum()

    x = x.astype("float64")
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (loss(x + step) - loss(x - step)) / (2 * h)
    return grad


@pytest.mark.parametrize("from_logits", [True, False])
def test_input_gradient_matches_finite_differences(from_logits):
    keras.utils.set_random_seed(1)
    activation = None if from_logits else "softmax"
    model = keras.Sequential(
        [
            keras.Input((2, 2, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation=activation),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 2, 2, 1)).astype("float32")
    y = np.array([0, 1, 2, 1])
    kernel, bias = (np.asarray(w, "float64") for w in model.layers[-1].get_weights())
    expected = _numeric_gradient(kernel, bias, x, y)
    gradient = input_gradient(model, x, y, from_logits=from_logits)
    assert gradient.shape == x.shape and gradient.dtype == np.float32
    np.testing.assert_allclose(gradient, expected, rtol=1e-3, atol=1e-5)
    # One-hot labels, and per-sample rows independent of the batch.
    np.testing.assert_allclose(
        input_gradient(model, x[:1], np.eye(3)[y[:1]], from_logits=from_logits),
        gradient[:1],
        rtol=1e-5,
        atol=1e-7,
    )


# ---------------------------------------------------------------------- #
# Median top-1 reporting
# ---------------------------------------------------------------------- #
def test_median_of_last():
    assert median_of_last([0.1, 0.5, 0.7, 0.6, 0.9], last=3) == 0.7
    assert median_of_last([0.2, 0.4], last=10) == pytest.approx(0.3)
    values = np.random.default_rng(0).random(30)
    assert median_of_last(values) == float(np.median(values[-10:]))
    assert median_of_last(list(values), last=5) == float(np.median(values[-5:]))
    with pytest.raises(ValueError, match="values"):
        median_of_last([])
    with pytest.raises(ValueError, match="last"):
        median_of_last([0.1], last=0)
    with pytest.raises(TypeError, match="last"):
        median_of_last([0.1], last=2.0)


def _linear_classifier(shape=(8, 8, 3), classes=4, seed=2) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(classes)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def test_median_top1_callback():
    model = _linear_classifier()
    rng = np.random.default_rng(0)
    x, xv = rng.random((64, 8, 8, 3), "float32"), rng.random((32, 8, 8, 3), "float32")
    y, yv = np.arange(64) % 4, np.arange(32) % 4
    from_logs = MedianTop1(last=2)
    direct = MedianTop1(validation_data=(xv, yv), last=2)
    assert from_logs.median is None
    history = model.fit(
        x,
        y,
        batch_size=32,
        epochs=4,
        validation_data=(xv, yv),
        callbacks=[from_logs, direct],
        verbose=0,
    )
    assert len(from_logs.history) == len(direct.history) == 4
    np.testing.assert_allclose(from_logs.history, history.history["val_accuracy"])
    for callback in (from_logs, direct):
        assert all(0.0 <= v <= 1.0 for v in callback.history)
        assert callback.median == float(np.median(callback.history[-2:]))
    # Written into the logs (the last callback to run writes last).
    assert history.history["median_top1"] == [
        float(np.median(direct.history[max(0, i - 1) : i + 1])) for i in range(4)
    ]
    # The last epoch's top-1 is that of the final weights.
    assert direct.history[-1] == top1_accuracy(model, xv, yv)


def test_median_top1_reads_logs_or_fails():
    callback = MedianTop1(last=3)
    callback.set_model(_linear_classifier())
    callback.on_train_begin()
    for epoch, value in enumerate([0.1, 0.4, 0.3, 0.2]):
        logs = {"val_accuracy": np.float32(value)}
        callback.on_epoch_end(epoch, logs)
        assert logs["median_top1"] == callback.median
    assert callback.history == pytest.approx([0.1, 0.4, 0.3, 0.2])
    assert callback.median == pytest.approx(0.3)
    callback.on_train_begin()  # a new fit starts afresh
    assert callback.history == [] and callback.median is None
    with pytest.raises(ValueError, match="val_accuracy"):
        callback.on_epoch_end(0, {"loss": 1.0})


# ---------------------------------------------------------------------- #
# CIFAR-100-C
# ---------------------------------------------------------------------- #
@pytest.fixture
def cifar_c_dir(tmp_path):
    """A tiny CIFAR-100-C folder: 8 images per severity, two corruptions."""
    root = tmp_path / "CIFAR-100-C"
    root.mkdir()
    data = occluded_objects(40, seed=4)
    images = np.round(data.images * 255).astype("uint8")
    np.save(root / "labels.npy", data.labels.astype("int64"))
    np.save(root / "fog.npy", images)
    np.save(root / "contrast.npy", images[::-1].copy())
    return tmp_path, images, data.labels


def test_cifar100_c_robustness(trained, cifar_c_dir):
    model = trained[0]
    parent, images, labels = cifar_c_dir
    result = cifar100_c_robustness(
        model, parent, corruptions=["fog", "contrast"], batch_size=4
    )
    assert result["source"] == CIFAR100_C_SOURCE
    assert result["corruptions"] == ["fog", "contrast"]
    assert result["severities"] == [1, 2, 3, 4, 5]
    assert result["num_images"] == 8
    assert set(result["top1"]) == {"fog", "contrast"}
    values = [v for per in result["top1"].values() for v in per.values()]
    assert len(values) == 10 and all(0.0 <= v <= 1.0 for v in values)
    assert result["mean_top1"] == pytest.approx(np.mean(values))
    assert result["mean_error"] == pytest.approx(1 - np.mean(values))
    assert result["mean_top1_per_corruption"]["fog"] == pytest.approx(
        np.mean(list(result["top1"]["fog"].values()))
    )
    # Severity 3 of fog is rows 16..24, scaled to [0, 1] by default.
    expected = top1_accuracy(model, images[16:24] / 255.0, labels[16:24], batch_size=4)
    assert result["top1"]["fog"][3] == expected
    json.dumps(result)


def test_cifar100_c_options(trained, cifar_c_dir):
    model = trained[0]
    parent, _, _ = cifar_c_dir
    calls = []

    def preprocess(batch):
        calls.append(batch.dtype)
        return batch.astype("float32") / 255.0

    result = cifar100_c_robustness(
        model,
        parent / "CIFAR-100-C",
        severities=(2, 5),
        corruptions="fog",
        limit=3,
        preprocess=preprocess,
    )
    assert result["num_images"] == 3 and result["severities"] == [2, 5]
    assert list(result["top1"]["fog"]) == [2, 5]
    assert calls == [np.uint8, np.uint8]
    # corruptions=None means all 19: the missing files are reported.
    with pytest.raises(FileNotFoundError, match="CIFAR-100-C"):
        cifar100_c_robustness(model, parent)


# ---------------------------------------------------------------------- #
# Generated corruptions
# ---------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def raw_images():
    return occluded_objects(12, seed=6).images


def test_corrupt_shapes_dtypes_and_severity(raw_images):
    x = raw_images
    x8 = np.round(x * 255).astype("uint8")
    for corruption in GENERATED_CORRUPTIONS:
        distortion = []
        for severity in range(1, 6):
            out = corrupt(x, corruption, severity, seed=0, data_format="channels_last")
            assert out.shape == x.shape and out.dtype == np.float32
            assert out.min() >= 0.0 and out.max() <= 1.0
            out8 = corrupt(x8, corruption, severity, data_format="channels_last")
            assert out8.shape == x8.shape and out8.dtype == np.uint8
            distortion.append(np.abs(out - x).mean())
        # The distortion grows with the severity.
        assert np.all(np.diff(distortion) > 0), (corruption, distortion)
        # Channels-first gives the transposed result.
        first = corrupt(
            x.transpose(0, 3, 1, 2), corruption, 3, seed=0, data_format="channels_first"
        )
        np.testing.assert_allclose(
            first.transpose(0, 2, 3, 1),
            corrupt(x, corruption, 3, seed=0, data_format="channels_last"),
            atol=1e-6,
            err_msg=corruption,
        )


def test_corrupt_is_deterministic(raw_images):
    for corruption in GENERATED_CORRUPTIONS:
        a = corrupt(raw_images, corruption, 4, seed=7, data_format="channels_last")
        b = corrupt(raw_images, corruption, 4, seed=7, data_format="channels_last")
        np.testing.assert_array_equal(a, b, err_msg=corruption)
        if corruption in ("gaussian_noise", "fog"):  # the random ones
            c = corrupt(raw_images, corruption, 4, seed=8, data_format="channels_last")
            assert not np.array_equal(a, c), corruption


def test_corrupt_rejects_bad_arguments(raw_images):
    with pytest.raises(ValueError, match="severity"):
        corrupt(raw_images, "contrast", 0)
    with pytest.raises(ValueError, match="severity"):
        corrupt(raw_images, "contrast", 6)
    with pytest.raises(TypeError, match="severity"):
        corrupt(raw_images, "contrast", 2.0)
    with pytest.raises(ValueError, match="corruption"):
        corrupt(raw_images, "frost", 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(raw_images * 255, "contrast", 1)
    with pytest.raises(ValueError, match="images"):
        corrupt(raw_images[0], "contrast", 1)


def test_generated_corruption_robustness(trained):
    model, x, y = trained
    x, y = x[:32], y[:32]
    result = generated_corruption_robustness(
        model, x, y, severities=(1, 5), batch_size=16, seed=0
    )
    assert result["source"] == GENERATED_SOURCE == "generated subset (not CIFAR-100-C)"
    assert result["corruptions"] == list(GENERATED_CORRUPTIONS)
    assert result["severities"] == [1, 5] and result["num_images"] == 32
    assert set(result) == {
        "source",
        "corruptions",
        "severities",
        "num_images",
        "top1",
        "mean_top1_per_corruption",
        "mean_top1",
        "mean_error",
    }
    values = [v for per in result["top1"].values() for v in per.values()]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert result["mean_top1"] == pytest.approx(np.mean(values))
    # Deterministic for a seed; contrast is not random, so it matches the
    # corruption applied up front.
    again = generated_corruption_robustness(
        model, x, y, severities=(1, 5), batch_size=16, seed=0
    )
    assert again == result
    contrast = corrupt(x, "contrast", 5, data_format="channels_last")
    assert result["top1"]["contrast"][5] == top1_accuracy(model, contrast, y, 16)
    json.dumps(result)


# ---------------------------------------------------------------------- #
# Argument errors
# ---------------------------------------------------------------------- #
def _linear():
    return keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )


X = np.zeros((4, 4, 4, 3), "float32")
Y = np.zeros(4, "int32")


ARGUMENT_ERRORS = [
    (lambda m: top1_accuracy(m, X, Y, batch_size=0), ValueError, "batch_size"),
    (lambda m: top1_accuracy("model", X, Y), TypeError, "model"),
    (lambda m: top1_accuracy(m, X, Y[:3]), ValueError, "labels"),
    (lambda m: top1_accuracy(m, X, Y, preprocess=3), TypeError, "preprocess"),
    (lambda m: occlusion_robustness(m, X, Y, ratios=(0.5, 1.5)), ValueError, "ratios"),
    (lambda m: occlusion_robustness(m, X, Y, ratios=0.5), TypeError, "ratios"),
    (lambda m: occlusion_robustness(m, X, Y, patch_size=0), ValueError, "patch_size"),
    (lambda m: occlusion_robustness(m, X, Y, grid=(8, 2)), ValueError, "grid"),
    (lambda m: occlusion_robustness(m, X, Y, grid=4), TypeError, "grid"),
    (lambda m: occlusion_robustness(m, X, Y, seed=-1), ValueError, "seed"),
    (lambda m: occlusion_robustness(m, X[0], Y), ValueError, "images"),
    (
        lambda m: occlusion_robustness(m, X, Y, data_format="nhwc"),
        ValueError,
        "data_format",
    ),
    (lambda m: occlusion_masks(2, (8, 8), 0.5, patch_size=0), ValueError, "patch_size"),
    (lambda m: fgsm_error(m, X, Y, epsilon=-0.1), ValueError, "epsilon"),
    (lambda m: fgsm_error(m, X, Y, epsilon="8/255"), TypeError, "epsilon"),
    (lambda m: fgsm_error(m, X, Y, clip=(1.0, 0.0)), ValueError, "clip"),
    (lambda m: fgsm_error(m, X, Y, clip=1.0), TypeError, "clip"),
    (lambda m: fgsm_error(m, X.astype("uint8"), Y), TypeError, "images"),
    (lambda m: fgsm_error(m, X, Y, from_logits="yes"), TypeError, "from_logits"),
    (lambda m: input_gradient(m, X, np.zeros((4, 2, 2))), ValueError, "labels"),
    (
        lambda m: cifar100_c_robustness(m, ".", severities=(0,)),
        ValueError,
        "severities",
    ),
    (lambda m: cifar100_c_robustness(m, ".", severities=()), ValueError, "severities"),
    (
        lambda m: cifar100_c_robustness(m, ".", corruptions=["x"]),
        ValueError,
        "corruptions",
    ),
    (
        lambda m: cifar100_c_robustness(m, ".", corruptions=["fog", "fog"]),
        ValueError,
        "corruptions",
    ),
    (lambda m: cifar100_c_robustness(m, ".", limit=0), ValueError, "limit"),
    (
        lambda m: generated_corruption_robustness(m, X, Y, corruptions=["frost"]),
        ValueError,
        "corruptions",
    ),
    (lambda m: generated_corruption_robustness(m, X, Y, seed=1.5), TypeError, "seed"),
    (lambda m: MedianTop1(last=0), ValueError, "last"),
    (lambda m: MedianTop1(validation_data=X), ValueError, "validation_data"),
    (lambda m: MedianTop1(monitor=3), TypeError, "monitor"),
]


def test_argument_errors():
    # One test (not parametrized): every case raises the expected error type
    # with a message naming the argument.
    model = _linear()
    for number, (call, error, name) in enumerate(ARGUMENT_ERRORS):
        with pytest.raises(error, match=name):
            call(model)
            pytest.fail(f"case {number} ({name}) raised nothing")


# --------------------------------------------------------------------------
# Lambda fidelity
# --------------------------------------------------------------------------


def test_lam_fidelity_of_mce_is_the_area_lam_against_the_masks():
    from keras_sumix.data import true_lam
    from keras_sumix.evaluation import lam_fidelity

    data = occluded_objects(12, seed=5)
    model = ks.MixupModel(
        ks.models.small_cnn((32, 32, 3), widths=(4,)),
        OCCLUDED_NUM_CLASSES,
        ks.layers.CutMix(),
    )
    result = lam_fidelity(model, ks.layers.CutMix(1.0, seed=2), data, batch_size=6)
    # MCE trains with the area lam; the truth is recomputed from the masks.
    np.testing.assert_allclose(result["lam"], result["area_lam"])
    mixer = ks.layers.CutMix(1.0, seed=2)
    truths, spreads = [], []
    for start in (0, 6):
        images = data.images[start : start + 6]
        mix = mixer.mix(images)
        kept = keras.ops.convert_to_numpy(mix.mask)[..., 0]
        # CutMix's mask is hard, and every kept pixel is unchanged (an
        # unchanged pixel may also be a pasted one equal in both images).
        unchanged = np.all(images == keras.ops.convert_to_numpy(mix.images), -1)
        assert np.isin(kept, (0.0, 1.0)).all() and unchanged[kept == 1].all()
        perm = keras.ops.convert_to_numpy(mix.permutation)
        truths.append(true_lam(data.masks[start : start + 6], perm, kept))
        spreads.append(kept.reshape(6, -1).std(axis=1))
    # A hard mask keeping lam of the pixels: its std is sqrt(lam (1 - lam)).
    np.testing.assert_allclose(result["mask_std"], np.concatenate(spreads), rtol=1e-5)
    lam = result["area_lam"]
    np.testing.assert_allclose(result["mask_std"], np.sqrt(lam * (1 - lam)), rtol=1e-4)
    # lam_fidelity mixes the object masks with the draw (`true_share`); the
    # in-place formula from the kept mask gives the same shares.
    np.testing.assert_allclose(result["true_lam"], np.concatenate(truths), atol=1e-6)
    assert result["mae"] == pytest.approx(
        np.abs(result["true_lam"] - result["lam"]).mean()
    )


@pytest.mark.parametrize("mixer", [ks.layers.ResizeMix, ks.layers.MixUp])
def test_lam_fidelity_refuses_mixers_that_rescale_or_blend(mixer):
    from keras_sumix.evaluation import lam_fidelity

    model = ks.MixupModel(
        ks.models.small_cnn((32, 32, 3), widths=(4,)), OCCLUDED_NUM_CLASSES, mixer()
    )
    with pytest.raises(TypeError, match=r"never rescaled: .*CutMix, FMix"):
        lam_fidelity(model, mixer(), occluded_objects(4, seed=0))


def test_true_share_counts_soft_masks_and_matches_the_in_place_formula():
    """FMix's soft masks: the share from the mixed object masks equals
    `true_lam` on the kept weights (the kept-pixel reconstruction used before
    `MixResult.mask` could not see a soft weight)."""
    from keras_sumix.data import true_lam
    from keras_sumix.evaluation import true_share

    data = occluded_objects(16, seed=3)
    mixer = ks.layers.FMix(1.0, max_soft=0.2, seed=4)
    params = mixer.draw(data.images)
    mix = mixer.apply(data.images, params)
    kept = keras.ops.convert_to_numpy(mix.mask)[..., 0]
    assert ((kept > 0) & (kept < 1)).any()
    perm = keras.ops.convert_to_numpy(mix.permutation)
    np.testing.assert_allclose(
        true_share(mixer, params, data.masks),
        true_lam(data.masks, perm, kept),
        atol=1e-6,
    )
