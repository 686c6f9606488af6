"""DecoupleMix's decoupled regulariser: the pure function against a NumPy
re-implementation of its formula, its gradients, and `decouple_weight` in
MixupModel / SUMixModel (loss by hand, compiled steps, saving, the CLI)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import BACKEND, input_gradients, run_once, to_np
from hypothesis import given
from hypothesis import strategies as st

import keras_sumix as ks
from keras_sumix import cli, training
from keras_sumix.layers import AutoMix, CutMix, MixUp
from keras_sumix.losses import decoupled_regularizer

SMOOTHING = (0.0, 0.1, 0.3)


# --------------------------------------------------------------------------
# The formula, in NumPy: one row and one left-out class at a time.
# --------------------------------------------------------------------------


def reference(logits, targets, perm, lam):
    """`lam * D_a + (1 - lam) * D_b` per row: `D_a` the cross-entropy of the
    softmax over every class but `y_b` against `t_a` restricted to them and
    renormalised, `D_b` likewise; 0 where `y_a == y_b`."""
    logits = np.asarray(logits, "float64")
    targets = np.asarray(targets, "float64")
    n, c = logits.shape
    y = targets.argmax(-1)
    lam = np.broadcast_to(np.asarray(lam, "float64"), (n,))
    out = np.zeros(n)
    for i in range(n):
        a, b = y[i], y[perm[i]]
        if a == b:
            continue
        for row, other, share in (
            (targets[i], b, lam[i]),
            (targets[perm[i]], a, 1.0 - lam[i]),
        ):
            keep = [k for k in range(c) if k != other]
            z = logits[i, keep]
            log_q = z - z.max() - np.log(np.exp(z - z.max()).sum())
            t = row[keep] / row[keep].sum()
            out[i] += share * -(t * log_q).sum()
    return out


def smoothed(labels, classes, e):
    return np.eye(classes)[labels] * (1.0 - e) + e / classes


@run_once("torch", "the formula on host arrays does not depend on the backend")
@given(
    n=st.integers(1, 6),
    c=st.integers(2, 6),
    e=st.sampled_from(SMOOTHING),
    per_sample=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matches_numpy_formula(n, c, e, per_sample, seed):
    rng = np.random.default_rng(seed)
    logits = (3.0 * rng.standard_normal((n, c))).astype("float32")
    labels = rng.integers(0, c, n)
    perm = rng.permutation(n)
    lam = rng.random(n) if per_sample else rng.random()
    lam = np.asarray(lam, "float32")
    targets = smoothed(labels, c, e)
    # Integer labels are one-hot targets; smoothed ones keep their mass.
    given_labels = labels if e == 0.0 else targets.astype("float32")
    reg = to_np(decoupled_regularizer(logits, given_labels, perm, lam))
    assert reg.shape == (n,) and reg.dtype == np.float32
    # float32: `z_a - logsumexp` cancels when `y_a` dominates (D near 0).
    expected = reference(logits, targets, perm, lam)
    np.testing.assert_allclose(reg, expected, rtol=1e-5, atol=1e-5)


@run_once("torch", "the formula on host arrays does not depend on the backend")
def test_one_hot_form_is_p_a_over_one_minus_p_b():
    """With one-hot labels `D_a = -log(p_a / (1 - p_b))`; float16 logits are
    computed in float32; a sample mixed with its own class adds nothing."""
    logits = np.array([[2.0, 1.0, 0.0, -1.0], [0.5, 3.0, 0.0, 1.0]], "float32")
    labels, perm = np.array([0, 1]), np.array([1, 0])
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    d_a = -np.log(p[0, 0] / (1 - p[0, 1]))
    d_b = -np.log(p[0, 1] / (1 - p[0, 0]))
    reg = decoupled_regularizer(logits.astype("float16"), labels, perm, 0.7)
    assert keras.backend.standardize_dtype(reg.dtype) == "float32"
    np.testing.assert_allclose(to_np(reg)[0], 0.7 * d_a + 0.3 * d_b, rtol=1e-3)
    same = decoupled_regularizer(logits, np.array([1, 1]), perm, 0.7)
    np.testing.assert_array_equal(to_np(same), [0.0, 0.0])


@pytest.mark.parametrize("lam", [1.0, 0.0])
def test_gradients_leave_out_the_other_class(lam):
    """`D_a` (lam = 1) sends no gradient to class `y_b`'s logit, `D_b`
    (lam = 0) none to `y_a`'s; elsewhere the gradient of `D_a` is
    `q_a - onehot(y_a)`; a row mixed with its own class gets none."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 5)).astype("float32")
    labels, perm = np.array([0, 2, 2]), np.array([1, 0, 1])  # row 2: 2 with 2
    (g,) = input_gradients(
        lambda z: keras.ops.sum(decoupled_regularizer(z, labels, perm, lam)), logits
    )
    y_b = labels[perm]
    pushed, left_out = (labels, y_b) if lam == 1.0 else (y_b, labels)
    np.testing.assert_array_equal(g[2], 0.0)
    for i in range(2):
        assert g[i, left_out[i]] == 0.0
        keep = [k for k in range(5) if k != left_out[i]]
        q = np.exp(logits[i, keep]) / np.exp(logits[i, keep]).sum()
        expected = q - (np.array(keep) == pushed[i])
        np.testing.assert_allclose(g[i, keep], expected, rtol=1e-5, atol=1e-6)


@run_once("torch", "argument checks on host arrays")
def test_bad_inputs_raise():
    logits = np.zeros((4, 3), "float32")
    perm, lam = np.array([1, 0, 3, 2]), np.full(4, 0.5, "float32")
    with pytest.raises(ValueError, match=r"`labels`.*\[0, 3\)"):
        decoupled_regularizer(logits, np.array([0, 1, 3, 0]), perm, lam)
    with pytest.raises(ValueError, match=r"`permutation`.*\[0, 4\)"):
        decoupled_regularizer(logits, np.array([0, 1, 2, 0]), perm + 1, lam)
    with pytest.raises(ValueError, match=r"`lam` must be finite and in \[0, 1\]"):
        decoupled_regularizer(logits, np.array([0, 1, 2, 0]), perm, lam + 1)
    with pytest.raises(ValueError, match=r"`lam` must have shape.*taken from `logits`"):
        decoupled_regularizer(logits, np.array([0, 1, 2, 0]), perm, lam[:3])
    with pytest.raises(ValueError, match=r"`logits` must have shape \(N, C\)"):
        decoupled_regularizer(logits[0], np.array([0]), np.array([0]), 0.5)
    with pytest.raises(TypeError, match=r"`labels`.*integer"):
        decoupled_regularizer(logits, np.zeros(4, "float32"), perm, lam)
    with pytest.raises(TypeError, match=r"`logits`.*floating-point"):
        decoupled_regularizer(
            np.zeros((4, 3), "int32"), np.zeros(4, "int32"), perm, 0.5
        )


# --------------------------------------------------------------------------
# decouple_weight in the models.
# --------------------------------------------------------------------------


def linear_backbone(seed=0) -> keras.Model:
    """No batch norm: a training-mode forward pass is a pure function."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same")(inputs))


def data(n=8, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3), dtype="float32")
    return x, (np.arange(n) % classes).astype("int32")


def _twins(model_cls, **kwargs):
    """The model with `decouple_weight=0.5` and its twin without (same
    weights, same mixer seed), and the mix their first step draws."""
    x, y = data()
    models = [
        model_cls(linear_backbone(), 4, MixUp(seed=5), decouple_weight=w, **kwargs)
        for w in (0.5, 0.0)
    ]
    for model in models:
        model.build(x.shape)
    for a, b in zip(*(m.weights for m in models), strict=True):
        b.assign(a)
    mix = MixUp.from_config(models[0].mixer.get_config()).mix(x)
    return models, x, y, mix


CASES = [
    (ks.MixupModel, {}),
    (ks.SUMixModel, {"variant": "recommended"}),
    (ks.SUMixModel, {"lambda_mode": "distance", "reduction": "reference"}),
]


@pytest.mark.parametrize(("model_cls", "options"), CASES)
def test_model_loss_is_its_loss_plus_weight_times_the_term(model_cls, options):
    """loss = the loss without it + weight * the term, the term by the formula
    on the mixed pass with smoothed targets, each mixed sample weighted as its
    mixed cross-entropy, and SUMix's corrected lam reduced as `reduction`."""
    (model, twin), x, y, mix = _twins(model_cls, label_smoothing=0.1, **options)
    logits = to_np(model(mix.images, training=True))
    perm, area = to_np(mix.permutation), to_np(mix.lam).reshape(-1)
    lam = to_np(model.training_lam(x, y, mix, training=True)).astype("float64")
    weight = np.linspace(0.5, 2.0, 8).astype("float32")
    w = area * weight + (1 - area) * weight[perm]
    targets = smoothed(y, 4, 0.1)
    d_a = w * reference(logits, targets, perm, 1.0)
    d_b = w * reference(logits, targets, perm, 0.0)
    if options.get("reduction") == "reference":
        term = lam.mean() * d_a.mean() + (1 - lam).mean() * d_b.mean()
    else:
        term = (lam * d_a + (1 - lam) * d_b).mean()
    terms, _ = model.training_terms(x, y, weight)
    plain, _ = twin.training_terms(x, y, weight)
    assert "decouple_loss" not in plain
    assert term > 0
    np.testing.assert_allclose(to_np(terms["decouple_loss"]), term, rtol=1e-5)
    np.testing.assert_allclose(
        to_np(terms["loss"]), to_np(plain["loss"]) + 0.5 * term, rtol=1e-5
    )


@pytest.mark.parametrize("model_cls", [ks.MixupModel, ks.SUMixModel])
def test_fit_logs_the_term_and_save_load_keeps_the_weight(model_cls, tmp_path):
    x, y = data(n=16)
    model = model_cls(linear_backbone(), 4, CutMix(seed=0), decouple_weight=0.25)
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["decouple_loss"][0])
    assert model.get_config()["decouple_weight"] == 0.25
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.decouple_weight == 0.25
    np.testing.assert_allclose(
        to_np(loaded.predict(x, verbose=0)),
        to_np(model.predict(x, verbose=0)),
        rtol=1e-6,
    )
    terms, _ = loaded.training_terms(x[:8], y[:8])
    assert np.isfinite(float(to_np(terms["decouple_loss"])))


@pytest.mark.skipif(BACKEND == "torch", reason="XLA (TensorFlow) and jit (JAX)")
def test_compiled_step_equals_eager():
    """The step compiled (XLA on TensorFlow, jit on JAX) trains as the eager
    one. The mix is drawn once, outside: TensorFlow's random ops draw other
    numbers under XLA than eagerly, whatever the loss."""
    x, y = data()
    mix = CutMix(alpha=1.0, seed=0).mix(x)
    runs = {}
    for compiled in (False, True):
        model = ks.SUMixModel(
            linear_backbone(seed=3),
            4,
            CutMix(),
            variant="recommended",
            decouple_weight=0.5,
        )
        model._mix_global_batch = lambda images, dense, saliency=None: (mix, None)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            run_eagerly=not compiled,
            jit_compile=compiled,
        )
        logs = [model.train_on_batch(x, y, return_dict=True) for _ in range(2)]
        runs[compiled] = (
            [float(log["decouple_loss"]) for log in logs],
            [to_np(v) for v in model.trainable_weights],
        )
    assert runs[False][0][0] > 0
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-5)
    for compiled, eager in zip(runs[True][1], runs[False][1], strict=True):
        np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-6)


@run_once("torch", "the learned mixer's wiring, not a backend's")
def test_with_automix():
    x, y = data(n=8, seed=1)
    backbone = ks.models.small_cnn((8, 8, 3), widths=(4, 4))
    mixer = AutoMix(feature_layer="stage1", seed=1, momentum=0.9)
    model = ks.MixupModel(backbone, 4, mixer, decouple_weight=0.1)
    terms, _ = model.training_terms(x, y)
    assert {"decouple_loss", "mix_block_loss"} <= set(terms)
    assert np.isfinite(float(to_np(terms["loss"])))


@run_once("torch", "argument checks")
@pytest.mark.parametrize(
    ("value", "error"),
    [(-0.1, ValueError), (float("nan"), ValueError), ("0.1", TypeError)],
)
def test_bad_weight_raises(value, error):
    for model_cls in (ks.MixupModel, ks.SUMixModel):
        with pytest.raises(error, match="`decouple_weight`"):
            model_cls(linear_backbone(), 4, CutMix(), decouple_weight=value)
    with pytest.raises(error, match="`decouple_weight`"):
        training.TrainConfig(decouple_weight=value).validate()


@run_once("torch", "a CLI flag")
@pytest.mark.parametrize("sumix", [True, False])
def test_train_flag_reaches_the_model(sumix, capsys):
    flags = ["train", "--decouple-weight", "0.2"] + ([] if sumix else ["--no-sumix"])
    args = cli.build_parser().parse_args(flags)
    assert args.decouple_weight == 0.2
    config = training.TrainConfig(decouple_weight=0.2, sumix=sumix).validate()
    model = training.build_model(config, 10, (32, 32, 3))
    assert isinstance(model, ks.SUMixModel if sumix else ks.MixupModel)
    assert model.decouple_weight == 0.2
    assert cli.main(["train", "--decouple-weight", "-1"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "`decouple_weight`" in line
