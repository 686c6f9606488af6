"""Reliability: mixed precision, determinism, exact resume and the NaN guard.

Everything runs on tiny models so that the file stays within a few seconds
of CPU per check on every backend.
"""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import BACKEND, in_tf_data, to_np

import keras_sumix as ks
from keras_sumix import _keras_compat, cli, training
from keras_sumix.data import make_pipeline, occluded_objects
from keras_sumix.layers import CutMix
from keras_sumix.training import TrainConfig, TrainingDiverged, train

POLICIES = ("mixed_float16", "mixed_bfloat16")
#: Policies a backend cannot run on CPU, with the reason (none today: Keras
#: 3.15 runs both policies on TensorFlow, JAX and torch 2.13 CPU).
UNSUPPORTED: dict[tuple[str, str], str] = {}
#: Relative error allowed on one step's update against float32.
STEP_TOLERANCE = {"mixed_float16": 0.05, "mixed_bfloat16": 0.3}


def tiny_model(size=16, classes=10, seed=0, filters=8) -> ks.SUMixModel:
    """Conv + global average pooling: a backbone that costs next to nothing."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    backbone = keras.Model(inputs, x, name="tiny")
    model = ks.SUMixModel(backbone, classes, CutMix(1.0, seed=seed))
    model.build((None, size, size, 3))
    return model


def embedded(n=64, size=16, seed=0):
    data = occluded_objects(n, image_size=size, seed=seed)
    return data.images, data.labels


@pytest.fixture
def policy(request):
    """Set the global dtype policy for one test; float32 again afterwards."""
    name = request.param
    reason = UNSUPPORTED.get((BACKEND, name))
    if reason:
        pytest.skip(f"{name} on {BACKEND} CPU: {reason}")
    keras.mixed_precision.set_global_policy(name)
    yield name
    keras.mixed_precision.set_global_policy("float32")


def _weights(model) -> list[np.ndarray]:
    return [to_np(v) for v in model.trainable_variables]


# ---------------------------------------------------------------------- #
# A. Mixed precision
# ---------------------------------------------------------------------- #
def test_sumix_loss_computes_in_float32():
    """float16 inputs give exactly the float32 result: with s = N = 256 the
    terms exp(-N x) would underflow in float16."""
    rng = np.random.default_rng(0)
    n, c = 256, 10

    def head(v):
        p = np.exp(v) / np.exp(v).sum(-1, keepdims=True)
        return p / np.linalg.norm(p, axis=-1, keepdims=True)

    inputs = [
        rng.normal(size=(n, c)) * 4,
        head(rng.normal(size=(n, c))),
        rng.normal(size=(n, c)) * 4,
        head(rng.normal(size=(n, c))),
    ]
    half = [x.astype("float16") for x in inputs]
    labels = rng.integers(0, c, n).astype("int32")
    perm = np.roll(np.arange(n, dtype="int32"), 1)
    lam = rng.random(n).astype("float32")
    out16 = ks.sumix_loss(labels, *half, perm, lam)
    out32 = ks.sumix_loss(labels, *[x.astype("float32") for x in half], perm, lam)
    for key in ("loss", "mix_loss", "reg_loss", "lam"):
        assert keras.backend.standardize_dtype(out16[key].dtype) == "float32"
        np.testing.assert_array_equal(to_np(out16[key]), to_np(out32[key]))
        assert np.all(np.isfinite(to_np(out16[key])))
    assert np.float16(np.exp(-np.float16(n) * np.float16(0.5))) == 0  # the trap


@pytest.fixture(scope="module")
def float32_step():
    """Start weights, a batch and the change one float32 SGD step makes."""
    keras.mixed_precision.set_global_policy("float32")
    x, y = embedded(n=16)
    model = tiny_model()
    start = model.get_weights()
    before = _weights(model)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.fit(x, y, batch_size=16, verbose=0)  # one step
    delta = [a - b for a, b in zip(_weights(model), before, strict=True)]
    keras.backend.clear_session()
    return start, x, y, delta


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
def test_mixed_precision_trains_200_steps(policy, float32_step):
    """The network runs in half precision and the loss in float32; the first
    step moves the weights as a float32 step does, so the custom train step
    undoes the loss scaling of mixed_float16 (a scaled update would be 2**15
    times too large); 200 steps on the embedded dataset keep the loss finite
    and decreasing."""
    start, x0, y0, reference = float32_step
    model = tiny_model()  # a fresh mixer: the same first mix as in float32
    model.set_weights(start)
    assert model.classifier.compute_dtype == policy.removeprefix("mixed_")
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    loss_scaled = policy == "mixed_float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) is (
        loss_scaled
    )
    before = _weights(model)
    model.fit(x0, y0, batch_size=16, verbose=0)
    after = _weights(model)
    got = np.concatenate([(a - b).ravel() for a, b in zip(after, before, strict=True)])
    want = np.concatenate([w.ravel() for w in reference])
    # Relative error of the whole update: rounding only (an update left
    # scaled would be off by ~2**15). bfloat16 keeps 8 mantissa bits, and
    # the conv bias gradient sums 4096 of its products.
    err = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert err < STEP_TOLERANCE[policy], err
    if loss_scaled:  # the scale exists and the step was not skipped
        assert float(to_np(model.optimizer.dynamic_scale)) == 2.0**15

    x, y = embedded()
    model.optimizer.learning_rate.assign(0.1)
    # 200 more steps: 10 epochs of 20 batches of 16.
    repeats = np.arange(320) % len(x)
    history = model.fit(
        x[repeats], y[repeats], batch_size=16, epochs=10, shuffle=False, verbose=0
    ).history
    assert int(to_np(model.optimizer.iterations)) == 201
    losses = history["loss"]
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(history["lam_sumix"]))
    assert losses[-1] < losses[0], losses
    if loss_scaled:  # no overflow ever made it halve the scale
        assert float(to_np(model.optimizer.dynamic_scale)) >= 2.0**15


# ---------------------------------------------------------------------- #
# Runs shared by B and C: `train` twice with the same config, the second run
# crashed in the middle of epoch 1, then resumed by the CLI.
# ---------------------------------------------------------------------- #
class _Interrupted(Exception):
    pass


class _StopAt(keras.callbacks.Callback):
    """Raise at the end of batch `batch` of epoch `epoch` (a crash)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise _Interrupted(f"interrupted at {self.at}")


class _FirstEpochLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 0:
            self.losses.append(float(logs["loss"]))


def _tiny_backbone(config, input_shape):
    """Stands in for `training.build_backbone` (small_cnn costs seconds of
    compilation per run on JAX); batch norm keeps non-trainable state in the
    runs, which a resume must restore too."""
    keras.utils.set_random_seed(config.seed)
    inputs = keras.Input(tuple(input_shape))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.Activation("relu")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


RUNS = ("whole", "cut")  # uninterrupted, crashed then resumed
RUN = ["--limit", "48", "--epochs", "2", "--batch-size", "16", "--image-size", "16"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = TrainConfig(limit=48, epochs=2, batch_size=16, image_size=16)
    whole = dataclasses.replace(config, output_dir=str(root / "whole"))
    cut = dataclasses.replace(config, output_dir=str(root / "cut"))
    first_epoch = [_FirstEpochLosses(), _FirstEpochLosses()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "build_backbone", _tiny_backbone)
        train(whole, verbose=0, callbacks=[first_epoch[0]])
        with pytest.raises(_Interrupted):
            stop = _StopAt(epoch=1, batch=1)
            train(cut, verbose=0, callbacks=[first_epoch[1], stop])
        keras.backend.clear_session()
        backup = (root / "cut" / "backup").exists()
        code = cli.main(["train", *RUN, "--output-dir", cut.output_dir, "--quiet"])
        keras.backend.clear_session()
    return {
        "root": root,
        "cut": cut,
        "first_epoch": [c.losses for c in first_epoch],
        "backup_after_crash": backup,
        "cli_code": code,
    }


# ---------------------------------------------------------------------- #
# B. Determinism
# ---------------------------------------------------------------------- #
def _mixes():
    keras.utils.set_random_seed(7)
    images, _ = embedded(n=8)
    mixer = CutMix(1.0, seed=3)
    out = []
    for _ in range(2):
        result = mixer.mix(images)
        out += [to_np(result.images), to_np(result.permutation), to_np(result.lam)]
    return out


def test_same_seed_same_mixes():
    first, second = _mixes(), _mixes()
    assert len(first) == len(second) == 6
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)  # bitwise


def test_same_seed_same_first_epoch_losses(runs):
    """Two `train` runs of one config in one process (seeded initialisation,
    pipeline and mixer) log the same loss after every batch of epoch 0."""
    whole, cut = runs["first_epoch"]
    assert len(whole) == 3
    np.testing.assert_allclose(whole, cut, rtol=1e-6, atol=0)


# ---------------------------------------------------------------------- #
# C. Resume
# ---------------------------------------------------------------------- #
def _weights_of(run_dir):
    return keras.saving.load_model(run_dir / "checkpoint.keras").get_weights()


def _assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)


def test_train_resumes_exactly_from_the_cli(runs):
    """`train` crashed in the middle of epoch 1, then resumed by rerunning
    the same `keras-sumix train` command (epoch 1 replayed from its first
    batch, with the same data order and mixes), ends with the weights and
    history of an uninterrupted run."""
    root = runs["root"]
    assert runs["backup_after_crash"] and runs["cli_code"] == 0
    saved = json.loads((root / "cut" / "config.json").read_text())
    assert saved == dataclasses.asdict(runs["cut"])  # the CLI ran the same config
    history = [json.loads((root / d / "history.json").read_text()) for d in RUNS]
    assert [row["epoch"] for row in history[1]] == [0, 1]
    for a, b in zip(*history, strict=True):
        assert a.keys() == b.keys()
        np.testing.assert_allclose(list(a.values()), list(b.values()), rtol=1e-5)
    _assert_same_weights(*(_weights_of(root / d) for d in RUNS))
    results = json.loads((root / "cut" / "results.json").read_text())
    assert results["status"] == "completed" and results["epochs_run"] == 2
    assert not (root / "cut" / "backup").exists()  # removed at the end


def _batches(ds):
    return [(to_np(x), to_np(y)) for x, y in ds]


@in_tf_data
def test_pipeline_epoch_order_depends_only_on_seed_and_epoch():
    images, labels = embedded(n=32, size=8)
    raw = tf.data.Dataset.from_tensor_slices((images, labels))
    epoch = tf.Variable(0, dtype=tf.int64)
    kwargs = {"training": True, "batch_size": 8, "seed": 3, "epoch": epoch}
    first = make_pipeline(raw, **kwargs)
    assert int(first.cardinality()) == 4
    seen = []
    for index in range(3):
        epoch.assign(index)
        seen.append(_batches(first))
    assert not np.array_equal(seen[0][0][1], seen[1][0][1])  # epochs differ
    # A fresh pipeline (as in a resumed process) iterated first at epoch 2.
    epoch.assign(2)
    fresh = _batches(make_pipeline(raw, **kwargs))
    for (x, y), (x2, y2) in zip(fresh, seen[2], strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    fixed = _batches(make_pipeline(raw, **{**kwargs, "epoch": 2}))
    np.testing.assert_array_equal(fixed[0][0], seen[2][0][0])
    # Without `epoch` the order restarts with every new dataset object: a
    # resumed run would replay epoch 0's order.
    plain = {**kwargs, "epoch": None}
    again = make_pipeline(raw, **plain)
    order_0, order_1 = _batches(again)[0][1], _batches(again)[0][1]
    assert not np.array_equal(order_0, order_1)
    np.testing.assert_array_equal(_batches(make_pipeline(raw, **plain))[0][1], order_0)
    # TensorFlow's global seed plays no part with `epoch`; without, tf.data
    # pairs `seed` with it (as the docstring and docs/data.md say).
    orders = []
    for global_seed in (1, 2):
        tf.random.set_seed(global_seed)
        with_epoch = _batches(make_pipeline(raw, **{**kwargs, "epoch": 2}))[0][1]
        orders.append((with_epoch, _batches(make_pipeline(raw, **plain))[0][1]))
    tf.random.set_seed(None)
    np.testing.assert_array_equal(orders[0][0], orders[1][0])
    np.testing.assert_array_equal(orders[0][0], seen[2][0][1])
    assert not np.array_equal(orders[0][1], orders[1][1])
    with pytest.raises(ValueError, match="seed"):
        make_pipeline(raw, **{**kwargs, "seed": None})
    with pytest.raises(TypeError, match="epoch"):
        make_pipeline(raw, **{**kwargs, "epoch": tf.Variable(1.0)})


def test_fit_with_backup_and_restore_resumes_exactly(tmp_path):
    """A direct `model.fit` with epoch-granular BackupAndRestore, crashed in
    the middle of epoch 1 and resumed, ends with the weights of an
    uninterrupted run: the weights, the optimizer and the mixer's random
    state are all restored (the mixes of the replayed epoch are the same)."""
    x, y = embedded(n=48)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    model.optimizer.build(model.trainable_variables)
    model.save_weights(tmp_path / "start.weights.h5")  # optimizer and mixer too

    def fit(*callbacks):
        model.fit(
            x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, callbacks=callbacks
        )
        return _weights(model)

    whole = fit()
    model.load_weights(tmp_path / "start.weights.h5")  # all state back to start
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "b"), save_freq="epoch")
    with pytest.raises(_Interrupted):
        fit(backup, _StopAt(epoch=1, batch=1))
    crashed = _weights(model)
    assert not np.allclose(crashed[0], whole[0])
    _assert_same_weights(fit(backup), whole)


def test_mixer_random_state_is_saved_with_the_weights(tmp_path):
    model = tiny_model()
    x, _ = embedded(n=8)
    model.mixer.mix(x)  # advance the stream
    model.save_weights(tmp_path / "m.weights.h5")
    expected = to_np(model.mixer.mix(x).images)
    restored = tiny_model()
    restored.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(to_np(restored.mixer.mix(x).images), expected)


def test_diverging_run_stops_and_says_so(tmp_path, capsys, monkeypatch):
    """A run whose loss becomes NaN/inf stops at once, exits with status 1
    and a one-line error, and its results.json says "diverged" (no test
    metrics, no NaN history row)."""
    monkeypatch.setattr(training, "build_backbone", _tiny_backbone)
    out = tmp_path / "run"
    argv = ["train", "--limit", "32", "--epochs", "2", "--batch-size", "16"]
    argv += ["--image-size", "16", "--lr", "1e30", "--output-dir", str(out)]
    assert cli.main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "keras-sumix train: error: the training loss became" in err
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "diverged" and results["epochs_run"] == 0
    assert "loss became" in results["error"] and "test_top1" not in results
    assert not (out / "history.json").exists()
    assert issubclass(TrainingDiverged, FloatingPointError)  # what train raises


def test_stop_on_nan_adds_no_sync_to_the_training_loop():
    """StopOnNaN is async-safe: with it among the callbacks Keras still runs
    the batch-end callbacks off the training loop (JAX, torch), so the loop
    does not wait for each batch's loss; Keras's own TerminateOnNaN (what
    StopOnNaN used to be) turns that off."""
    assert ks.callbacks.StopOnNaN.async_safe is True
    thread_safe = _keras_compat.backend_is_thread_safe()  # False on TensorFlow
    with_check = keras.callbacks.CallbackList([ks.callbacks.StopOnNaN()])
    assert _keras_compat.callbacks_run_async(with_check) is thread_safe
    per_step = keras.callbacks.CallbackList([keras.callbacks.TerminateOnNaN()])
    assert _keras_compat.callbacks_run_async(per_step) is False


class _EpochEnds(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_epoch_end(self, epoch, logs=None):
        self.losses.append(logs["loss"])


def test_diverging_fit_stops_with_a_clear_message():
    """fit's own NaN check (added silently) stops a diverging run with
    TrainingDiverged, naming the epoch and batch, before any epoch end
    records a non-finite loss."""
    x, y = embedded(n=64)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(1e30))
    ends = _EpochEnds()
    with pytest.raises(TrainingDiverged, match=r"loss became .* at epoch \d+, batch"):
        model.fit(x, y, batch_size=8, epochs=3, callbacks=[ends], verbose=0)
    assert all(np.isfinite(ends.losses))
