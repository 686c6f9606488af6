"""`deit_small` / `swin_tiny` (keras-hub transformers) and token pooling.

The full-size networks are only built and counted (never run), against the
reference configurations without their 1000-class heads:

* ViT-S/16 (timm `vit_small_patch16_224`, OpenMixup's `deit-small`, the
  paper's DeiT-Small): 22,050,664 - 385,000 = 21,665,664.
* DeiT-S distilled (keras-hub `deit_small_distilled_patch16_224_imagenet`,
  two tokens): 21,666,432.
* Swin-T (timm `swin_tiny_patch4_window7_224`): 28,288,354 - 769,000 =
  27,519,354.

Everything that runs uses tiny configurations at 32 px.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import run_once, to_np

import keras_sumix as ks
from keras_sumix import models
from keras_sumix.models.pooling import pool_features, token_pooling_of

keras_hub = pytest.importorskip("keras_hub")

RNG = np.random.default_rng(0)
IMAGES = RNG.random((4, 32, 32, 3)).astype("float32")
LABELS = np.array([0, 1, 2, 1], "int32")
TINY_DEIT = {"num_layers": 1, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32}
TINY_SWIN = {"embed_dim": 8, "depths": (1, 1), "num_heads": (1, 2)}


def _tiny_deit(**kwargs):
    return models.deit_small(32, patch_size=8, **{**TINY_DEIT, **kwargs})


def _tiny_swin(**kwargs):
    return models.swin_tiny(32, patch_size=2, window_size=4, **{**TINY_SWIN, **kwargs})


@run_once("torch", "a parameter count does not depend on the backend")
@pytest.mark.parametrize(
    "builder, kwargs, params, dim",
    [
        (models.deit_small, {}, 21_665_664, 384),
        (models.deit_small, {"distilled": True}, 21_666_432, 384),
        (models.swin_tiny, {}, 27_519_354, 768),
    ],
    ids=["deit_small", "deit_small_distilled", "swin_tiny"],
)
def test_full_size_parameter_counts(builder, kwargs, params, dim):
    model = builder(**kwargs)
    assert model.count_params() == params
    assert not model.non_trainable_weights  # no BN statistics in transformers
    assert model.output_shape == (None, dim)
    assert model.input_shape == (None, 224, 224, 3)


def test_features_are_pooled_as_documented():
    """DeiT: the class token; Swin: the token mean. A raw keras-hub token
    backbone given to the models or to `classifier` is pooled the same way."""
    deit, distilled, swin = _tiny_deit(), _tiny_deit(distilled=True), _tiny_swin()
    vit_layer, deit_layer, swin_layer = (m.layers[1] for m in (deit, distilled, swin))
    assert isinstance(vit_layer, keras_hub.models.ViTBackbone)
    assert isinstance(deit_layer, keras_hub.models.DeiTBackbone)
    assert isinstance(swin_layer, keras_hub.models.SwinTransformerBackbone)
    cases = [
        # (builder's model, its keras-hub backbone, tokens shape, class token?)
        (deit, vit_layer, (4, 17, 16), True),  # class token + (32 / 8)**2 patches
        (distilled, deit_layer, (4, 18, 16), True),  # + the distillation token
        (swin, swin_layer, (4, 64, 16), False),  # 8x8 tokens after one merge
    ]
    for model, hub_backbone, shape, class_token in cases:
        tokens = to_np(hub_backbone(IMAGES))
        assert tokens.shape == shape
        expected = tokens[:, 0] if class_token else tokens.mean(axis=1)
        np.testing.assert_allclose(to_np(model(IMAGES)), expected, atol=1e-5)
        assert token_pooling_of(hub_backbone) == (
            "class_token" if class_token else "mean"
        )
        if hub_backbone is deit_layer:
            continue
        mixing = ks.MixupModel(hub_backbone, 3, ks.layers.MixUp(seed=0))
        np.testing.assert_allclose(to_np(mixing.features(IMAGES)), expected, atol=1e-5)
        head = models.classifier(hub_backbone, 3)
        fc = head.get_layer("fc")
        logits = expected @ to_np(fc.kernel) + to_np(fc.bias)
        np.testing.assert_allclose(to_np(head(IMAGES)), logits, rtol=1e-4, atol=1e-5)
    no_class_token = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2,
        hidden_dim=16, mlp_dim=32, use_class_token=False,
    )  # fmt: skip
    assert token_pooling_of(no_class_token) == "mean"


@pytest.mark.parametrize("builder", [_tiny_deit, _tiny_swin], ids=["deit", "swin"])
@pytest.mark.parametrize("model_cls", [ks.MixupModel, ks.SUMixModel])
def test_transformers_train_a_step(builder, model_cls, tmp_path):
    backbone = builder()
    start = [to_np(w).copy() for w in backbone.trainable_weights]
    model = model_cls(backbone, 3, ks.layers.CutMix(2.0, seed=0))
    model.compile(optimizer=keras.optimizers.AdamW(1e-2, weight_decay=0.05))
    history = model.fit(IMAGES, LABELS, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(
        not np.allclose(a, to_np(b))
        for a, b in zip(start, backbone.trainable_weights, strict=True)
    )
    predictions = model.predict(IMAGES, verbose=0)
    assert predictions.shape == (4, 3)
    if model_cls is ks.SUMixModel:  # save / load round trip
        model.save(tmp_path / "model.keras")
        loaded = keras.saving.load_model(tmp_path / "model.keras")
        assert isinstance(loaded, ks.SUMixModel)
        np.testing.assert_allclose(
            loaded.predict(IMAGES, verbose=0), predictions, atol=1e-5
        )


def test_pool_features_rules():
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    np.testing.assert_array_equal(to_np(pool_features(x, "class_token")), x[:, 0])
    np.testing.assert_allclose(to_np(pool_features(x, "mean")), x.mean(axis=1))
    maps = np.arange(32, dtype="float32").reshape(2, 2, 2, 4)
    np.testing.assert_allclose(
        to_np(pool_features(maps, data_format="channels_last")), maps.mean(axis=(1, 2))
    )
    with pytest.raises(ValueError, match="mode"):
        pool_features(x, "max")
    with pytest.raises(ValueError, match=r"\(N, L, D\)"):
        pool_features(np.zeros((2, 1, 1, 1, 3), "float32"))


def test_argument_errors():
    with pytest.raises(ValueError, match="divisible by `patch_size`"):
        models.deit_small(30, patch_size=8)
    with pytest.raises(ValueError, match="image_size"):
        models.deit_small("big")
    with pytest.raises(ValueError, match="num_heads"):
        models.deit_small(32, patch_size=8, hidden_dim=10, num_heads=3)
    with pytest.raises(TypeError, match="distilled"):
        models.deit_small(32, patch_size=8, distilled="yes")
    with pytest.raises(ValueError, match=r"`window_size`=7 must tile.*\[8, 4, 2, 1\]"):
        models.swin_tiny(32)  # patch 4, window 7 at 32 px
    with pytest.raises(ValueError, match="one head count per stage"):
        models.swin_tiny(32, patch_size=2, window_size=2, num_heads=(1, 2))
    with pytest.raises(ValueError, match="drop_path"):
        models.swin_tiny(drop_path=1.5)
    with pytest.raises(ValueError, match=r"weights.*\.weights\.h5"):
        models.swin_tiny(weights="imagenet")


def test_local_weights_round_trip(tmp_path):
    model = _tiny_deit()
    path = tmp_path / "deit.weights.h5"
    model.save_weights(path)
    again = _tiny_deit(weights=str(path))
    np.testing.assert_allclose(to_np(again(IMAGES)), to_np(model(IMAGES)), atol=1e-6)
