"""Mixing layers: exact lam, pairing, labels, serialization, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import BACKEND, in_tf_data, source_of, tagged_images, to_np
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_sumix
from keras_sumix.layers import CutMix, FMix, MixUp, RandomChoice, ResizeMix, SaliencyMix

CUTTING = [CutMix, FMix, SaliencyMix, ResizeMix]
ALL = [MixUp, *CUTTING]


def _check_derangement(perm: np.ndarray) -> None:
    n = len(perm)
    assert perm.dtype == np.int32
    assert sorted(perm.tolist()) == list(range(n))
    if n >= 2:
        assert np.all(perm != np.arange(n))


def _kept_share(images: np.ndarray, result) -> np.ndarray:
    """Fraction of output pixels that come from the sample itself."""
    src = source_of(to_np(result.images))
    n = images.shape[0]
    perm = to_np(result.permutation)
    own = src == np.arange(n)[:, None, None]
    partner = src == perm[:, None, None]
    assert np.all(own | partner), "a pixel came from neither the sample nor its partner"
    return own.mean(axis=(1, 2))


@pytest.mark.parametrize("mixer_cls", CUTTING)
@pytest.mark.parametrize("mode", ["elem", "batch"])
def test_kept_pixel_share_equals_lam(mixer_cls, mode):
    x = tagged_images(8, 24, 20)
    result = mixer_cls(alpha=1.0, mode=mode, seed=3).mix(x)
    lam = to_np(result.lam)
    assert lam.dtype == np.float32 and lam.shape == (8,)
    np.testing.assert_allclose(_kept_share(x, result), lam, atol=1e-6)
    _check_derangement(to_np(result.permutation))
    if mode == "batch":
        assert np.all(lam == lam[0])


@pytest.mark.parametrize("mode", ["elem", "batch"])
def test_mixup_exact_formula(mode):
    x = np.random.default_rng(0).random((6, 8, 8, 3), dtype="float32")
    result = MixUp(alpha=0.4, mode=mode, seed=1).mix(x)
    lam, perm = to_np(result.lam), to_np(result.permutation)
    expected = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm]
    np.testing.assert_allclose(to_np(result.images), expected, rtol=1e-6, atol=1e-6)
    _check_derangement(perm)
    assert np.all((lam > 0) & (lam < 1))
    if mode == "batch":
        assert np.all(lam == lam[0])


@settings(max_examples=6)
@given(n=st.integers(2, 40))
def test_permutation_is_a_derangement(n):
    result = MixUp(seed=n).mix(np.zeros((n, 2, 2, 1), "float32"))
    _check_derangement(to_np(result.permutation))


@pytest.mark.parametrize("mixer_cls", ALL)
def test_batch_of_one_has_no_partner(mixer_cls):
    x = tagged_images(1, 8, 8)
    result = mixer_cls(seed=0).mix(x)
    assert to_np(result.permutation).tolist() == [0]
    assert to_np(result.lam).tolist() == [1.0]
    np.testing.assert_allclose(to_np(result.images), x, rtol=1e-6)


@pytest.mark.parametrize("mixer_cls", ALL)
@pytest.mark.parametrize("label_kind", ["int", "onehot", "soft"])
def test_labels_are_lam_weighted(mixer_cls, label_kind):
    n, c = 7, 5
    rng = np.random.default_rng(1)
    y_int = rng.integers(0, c, n)
    onehot = np.eye(c, dtype="float32")[y_int]
    soft = rng.dirichlet(np.ones(c), n).astype("float32")
    labels = {"int": y_int.astype("int32"), "onehot": onehot, "soft": soft}[label_kind]
    dense = soft if label_kind == "soft" else onehot
    layer = mixer_cls(seed=2, num_classes=c if label_kind == "int" else None)
    x = tagged_images(n, 16, 16)
    out = layer({"images": x, "labels": labels})
    mixed_labels = to_np(out["labels"])
    assert mixed_labels.dtype == np.float32 and mixed_labels.shape == (n, c)
    np.testing.assert_allclose(mixed_labels.sum(-1), 1.0, atol=1e-5)
    # Replay the same draw to recover lam and the permutation.
    replay = mixer_cls(seed=2).mix(x)
    lam, perm = to_np(replay.lam), to_np(replay.permutation)
    np.testing.assert_allclose(to_np(out["images"]), to_np(replay.images))
    expected = lam[:, None] * dense + (1 - lam[:, None]) * dense[perm]
    np.testing.assert_allclose(mixed_labels, expected, atol=1e-6)


def test_input_structures():
    x = tagged_images(4, 8, 8)
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    layer = CutMix(seed=0)
    images, labels = layer((x, y))
    assert tuple(images.shape) == x.shape and tuple(labels.shape) == (4, 3)
    bare = layer(x)
    assert tuple(bare.shape) == x.shape
    only_images = layer({"images": x})
    assert set(only_images) == {"images"}


@pytest.mark.parametrize("mixer_cls", ALL)
def test_inference_is_identity(mixer_cls):
    x = tagged_images(4, 8, 8)
    y = np.arange(4, dtype="int32")
    out = mixer_cls(num_classes=4)({"images": x, "labels": y}, training=False)
    np.testing.assert_array_equal(to_np(out["images"]), x)
    np.testing.assert_array_equal(to_np(out["labels"]), y)


@pytest.mark.parametrize("mixer_cls", ALL)
def test_successive_calls_draw_new_mixes_and_seed_repeats(mixer_cls):
    x = tagged_images(16, 16, 16)
    layer = mixer_cls(seed=5)
    first, second = layer.mix(x), layer.mix(x)
    assert not np.array_equal(to_np(first.lam), to_np(second.lam))
    again = mixer_cls(seed=5).mix(x)
    np.testing.assert_array_equal(to_np(first.images), to_np(again.images))
    np.testing.assert_array_equal(to_np(first.permutation), to_np(again.permutation))


@given(
    mixer=st.sampled_from(ALL),
    n=st.integers(2, 5),
    h=st.integers(1, 33),
    w=st.integers(1, 33),
    channels_first=st.booleans(),
    mode=st.sampled_from(["elem", "batch"]),
)
def test_shapes_sizes_and_formats(mixer, n, h, w, channels_first, mode):
    x = tagged_images(n, h, w, 2, seed=h * w)
    fmt = "channels_first" if channels_first else "channels_last"
    inputs = np.transpose(x, (0, 3, 1, 2)) if channels_first else x
    result = mixer(seed=h + w, mode=mode, data_format=fmt).mix(inputs)
    out = to_np(result.images)
    assert out.shape == inputs.shape
    if channels_first:
        out = np.transpose(out, (0, 2, 3, 1))
    lam = to_np(result.lam)
    assert np.all((lam >= 0) & (lam <= 1))
    _check_derangement(to_np(result.permutation))
    if mixer is not MixUp:
        fixed = type("R", (), {"images": out, "permutation": result.permutation})
        np.testing.assert_allclose(_kept_share(x, fixed), lam, atol=1e-6)


def test_uint8_images_are_cast():
    x = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3)).astype("uint8")
    out = MixUp(seed=0).mix(x)
    assert keras.backend.standardize_dtype(out.images.dtype) == "float32"


# --------------------------------------------------------------------------- #
# Mixer specifics
# --------------------------------------------------------------------------- #
def test_cutmix_box_is_a_rectangle_of_reference_size():
    x = tagged_images(32, 32, 32)
    result = CutMix(alpha=1.0, seed=7).mix(x)
    src = source_of(to_np(result.images))
    perm = to_np(result.permutation)
    for i in range(32):
        rows, cols = np.nonzero(src[i] == perm[i])
        if rows.size == 0:
            continue
        box = np.zeros((32, 32), bool)
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        np.testing.assert_array_equal(box, src[i] == perm[i])
        # Never larger than the reference's even side (cut // 2 on each side).
        assert rows.max() - rows.min() + 1 <= 32 and cols.max() - cols.min() + 1 <= 32


@pytest.mark.parametrize("max_soft", [0.0, 0.1])
def test_fmix_keeps_round_lam_pixels(max_soft):
    n, h, w = 8, 20, 28
    const = (np.arange(n, dtype="float32") + 1.0)[:, None, None, None]
    x = np.broadcast_to(const, (n, h, w, 1)).copy()
    draws = np.linspace(0.03, 0.97, n).astype("float32")

    class FixedDraws(FMix):
        def _draw_lam(self, n, seed):
            return keras.ops.convert_to_tensor(draws)

    layer = FixedDraws(alpha=1.0, max_soft=max_soft, seed=4)
    result = layer.mix(x)
    lam, perm = to_np(result.lam), to_np(result.permutation)
    mixed = to_np(result.images)[..., 0]
    # Weight taken from the partner, per pixel.
    taken = (mixed - (np.arange(n) + 1)[:, None, None]) / (perm - np.arange(n))[
        :, None, None
    ]
    np.testing.assert_allclose(1 - taken.mean(axis=(1, 2)), lam, atol=1e-5)
    if max_soft == 0.0:
        assert set(np.unique(np.round(taken, 6))) <= {0.0, 1.0}
        # Exactly the top round(lam * H * W) pixels are kept.
        np.testing.assert_allclose(lam, np.round(draws * h * w) / (h * w), atol=1e-6)
    else:
        assert np.any((taken > 0.01) & (taken < 0.99))


def test_fmix_masks_are_low_frequency():
    x = tagged_images(16, 32, 32, 1)

    def transitions(decay):
        res = FMix(decay_power=decay, seed=0).mix(x)
        own = source_of(to_np(res.images)) == np.arange(16)[:, None, None]
        return np.abs(np.diff(own.astype(int), axis=2)).sum()

    # Smoother with a faster-decaying spectrum (white noise at decay 0).
    smooth, middle, rough = transitions(3.0), transitions(1.0), transitions(0.0)
    assert smooth < middle < rough and smooth * 2 < rough


def test_saliencymix_box_covers_the_salient_spot():
    n, h, w = 8, 32, 32
    rng = np.random.default_rng(0)
    x = np.full((n, h, w, 3), 0.1, "float32") + 0.01 * rng.random((n, h, w, 3))
    spots = rng.integers(4, 28, (n, 2))
    for i, (r, c) in enumerate(spots):
        x[i, r - 1 : r + 2, c - 1 : c + 2] = 1.0
    x += (np.arange(n, dtype="float32") * 1000.0 + 1000.0)[:, None, None, None]
    layer = SaliencyMix(alpha=1.0, seed=2)
    result = layer.mix(x)
    lam, perm = to_np(result.lam), to_np(result.permutation)
    src = source_of(to_np(result.images))
    maps = to_np(layer.saliency(keras.ops.convert_to_tensor(x[perm])))
    peaks = np.stack(np.unravel_index(maps.reshape(n, -1).argmax(1), (h, w)), 1)
    assert np.all(np.abs(peaks - spots[perm]) <= 1)
    assert np.any(lam < 1)
    for i in np.nonzero(lam < 1)[0]:
        # The box is centred on the partner's saliency peak: it covers it
        # whenever anything is pasted (a side of 2 or 3 spans [p - 1, p + 1)).
        r, c = peaks[i]
        assert src[i, r, c] == perm[i]
        if lam[i] <= 1 - (4 / 32) ** 2:  # side >= 4: the spot's centre too
            r, c = spots[perm[i]]
            assert src[i, r, c] == perm[i]


def test_resizemix_pastes_the_whole_partner_shrunk():
    n, h, w = 6, 30, 30
    x = np.zeros((n, h, w, 1), "float32")
    x[:, : h // 2] = 0.5  # top half bright, bottom dark
    x += (np.arange(n, dtype="float32") * 1000.0 + 1000.0)[:, None, None, None]
    result = ResizeMix(scope=(0.5, 0.8), seed=1).mix(x)
    lam, perm = to_np(result.lam), to_np(result.permutation)
    mixed = to_np(result.images)[..., 0]
    for i in range(n):
        rows, cols = np.nonzero(np.floor(mixed[i] / 1000) - 1 == perm[i])
        side_h, side_w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert 15 <= side_h <= 24 and 15 <= side_w <= 24
        patch = mixed[i, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] % 1
        # The shrunk partner keeps its layout: top half bright, bottom dark.
        assert patch[0].min() == 0.5 and patch[-1].max() == 0.0
        assert lam[i] == pytest.approx(1 - side_h * side_w / (h * w), abs=1e-6)


def test_resizemix_use_alpha_maps_beta_into_scope():
    x = tagged_images(64, 20, 20)
    lam = to_np(
        ResizeMix(alpha=1.0, use_alpha=True, scope=(0.3, 0.6), seed=0).mix(x).lam
    )
    assert np.all(lam <= 1 - 0.3**2 * 0.9) and np.all(lam >= 1 - 0.6**2 - 1e-6)


def _came_from_cutting(x, result) -> bool:
    mixed, perm = to_np(result.images), to_np(result.permutation)
    return bool(np.all((mixed == x) | (mixed == x[perm])))


def test_random_choice_draws_each_mixer_per_batch():
    x = tagged_images(8, 16, 16)
    layer = RandomChoice([MixUp(seed=0), CutMix(seed=1)], seed=3)
    kinds = [_came_from_cutting(x, layer.mix(x)) for _ in range(16)]
    assert 2 <= sum(kinds) <= 14
    only_cut = RandomChoice([MixUp(), CutMix()], probabilities=[0, 1], seed=3)
    assert all(_came_from_cutting(x, only_cut.mix(x)) for _ in range(4))


# --------------------------------------------------------------------------- #
# tf.data, compiled steps, models
# --------------------------------------------------------------------------- #
@in_tf_data
@pytest.mark.parametrize("mixer_cls", ALL)
def test_inside_tf_data_pipeline(mixer_cls):
    tf = pytest.importorskip("tensorflow")
    x = tagged_images(12, 16, 16)
    y = np.arange(12, dtype="int32") % 4
    layer = mixer_cls(seed=0, num_classes=4)
    ds = tf.data.Dataset.from_tensor_slices({"images": x, "labels": y}).batch(6)
    ds = ds.map(layer, num_parallel_calls=tf.data.AUTOTUNE)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 2
    for batch in batches:
        assert batch["images"].shape == (6, 16, 16, 3)
        assert batch["labels"].shape == (6, 4)
        np.testing.assert_allclose(batch["labels"].sum(-1), 1.0, atol=1e-5)
    # Two epochs draw two different mixes.
    again = list(ds.as_numpy_iterator())
    assert not np.array_equal(again[0]["images"], batches[0]["images"])
    # The layer still works eagerly on the Keras backend afterwards.
    assert tuple(layer.mix(x).images.shape) == x.shape


@in_tf_data
def test_mix_in_tf_data_keeps_exact_lam():
    tf = pytest.importorskip("tensorflow")
    x = tagged_images(8, 16, 16)
    layer = CutMix(seed=0)
    ds = tf.data.Dataset.from_tensors(x).map(lambda b: tuple(layer.mix(b)))
    images, perm, lam, mask = next(iter(ds.as_numpy_iterator()))
    fixed = type("R", (), {"images": images, "permutation": perm})
    np.testing.assert_allclose(_kept_share(x, fixed), lam, atol=1e-6)
    # The mask is where the pixels were kept, and lam its mean.
    src = source_of(images)
    np.testing.assert_array_equal(mask[..., 0], src == np.arange(8)[:, None, None])
    np.testing.assert_array_max_ulp(mask.mean(axis=(1, 2, 3)), lam)


@in_tf_data
@pytest.mark.parametrize("mixer_cls", ALL)
def test_unknown_batch_size_in_tf_data_keeps_exact_lam(mixer_cls):
    # `batch` without drop_remainder: the map function is traced with an
    # unknown batch size, and the last batch here holds a single image.
    tf = pytest.importorskip("tensorflow")
    x = tagged_images(9, 12, 10)
    layer = mixer_cls(seed=0)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4)
    assert ds.element_spec.shape[0] is None
    # MixUp's mask is None, which tf.data cannot carry: keep the first three.
    ds = ds.map(lambda b: tuple(layer.mix(b))[:3], num_parallel_calls=2)
    batches = list(ds.as_numpy_iterator())
    assert [len(images) for images, _, _ in batches] == [4, 4, 1]
    for start, (images, perm, lam) in zip((0, 4, 8), batches, strict=True):
        _check_derangement(perm)
        own = x[start : start + len(images)]
        if mixer_cls is MixUp:
            w = lam[:, None, None, None]
            expected = w * own + (1 - w) * own[perm]
            np.testing.assert_allclose(images, expected, rtol=1e-6)
            continue
        src = source_of(images) - start
        kept = src == np.arange(len(images))[:, None, None]
        assert np.all(kept | (src == perm[:, None, None]))
        np.testing.assert_allclose(kept.mean(axis=(1, 2)), lam, atol=1e-6)
    # The batch of one is returned as it is.
    images, perm, lam = batches[-1]
    assert perm.tolist() == [0] and lam.tolist() == [1.0]
    np.testing.assert_array_equal(images, x[8:])


def _compiled(fn):
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)  # XLA
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn  # torch: eager (a compiled step is covered by model.fit)


@pytest.mark.parametrize("mixer_cls", ALL)
def test_inside_compiled_function(mixer_cls):
    layer = mixer_cls(seed=0)
    x = keras.ops.convert_to_tensor(tagged_images(6, 12, 12))
    layer.build(x.shape)

    state = [v.value for v in layer.non_trainable_variables]

    def stateless(state, images):
        with keras.StatelessScope(
            state_mapping=list(zip(layer.non_trainable_variables, state, strict=True))
        ) as scope:
            result = layer.mix(images)
        new_state = [scope.get_current_value(v) for v in layer.non_trainable_variables]
        mask = result.lam if result.mask is None else result.mask
        return (result.images, result.permutation, result.lam, mask), new_state

    fn = _compiled(stateless)
    (images, perm, lam, mask), state2 = fn(state, x)
    (_, _, lam2, _), _ = fn(state2, x)
    fixed = type("R", (), {"images": to_np(images), "permutation": perm})
    if mixer_cls is not MixUp:
        np.testing.assert_allclose(_kept_share(to_np(x), fixed), to_np(lam), atol=1e-6)
        # lam is the mask's mean, to one unit in the last place (XLA).
        np.testing.assert_array_max_ulp(to_np(mask).mean(axis=(1, 2, 3)), to_np(lam))
    assert not np.array_equal(to_np(lam), to_np(lam2))


def test_images_alone_inside_a_model_raise():
    # Inside a model a mixer sees the images but never the labels.
    with pytest.raises(
        ValueError, match=r"images alone on a symbolic input.*MixupModel"
    ):
        keras.Sequential([keras.Input((8, 8, 3)), MixUp(seed=0)])
    inputs = keras.Input((8, 8, 3))
    with pytest.raises(ValueError, match="SUMixModel"):
        CutMix(seed=0)(inputs)

    class Augmented(keras.Model):
        def __init__(self):
            super().__init__()
            self.mixer = MixUp(seed=0)
            self.head = keras.layers.Dense(2)

        def call(self, x, training=False):
            return self.head(self.mixer(x, training=training))

    with pytest.raises(ValueError, match="by the model"):
        Augmented()(tagged_images(4, 8, 8), training=True)
    # Images and labels together, or images alone outside a model, mix.
    x = tagged_images(4, 8, 8)
    assert tuple(MixUp(seed=0)(x).shape) == x.shape


# --------------------------------------------------------------------------- #
# Serialization
# --------------------------------------------------------------------------- #
CONFIGS = [
    MixUp(alpha=0.2, mode="batch", num_classes=10, seed=1),
    CutMix(alpha=0.2, seed=2, data_format="channels_first"),
    FMix(alpha=0.2, decay_power=2.5, max_soft=0.1, seed=3),
    SaliencyMix(alpha=0.2, saliency_size=32, seed=4),
    ResizeMix(alpha=1.0, scope=(0.2, 0.7), use_alpha=True, seed=5),
]


@pytest.mark.parametrize("layer", CONFIGS, ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is type(layer) and revived.get_config() == config
    x = tagged_images(4, 8, 8)
    if layer.data_format == "channels_first":
        x = np.transpose(x, (0, 3, 1, 2))
    np.testing.assert_array_equal(
        to_np(layer.mix(x).images), to_np(clone.mix(x).images)
    )


def test_random_choice_round_trip_and_model_save(tmp_path):
    layer = RandomChoice(
        [MixUp(alpha=0.2), CutMix(alpha=0.5)], probabilities=[1, 3], seed=2
    )
    revived = RandomChoice.from_config(layer.get_config())
    assert revived.probabilities == [0.25, 0.75]
    assert [type(m) for m in revived.mixers] == [MixUp, CutMix]
    # In a saved model (images and labels in, so that both are mixed).
    inputs, labels = keras.Input((8, 8, 3)), keras.Input((3,))
    images, _ = layer((inputs, labels))
    model = keras.Model([inputs, labels], keras.layers.Flatten()(images))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert any(isinstance(sub, RandomChoice) for sub in loaded.layers)
    x = tagged_images(2, 8, 8)
    y = np.eye(3, dtype="float32")[:2]
    np.testing.assert_allclose(
        to_np(loaded.predict([x, y], verbose=0)), x.reshape(2, -1)
    )


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alpha": 0.0}, ValueError, "alpha"),
        ({"alpha": -1}, ValueError, "alpha"),
        ({"alpha": "1"}, TypeError, "alpha"),
        ({"mode": "pair"}, ValueError, "mode"),
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"data_format": "NHWC"}, ValueError, "data_format"),
    ],
)
@pytest.mark.parametrize("mixer_cls", ALL)
def test_constructor_errors(mixer_cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        mixer_cls(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scope": (0.0, 0.5)}, "scope"),
        ({"scope": (0.5, 1.2)}, "scope"),
        ({"scope": (0.7, 0.3)}, "scope"),
        ({"scope": 0.5}, "scope"),
    ],
)
def test_resizemix_scope_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResizeMix(**kwargs)


def test_mixer_specific_errors():
    with pytest.raises(ValueError, match="max_soft"):
        FMix(max_soft=0.7)
    with pytest.raises(ValueError, match="decay_power"):
        FMix(decay_power=-1)
    with pytest.raises(ValueError, match="saliency_size"):
        SaliencyMix(saliency_size=2)
    with pytest.raises(TypeError, match="use_alpha"):
        ResizeMix(use_alpha=1)
    with pytest.raises(TypeError, match="mixers"):
        RandomChoice([])
    with pytest.raises(TypeError, match="mixers"):
        RandomChoice([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="probabilities"):
        RandomChoice([MixUp(), CutMix()], probabilities=[1.0])
    with pytest.raises(ValueError, match="probabilities"):
        RandomChoice([MixUp(), CutMix()], probabilities=[0, 0])
    with pytest.raises(ValueError, match="data_format"):
        RandomChoice([MixUp(data_format="channels_first")], data_format="channels_last")


@pytest.mark.parametrize("mixer_cls", ALL)
def test_call_errors(mixer_cls):
    layer = mixer_cls(seed=0)
    x = tagged_images(4, 8, 8)
    with pytest.raises(ValueError, match="batch"):
        layer.mix(x[0])
    with pytest.raises(ValueError, match="rank-4"):
        layer.mix(x[None])
    with pytest.raises(ValueError, match="num_classes"):
        layer({"images": x, "labels": np.arange(4)})
    with pytest.raises(ValueError, match="batch size"):
        layer({"images": x, "labels": np.eye(3, dtype="float32")[[0, 1, 2]]})
    with pytest.raises(ValueError, match="classes"):
        mixer_cls(num_classes=5)(
            {"images": x, "labels": np.eye(3, dtype="float32")[[0, 1, 2, 0]]}
        )
    with pytest.raises(TypeError, match="integer"):
        layer({"images": x, "labels": np.arange(4, dtype="float32")})
    with pytest.raises(ValueError, match="'images'"):
        layer({"pixels": x})
    with pytest.raises(ValueError, match="extra keys"):
        layer({"images": x, "labels": np.eye(4, dtype="float32"), "w": x})
    with pytest.raises(ValueError, match="tuple"):
        layer((x, x, x))


def test_public_surface():
    assert keras_sumix.MixResult is keras_sumix.layers.MixResult
    assert keras_sumix.MixResult._fields == ("images", "permutation", "lam", "mask")


# --------------------------------------------------------------------------- #
# Labels as users have them: (N, 1) indices, label smoothing
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("mixer_cls", [MixUp, CutMix])
def test_integer_labels_of_shape_n_1_are_class_indices(mixer_cls):
    # What keras.datasets.cifar10.load_data() returns: uint8 (N, 1).
    x = tagged_images(6, 8, 8)
    column = (np.arange(6) % 4).astype("uint8")[:, None]
    flat = mixer_cls(num_classes=4, seed=1)((x, column[:, 0]))[1]
    labels = to_np(mixer_cls(num_classes=4, seed=1)((x, column))[1])
    assert labels.shape == (6, 4)
    np.testing.assert_array_equal(labels, to_np(flat))
    # Without num_classes, indices cannot be one-hot encoded: say so.
    with pytest.raises(ValueError, match="need `num_classes`"):
        mixer_cls(seed=1)((x, column))
    with pytest.raises(ValueError, match=r"indices in \[0, 3\)"):
        mixer_cls(num_classes=3, seed=1)((x, column))
    # Float (N, 1) labels are soft labels of one column, mixed as they are.
    soft = np.linspace(0, 1, 6, dtype="float32")[:, None]
    result_labels = to_np(mixer_cls(seed=1)((x, soft))[1])
    assert result_labels.shape == (6, 1)
    assert np.all((result_labels >= 0) & (result_labels <= 1))
    with pytest.raises(ValueError, match=r"one-hot labels of shape \(N, 4\)"):
        mixer_cls(num_classes=4, seed=1)((x, soft))


def test_label_smoothing_smooths_then_mixes():
    x = tagged_images(6, 8, 8)
    y = np.array([0, 1, 2, 0, 1, 2])
    eps = 0.2
    images, labels = MixUp(num_classes=3, seed=4, label_smoothing=eps)((x, y))
    result = MixUp(num_classes=3, seed=4).mix(x)
    np.testing.assert_allclose(to_np(images), to_np(result.images), rtol=1e-6)
    lam, perm = to_np(result.lam)[:, None], to_np(result.permutation)
    smooth = np.eye(3)[y] * (1 - eps) + eps / 3
    expected = lam * smooth + (1 - lam) * smooth[perm]
    np.testing.assert_allclose(to_np(labels), expected, atol=1e-6)
    # Soft labels given as (N, C) are smoothed the same way.
    onehot = np.eye(3, dtype="float32")[y]
    _, again = MixUp(seed=4, label_smoothing=eps)((x, onehot))
    np.testing.assert_allclose(to_np(again), expected, atol=1e-6)
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(
            ValueError, match=r"`label_smoothing` must be .* \[0\.0, 1\.0\)"
        ):
            CutMix(label_smoothing=bad)
    config = CutMix(label_smoothing=0.1).get_config()
    assert CutMix.from_config(config).label_smoothing == 0.1


# --------------------------------------------------------------------------- #
# ds.map(mixer): the tuple and the dict form
# --------------------------------------------------------------------------- #
@in_tf_data
def test_dataset_map_takes_the_tuple_and_the_dict_form():
    tf = pytest.importorskip("tensorflow")
    x = tagged_images(8, 8, 8)
    y = (np.arange(8) % 4).astype("int32")[:, None]  # (N, 1), as keras.datasets
    mixer = CutMix(num_classes=4, seed=0)
    pairs = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    images, labels = next(iter(pairs.map(mixer).as_numpy_iterator()))
    assert images.shape == (4, 8, 8, 3) and labels.shape == (4, 4)
    np.testing.assert_allclose(labels.sum(-1), 1.0, atol=1e-6)
    dicts = tf.data.Dataset.from_tensor_slices({"images": x, "labels": y}).batch(4)
    batch = next(iter(dicts.map(mixer).as_numpy_iterator()))
    assert batch["labels"].shape == (4, 4)
    wrapped = pairs.map(lambda i, lab: mixer({"images": i, "labels": lab}))
    assert next(iter(wrapped.as_numpy_iterator()))["labels"].shape == (4, 4)
    with pytest.raises(ValueError, match="not both"):
        mixer({"images": x, "labels": y}, y)


# --------------------------------------------------------------------------- #
# An explicit seed: the functional form for compiled loops
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("mixer_cls", ALL)
def test_explicit_seed_draws_from_that_seed_alone(mixer_cls):
    x = tagged_images(6, 12, 12)
    layer = mixer_cls(seed=0)
    state = to_np(layer.generator.state)
    a, b = layer.mix(x, seed=11), layer.mix(x, seed=11)
    np.testing.assert_array_equal(to_np(a.images), to_np(b.images))
    np.testing.assert_array_equal(to_np(layer.generator.state), state)
    # The same draw as a fresh layer seeded with it.
    fresh = mixer_cls(seed=11).mix(x)
    np.testing.assert_array_equal(to_np(a.permutation), to_np(fresh.permutation))
    np.testing.assert_array_equal(to_np(a.lam), to_np(fresh.lam))
    other = layer.mix(x, seed=keras.ops.convert_to_tensor([11, 1], "int32"))
    assert not np.array_equal(to_np(other.lam), to_np(a.lam))


def test_explicit_seed_errors():
    x = tagged_images(4, 8, 8)
    with pytest.raises(ValueError, match=r"shape \(2,\).*shape \(3,\)"):
        MixUp().mix(x, seed=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="dtype float32"):
        MixUp().mix(x, seed=np.array([1.0, 2.0], "float32"))


def test_compiled_loop_with_explicit_seeds_draws_anew_each_step():
    mixer = CutMix(num_classes=3, seed=0)
    x = tagged_images(6, 12, 12)
    y = np.arange(6) % 3
    if BACKEND == "jax":
        import jax

        @jax.jit
        def step(images, labels, key):
            key, step_key = jax.random.split(key)
            return mixer(images, labels, seed=step_key), key

        key = jax.random.PRNGKey(0)
        draws = []
        for _ in range(3):
            (_, labels), key = step(x, y, key)
            draws.append(to_np(labels))
        # The stateful call raises instead of repeating one draw.
        with pytest.raises(RuntimeError, match="seed=step_key"):
            jax.jit(lambda images: mixer.mix(images).lam)(x)
    else:

        def step(images, labels, seed):  # TensorFlow: in a graph; torch: eager
            return mixer(images, labels, seed=seed)

        if BACKEND == "tensorflow":
            import tensorflow as tf

            step = tf.function(step)
        draws = [
            to_np(step(x, y, keras.ops.convert_to_tensor([k, 7]))[1]) for k in range(3)
        ]
    assert not np.array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[1], draws[2])
    # Nothing leaked: the layer still mixes eagerly from its own stream.
    assert tuple(mixer.mix(x).images.shape) == x.shape


# --------------------------------------------------------------------------- #
# RandomChoice runs the chosen mixer only
# --------------------------------------------------------------------------- #
def _mixup_of(x, result):
    """MixUp's output for the pairing and lam of `result`."""
    return MixUp().apply(x, {"permutation": result.permutation, "lam": result.lam})


def test_random_choice_runs_only_the_chosen_mixer():
    x = tagged_images(6, 12, 12)
    calls = []

    class Spy(FMix):
        def _mix(self, images, masks=None, **context):
            calls.append(1)
            return super()._mix(images, masks, **context)

    layer = RandomChoice([MixUp(), Spy()], probabilities=[1, 0], seed=3)
    result = layer.mix(x)
    assert calls == []
    # The chosen mixer's output for that draw, whatever the other one is.
    np.testing.assert_allclose(to_np(result.images), to_np(_mixup_of(x, result).images))
    other = RandomChoice([MixUp(), CutMix()], probabilities=[1, 0], seed=3).mix(x)
    np.testing.assert_array_equal(to_np(other.images), to_np(result.images))
    np.testing.assert_array_equal(to_np(other.lam), to_np(result.lam))
    # Compiled, the choice stays random per call and each result is one
    # candidate's.
    mixed = RandomChoice([MixUp(), CutMix()], seed=1)

    def fn(images, seed):
        return tuple(mixed.mix(images, seed=seed))[:3]

    if BACKEND == "jax":
        import jax

        fn = jax.jit(fn)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        fn = tf.function(fn)
    kinds = []
    for k in range(8):
        images, perm, lam = (
            to_np(t) for t in fn(x, keras.ops.convert_to_tensor([k, 0]))
        )
        fixed = type("R", (), {"images": images, "permutation": perm, "lam": lam})
        cut = _came_from_cutting(x, fixed)
        if not cut:
            np.testing.assert_allclose(
                images, to_np(_mixup_of(x, fixed).images), rtol=1e-6
            )
        kinds.append(cut)
    assert 0 < sum(kinds) < 8


# --------------------------------------------------------------------------- #
# Keras's dict format: segmentation masks, bounding boxes
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("mixer_cls", [*ALL, "random_choice"])
def test_segmentation_masks_follow_the_images(mixer_cls):
    # Masks equal to the images' first channel: mixed with the images' own
    # draw, they come out as the mixed images' first channel.
    x = tagged_images(6, 12, 12)
    masks = x[..., :1].copy()
    if mixer_cls == "random_choice":
        layer = RandomChoice([MixUp(), CutMix(), FMix()], num_classes=3, seed=2)
    else:
        layer = mixer_cls(num_classes=3, seed=2)
    out = layer({"images": x, "labels": np.arange(6) % 3, "segmentation_masks": masks})
    assert set(out) == {"images", "labels", "segmentation_masks"}
    mixed_masks = to_np(out["segmentation_masks"])
    assert mixed_masks.shape == masks.shape
    np.testing.assert_allclose(mixed_masks, to_np(out["images"])[..., :1], rtol=1e-6)


def test_bounding_boxes_are_refused():
    x = tagged_images(4, 8, 8)
    boxes = {"boxes": np.zeros((4, 1, 4), "float32"), "labels": np.zeros((4, 1))}
    with pytest.raises(ValueError, match="does not mix `bounding_boxes`"):
        CutMix(num_classes=2)({"images": x, "bounding_boxes": boxes})
    with pytest.raises(ValueError, match="`segmentation_masks` must have the batch"):
        CutMix()({"images": x, "segmentation_masks": np.zeros((4, 6, 6, 1))})
