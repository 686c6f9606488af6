"""MixupModel / SUMixModel inside model.fit on every backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np

import keras_sumix as ks
from keras_sumix.layers import CutMix, MixUp


def tiny_backbone(shape=(16, 16, 3), seed=0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    return keras.Model(inputs, x, name="tiny")  # a 4-D map: pooled by the model


def data(n=24, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 16, 16, 3), dtype="float32")
    y = (np.arange(n) % classes).astype("int32")
    return x, y


SUMIX_LOGS = {"loss", "mix_loss", "reg_loss", "lam_area", "lam_sumix", "accuracy"}


@pytest.mark.parametrize("one_hot", [False, True])
def test_sumix_fit_evaluate_predict(one_hot):
    x, y = data()
    labels = np.eye(4, dtype="float32")[y] if one_hot else y
    model = ks.SUMixModel(tiny_backbone(), 4, CutMix(seed=0))
    model.compile(optimizer=keras.optimizers.SGD(0.05), metrics=["accuracy"])
    history = model.fit(x, labels, batch_size=8, epochs=2, verbose=0)
    assert set(history.history) == SUMIX_LOGS
    for key, values in history.history.items():
        assert np.all(np.isfinite(values)), key
    assert 0 < history.history["lam_area"][-1] <= 1
    logs = model.evaluate(x, labels, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    # Evaluation is the clean classifier's cross-entropy.
    logits = to_np(model.predict(x, verbose=0))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(logs["loss"], -log_p[np.arange(24), y].mean(), rtol=1e-4)
    assert logits.shape == (24, 4)


def test_mixup_model_fit_and_history():
    x, y = data()
    model = ks.MixupModel(tiny_backbone(), 4, MixUp(seed=0))
    model.compile(optimizer="sgd", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert set(history.history) == {"loss", "lam_area", "accuracy"}
    assert np.all(np.isfinite(history.history["loss"]))


def test_last_small_batch_and_batch_of_one():
    x, y = data(n=17)  # batches of 8, 8 and 1
    model = ks.SUMixModel(tiny_backbone(), 4, CutMix(seed=0))
    model.compile(optimizer="sgd")
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    terms, _ = model.training_terms(x[:1], y[:1])
    assert float(to_np(terms["lam_area"])) == 1.0
    assert float(to_np(terms["lam_sumix"])) == pytest.approx(1.0)
    assert np.isfinite(float(to_np(terms["loss"])))


def _same_weights(a: keras.Model, b: keras.Model) -> None:
    b.build((None, 16, 16, 3))
    a.build((None, 16, 16, 3))
    for va, vb in zip(a.backbone.weights, b.backbone.weights, strict=True):
        vb.assign(va)
    for va, vb in zip(a.classifier.weights, b.classifier.weights, strict=True):
        vb.assign(va)


def test_sumix_without_correction_equals_mce():
    x, y = data(n=12)
    mce = ks.MixupModel(tiny_backbone(seed=1), 4, CutMix(seed=7))
    plain = ks.SUMixModel(
        tiny_backbone(seed=2),
        4,
        CutMix(seed=7),
        regularizer="none",
        lambda_mode="area",
        reduction="per_sample",
    )
    _same_weights(mce, plain)
    mce_terms, _ = mce.training_terms(x, y)
    sumix_terms, _ = plain.training_terms(x, y)
    np.testing.assert_allclose(
        to_np(sumix_terms["loss"]), to_np(mce_terms["loss"]), rtol=1e-5
    )
    assert float(to_np(sumix_terms["reg_loss"])) == 0.0


@pytest.mark.parametrize(
    ("regularizer", "head_learns"),
    [("both", True), ("uncertainty", True), ("semantic", False), ("none", False)],
)
def test_uncertainty_head_gets_gradient_only_from_its_regularizer(
    regularizer, head_learns
):
    x, y = data(n=16)
    model = ks.SUMixModel(tiny_backbone(), 4, CutMix(seed=0), regularizer=regularizer)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.build((None, 16, 16, 3))
    before = [to_np(w).copy() for w in model.uncertainty_head.weights]
    classifier_before = to_np(model.classifier.kernel).copy()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after = [to_np(w) for w in model.uncertainty_head.weights]
    changed = any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    assert changed == head_learns
    assert not np.allclose(classifier_before, to_np(model.classifier.kernel))


def test_raw_pass_gradient_option_changes_only_the_gradient():
    x, y = data(n=8)
    a = ks.SUMixModel(tiny_backbone(seed=3), 4, CutMix(seed=1))
    b = ks.SUMixModel(tiny_backbone(seed=4), 4, CutMix(seed=1), raw_pass_gradient=False)
    _same_weights(a, b)
    for va, vb in zip(
        a.uncertainty_head.weights, b.uncertainty_head.weights, strict=True
    ):
        vb.assign(va)
    ta, _ = a.training_terms(x, y)
    tb, _ = b.training_terms(x, y)
    for key in ("loss", "mix_loss", "reg_loss", "lam_sumix"):
        np.testing.assert_allclose(to_np(ta[key]), to_np(tb[key]), rtol=1e-5)
    b.compile(optimizer="sgd")
    assert np.isfinite(b.fit(x, y, batch_size=8, verbose=0).history["loss"][0])


def test_save_and_load_round_trip(tmp_path):
    x, y = data()
    model = ks.SUMixModel(
        tiny_backbone(),
        4,
        CutMix(alpha=0.2, seed=3),
        gamma=0.1,
        lambda_mode="distance",
        reduction="per_sample",
        semantic_scale=8.0,
        regularizer_logits="negative",
        regularizer_temperature=0.5,
    )
    model.compile(optimizer="sgd", metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "sumix.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ks.SUMixModel)
    assert isinstance(loaded.mixer, CutMix) and loaded.mixer.alpha == 0.2
    config = loaded.get_config()
    assert config["lambda_mode"] == "distance" and config["gamma"] == 0.1
    assert config["semantic_scale"] == 8.0 and config["reduction"] == "per_sample"
    assert config["regularizer_logits"] == "negative"
    assert config["regularizer_temperature"] == 0.5
    np.testing.assert_allclose(
        to_np(loaded.predict(x, verbose=0)),
        to_np(model.predict(x, verbose=0)),
        atol=1e-5,
    )
    history = loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_mixup_model_save_and_load(tmp_path):
    x, y = data()
    model = ks.MixupModel(tiny_backbone(), 4, MixUp(alpha=0.4, seed=3))
    model.compile(optimizer="sgd")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "mce.keras")
    loaded = keras.saving.load_model(tmp_path / "mce.keras")
    assert isinstance(loaded, ks.MixupModel) and loaded.mixer.alpha == 0.4
    np.testing.assert_allclose(
        to_np(loaded.predict(x, verbose=0)),
        to_np(model.predict(x, verbose=0)),
        atol=1e-5,
    )


def test_flat_feature_backbone_and_uncertainty_head():
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.Dense(6)(keras.layers.Flatten()(inputs))
    backbone = keras.Model(inputs, features)
    model = ks.SUMixModel(backbone, 3, MixUp(seed=0))
    model.compile(optimizer="sgd")
    x, y = data(n=8, classes=3)
    assert np.isfinite(model.fit(x, y, verbose=0).history["loss"][0])
    u = to_np(model.uncertainty_head(np.ones((2, 6), "float32")))
    np.testing.assert_allclose(np.linalg.norm(u, axis=-1), 1.0, rtol=1e-5)
    assert np.all(u >= 0)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_loss_is_finite(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        x, y = data(n=64)
        model = ks.SUMixModel(tiny_backbone(), 4, CutMix(seed=0))
        model.compile(optimizer=keras.optimizers.SGD(0.05))
        history = model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.all(np.isfinite(history.history["lam_sumix"]))


def test_errors():
    backbone = tiny_backbone()
    with pytest.raises(TypeError, match="backbone"):
        ks.SUMixModel("resnet", 4, CutMix())
    with pytest.raises(TypeError, match="mixer"):
        ks.SUMixModel(backbone, 4, keras.layers.Dense(3))
    with pytest.raises(ValueError, match="num_classes"):
        ks.MixupModel(backbone, 1, CutMix())
    with pytest.raises(TypeError, match="num_classes"):
        ks.MixupModel(backbone, 4.0, CutMix())
    with pytest.raises(ValueError, match="lambda_mode"):
        ks.SUMixModel(backbone, 4, CutMix(), lambda_mode="prose")
    with pytest.raises(ValueError, match="regularizer"):
        ks.SUMixModel(backbone, 4, CutMix(), regularizer="all")
    with pytest.raises(ValueError, match="reduction"):
        ks.SUMixModel(backbone, 4, CutMix(), reduction="sum")
    with pytest.raises(ValueError, match="gamma"):
        ks.SUMixModel(backbone, 4, CutMix(), gamma=-0.1)
    with pytest.raises(ValueError, match="semantic_scale"):
        ks.SUMixModel(backbone, 4, CutMix(), semantic_scale=0)
    with pytest.raises(ValueError, match="distance_scale"):
        ks.SUMixModel(backbone, 4, CutMix(), distance_scale=-1.0)
    with pytest.raises(TypeError, match="raw_pass_gradient"):
        ks.SUMixModel(backbone, 4, CutMix(), raw_pass_gradient="no")
    model = ks.SUMixModel(backbone, 4, CutMix())
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="sgd", loss="mse")
    model.compile(optimizer="sgd")
    x, y = data(n=8)
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(x, y, sample_weight=-np.ones(8), verbose=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        ks.MixupModel(backbone, 4, CutMix(), label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"label_smoothing=0\.1"):
        ks.SUMixModel(backbone, 4, MixUp(label_smoothing=0.1))
    fresh = ks.SUMixModel(tiny_backbone(), 4, CutMix())
    fresh.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="Labels"):
        fresh.fit(x, np.zeros((8, 7), "float32"), verbose=0)


# --------------------------------------------------------------------------- #
# Compiled steps: XLA on TensorFlow, torch.compile on torch
# --------------------------------------------------------------------------- #
def _mixers():
    from keras_sumix.layers import FMix, RandomChoice, ResizeMix, SaliencyMix

    return {
        "MixUp": lambda: MixUp(seed=0),
        "CutMix": lambda: CutMix(seed=0),
        "FMix": lambda: FMix(seed=0),
        "SaliencyMix": lambda: SaliencyMix(seed=0),
        "ResizeMix": lambda: ResizeMix(seed=0),
        "RandomChoice": lambda: RandomChoice([MixUp(0.2), CutMix(1.0)], seed=0),
    }


# Every mixer in SUMixModel's step (its mixed pass is MixupModel's whole
# step), and MixupModel's own wiring once: each case is an XLA compilation.
XLA_CASES = [(m, ks.SUMixModel) for m in _mixers()] + [("CutMix", ks.MixupModel)]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA on TensorFlow")
@pytest.mark.parametrize(("mixer", "model_cls"), XLA_CASES)
def test_xla_train_step_on_tensorflow(mixer, model_cls):
    from keras_sumix._keras_compat import model_supports_jit

    x, y = data(n=16)
    model = model_cls(tiny_backbone(), 4, _mixers()[mixer]())
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
    # Every layer compiles: "auto" would choose XLA too (on an accelerator).
    assert model_supports_jit(model)
    model.build((None, 16, 16, 3))
    before = to_np(model.classifier.kernel).copy()
    state = to_np(model.mixer.generator.state).copy()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert model.jit_compile is True
    assert model.train_function is not None
    for key, values in history.history.items():
        assert np.all(np.isfinite(values)), key
    lam = np.asarray(history.history["lam_area"])
    assert np.all((lam > 0) & (lam < 1))  # mixed (not the batch-of-one path)
    assert not np.allclose(before, to_np(model.classifier.kernel))
    assert not np.array_equal(state, to_np(model.mixer.generator.state))


@pytest.mark.skipif(BACKEND != "torch", reason="torch.compile")
def test_torch_compiled_step_matches_eager(monkeypatch):
    # jit_compile=True makes Keras wrap the step in torch.compile: the custom
    # step (backward() inside, a graph break) trains exactly as eagerly.
    # SUMixModel only: MixupModel runs the same torch step with a subset of
    # its passes. Dynamo captures the graphs and AOTAutograd traces them as
    # in a default torch.compile; the "aot_eager" backend then runs them with
    # torch's own kernels instead of generating C++ for them (inductor: two
    # minutes here, and its code generation is torch's, not ours).
    import torch

    compile_ = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda fn, **kw: compile_(fn, backend="aot_eager", **kw)
    )
    x, y = data(n=16)
    runs = {}
    for jit in (False, True):
        model = ks.SUMixModel(tiny_backbone(seed=5), 4, CutMix(seed=0))
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit)
        losses = [
            model.train_on_batch(x[i : i + 8], y[i : i + 8], return_dict=True)
            for i in (0, 8)
        ]
        losses = [float(logs["loss"]) for logs in losses]
        assert model.jit_compile is jit
        runs[jit] = losses, [to_np(w) for w in model.trainable_weights]
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-5)
    for compiled, eager in zip(runs[True][1], runs[False][1], strict=True):
        np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- #
# Soft labels, label smoothing, sample weights, dtype policies (issue 24)
# --------------------------------------------------------------------------- #
def linear_backbone(seed=0) -> keras.Model:
    """No batch norm: a training-mode forward pass is a pure function."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3))
    return keras.Model(inputs, keras.layers.Conv2D(8, 3, padding="same")(inputs))


def _log_softmax(logits):
    logits = logits - logits.max(-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _fixed_draw(model_cls, **kwargs):
    """A model, its batch, and the mix its first training step draws (a
    fresh copy of its mixer, same seed), with the mixed-pass logits."""
    x, y = data(n=8)
    model = model_cls(linear_backbone(), 4, MixUp(seed=5), **kwargs)
    model.build(x.shape)
    mix = MixUp.from_config(model.mixer.get_config()).mix(x)
    logits = to_np(model(mix.images, training=True)).astype("float64")
    lam = to_np(mix.lam).astype("float64").reshape(-1)
    return model, x, y, to_np(mix.permutation), lam, logits


@pytest.mark.parametrize("model_cls", [ks.MixupModel, ks.SUMixModel])
def test_soft_training_labels_raise(model_cls):
    """Labels already mixed (by a mixer in the data pipeline) would be mixed
    twice: NumPy ones raise before tracing, tensor ones stop fit."""
    x, y = data(n=8)
    soft = (
        0.6 * np.eye(4, dtype="float32")[y] + 0.4 * np.eye(4, dtype="float32")[y[::-1]]
    )
    model = model_cls(tiny_backbone(), 4, MixUp(seed=0))
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"soft.*mixed twice.*one-hot"):
        model.fit(x, soft, verbose=0)
    with pytest.raises(ValueError, match="soft"):
        model.train_on_batch(x, soft)

    def batches():
        while True:
            yield x, keras.ops.convert_to_tensor(soft)

    with pytest.raises(ks.callbacks.TrainingDiverged, match="already mixed"):
        model.fit(batches(), steps_per_epoch=2, epochs=1, verbose=0)
    # One-hot rows still train.
    history = model.fit(x, np.eye(4, dtype="float32")[y], verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_mixup_model_loss_by_hand(smoothing, weighted):
    """Smooth the one-hot labels, then mix; a mixed sample weighs
    `lam * w_a + (1 - lam) * w_b`; the loss is `mean(w * CE)`."""
    model, x, y, perm, lam, logits = _fixed_draw(
        ks.MixupModel, label_smoothing=smoothing
    )
    weight = np.linspace(0.5, 2.0, 8)
    target = np.eye(4)[y] * (1 - smoothing) + smoothing / 4
    mixed = lam[:, None] * target + (1 - lam[:, None]) * target[perm]
    ce = -(mixed * _log_softmax(logits)).sum(-1)
    w = lam * weight + (1 - lam) * weight[perm] if weighted else np.ones(8)
    terms, _ = model.training_terms(
        x, y, weight.astype("float32") if weighted else None
    )
    np.testing.assert_allclose(to_np(terms["loss"]), (w * ce).mean(), rtol=1e-5)


@pytest.mark.parametrize("reduction", ["per_sample", "reference"])
@pytest.mark.parametrize(
    "smoothing, weighted", [(0.2, False), (0.0, True), (0.1, True)]
)
def test_sumix_model_loss_by_hand(reduction, smoothing, weighted):
    """SUMix smooths the targets of its mixed cross-entropy and weights its
    terms per mixed sample; the regulariser keeps the hard labels and no
    weight (lambda_mode="area": the corrected lam is the area lam)."""
    options = {"lambda_mode": "area", "reduction": reduction, "gamma": 0.5}
    model, x, y, perm, lam, logits = _fixed_draw(
        ks.SUMixModel, label_smoothing=smoothing, **options
    )
    plain = ks.SUMixModel(linear_backbone(), 4, MixUp(seed=5), **options)
    plain.build(x.shape)
    for a, b in zip(model.weights, plain.weights, strict=True):
        b.assign(a)
    weight = np.linspace(0.5, 2.0, 8)
    target = np.eye(4)[y] * (1 - smoothing) + smoothing / 4
    log_p = _log_softmax(logits)
    w = lam * weight + (1 - lam) * weight[perm] if weighted else np.ones(8)
    ce_a = w * -(target * log_p).sum(-1)
    ce_b = w * -(target[perm] * log_p).sum(-1)
    if reduction == "per_sample":
        mix_loss = (lam * ce_a + (1 - lam) * ce_b).mean()
    else:
        mix_loss = lam.mean() * ce_a.mean() + (1 - lam).mean() * ce_b.mean()
    sample_weight = weight.astype("float32") if weighted else None
    terms, _ = model.training_terms(x, y, sample_weight)
    reference, _ = plain.training_terms(x, y)
    np.testing.assert_allclose(to_np(terms["mix_loss"]), mix_loss, rtol=1e-5)
    np.testing.assert_allclose(
        to_np(terms["reg_loss"]), to_np(reference["reg_loss"]), rtol=1e-6
    )
    np.testing.assert_allclose(
        to_np(terms["loss"]), mix_loss + 0.5 * to_np(reference["reg_loss"]), rtol=1e-5
    )


@pytest.mark.parametrize("model_cls", [ks.MixupModel, ks.SUMixModel])
def test_class_weight_is_the_weight_of_each_label(model_cls):
    """`class_weight` trains exactly as the `sample_weight` of each label's
    class (Keras turns one into the other); both used to raise."""
    x, y = data(n=16)
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5, 3: 1.0}
    losses = []
    for kwargs in (
        {"class_weight": class_weight},
        {"sample_weight": np.array([class_weight[c] for c in y], "float32")},
    ):
        model = model_cls(linear_backbone(), 4, MixUp(seed=1))
        model.compile(optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"])
        history = model.fit(
            x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, **kwargs
        )
        losses.append(history.history["loss"][0])
    assert np.isfinite(losses[0])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def _policy_names(model):
    heads = [model.classifier, getattr(model, "uncertainty_head", model.classifier)]
    return [model.dtype_policy.name] + [h.dtype_policy.name for h in heads]


@pytest.mark.parametrize("model_cls", [ks.MixupModel, ks.SUMixModel])
def test_dtype_policy_round_trips(model_cls, tmp_path):
    model = model_cls(
        tiny_backbone(), 4, MixUp(seed=0), dtype="mixed_bfloat16", label_smoothing=0.1
    )
    x, y = data(n=8)
    model.compile(optimizer="sgd")
    model.fit(x, y, verbose=0)
    assert _policy_names(model) == ["mixed_bfloat16"] * 3
    config = model.get_config()
    assert config["label_smoothing"] == 0.1
    assert _policy_names(model_cls.from_config(config)) == ["mixed_bfloat16"] * 3
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert _policy_names(loaded) == ["mixed_bfloat16"] * 3
    assert loaded.label_smoothing == 0.1


@pytest.mark.parametrize(
    "layer",
    [
        lambda: ks.UncertaintyHead(4, dtype="mixed_bfloat16"),
        lambda: MixUp(seed=0, dtype="mixed_bfloat16"),
        lambda: CutMix(seed=0, dtype="mixed_bfloat16"),
        # It keeps the policy of the layer it wraps (saved with that layer).
        lambda: ks.models.LogitHead(keras.layers.Dense(3, dtype="mixed_bfloat16")),
    ],
)
def test_layer_dtype_policy_round_trips(layer):
    layer = layer()
    restored = type(layer).from_config(layer.get_config())
    assert restored.dtype_policy.name == "mixed_bfloat16"
