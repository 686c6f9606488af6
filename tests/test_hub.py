"""`keras_sumix.models.from_hub`: the real keras-hub `from_preset` path, on
preset directories the tests write with `backbone.save_to_preset(...)`
(random weights, no network), and the errors for names, paths and a
download that cannot happen."""

from __future__ import annotations

import sys

import keras
import numpy as np
import pytest
from conftest import to_np
from fixtures import resnet_preset, tiny_vit_backbone

import keras_sumix as ks
from keras_sumix.models import from_hub

keras_hub = pytest.importorskip("keras_hub")

RNG = np.random.default_rng(0)
IMAGES = RNG.random((4, 32, 32, 3)).astype("float32")
LABELS = np.array([0, 1, 2, 1], "int32")


def test_local_preset_directory_loads_its_weights(tmp_path):
    path = resnet_preset(tmp_path)
    saved = keras_hub.models.Backbone.from_preset(str(path))
    backbone = from_hub(path)  # a pathlib.Path works too
    assert isinstance(backbone, keras_hub.models.ResNetBackbone)
    np.testing.assert_array_equal(to_np(backbone(IMAGES)), to_np(saved(IMAGES)))
    fresh = from_hub(str(path), load_weights=False)
    assert fresh.count_params() == backbone.count_params()
    assert not np.allclose(to_np(fresh(IMAGES)), to_np(backbone(IMAGES)))


@pytest.mark.parametrize("model_cls", [ks.MixupModel, ks.SUMixModel])
def test_preset_backbone_trains_in_both_models(tmp_path, model_cls):
    backbone = from_hub(resnet_preset(tmp_path))
    start = [to_np(w).copy() for w in backbone.trainable_weights]
    model = model_cls(backbone, 3, ks.layers.CutMix(1.0, seed=0))
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(IMAGES, LABELS, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    moved = [
        not np.allclose(a, to_np(b))
        for a, b in zip(start, backbone.trainable_weights, strict=True)
    ]
    assert any(moved)  # the preset's own weights are trained
    assert model.predict(IMAGES, verbose=0).shape == (4, 3)


def test_vit_preset_is_pooled_on_its_class_token(tmp_path):
    vit = tiny_vit_backbone()
    vit.save_to_preset(str(tmp_path / "vit"))
    backbone = from_hub(tmp_path / "vit")
    model = ks.SUMixModel(backbone, 3, ks.layers.CutMix(2.0, seed=0))
    tokens = to_np(backbone(IMAGES))
    assert tokens.shape == (4, 17, 16)  # class token + 16 patches
    np.testing.assert_allclose(to_np(model.features(IMAGES)), tokens[:, 0], atol=1e-6)


def test_preset_name_offline_is_one_clear_error(tmp_path, monkeypatch):
    """A preset name needs a download from Kaggle. Kaggle's API is pointed at
    a closed local port (kagglehub's TEST environment) and the cache at an
    empty folder, so the download fails at once whether or not this machine
    has network: the real keras-hub -> kagglehub path runs and fails."""
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConnectionError) as info:
        from_hub("resnet_18_imagenet")
    message = str(info.value)
    assert "'resnet_18_imagenet'" in message
    assert "Kaggle" in message and "kaggle://keras/resnetv1" in message
    assert "save_to_preset" in message and "hub:DIR" in message


def test_preset_name_and_path_errors(tmp_path):
    with pytest.raises(ValueError, match=r"no ResNeXt-50 preset.*resnext50_32x4d"):
        from_hub("resnext_50_imagenet")
    with pytest.raises(ValueError, match=r"Close names: \['resnet_18_imagenet'"):
        from_hub("resnet18_imagenet")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_hub(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"no config\.json"):
        from_hub(tmp_path)
    weights = tmp_path / "net.weights.h5"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match=r"is a file.*weights="):
        from_hub(weights)
    with pytest.raises(TypeError, match="preset"):
        from_hub(3)
    with pytest.raises(TypeError, match="load_weights"):
        from_hub(resnet_preset(tmp_path), load_weights="yes")


def test_without_keras_hub_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ImportError, match=r"keras-sumix\[hub\]"):
        from_hub("resnet_18_imagenet")
    with pytest.raises(ImportError, match=r"deit_small.*keras-sumix\[hub\]"):
        ks.models.deit_small(32, patch_size=8)
