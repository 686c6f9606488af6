"""AutoMix: the mix block against a NumPy re-implementation, the mask and
its lam, the margin, the mask loss and the momentum schedule; inside the
models: the EMA update's formula, where gradients flow and where they must
not, the compiled step, save/load and exact resume; hostile inputs."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from conftest import (
    BACKEND,
    mixer_context,
    tagged_images,
    to_np,
    variable_gradients,
)
from hypothesis import given
from hypothesis import strategies as st

import keras_sumix as ks
from keras_sumix.layers import AutoMix, MixBlock

CLASSES = 4


def _model(cls=ks.MixupModel, mixer=None, widths=(4, 8, 8), size=16, **kwargs):
    keras.utils.set_random_seed(0)
    mixer = mixer or AutoMix(feature_layer="stage2", seed=1, momentum=0.9)
    backbone = ks.models.small_cnn((size, size, 3), widths=widths)
    model = cls(backbone, CLASSES, mixer, **kwargs)
    model.build((None, size, size, 3))
    return model


def _data(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, 3), dtype="float32")
    return x, rng.integers(0, CLASSES, n).astype("int32")


# --------------------------------------------------------------------------- #
# The layer
# --------------------------------------------------------------------------- #
def _numpy_block(block, features, perm, lam, size):
    """The mix block in NumPy: lam as a channel (if `lam_channel`), one
    query/key embedding, softmax attention, the partner's values, nearest
    upsampling, sigmoid."""
    qk, qb = (to_np(w) for w in block.query.weights)
    vk, vb = (to_np(w) for w in block.value.weights)
    n, h, w, _ = features.shape
    own, partner = features, features[perm]
    if block.lam_channel:
        lam = lam.reshape(-1, 1, 1, 1) * np.ones((n, h, w, 1), "float32")
        own = np.concatenate([own, lam], -1)
        partner = np.concatenate([partner, 1 - lam], -1)
    own, partner = own.reshape(n, h * w, -1), partner.reshape(n, h * w, -1)
    q, k = own @ qk + qb, partner @ qk + qb
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(qk.shape[1])
    attention = np.exp(scores - scores.max(-1, keepdims=True))
    attention /= attention.sum(-1, keepdims=True)
    logits = (attention @ (partner @ vk + vb)).reshape(n, h, w)
    logits = logits.repeat(size[0] // h, 1).repeat(size[1] // w, 2)
    return 1.0 - 1.0 / (1.0 + np.exp(-logits))


@pytest.mark.parametrize("lam_channel", [False, True])
def test_mix_block_matches_numpy(lam_channel):
    rng = np.random.default_rng(0)
    features = rng.standard_normal((5, 2, 3, 6)).astype("float32")
    block = MixBlock(reduction=2, lam_channel=lam_channel)
    block.build(features.shape)
    for weight in block.weights:  # larger than the init, to test something
        weight.assign(rng.standard_normal(weight.shape).astype("float32"))
    perm = np.array([1, 2, 3, 4, 0], "int32")
    lam = rng.random(5).astype("float32")
    mask = to_np(block(features, perm, lam, size=(4, 6)))
    expected = _numpy_block(block, features, perm, lam, (4, 6))
    assert mask.shape == (5, 4, 6)
    np.testing.assert_allclose(mask, expected, rtol=1e-4, atol=1e-5)
    assert block.query.units == 3  # 6 channels // reduction 2
    assert tuple(block.query.kernel.shape) == (6 + lam_channel, 3)


@given(
    seed=st.integers(0, 2**16),
    mode=st.sampled_from(["elem", "batch"]),
    alpha=st.sampled_from([0.2, 1.0, 2.0]),
    margin=st.sampled_from([0.0, 0.08, 0.3]),
)
def test_mask_in_unit_interval_lam_its_mean_and_the_margin(seed, mode, alpha, margin):
    x = tagged_images(6, 8, 8)
    mixer = AutoMix(alpha, lam_margin=margin, mode=mode, seed=seed)
    params = mixer.draw(x, **mixer_context(mixer, x))
    result = mixer.apply(x, params)
    mask = to_np(result.mask)[..., 0]
    assert ((mask >= 0) & (mask <= 1)).all()
    # A float32 mean of a soft mask: the summation order's rounding.
    np.testing.assert_allclose(to_np(result.lam), mask.mean(axis=(1, 2)), rtol=1e-6)
    drawn = np.broadcast_to(to_np(params["lam"]), (6,))
    near_end = (drawn < margin) | (drawn > 1 - margin)
    # Near 0 or 1 the network's mask is the constant drawn lam; elsewhere it
    # is the block's; the block's own mask never falls back.
    block = to_np(params["block_mask"])
    np.testing.assert_array_equal(mask[~near_end], block[~near_end])
    np.testing.assert_allclose(
        mask[near_end],
        np.broadcast_to(drawn[near_end, None, None], mask[near_end].shape),
    )
    block_result = mixer.apply(x, mixer.block_params(params))
    np.testing.assert_array_equal(to_np(block_result.mask)[..., 0], block)


def test_first_masks_are_about_a_half():
    """The block starts from N(0, 0.01) weights: its masks start near 0.5."""
    x = tagged_images(6, 8, 8)
    mixer = AutoMix(lam_margin=0.0, seed=0)
    mask = to_np(mixer.draw(x, **mixer_context(mixer, x))["block_mask"])
    np.testing.assert_allclose(mask, 0.5, atol=0.02)


def test_mask_loss_is_the_margin_l1_of_each_mean():
    mixer = AutoMix(mask_loss_weight=0.1, mask_margin=0.1)
    rng = np.random.default_rng(0)
    block = rng.random((4, 5, 5)).astype("float32")
    lam = np.array([0.1, 0.5, 0.9, 0.45], "float32")
    loss = float(to_np(mixer.mask_loss({"block_mask": block, "lam": lam})))
    gap = np.abs(block.mean(axis=(1, 2)) - lam) - 0.1
    assert loss == pytest.approx(0.1 * np.maximum(gap, 0).mean(), rel=1e-5)


@given(step=st.integers(0, 300))
def test_momentum_schedule_is_the_references_cosine(step):
    mixer = AutoMix(momentum=0.99, end_momentum=0.9999, momentum_steps=200)
    if step < 20:  # the first 10 %: constant
        expected = 0.99
    else:
        k = min(step, 200)
        expected = 0.9999 - (0.9999 - 0.99) * (math.cos(math.pi * k / 200) + 1) / 2
    assert float(to_np(mixer.momentum_at(step))) == pytest.approx(expected, abs=1e-6)
    assert float(to_np(AutoMix(momentum=0.9).momentum_at(step))) == pytest.approx(0.9)


def test_default_momentum_follows_the_training_length():
    """None: an EMA time scale of 1 % of `momentum_steps`, capped at the
    reference's 0.999; the reference's 0.999 without a length."""
    assert AutoMix().start_momentum == 0.999
    assert AutoMix(momentum_steps=500).start_momentum == pytest.approx(0.8)
    assert AutoMix(momentum_steps=50).start_momentum == 0.0
    assert AutoMix(momentum_steps=10**6).start_momentum == 0.999
    tied = AutoMix(momentum_steps=500)
    assert float(to_np(tied.momentum_at(0))) == pytest.approx(0.8)
    assert float(to_np(tied.momentum_at(500))) == pytest.approx(0.999999)
    assert AutoMix.from_config(tied.get_config()).momentum is None


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="momentum"):
        AutoMix(momentum=1.5)
    with pytest.raises(ValueError, match="end_momentum"):
        AutoMix(momentum=0.999, end_momentum=0.99)
    with pytest.raises(ValueError, match="lam_margin"):
        AutoMix(lam_margin=0.6)
    with pytest.raises(ValueError, match="upsampling"):
        AutoMix(upsampling="cubic")
    with pytest.raises(TypeError, match="feature_layer"):
        AutoMix(feature_layer=3)
    with pytest.raises(ValueError, match="momentum_steps"):
        AutoMix(momentum_steps=0)
    with pytest.raises(ValueError, match="learned mixer"):
        ks.layers.RandomChoice([AutoMix(), ks.layers.CutMix()])
    with pytest.raises(TypeError, match="lam_channel"):
        AutoMix(lam_channel=1)
    config = AutoMix(
        lam_margin=0.03, momentum_steps=10, reduction=4, lam_channel=True
    ).get_config()
    again = AutoMix.from_config(config)
    assert (again.lam_margin, again.momentum_steps, again.reduction) == (0.03, 10, 4)
    assert again.lam_channel and not AutoMix().lam_channel


# --------------------------------------------------------------------------- #
# Hostile inputs, as for the other mixers (test_hostile_inputs.py)
# --------------------------------------------------------------------------- #
def test_missing_or_wrong_features_raise():
    x = tagged_images(4, 8, 8)
    mixer = AutoMix(seed=0)
    with pytest.raises(TypeError, match="needs `features`"):
        mixer.mix(x)
    with pytest.raises(ValueError, match="4-D feature map"):
        mixer.mix(x, features=np.zeros((4, 16), "float32"))
    with pytest.raises(ValueError, match="hold 3 samples and the images 4"):
        mixer.mix(x, features=np.zeros((3, 4, 4, 2), "float32"))
    with pytest.raises(TypeError, match="takes only `features`"):
        mixer.mix(x, saliency=np.zeros((4, 8, 8), "float32"))


def test_hostile_images():
    mixer = AutoMix(seed=0)
    # Integer images mix as their float values.
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype("uint8")
    context = mixer_context(mixer, x)
    cast = AutoMix(seed=0).mix(x, **context)
    ref = AutoMix(seed=0).mix(x.astype("float32"), **context)
    np.testing.assert_array_equal(to_np(cast.images), to_np(ref.images))
    # A NaN pixel reaches only the samples it is mixed into; lam stays finite.
    dirty = tagged_images(4, 8, 8)
    dirty[2, 3, 3, 0] = np.nan
    result = AutoMix(seed=0).mix(dirty, **context)
    assert np.isfinite(to_np(result.lam)).all()
    bad = np.isnan(to_np(result.images)).any(axis=(1, 2, 3))
    perm = to_np(result.permutation)
    assert set(np.flatnonzero(bad)) <= {2, int(np.flatnonzero(perm == 2)[0])}
    # 1x1 images keep an exact lam; a batch of one is returned unmixed.
    tiny = tagged_images(4, 1, 1)
    one = AutoMix(seed=0).mix(tiny, **mixer_context(mixer, tiny))
    np.testing.assert_array_max_ulp(
        to_np(one.lam), to_np(one.mask).mean(axis=(1, 2, 3))
    )
    single = tagged_images(1, 8, 8)
    alone = AutoMix(seed=0).mix(single, **mixer_context(mixer, single))
    np.testing.assert_array_equal(to_np(alone.images), single)
    np.testing.assert_array_equal(to_np(alone.lam), [1.0])
    with pytest.raises(ValueError, match="must not be empty"):
        AutoMix(seed=0).mix(np.zeros((0, 8, 8, 3), "float32"), features=None)
    # Channels-first images under a channels-last configuration are refused.
    with pytest.raises(ValueError, match="channels"):
        first = np.zeros((4, 3, 16, 16), "float32")
        AutoMix(seed=0).mix(first, features=np.zeros((4, 4, 4, 2), "float32"))


def test_channels_first_mixes_as_channels_last():
    x = tagged_images(4, 8, 8)
    last = AutoMix(seed=2)
    first = AutoMix(seed=2, data_format="channels_first")
    a = last.mix(x, **mixer_context(last, x))
    xt = np.transpose(x, (0, 3, 1, 2))
    b = first.mix(xt, **mixer_context(first, xt))
    np.testing.assert_allclose(
        np.transpose(to_np(b.images), (0, 2, 3, 1)), to_np(a.images), rtol=1e-6
    )


# --------------------------------------------------------------------------- #
# In the models
# --------------------------------------------------------------------------- #
def test_the_backbone_must_have_the_feature_layer():
    with pytest.raises(ValueError, match=r"no layer or pyramid output.*stage1"):
        _model(mixer=AutoMix(feature_layer="layer9"))
    with pytest.raises(ValueError, match="4-D feature map"):
        backbone = ks.models.small_cnn((16, 16, 3), widths=(4,))
        ks.MixupModel(backbone, 3, AutoMix(feature_layer=backbone.layers[-1].name))
    assert ks.layers.registry.names(needs_features=True) == ["automix"]


def test_the_momentum_encoder_is_frozen_and_starts_equal():
    model = _model(ks.SUMixModel)
    encoder = model.momentum_encoder
    trainable = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in trainable for v in encoder.weights)
    block = {id(v) for v in model.mixer.mix_block.trainable_variables}
    assert block and block <= trainable
    for online, copy in encoder.pairs(model.backbone, model.classifier):
        np.testing.assert_array_equal(to_np(online), to_np(copy))


def _stage(backbone, name="stage2"):
    return keras.Model(backbone.inputs, backbone.get_layer(name).output)


def test_the_copy_normalises_with_the_batch_statistics():
    """As the reference's copy (in train mode): right after `build` its
    features are the network's training-pass features, and reading them
    assigns nothing."""
    model = _model()
    x, _ = _data()
    online = to_np(_stage(model.backbone)(x, training=True))
    state = [to_np(v) for v in model.momentum_encoder.weights]
    np.testing.assert_allclose(to_np(model.mix_features(x)), online, atol=1e-5)
    for v, before in zip(model.momentum_encoder.weights, state, strict=True):
        np.testing.assert_array_equal(to_np(v), before, err_msg=v.path)
    # Not the inference pass (moving statistics at their initial 0 / 1).
    inference = to_np(_stage(model.backbone)(x, training=False))
    assert np.abs(online - inference).max() > 1e-2


def test_one_step_moves_the_blocks_query():
    """The block's query/key weights get a real gradient (about 1e-9 when
    the copy normalised with stale moving statistics)."""
    model = _model(size=32, widths=(8, 16, 16))
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    data = ks.data.occluded_objects(16, seed=0)
    x, y = data.images, data.labels % CLASSES
    before = to_np(model.mixer.mix_block.query.kernel)
    model.train_on_batch(x, y)
    moved = np.abs(to_np(model.mixer.mix_block.query.kernel) - before).max()
    assert moved > 1e-5


def test_ema_update_follows_its_formula():
    model = _model(mixer=AutoMix(feature_layer="stage2", seed=1, momentum=0.75))
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    x, y = _data()
    pairs = model.momentum_encoder.pairs(model.backbone, model.classifier)
    before = [to_np(copy) for _, copy in pairs]
    model.train_on_batch(x, y)
    moved = 0.0
    for (online, copy), old in zip(pairs, before, strict=True):
        expected = 0.75 * old + 0.25 * to_np(online)
        np.testing.assert_allclose(to_np(copy), expected, rtol=1e-5, atol=1e-6)
        moved = max(moved, float(np.abs(to_np(copy) - old).max()))
    assert moved > 1e-3
    # The parameters only: batch norm's moving statistics are not averaged.
    paired = {id(copy) for _, copy in pairs}
    statistics = [v for v in model.momentum_encoder.weights if "moving" in v.path]
    assert statistics and not any(id(v) in paired for v in statistics)


@pytest.mark.parametrize("model_cls", [ks.MixupModel, ks.SUMixModel])
def test_gradients_flow_only_where_they_must(model_cls):
    """The mix block learns from its own loss only; the network (backbone,
    classifier, uncertainty head) from its own loss only."""
    model = _model(model_cls)
    x, y = _data()
    block = {id(v) for v in model.mixer.mix_block.trainable_variables}
    is_block = [id(v) in block for v in model.trainable_variables]

    def block_loss():
        return model.training_terms(x, y)[0]["mix_block_loss"]

    def network_loss():
        terms = model.training_terms(x, y)[0]
        return terms["loss"] - terms["mix_block_loss"]

    for grads, own in [
        (variable_gradients(model, block_loss), True),
        (variable_gradients(model, network_loss), False),
    ]:
        for g, in_block in zip(grads, is_block, strict=True):
            if in_block == own:
                assert np.abs(g).max() > 0
            else:
                np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("model_cls", [ks.MixupModel, ks.SUMixModel])
def test_compiled_step_trains_the_block_and_logs_its_loss(model_cls):
    model = _model(model_cls)
    model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=BACKEND != "torch")
    x, y = _data(16)
    before = [to_np(v) for v in model.mixer.mix_block.weights]
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["mix_block_loss"]).all()
    assert np.isfinite(history.history["loss"]).all()
    after = [to_np(v) for v in model.mixer.mix_block.weights]
    assert max(np.abs(a - b).max() for a, b in zip(after, before, strict=True)) > 0
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert "mix_block_loss" not in logs


def test_save_load_round_trip_and_exact_resume(tmp_path):
    x, y = _data(16)

    def fit(model, epochs):
        model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0)

    straight = _model(ks.SUMixModel, variant="recommended")
    straight.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    fit(straight, 2)

    first = _model(ks.SUMixModel, variant="recommended")
    first.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    fit(first, 1)
    path = tmp_path / "automix.keras"
    first.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.mixer, AutoMix)
    for a, b in zip(first.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(to_np(a), to_np(b), err_msg=a.path)
    np.testing.assert_allclose(
        to_np(loaded.mix_features(x)), to_np(first.mix_features(x)), rtol=1e-6
    )
    resumed_from = [to_np(w).copy() for w in loaded.weights]
    fit(loaded, 1)
    # The resumed epoch is the straight run's second: each weight agrees to
    # 5% of what that epoch moved it. The two runs' compiled steps round
    # differently (TensorFlow's graph optimiser: differences up to 2.7e-5 on
    # weights near 1e-2 seen on a busy machine); a lost optimizer or
    # momentum-copy state changes the update itself.
    for a, b, start in zip(straight.weights, loaded.weights, resumed_from, strict=True):
        moved = float(np.max(np.abs(to_np(a) - start), initial=0.0))
        np.testing.assert_allclose(
            to_np(b), to_np(a), rtol=0, atol=0.05 * moved + 1e-6, err_msg=a.path
        )


def test_lambda_fidelity_reads_the_models_features():
    from keras_sumix.evaluation.fidelity import lam_fidelity

    data = ks.data.occluded_objects(24, seed=0)
    data = data._replace(labels=data.labels % CLASSES)  # the model's classes
    model = _model(ks.SUMixModel, size=32, variant="recommended")
    out = lam_fidelity(model, model.mixer, data, batch_size=12)
    assert out["true_lam"].shape == (24,)
    assert np.isfinite(out["mae"])


def test_keras_hub_backbone_reads_a_pyramid_output():
    pytest.importorskip("keras_hub")
    from tests.fixtures import tiny_resnet_backbone

    keras.utils.set_random_seed(0)
    model = ks.MixupModel(
        tiny_resnet_backbone((16, 16, 3)), CLASSES, AutoMix(feature_layer="P2", seed=0)
    )
    model.compile(optimizer="sgd")
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["mix_block_loss"]).all()
    assert tuple(model.mix_features(x).shape) == (8, 4, 4, 64)


@pytest.mark.slow
def test_the_block_learns_spatial_masks():
    """200 steps on the embedded data with a short momentum time scale:
    the held-out block masks are no longer a uniform blend (their per-pixel
    std was about 1e-7 when the copy used stale moving statistics)."""
    data = ks.data.occluded_objects(320, seed=0)
    labels = data.labels % CLASSES
    mixer = AutoMix(feature_layer="stage2", seed=1, momentum_steps=200)
    model = _model(mixer=mixer, size=32, widths=(16, 32, 32))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(data.images[:256], labels[:256], batch_size=32, epochs=25, verbose=0)
    held_out = data.images[256:]
    params = mixer.draw(held_out, features=model.mix_features(held_out))
    std = to_np(params["block_mask"]).reshape(len(held_out), -1).std(axis=1)
    assert std.mean() > 1e-2


def test_the_clean_cross_entropy_takes_each_samples_weight():
    """With `sample_weight` / `class_weight`, AutoMix's clean cross-entropy
    weighs each clean sample by its own weight, Keras's reduction
    `mean(w * CE)`; the block's loss is not weighted."""
    model = _model(mixer=AutoMix(feature_layer="stage2", seed=1, clean_weight=0.5))
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, CLASSES)).astype("float32")
    labels = rng.integers(0, CLASSES, 6)
    dense = np.eye(CLASSES, dtype="float32")[labels]
    weight = np.array([0.0, 1.0, 2.0, 0.5, 1.0, 3.0], "float32")
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -(dense * log_p).sum(-1)
    terms = {"loss": keras.ops.convert_to_tensor(1.0)}
    block = keras.ops.convert_to_tensor(0.25)
    for w, expected in ((None, ce.mean()), (weight, (weight * ce).mean())):
        tensors = [keras.ops.convert_to_tensor(a) for a in (logits, dense)]
        w = None if w is None else keras.ops.convert_to_tensor(w)
        out = model._with_mixer_loss(terms, block, *tensors, w)
        np.testing.assert_allclose(
            to_np(out["loss"]), 1.0 + 0.5 * expected + 0.25, rtol=1e-5
        )
        assert float(to_np(out["mix_block_loss"])) == 0.25
