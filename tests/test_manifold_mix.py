"""ManifoldMix: the stage mix against a NumPy re-implementation, the drawn
stage, gradients, compiled steps, `.keras` round trips and exact resume,
hostile inputs. (Data parallel: `test_distributed.py`'s ManifoldMix case.)"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import BACKEND, run_once, to_np

import keras_sumix as ks
from keras_sumix.layers import ManifoldMix, registry
from keras_sumix.models import stages

CLASSES = 3


def _backbone() -> keras.Model:
    """Two named stages (`stage1`, `stage2`) of 8x8 images."""
    return ks.models.small_cnn((8, 8, 3), widths=(4, 6))


def _data(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3), dtype="float32")
    return x, (np.arange(n) % CLASSES).astype("int32")


def _blend(h: np.ndarray, lam: np.ndarray, perm: np.ndarray) -> np.ndarray:
    w = lam.reshape(-1, *[1] * (h.ndim - 1))
    return w * h + (1.0 - w) * h[perm]


def test_the_staged_forward_blends_at_the_drawn_stage_only():
    """Forcing each stage in turn: the staged pass equals running the
    segments by hand with a NumPy blend at that stage (stage 0: the
    images), and `blend` is the NumPy blend."""
    x, _ = _data(6)
    backbone = _backbone()
    mixer = ManifoldMix(seed=0)
    staged = stages.StagedBackbone(backbone, mixer)
    assert staged.names == ("input", "stage1", "stage2")
    stage1 = backbone.get_layer("stage1").output
    stage2 = backbone.get_layer("stage2").output
    parts = [
        keras.Model(backbone.input, stage1),
        keras.Model(stage1, stage2),
        keras.Model(stage2, backbone.output),
    ]
    drawn = stages.draw(mixer, x)
    perm, lam = to_np(drawn.permutation), to_np(drawn.lam)
    assert lam.shape == (6,) and np.all(perm != np.arange(6))
    for stage in range(3):
        params = {**drawn.params, "stage": keras.ops.convert_to_tensor(stage, "int32")}
        with staged.mixing(drawn._replace(params=params)):
            got = to_np(staged(x, training=False))
        h = x
        for k, part in enumerate(parts):
            if k == stage:
                np.testing.assert_allclose(
                    to_np(mixer.blend(h, params)), _blend(h, lam, perm), rtol=1e-6
                )
                h = _blend(h, lam, perm)
            h = to_np(part(h, training=False))
        np.testing.assert_allclose(got, h, rtol=1e-5, atol=1e-6, err_msg=stage)


def test_every_stage_is_drawn_uniformly_once_per_batch():
    mixer = ManifoldMix(seed=0)  # three stages: the input, stage1, stage2
    x = np.zeros((4, 4, 4, 3), "float32")
    draws = [mixer.draw(x) for _ in range(30)]
    drawn = np.array([int(to_np(d["stage"])) for d in draws])
    assert to_np(draws[0]["stage"]).shape == ()
    counts = np.bincount(drawn, minlength=3)
    assert counts.sum() == 30 and len(counts) == 3 and (counts >= 5).all(), counts
    assert to_np(draws[0]["lam"]).shape == (4,)  # lam per sample
    # An explicit seed gives the same draw.
    again = [to_np(mixer.draw(x, seed=5)["stage"]) for _ in range(2)]
    assert again[0] == again[1]


def test_sumix_trains_every_weight_through_the_staged_pass():
    x, y = _data()
    model = ks.SUMixModel(_backbone(), CLASSES, ManifoldMix(seed=0))
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.build(x.shape)
    before = [to_np(w) for w in model.trainable_weights]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert {"lam_area", "lam_sumix", "mix_loss", "reg_loss"} <= set(logs)
    assert np.isfinite(logs["loss"])
    for w, start in zip(model.trainable_weights, before, strict=True):
        assert not np.array_equal(to_np(w), start), w.path
    # LamLogger draws a mix the model applies, in inference mode.
    logger = ks.callbacks.LamLogger(x, y, seed=1)
    logger.set_model(model)
    area, corrected = logger.lams()
    assert area.shape == corrected.shape == (8,)
    assert np.isfinite(corrected).all() and ((area >= 0) & (area <= 1)).all()


@pytest.mark.skipif(BACKEND != "jax", reason="jit on JAX (XLA on TF: below)")
def test_a_jit_step_equals_the_eager_step():
    x, y = _data()

    def one_step(compiled: bool):
        keras.utils.set_random_seed(0)
        model = ks.MixupModel(_backbone(), CLASSES, ManifoldMix(seed=1))
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            jit_compile=compiled,
            run_eagerly=not compiled,
        )
        logs = model.train_on_batch(x, y, return_dict=True)
        return logs, [to_np(w) for w in model.weights]

    eager, compiled = one_step(False), one_step(True)
    np.testing.assert_allclose(compiled[0]["loss"], eager[0]["loss"], rtol=1e-5)
    for a, b in zip(compiled[1], eager[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA on TensorFlow")
def test_the_xla_staged_pass_equals_the_eager_one_and_trains():
    """TensorFlow's random ops draw other numbers under XLA than eagerly
    (for every mixer), so a whole XLA step cannot equal the eager one: the
    staged pass of a fixed draw does, and an XLA step trains."""
    import tensorflow as tf

    x, y = _data()
    model = ks.MixupModel(_backbone(), CLASSES, ManifoldMix(seed=1))
    model.build(x.shape)
    staged = stages.StagedBackbone(model.backbone, model.mixer)
    drawn = stages.draw(model.mixer, x)

    def features(images, stage):
        with staged.mixing(drawn._replace(params={**drawn.params, "stage": stage})):
            return staged(images, training=False)

    xla = tf.function(features, jit_compile=True)
    for stage in range(3):
        stage = tf.constant(stage, "int32")
        np.testing.assert_allclose(
            to_np(xla(tf.constant(x), stage)),
            to_np(features(x, stage)),
            rtol=1e-5,
            atol=1e-6,
        )
    model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=True)
    before = [to_np(w) for w in model.trainable_weights]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert all(
        not np.array_equal(to_np(w), b)
        for w, b in zip(model.trainable_weights, before, strict=True)
    )


def test_keras_round_trip_and_exact_resume(tmp_path):
    """A loaded model (weights, optimizer, the mixer's random state)
    continues training exactly as the saved one does."""
    x, y = _data(16)
    mixer = ManifoldMix(stages=["input", "stage2"], seed=2)
    model = ks.MixupModel(_backbone(), CLASSES, mixer)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    fit = {"batch_size": 8, "epochs": 1, "shuffle": False, "verbose": 0}
    model.fit(x, y, **fit)
    path = tmp_path / "manifold.keras"
    model.save(path)
    resumed = keras.saving.load_model(path)
    assert isinstance(resumed.mixer, ManifoldMix)
    assert resumed.mixer.stages == ("input", "stage2")
    np.testing.assert_allclose(to_np(resumed(x)), to_np(model(x)), rtol=1e-6)
    model.fit(x, y, **fit)
    resumed.fit(x, y, **fit)
    for a, b in zip(resumed.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- #
# Facts, configuration and hostile inputs (no backend code: run once)
# ---------------------------------------------------------------------- #
ONCE = run_once("torch", "Python-side validation and model construction")


@ONCE
def test_its_registry_facts_and_config():
    assert registry.names(mixes_features=True) == ["manifoldmix"]
    assert "manifoldmix" not in registry.names(true_share=True)
    assert "manifoldmix" not in registry.names(mixes_features=False)
    mixer = registry.get_mixer("ManifoldMix", stages=["input", "stage3"], mode="batch")
    again = ManifoldMix.from_config(mixer.get_config())
    assert again.stages == ("input", "stage3") and again.mode == "batch"
    assert (ManifoldMix().alpha, ManifoldMix().stages) == (2.0, None)


@ONCE
@pytest.mark.parametrize(
    ("stages_arg", "error", "match"),
    [
        ("stage1", TypeError, "list of stage names"),
        ([], ValueError, "non-empty list of distinct names"),
        (["stage1", "stage1"], ValueError, "non-empty list of distinct names"),
        (["stage1", "input"], ValueError, '"input" \\(the images\\) after'),
    ],
)
def test_bad_stages_raise(stages_arg, error, match):
    with pytest.raises(error, match=match):
        ManifoldMix(stages=stages_arg)


@ONCE
def test_a_backbone_must_have_the_stages():
    with pytest.raises(ValueError, match=r"no layer or pyramid output.*'stage1'"):
        ks.MixupModel(_backbone(), CLASSES, ManifoldMix(stages=["input", "nope"]))
    plain = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    with pytest.raises(ValueError, match="neither layers named `stage1`"):
        ks.SUMixModel(plain, CLASSES, ManifoldMix())

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="functional or Sequential Keras model"):
        ks.MixupModel(Subclassed(), CLASSES, ManifoldMix())
    with pytest.raises(ValueError, match="order the network computes them"):
        ks.MixupModel(_backbone(), CLASSES, ManifoldMix(stages=["stage2", "stage1"]))


@ONCE
def test_a_sequential_with_named_stages_loads_and_resumes_exactly(tmp_path):
    """A user's Sequential, its stages named by Identity layers: a loaded
    Sequential's layers keep the nodes of its first build, so the stages are
    traced afresh through its layers (this failed to load before)."""
    backbone = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, padding="same"),
            keras.layers.Identity(name="stage1"),
            keras.layers.Conv2D(6, 3, strides=2, padding="same"),
            keras.layers.Identity(name="stage2"),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    x, y = _data(16)
    model = ks.SUMixModel(backbone, CLASSES, ManifoldMix(seed=3))
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    fit = {"batch_size": 8, "epochs": 1, "shuffle": False, "verbose": 0}
    model.fit(x, y, **fit)
    model.save(tmp_path / "sequential.keras")
    resumed = keras.saving.load_model(tmp_path / "sequential.keras")
    assert resumed.mixer.stages is None  # the default: input, stage1, stage2
    np.testing.assert_allclose(to_np(resumed(x)), to_np(model(x)), rtol=1e-6)
    model.fit(x, y, **fit)
    resumed.fit(x, y, **fit)
    for a, b in zip(resumed.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@ONCE
def test_on_its_own_it_raises_and_says_where_it_goes():
    x, y = _data(4)
    mixer = ManifoldMix(num_classes=CLASSES)
    for call in (lambda: mixer.mix(x), lambda: mixer((x, y)), lambda: mixer(x)):
        with pytest.raises(ValueError, match="Give it to a model as `mixer=`"):
            call()
    with pytest.raises(ValueError, match="mixer of hidden features"):
        ks.layers.RandomChoice([ks.layers.MixUp(), mixer])


@run_once("tensorflow", "a tf.data map")
def test_a_tf_data_map_raises():
    import tensorflow as tf

    x, y = _data(4)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    with pytest.raises(ValueError, match="Give it to a model as `mixer=`"):
        ds.map(ManifoldMix(num_classes=CLASSES))
