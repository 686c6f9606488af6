"""Plots (PNG files), class activation maps and the LamLogger callback."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_sumix as ks
from keras_sumix.callbacks import LamLogger
from keras_sumix.data import occluded_objects
from keras_sumix.viz import (
    class_activation_map,
    class_activation_maps,
    feature_map_model,
    lam_histograms,
    occlusion_curves,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_lam_histograms_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    area, corrected, true = rng.random((3, 40))
    path = lam_histograms(area, corrected, tmp_path / "a" / "lam.png", true_lam=true)
    assert path == tmp_path / "a" / "lam.png"
    assert path.read_bytes()[:8] == PNG
    assert lam_histograms(area, corrected, tmp_path / "two.png", bins=5).exists()


def test_lam_histograms_errors(tmp_path):
    with pytest.raises(ValueError, match="area_lam"):
        lam_histograms([], [0.5], tmp_path / "x.png")
    with pytest.raises(ValueError, match="bins"):
        lam_histograms([0.5], [0.5], tmp_path / "x.png", bins=0)


def test_occlusion_curves_writes_png(tmp_path):
    runs = {
        "MCE": {0.0: 0.8, 0.5: 0.4, 0.9: 0.1},
        "SUMix": {"0.0": 0.82, "0.5": 0.5, "0.9": 0.15},  # JSON-style keys
    }
    path = occlusion_curves(runs, tmp_path / "occ.png")
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="runs"):
        occlusion_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="MCE"):
        occlusion_curves({"MCE": {}}, tmp_path / "x.png")


# ---------------------------------------------------------------------- #
# Class activation maps
# ---------------------------------------------------------------------- #
def _cam_model(pool: bool = True, num_classes: int = 3):
    """A MixupModel: conv (4 channels) -> max pool -> [GAP] -> classifier
    whose kernel and bias are set by hand."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    if pool:
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    backbone = keras.Model(inputs, x, name="tiny")
    model = ks.MixupModel(backbone, num_classes, ks.layers.CutMix(seed=0))
    model.build((None, 8, 8, 3))
    kernel = np.arange(4 * num_classes, dtype="float32").reshape(4, num_classes)
    kernel = (kernel - kernel.mean()) / 5.0
    bias = np.linspace(-0.5, 0.5, num_classes).astype("float32")
    model.classifier.set_weights([kernel, bias])
    return model, kernel, bias


@pytest.mark.parametrize("pool", [True, False])
def test_cam_is_the_classifier_weighted_sum_of_the_map(pool):
    model, kernel, bias = _cam_model(pool)
    x = np.random.default_rng(0).random((5, 8, 8, 3)).astype("float32")
    conv = model.backbone.get_layer("pool")
    fmap = keras.Model(model.backbone.input, conv.output)(x)
    fmap = np.asarray(keras.ops.convert_to_numpy(fmap))  # (5, 4, 4, 4)
    classes = np.array([0, 1, 2, 0, 1])
    expected = np.einsum("nhwk,kc->nhwc", fmap, kernel)[np.arange(5), ..., classes]
    cams = class_activation_map(model, x, classes)
    assert cams.shape == (5, 4, 4)
    np.testing.assert_allclose(cams, expected, rtol=1e-4, atol=1e-5)

    # Default class: the prediction; mean CAM + bias is its logit (GAP).
    logits = np.asarray(keras.ops.convert_to_numpy(model(x)))
    predicted = logits.argmax(-1)
    cams = class_activation_map(model, x)
    np.testing.assert_allclose(
        cams.mean(axis=(1, 2)) + bias[predicted],
        logits[np.arange(5), predicted],
        rtol=1e-4,
        atol=1e-5,
    )
    up = class_activation_map(model, x, classes, upsample=True)
    assert up.shape == (5, 8, 8)


def test_cam_feature_map_of_builtin_backbones():
    backbone = ks.models.small_cnn((16, 16, 3), widths=(4, 8))
    model = ks.MixupModel(backbone, 3, ks.layers.CutMix(seed=0))
    model.build((None, 16, 16, 3))
    assert tuple(feature_map_model(model).output.shape) == (None, 4, 4, 8)
    x = np.random.default_rng(1).random((2, 16, 16, 3)).astype("float32")
    assert class_activation_map(model, x, upsample=True).shape == (2, 16, 16)


def test_cam_without_a_4d_map_raises():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Flatten()(inputs)
    backbone = keras.Model(inputs, keras.layers.Dense(6)(x), name="flat")
    model = ks.MixupModel(backbone, 3, ks.layers.CutMix(seed=0))
    model.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match="4-D feature map"):
        class_activation_map(model, np.zeros((2, 8, 8, 3), "float32"))
    with pytest.raises(TypeError, match="MixingModel"):
        feature_map_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


def test_cam_bad_classes_raise():
    model, _, _ = _cam_model()
    x = np.zeros((2, 8, 8, 3), "float32")
    with pytest.raises(ValueError, match="classes"):
        class_activation_map(model, x, [0, 5])
    with pytest.raises(ValueError, match="classes"):
        class_activation_map(model, x, [0])


def test_class_activation_maps_writes_png(tmp_path):
    model, _, _ = _cam_model()
    x = np.random.default_rng(0).random((3, 8, 8, 3)).astype("float32")
    mixed = keras.ops.convert_to_numpy(model.mixer.mix(x).images)
    path = class_activation_maps(
        model, x, tmp_path / "cam.png", labels=[0, 1, 2], mixed=mixed
    )
    assert path.read_bytes()[:8] == PNG
    # Normalised inputs (outside [0, 1]) are rescaled for display.
    assert class_activation_maps(model, 3 * x - 1, tmp_path / "n.png").exists()
    with pytest.raises(ValueError, match="mixed"):
        class_activation_maps(model, x, tmp_path / "x.png", mixed=mixed[:2])


# ---------------------------------------------------------------------- #
# LamLogger
# ---------------------------------------------------------------------- #
def _tiny(model_cls):
    keras.utils.set_random_seed(0)
    backbone = ks.models.small_cnn((16, 16, 3), widths=(4,))
    model = model_cls(backbone, ks.data.OCCLUDED_NUM_CLASSES, ks.layers.CutMix(seed=0))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


def test_lam_logger_writes_events_and_history(tmp_path):
    data = occluded_objects(16, image_size=16, seed=0)
    held = occluded_objects(8, image_size=16, seed=1)
    logger = LamLogger(held.images, held.labels, tmp_path / "logs")
    model = _tiny(ks.SUMixModel)
    model.fit(
        data.images,
        data.labels,
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[logger],
    )
    assert [row["epoch"] for row in logger.history] == [0, 1]
    for row in logger.history:
        for key in ("area_lam", "corrected_lam"):
            values = row[key]
            assert values.shape == (8,)
            assert np.all((values >= 0) & (values <= 1))
        assert np.isfinite(row["reg_loss"]) and np.isfinite(row["mix_loss"])
    # Same fixed mixes every epoch: the area lam does not change.
    np.testing.assert_array_equal(
        logger.history[0]["area_lam"], logger.history[1]["area_lam"]
    )
    events = list((tmp_path / "logs" / "lam").glob("events.out.tfevents*"))
    assert events and events[0].stat().st_size > 0
    tf = pytest.importorskip("tensorflow")
    tags = {}
    for event in tf.compat.v1.train.summary_iterator(str(events[0])):
        for value in event.summary.value:
            tags.setdefault(value.tag, []).append(
                (event.step, value.metadata.plugin_data.plugin_name)
            )
    assert tags["lam/area"] == [(0, "histograms"), (1, "histograms")]
    assert tags["lam/corrected"] == [(0, "histograms"), (1, "histograms")]
    assert [p for _, p in tags["loss/reg_loss"]] == ["scalars", "scalars"]
    assert "loss/mix_loss" in tags


def test_lam_logger_history_only_for_mixup_model():
    data = occluded_objects(6, image_size=16, seed=0)
    logger = LamLogger(data.images, data.labels, log_dir=None)
    model = _tiny(ks.MixupModel)
    model.build((None, 16, 16, 3))
    logger.set_model(model)  # the callback hooks, without a (slow) fit
    logger.on_epoch_end(0, {"loss": 1.0})
    (row,) = logger.history
    np.testing.assert_allclose(row["area_lam"], row["corrected_lam"])
    assert "reg_loss" not in row
    logger.on_train_end()


def test_lam_logger_errors():
    with pytest.raises(ValueError, match="at least 2"):
        LamLogger(np.zeros((1, 8, 8, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="one entry per image"):
        LamLogger(np.zeros((4, 8, 8, 3)), np.zeros(3))
