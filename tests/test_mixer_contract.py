"""The mixer contract, for every registered mixer: a draw separate from its
application, `MixResult.mask` with lam its mean, application linear in the
two images, the registry's facts, and the saliency a model gives a mixer
that asks for it."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import mixer_context, source_of, tagged_images, to_np

import keras_sumix as ks
from keras_sumix.layers import BaseMixer, registry

# ManifoldMix mixes hidden features inside a model: test_manifold_mix.py.
NAMES = registry.names(mixes_features=False)
# Mixers that need no model (a saliency falls back to the image's own; a
# learned mixer is given a feature map, `mixer_context`).
PLAIN = registry.names(needs_saliency=False)


def _mixer(name: str, **kwargs):
    return registry.get_mixer(name, seed=3, **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_draw_then_apply_is_mix(name):
    x = tagged_images(6, 12, 10)
    mixer = _mixer(name)
    mixed = _mixer(name).mix(x, **mixer_context(mixer, x))
    params = mixer.draw(x, **mixer_context(mixer, x))
    assert {"permutation", "lam"} <= set(params)
    applied = mixer.apply(x, params)
    for field in ("images", "permutation", "lam", "mask"):
        a, b = getattr(mixed, field), getattr(applied, field)
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(to_np(a), to_np(b), err_msg=field)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name", NAMES)
def test_lam_is_the_mask_mean_and_the_mask_is_what_was_kept(name, data_format):
    x = tagged_images(6, 12, 10)
    cls = registry.mixer_class(name)
    given = np.transpose(x, (0, 3, 1, 2)) if data_format == "channels_first" else x
    mixer = _mixer(name, data_format=data_format)
    result = mixer.mix(given, **mixer_context(mixer, given))
    if result.mask is None:
        assert name == "mixup"
        return
    mask = to_np(result.mask)
    assert mask.shape == (
        (6, 1, 12, 10) if data_format == "channels_first" else (6, 12, 10, 1)
    )
    assert mask.dtype == np.float32
    assert ((mask >= 0) & (mask <= 1)).all()
    # lam is the mask's mean in float32: of a mask of few levels to the last
    # bit (XLA divides by multiplying with the reciprocal: one unit in the
    # last place); of AutoMix's continuous one to the rounding of a float32
    # sum, whose order differs from NumPy's.
    if not cls.needs_features:
        np.testing.assert_array_max_ulp(to_np(result.lam), mask.mean(axis=(1, 2, 3)))
    else:
        np.testing.assert_allclose(
            to_np(result.lam), mask.mean(axis=(1, 2, 3)), rtol=1e-6
        )
    images = to_np(result.images)
    if data_format == "channels_first":
        images, mask = (
            np.transpose(images, (0, 2, 3, 1)),
            np.transpose(mask, (0, 2, 3, 1)),
        )
    if cls.in_place:
        # A hard mask is 1 exactly where the pixel is image i's own.
        own = source_of(images) == np.arange(6)[:, None, None]
        partner = source_of(images) == to_np(result.permutation)[:, None, None]
        assert np.all(own | partner)
        if np.isin(mask, (0.0, 1.0)).all():
            np.testing.assert_array_equal(mask[..., 0] == 1.0, own)


@pytest.mark.parametrize("name", NAMES)
def test_application_is_linear_in_the_image_and_its_partner(name):
    """What lambda fidelity relies on: mixing zeros with the partner gives
    the partner's contribution alone, and the two contributions add up."""
    rng = np.random.default_rng(0)
    x = rng.random((5, 8, 12, 3), dtype="float32")
    mixer = _mixer(name)
    params = mixer.draw(x, **mixer_context(mixer, x))
    perm = to_np(params["permutation"])
    zeros = np.zeros_like(x)
    whole = to_np(mixer.apply(x, params).images)
    own = to_np(mixer.apply(x, params, partner=zeros).images)
    taken = to_np(mixer.apply(zeros, params, partner=x[perm]).images)
    np.testing.assert_allclose(own + taken, whole, rtol=1e-6, atol=1e-6)


def test_apply_checks_the_partner_shape():
    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype="float32")
    mixer = ks.layers.CutMix(seed=0)
    with pytest.raises(ValueError, match="`partner` must have the shape"):
        mixer.apply(x, mixer.draw(x), partner=x[:, :4])


def test_draws_can_be_tested_on_their_own():
    x = np.zeros((16, 20, 12, 3), "float32")
    box = to_np(ks.layers.CutMix(seed=1).draw(x)["box"])
    assert box.shape == (16, 4) and box.dtype == np.int32
    top, left, bottom, right = box.T
    assert ((0 <= top) & (top <= bottom) & (bottom <= 20)).all()
    assert ((0 <= left) & (left <= right) & (right <= 12)).all()
    assert to_np(ks.layers.CutMix(mode="batch", seed=1).draw(x)["box"]).shape == (1, 4)
    fmix = ks.layers.FMix(seed=1).draw(x)
    keep = to_np(fmix["mask"]).sum(axis=(1, 2))
    np.testing.assert_array_equal(keep, np.round(to_np(fmix["lam"]) * 240))


def test_a_mixer_without_saliency_refuses_one():
    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype="float32")
    with pytest.raises(TypeError, match=r"CutMix\.mix takes no keyword arguments"):
        ks.layers.CutMix().mix(x, saliency=np.ones((4, 8, 8), "float32"))
    with pytest.raises(ValueError, match="extra keys: \\['saliency'\\]"):
        ks.layers.CutMix(num_classes=2)({"images": x, "saliency": x[..., 0]})


def test_random_choice_fills_a_missing_mask_with_lam():
    x = np.random.default_rng(0).random((6, 8, 8, 3), dtype="float32")
    layers = ks.layers
    for seed in range(8):
        result = layers.RandomChoice([layers.MixUp(), layers.CutMix()], seed=seed).mix(
            x
        )
        mask = to_np(result.mask)
        assert mask.shape == (6, 8, 8, 1)
        np.testing.assert_allclose(
            mask.mean(axis=(1, 2, 3)), to_np(result.lam), atol=1e-6
        )
    # Only MixUp: its mask too is lam everywhere (every candidate's result
    # has the same structure, as the switch between them needs).
    only = layers.RandomChoice([layers.MixUp()], seed=0).mix(x)
    np.testing.assert_array_equal(
        to_np(only.mask)[..., 0],
        np.broadcast_to(to_np(only.lam)[:, None, None], (6, 8, 8)),
    )


# ---------------------------------------------------------------------- #
# The registry
# ---------------------------------------------------------------------- #
def test_the_registry_lists_every_mixer_with_its_facts():
    assert {"mixup", "cutmix", "fmix", "saliencymix", "resizemix"} <= set(NAMES)
    assert registry.names(in_place=True)[:3] == ["cutmix", "fmix", "saliencymix"]
    assert "mixup" not in registry.names(true_share=True)
    assert "resizemix" not in registry.names(true_share=True)
    assert ks.layers.MIXERS is registry.MIXERS
    for name, cls in registry.MIXERS.items():
        assert cls.mixer_name == name
        assert registry.label(name) == cls.__name__
        # in place implies the masks give the true share.
        assert cls.true_share or not cls.in_place
    assert isinstance(ks.layers.get_mixer("Cut-Mix"), ks.layers.CutMix)
    # Names in any case, as the CLI's `--mixer CutMix` gives them.
    for spelling in ("CutMix", "CUTMIX", "cut_mix", "ResizeMix"):
        assert registry.mixer_class(spelling).mixer_name == spelling.lower().replace(
            "_", ""
        )
        assert registry.label(spelling) == registry.mixer_class(spelling).__name__
    with pytest.raises(ValueError, match=r"Unknown mixer 'nope'\. Expected one of"):
        ks.layers.get_mixer("nope")


def test_a_new_mixer_registers_from_its_own_file():
    class Halves(BaseMixer, name="halvesfortest", in_place=True):
        """Keeps the left half."""

        def _draw(self, images, permutation, lam, seed):
            ops = self.backend
            width = ops.shape(images)[2]
            keep = ops.numpy.arange(width) < width // 2
            return {"mask": ops.cast(keep, "float32")[None, None, :]}

    try:
        assert registry.mixer_class("halvesfortest") is Halves
        assert "halvesfortest" in registry.names(in_place=True)
        result = registry.get_mixer("halvesfortest", seed=0).mix(np.ones((3, 4, 6, 1)))
        np.testing.assert_array_equal(to_np(result.lam), [0.5, 0.5, 0.5])
        # A subclass inherits the facts, not the name.
        sub = type("Sub", (Halves,), {})
        assert sub.in_place and sub.mixer_name is None
        with pytest.raises(ValueError, match="'halvesfortest' is taken by Halves"):
            type("Other", (BaseMixer,), {}, name="halvesfortest")
    finally:
        registry.MIXERS.pop("halvesfortest")
    with pytest.raises(ValueError, match="lower-case letters and digits"):
        type("Bad", (BaseMixer,), {}, name="Bad Name")


# ---------------------------------------------------------------------- #
# A mixer that asks the model for a saliency
# ---------------------------------------------------------------------- #
class _KeepSalient(BaseMixer, needs_saliency=True):
    """Keeps each image's pixels where its saliency is above its mean (a
    test mixer: not registered)."""

    def _draw(self, images, permutation, lam, seed, saliency=None):
        ops = self.backend
        if saliency is None:
            saliency = ops.numpy.mean(images, axis=-1)
        saliency = ops.cast(saliency, "float32")
        mean = ops.numpy.mean(saliency, axis=(1, 2), keepdims=True)
        return {"mask": ops.cast(saliency > mean, "float32")}


def _classifier_data():
    rng = np.random.default_rng(0)
    x = rng.random((8, 8, 8, 3), dtype="float32")
    y = np.arange(8, dtype="int32") % 3
    return x, y


def test_model_saliency_is_the_input_gradient_norm_over_channels():
    from keras_sumix.evaluation import input_gradient

    x, y = _classifier_data()
    model = ks.MixupModel(
        ks.models.small_cnn((8, 8, 3), widths=(4,)), 3, _KeepSalient()
    )
    model.build(x.shape)
    expected = np.sqrt((input_gradient(model, x, y) ** 2).mean(axis=-1))
    saliency = to_np(model.saliency(x, y))
    assert saliency.shape == (8, 8, 8)
    np.testing.assert_allclose(saliency, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("model_cls", [ks.MixupModel, ks.SUMixModel])
def test_fit_gives_the_mixer_the_models_saliency(model_cls):
    """Inside the compiled step the mixer is given the saliency (its mask
    then follows the model's gradient, not the image's brightness), and
    no gradient flows into the mask through it."""
    x, y = _classifier_data()
    mixer = _KeepSalient(seed=0)
    model = model_cls(ks.models.small_cnn((8, 8, 3), widths=(4,)), 3, mixer)
    model.compile(optimizer="sgd")
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    saliency = model.saliency(x, y)
    from_model = to_np(mixer.mix(x, saliency=saliency).mask)[..., 0]
    expected = to_np(saliency) > to_np(saliency).mean(axis=(1, 2), keepdims=True)
    np.testing.assert_array_equal(from_model, expected)
    assert not np.array_equal(from_model, to_np(mixer.mix(x).mask)[..., 0])


def test_saliency_carries_no_gradient():
    x, y = _classifier_data()
    model = ks.MixupModel(
        ks.models.small_cnn((8, 8, 3), widths=(4,)), 3, _KeepSalient()
    )
    model.build(x.shape)
    backend = keras.backend.backend()
    if backend == "torch":
        assert not model.saliency(x, y).requires_grad
    elif backend == "jax":
        import jax

        def through(x):
            return keras.ops.sum(model.saliency(x, y))

        np.testing.assert_array_equal(
            to_np(jax.grad(through)(keras.ops.convert_to_tensor(x))), 0
        )
    else:
        import tensorflow as tf

        t = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(t)
            total = tf.reduce_sum(model.saliency(t, y))
        assert tape.gradient(total, t) is None
