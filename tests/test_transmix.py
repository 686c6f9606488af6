"""TransMix (`label_lam="attention"`, `keras_sumix.models.transmix`): the
attention lam against NumPy, the attention read from keras-hub's ViT against
its own MultiHeadAttention, gradients, compiled steps, `.keras` round trips,
errors, and the study's part T. Tiny networks: 16x16 images, patch 4, two
layers, two heads, width 16."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest
from conftest import BACKEND, input_gradients, run_once, to_np, variable_gradients

import keras_sumix as ks
from keras_sumix.models import cross_entropy, transmix
from keras_sumix.models.transmix import attention_lam, attention_source

keras_hub = pytest.importorskip("keras_hub")

RNG = np.random.default_rng(0)
IMAGES = RNG.random((8, 16, 16, 3)).astype("float32")
LABELS = np.array([0, 1, 2, 3, 0, 1, 2, 3], "int32")
TINY = {"num_layers": 2, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32}


def tiny_vit(seed: int = 0, **kwargs) -> keras.Model:
    """keras-hub's ViTBackbone as the study builds it (tokens out)."""
    keras.utils.set_random_seed(seed)
    return keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3), patch_size=4, **{**TINY, **kwargs}
    )


def tiny_deit(seed: int = 0, **kwargs) -> keras.Model:
    """`deit_small` at 16x16 (pooled features out)."""
    keras.utils.set_random_seed(seed)
    return ks.models.deit_small(16, patch_size=4, **{**TINY, **kwargs})


# --------------------------------------------------------------------------- #
# The attention lam, a pure function
# --------------------------------------------------------------------------- #
def numpy_attention_lam(scores, mask, patch, prefix):
    """TransMix's attention lam, written out: the class token's attention
    (heads averaged) over the patches, each patch weighted by the share of
    its pixels the mask keeps."""
    n, _, tokens, _ = scores.shape
    height, width = mask.shape[1:3]
    cells = [(r, c) for r in range(height // patch) for c in range(width // patch)]
    assert len(cells) + prefix == tokens
    out = []
    for i in range(n):
        attention = scores[i, :, 0, prefix:].mean(axis=0)
        kept = [
            mask[i, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch].mean()
            for r, c in cells
        ]
        out.append(np.sum(attention * np.array(kept)) / np.sum(attention))
    return np.array(out, "float32")


def random_scores(n, heads, tokens, seed=0):
    logits = np.random.default_rng(seed).normal(size=(n, heads, tokens, tokens))
    scores = np.exp(logits)
    return (scores / scores.sum(-1, keepdims=True)).astype("float32")


@run_once("torch", "a pure function's formula, on host arrays")
@pytest.mark.parametrize("prefix", [1, 2], ids=["vit", "deit"])
def test_attention_lam_matches_numpy(prefix):
    scores = random_scores(3, 2, 16 + prefix)
    rng = np.random.default_rng(1)
    soft = rng.random((3, 8, 8, 1)).astype("float32")  # AutoMix-like mask
    box = np.ones((3, 8, 8, 1), "float32")
    box[0, 1:6, 3:8] = 0.0  # cuts through patches
    box[1, :4, :4] = 0.0  # one patch-aligned quadrant
    box[2] = 0.0  # all pasted
    for mask in (soft, box):
        expected = numpy_attention_lam(scores, mask, 2, prefix)
        got = to_np(attention_lam(scores, mask, 2, prefix, "channels_last"))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        first = np.transpose(mask, (0, 3, 1, 2))
        got = to_np(attention_lam(scores, first, (2, 2), prefix, "channels_first"))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    got = to_np(attention_lam(scores, box, 2, prefix, "channels_last"))
    assert got[2] == 0.0
    # On a patch-aligned box it is the reference's nearest, 0/1 patch mask.
    nearest = box[1, ::2, ::2, 0].reshape(-1).astype(int)
    attention = scores[1, :, 0, prefix:].mean(axis=0)
    np.testing.assert_allclose(
        got[1], np.sum(nearest * attention) / attention.sum(), rtol=1e-5
    )


@run_once("torch", "argument checks of a pure function")
def test_attention_lam_rejects_shapes_that_disagree():
    scores = random_scores(2, 1, 17)
    mask = np.ones((2, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match="does not match 17 tokens"):
        attention_lam(scores, mask, 4, 1, "channels_last")  # a 2x2 grid
    with pytest.raises(ValueError, match="does not match"):
        attention_lam(scores, mask, 2, 2, "channels_last")
    with pytest.raises(ValueError, match="patch_size"):
        attention_lam(scores, mask, 0, 1, "channels_last")
    with pytest.raises(ValueError, match="num_prefix_tokens"):
        attention_lam(scores, mask, 2, 0, "channels_last")
    with pytest.raises(ValueError, match=r"\(N, heads, L, L\)"):
        attention_lam(scores[0], mask, 2, 1, "channels_last")


def test_no_gradient_flows_through_the_attention_lam():
    scores = random_scores(2, 2, 17)
    mask = np.zeros((2, 8, 8, 1), "float32")
    mask[:, :4] = 1.0

    def total(x):
        return keras.ops.sum(attention_lam(x, mask, 2, 1, "channels_last"))

    assert not np.any(input_gradients(total, scores)[0])


# --------------------------------------------------------------------------- #
# Reading the attention of keras-hub's ViT / DeiT
# --------------------------------------------------------------------------- #
def last_block_attention(backbone, images):
    """The last block's attention, recomputed by hand: the embeddings, the
    blocks before it, its own layer norm, then its MultiHeadAttention
    called with `return_attention_scores=True`."""
    tokens = backbone.get_layer("vit_patching_and_embedding")(images)
    blocks = backbone.get_layer("vit_encoder").encoder_layers
    for block in blocks[:-1]:
        tokens = block(tokens)
    normed = blocks[-1].layer_norm_1(tokens)
    _, scores = blocks[-1].mha(normed, normed, return_attention_scores=True)
    return to_np(scores)


def test_recorded_attention_is_the_last_blocks_own():
    backbone = tiny_vit()
    source = attention_source(backbone)
    assert source.patch_size == (4, 4) and source.num_prefix_tokens == 1
    plain = to_np(backbone(IMAGES[:2]))
    with transmix.recording(source) as record:
        recorded = to_np(backbone(IMAGES[:2]))
    assert "call" not in vars(source.layer)  # the layer is as it was
    np.testing.assert_allclose(recorded, plain, atol=1e-5)  # the same pass
    expected = last_block_attention(backbone, IMAGES[:2])
    assert expected.shape == (2, 2, 17, 17)
    np.testing.assert_allclose(to_np(record["scores"]), expected, atol=1e-6)


@run_once("torch", "Python threads (tf.distribute traces each replica in one)")
def test_each_thread_records_its_own_attention():
    """MirroredStrategy traces each replica's step in a thread of its own,
    through the same layers: two threads recording at once each get their
    own pass's attention, and the layer is restored when both are done."""
    backbone = tiny_vit()
    source = attention_source(backbone)
    inside, called = threading.Barrier(2), threading.Barrier(2)
    got, errors = {}, []

    def replica(rows: slice) -> None:
        try:
            with transmix.recording(source) as record:
                inside.wait(timeout=60)  # both scopes open
                backbone(IMAGES[rows])
                called.wait(timeout=60)  # both passes recorded
            got[rows.start] = to_np(record["scores"])
        except Exception as error:  # reported below, on the main thread
            errors.append(error)

    threads = [
        threading.Thread(target=replica, args=(slice(k, k + 2),)) for k in (0, 2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert "call" not in vars(source.layer)
    for start, scores in got.items():
        expected = last_block_attention(backbone, IMAGES[start : start + 2])
        np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert not np.allclose(got[0], got[2])  # different images, different scores


@pytest.mark.parametrize("model_cls", [ks.MixupModel, ks.SUMixModel])
def test_training_lam_is_the_area_and_attention_mean(model_cls):
    backbone = tiny_vit()
    model = model_cls(backbone, 4, ks.layers.CutMix(1.0, seed=0), label_lam="attention")
    mix = model.mixer.mix(IMAGES, seed=3)
    scores = last_block_attention(backbone, to_np(mix.images))
    attention = numpy_attention_lam(scores, to_np(mix.mask), 4, 1)
    label = 0.5 * to_np(mix.lam) + 0.5 * attention
    got = to_np(model.training_lam(IMAGES, LABELS, mix))
    if model_cls is ks.MixupModel:
        np.testing.assert_allclose(got, label, rtol=1e-5, atol=1e-6)
    else:  # SUMix corrects the TransMix lam, not the area lam
        area = ks.SUMixModel(backbone, 4, ks.layers.CutMix(1.0, seed=0))
        area.build(IMAGES.shape)
        area.classifier.set_weights(model.classifier.get_weights())
        area.uncertainty_head.set_weights(model.uncertainty_head.get_weights())
        relabelled = mix._replace(lam=keras.ops.convert_to_tensor(label))
        expected = to_np(area.training_lam(IMAGES, LABELS, relabelled))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(label, to_np(mix.lam))


def test_the_network_gets_the_gradient_of_a_constant_lam():
    # TransMix's loss has the gradient of the same loss with its lam held
    # constant: none flows through the attention lam, all through the logits.
    model = ks.MixupModel(
        tiny_vit(), 4, ks.layers.CutMix(1.0, seed=0), label_lam="attention"
    )
    model.build(IMAGES.shape)
    mix = model.mixer.mix(IMAGES, seed=3)
    dense = keras.ops.one_hot(LABELS, 4)

    def forward(x):
        return model(x, training=True)

    def transmix_loss():
        logits, lam = model._mixed_pass(forward, mix, IMAGES)
        return cross_entropy.mixed(logits, dense, mix.permutation, lam, None)

    lam = keras.ops.convert_to_tensor(to_np(model._mixed_pass(forward, mix, IMAGES)[1]))

    def constant_loss():
        logits = forward(mix.images)
        return cross_entropy.mixed(logits, dense, mix.permutation, lam, None)

    got = variable_gradients(model, transmix_loss)
    expected = variable_gradients(model, constant_loss)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-7)
    assert all(np.any(g) for g in got)  # every weight learns


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #
def test_fit_logs_the_transmix_lam():
    model = ks.SUMixModel(
        tiny_deit(), 4, ks.layers.CutMix(1.0, seed=0), label_lam="attention"
    )
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    history = model.fit(IMAGES, LABELS, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert 0.0 <= history["lam_transmix"][0] <= 1.0
    assert history["lam_transmix"][0] != history["lam_area"][0]


def test_distilled_deit_leaves_both_tokens_out():
    model = ks.MixupModel(
        tiny_deit(distilled=True), 4, ks.layers.FMix(seed=0), label_lam="attention"
    )
    source = attention_source(model.backbone)
    assert source.num_prefix_tokens == 2 and source.patch_size == (4, 4)
    lam = to_np(model.training_lam(IMAGES, LABELS, model.mixer.mix(IMAGES, seed=1)))
    assert lam.shape == (8,) and np.all((lam >= 0) & (lam <= 1))


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit")
def test_jit_step_equals_the_eager_one():
    runs = {}
    for compiled in (False, True):
        model = ks.MixupModel(
            tiny_vit(seed=5), 4, ks.layers.CutMix(1.0, seed=0), label_lam="attention"
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            jit_compile=compiled,
            run_eagerly=not compiled,
        )
        logs = [
            model.train_on_batch(IMAGES, LABELS, return_dict=True) for _ in range(2)
        ]
        lams = [(float(g["lam_transmix"]), float(g["lam_area"])) for g in logs]
        assert all(transmix != area for transmix, area in lams)
        runs[compiled] = (
            [float(g["loss"]) for g in logs] + [lam for pair in lams for lam in pair],
            [to_np(w) for w in model.trainable_weights],
        )
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-5)
    for compiled, eager in zip(runs[True][1], runs[False][1], strict=True):
        np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA on TensorFlow")
def test_xla_step_equals_the_eager_one_on_a_given_mix():
    # TensorFlow's random ops draw other numbers under XLA, so the mix is
    # given: the mixed pass, its recorded attention and the TransMix loss
    # compiled by XLA equal their eager run; then the whole step compiles.
    import tensorflow as tf

    model = ks.MixupModel(
        tiny_vit(seed=5), 4, ks.layers.CutMix(1.0, seed=0), label_lam="attention"
    )
    model.build(IMAGES.shape)
    dense = keras.ops.one_hot(LABELS, 4)

    def loss_and_lam(images, *mix):
        mix = ks.MixResult(*mix)
        logits, lam = model._mixed_pass(lambda x: model(x, training=True), mix, images)
        return cross_entropy.mixed(logits, dense, mix.permutation, lam, None), lam

    mix = model.mixer.mix(IMAGES, seed=3)
    eager = loss_and_lam(IMAGES, *mix)
    xla = tf.function(loss_and_lam, jit_compile=True)(IMAGES, *mix)
    for compiled, expected in zip(xla, eager, strict=True):
        np.testing.assert_allclose(to_np(compiled), to_np(expected), rtol=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
    logs = model.train_on_batch(IMAGES, LABELS, return_dict=True)
    assert model.jit_compile and np.isfinite(float(logs["loss"]))
    assert float(logs["lam_transmix"]) != float(logs["lam_area"])


def test_keras_round_trip_keeps_the_option(tmp_path):
    model = ks.SUMixModel(
        tiny_deit(), 4, ks.layers.CutMix(1.0, seed=0), label_lam="attention"
    )
    predictions = to_np(model(IMAGES))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.get_config()["label_lam"] == "attention"
    assert loaded._attention.layer is attention_source(loaded.backbone).layer
    np.testing.assert_allclose(to_np(loaded(IMAGES)), predictions, atol=1e-5)


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #
@run_once("torch", "argument checks at construction")
def test_backbones_and_mixers_without_what_transmix_reads_raise():
    cutmix = ks.layers.CutMix(1.0)
    swin = ks.models.swin_tiny(
        16, patch_size=2, window_size=2, embed_dim=8, depths=(1, 1), num_heads=(1, 2)
    )
    for backbone in (swin, ks.models.small_cnn((16, 16, 3), widths=(4, 8))):
        with pytest.raises(ValueError, match="class token"):
            ks.MixupModel(backbone, 4, cutmix, label_lam="attention")
    with pytest.raises(ValueError, match="class token"):
        ks.SUMixModel(tiny_vit(use_class_token=False), 4, cutmix, label_lam="attention")
    with pytest.raises(ValueError, match="MixUp makes none"):
        ks.MixupModel(tiny_vit(), 4, ks.layers.MixUp(1.0), label_lam="attention")
    with pytest.raises(ValueError, match="label_lam"):
        ks.SUMixModel(tiny_vit(), 4, cutmix, label_lam="pixels")
    # The area lam needs nothing of the backbone.
    assert ks.MixupModel(swin, 4, cutmix).label_lam == "area"


@run_once("torch", "config validation")
def test_train_config_checks_the_option(tmp_path, capsys):
    from keras_sumix import cli
    from keras_sumix.training import TrainConfig

    TrainConfig(backbone="deit_small", label_lam="attention").validate()
    # A keras-hub preset: its architecture is checked before any data loads,
    # and the command line reports a preset without class token in one line.
    tiny_vit().save_to_preset(tmp_path / "vit")
    tiny_vit(use_class_token=False).save_to_preset(tmp_path / "no_class_token")
    TrainConfig(weights=f"hub:{tmp_path / 'vit'}", label_lam="attention").validate()
    argv = ["train", "--weights", f"hub:{tmp_path / 'no_class_token'}"]
    argv += ["--label-lam", "attention", "--output-dir", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "class token" in err[0], err
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="backbone='deit_small'"):
        TrainConfig(label_lam="attention").validate()
    with pytest.raises(ValueError, match="MixUp"):
        TrainConfig(
            backbone="deit_small", mixer="mixup", label_lam="attention"
        ).validate()
    with pytest.raises(ValueError, match="label_lam"):
        TrainConfig(label_lam="pixels").validate()
    args = cli.build_parser().parse_args(["train", "--label-lam", "attention"])
    assert args.label_lam == "attention"


@run_once("torch", "the study's grid, no training")
def test_study_part_t():
    from study.config import FULL as full
    from study.config import QUICK as quick
    from study.grid import METHODS, Cell, build_grid, part_entries

    entries = part_entries("T", full)
    assert [e.cell.method for e in entries] == ["mce", "transmix", "transmix_sumix"]
    assert {(e.cell.mixer, e.cell.backbone) for e in entries} == {("cutmix", "vit")}
    assert [e.cell.model_options() for e in entries] == [
        {},
        {"label_lam": "attention"},
        {"label_lam": "attention"},
    ]
    assert not METHODS["transmix"].sumix and METHODS["transmix_sumix"].sumix
    runs = build_grid(full, parts=["V", "T"])
    assert sum(r.part == "T" for r in runs) == 2 * len(full.seeds)  # MCE is V's
    assert [e.cell.method for e in part_entries("T", quick)] == ["transmix_sumix"]
    with pytest.raises(ValueError, match="backbone='vit'"):
        Cell("occluded", "cutmix", "transmix")
