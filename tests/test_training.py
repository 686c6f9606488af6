"""`keras-sumix train`, the recipes, resume, and the recipe examples in their
smoke setting (mock TFDS data and fixture trees)."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import run_once
from fixtures import aircraft_tree, cub_tree, image_folder, resnet_preset

import keras_sumix as ks
from keras_sumix import cli
from keras_sumix.recipes import RECIPES, paper_alpha
from keras_sumix.training import (
    TrainConfig,
    build_backbone,
    build_optimizer,
    load_test_data,
    train,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_cli_train_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--limit", "48", "--epochs", "2", "--batch-size", "16"]
    assert cli.main([*argv, "--output-dir", str(out), "--quiet"]) == 0
    assert "test top-1" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 2 and 0 <= results["test_top1"] <= 1
    assert "median_top1_last_10" in results
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]
    assert {"loss", "lam_sumix", "val_accuracy"} <= set(history[0])
    model = keras.saving.load_model(out / "checkpoint.keras")
    assert isinstance(model, ks.SUMixModel)


# Run once, under torch (eager: no compilation).
host_side = run_once("torch", "the run logic over backend-agnostic models")


@host_side
def test_no_sumix_trains_the_baseline(tmp_path):
    config = TrainConfig(limit=32, epochs=1, batch_size=16, sumix=False)
    config.output_dir = str(tmp_path)
    train(config, verbose=0)
    model = keras.saving.load_model(tmp_path / "checkpoint.keras")
    assert type(model) is ks.MixupModel


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def test_interrupted_run_resumes(tmp_path):
    config = TrainConfig(limit=32, epochs=3, batch_size=16, output_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="interrupted"):
        train(config, verbose=0, callbacks=[_Interrupt()])  # after backup
    first = json.loads((tmp_path / "history.json").read_text())
    assert [row["epoch"] for row in first] == [0, 1]
    results = train(config, verbose=0)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert history[:2] == first  # epochs 0 and 1 were not run again
    assert results["epochs_run"] == 3


def test_recipes_follow_the_spec():
    r18 = TrainConfig.from_recipe("cifar100-r18")
    assert (r18.learning_rate, r18.momentum, r18.weight_decay) == (0.1, 0.9, 1e-4)
    assert (r18.batch_size, r18.epochs, r18.backbone) == (100, 800, "resnet18_cifar")
    wrn = TrainConfig.from_recipe("cifar100-wrn28-8")
    assert (wrn.learning_rate, wrn.weight_decay, wrn.epochs) == (0.03, 1e-3, 400)
    cub = TrainConfig.from_recipe("cub-rx50", epochs=3)
    assert (cub.learning_rate, cub.batch_size, cub.image_size) == (0.001, 16, 224)
    assert cub.epochs == 3 and cub.backbone == "resnext50_32x4d"
    for name, recipe in RECIPES.items():
        data_dir = None if recipe["dataset"] == "occluded" else "/data"
        TrainConfig.from_recipe(name, data_dir=data_dir).validate()


def test_config_errors(capsys):
    with pytest.raises(ValueError, match="recipe"):
        TrainConfig.from_recipe("imagenet-r50")
    with pytest.raises(ValueError, match="dataset"):
        TrainConfig(dataset="mnist").validate()
    with pytest.raises(ValueError, match="data_dir"):
        TrainConfig(dataset="aircraft").validate()
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0).validate()
    assert cli.main(["train", "--dataset", "aircraft", "--output-dir", "/tmp/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data_dir" in err[0]


@host_side
def test_cli_trains_on_a_folder_of_your_own_images(tmp_path, capsys):
    """`--data-dir` with class subfolders (images of any size) trains on
    them: the classes are the folders, the held-out images a fraction of
    each, and the images resized by the pipeline."""
    photos = image_folder(tmp_path / "photos", per_class=5)
    out = tmp_path / "run"
    argv = ["train", "--data-dir", str(photos), "--epochs", "1", "--batch-size", "4"]
    assert cli.main([*argv, "--image-size", "16", "--output-dir", str(out)]) == 0
    assert "test top-1" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "folder" and config["data_dir"] == str(photos)
    model = keras.saving.load_model(out / "checkpoint.keras")
    assert model.num_classes == 2
    assert tuple(model.backbone.input_shape) == (None, 16, 16, 3)
    # The held-out images (1 of 5 per class) are what it was tested on.
    test, _ = load_test_data(TrainConfig(**config))
    assert [int(y) for _, y in test.as_numpy_iterator()] == [0, 1]


@host_side
def test_folder_defaults_and_test_split(tmp_path):
    photos = image_folder(tmp_path / "photos", per_class=5, split=True)
    config = TrainConfig(dataset="folder", data_dir=str(photos), batch_size=4)
    assert config.validate().pipeline_options()["image_size"] == 32
    test, classes = load_test_data(config)
    assert classes == 2 and len(list(test)) == 4  # val/: 2 images per class
    fine = TrainConfig(dataset="folder", data_dir=str(photos), pipeline="fine_grained")
    assert fine.pipeline_options()["image_size"] is None  # the recipe's 224


@host_side
@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--dataset", "occluded", "--data-dir", "photos"], "data_dir"),
        (["--validation-fraction", "0.3"], "validation_fraction"),
        (["--no-sumix", "--gamma", "1", "--variant", "paper"], "--variant, --gamma"),
        (["--optimizer", "adamw", "--momentum", "0.8"], "--momentum"),
        (["--weights", "w.weights.h5"], "weights"),
        (["--dataset", "folder"], "data_dir"),
    ],
)
def test_options_that_do_not_apply_are_errors(tmp_path, capsys, argv, named):
    out = tmp_path / "run"
    assert cli.main(["train", *argv, "--output-dir", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0], err
    assert not out.exists()  # refused before anything is written


@host_side
def test_a_finished_run_is_never_overwritten_unless_asked(tmp_path, capsys):
    out = tmp_path / "run"
    config = TrainConfig(limit=16, epochs=1, batch_size=8, output_dir=str(out))
    out.mkdir()  # a finished run's folder, as `train` leaves it
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    (out / "results.json").write_text('{"status": "completed"}')
    (out / "checkpoint.keras").write_bytes(b"weights")
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    argv = ["train", "--limit", "16", "--epochs", "1", "--batch-size", "8"]
    assert cli.main([*argv, "--output-dir", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "finished run" in err[0] and "--overwrite" in err[0]
    with pytest.raises(FileExistsError, match=r"epochs: 1 -> 2.*overwrite"):
        train(dataclasses.replace(config, epochs=2), verbose=0)
    assert files == {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "results.json").unlink()  # files of a run, without its config
    (out / "config.json").unlink()
    with pytest.raises(FileExistsError, match=r"no readable config\.json"):
        train(config, verbose=0)
    (out / "history.json").write_text('[{"epoch": 5, "loss": 1.0}]')
    results = train(config, verbose=0, overwrite=True)
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0] and results["epochs_run"] == 1


@pytest.fixture
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield
    for name in (
        "_recipe_cli",
        "cifar100_resnet18",
        "finetune_cub",
        "finetune_aircraft",
        "cifar100_vit",
    ):
        sys.modules.pop(name, None)


@run_once("torch", "an example script over backend-agnostic models")
def test_cifar100_example_smoke(tmp_path, examples_on_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import cifar100_resnet18

    with tfds.testing.mock_data(
        num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        results = cifar100_resnet18.main(["--smoke", "--output-dir", str(tmp_path)])
    assert results["config"]["backbone"] == "resnet18_cifar"
    assert (tmp_path / "results.json").exists()


@run_once("torch", "an example script over backend-agnostic models")
def test_finetune_cub_example_smoke(tmp_path, examples_on_path):
    import finetune_cub

    cub_tree(tmp_path)
    argv = ["--smoke", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")]
    results = finetune_cub.main(argv)
    assert results["config"]["dataset"] == "cub" and results["epochs_run"] == 1


@run_once("torch", "an example script over backend-agnostic models")
def test_finetune_aircraft_example_smoke(tmp_path, examples_on_path):
    import finetune_aircraft

    aircraft_tree(tmp_path)
    out = tmp_path / "o"
    argv = ["--smoke", "--data-dir", str(tmp_path), "--output-dir", str(out)]
    results = finetune_aircraft.main([*argv, "--no-sumix"])
    assert results["config"]["sumix"] is False
    assert results["config"]["backbone"] == "resnet18"
    argv[-1] = str(tmp_path / "o2")  # `out` holds a finished run
    with pytest.raises(ValueError, match="weights"):
        finetune_aircraft.main([*argv, "--weights", "imagenet"])
    assert not (tmp_path / "o2").exists()  # a failed setting leaves no run


@host_side
def test_keras_hub_preset_backbone_is_wired(tmp_path):
    """`weights="hub:<dir>"` loads the real keras-hub preset directory (a
    tiny ResNet saved by the test) through `keras_sumix.models.from_hub`."""
    keras_hub = pytest.importorskip("keras_hub")
    preset = resnet_preset(tmp_path)
    config = TrainConfig(
        limit=32,
        epochs=1,
        batch_size=16,
        weights=f"hub:{preset}",
        output_dir=str(tmp_path / "run"),
    )
    assert train(config, verbose=0)["epochs_run"] == 1
    model = keras.saving.load_model(tmp_path / "run" / "checkpoint.keras")
    assert isinstance(model.backbone, keras_hub.models.ResNetBackbone)
    assert model.mixer.alpha == 0.2  # a CNN: the paper's CNN CutMix alpha


def test_keras_hub_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ImportError, match=r"keras-sumix\[hub\]"):
        build_backbone(TrainConfig(weights="hub:resnet_18_imagenet"), (32, 32, 3))


def test_hub_preset_name_offline_exits_with_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("keras_hub")
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")  # a closed local port
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "cache"))
    argv = ["train", "--limit", "16", "--epochs", "1", "--batch-size", "8"]
    argv += ["--weights", "hub:resnet_18_imagenet", "--output-dir", str(tmp_path)]
    assert cli.main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'resnet_18_imagenet'" in err[0] and "Kaggle" in err[0]
    assert "hub:DIR" in err[0]


def test_transformer_recipes_follow_the_paper():
    deit = TrainConfig.from_recipe("cifar100-deit-s")
    swin = TrainConfig.from_recipe("cifar100-swin-t", mixer="fmix")
    for config, lr, backbone in ((deit, 1e-3, "deit_small"), (swin, 5e-4, "swin_tiny")):
        assert (config.optimizer, config.learning_rate, config.weight_decay) == (
            "adamw",
            lr,
            0.05,
        )
        assert (config.epochs, config.batch_size, config.image_size) == (200, 100, 224)
        assert config.rand_augment and config.pipeline == "cifar_vit"
        assert (config.warmup_epochs, config.clipnorm) == (20, 5.0)
        assert config.backbone == backbone and config.gamma == 0.5  # Table 7
    assert paper_alpha("cutmix", transformer=True) == 2.0
    assert paper_alpha("fmix", transformer=True) == 1.0
    # gamma follows appendix A.1 unless given
    assert TrainConfig.from_recipe("cifar100-r18", mixer="fmix").gamma == 1.0
    assert TrainConfig.from_recipe("cub-r18-hub", mixer="cutmix").gamma == 1.0
    assert TrainConfig.from_recipe("cifar100-r18", mixer="fmix", gamma=0.3).gamma == 0.3
    cub = TrainConfig.from_recipe("cub-r18-hub")
    assert cub.weights == "hub:resnet_18_imagenet" and cub.learning_rate == 0.001
    assert (cub.batch_size, cub.epochs, cub.image_size) == (16, 200, 224)
    optimizer = build_optimizer(deit, steps_per_epoch=10)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.global_clipnorm == 5.0
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == 0.0  # linear warm-up from 0 ...
    assert float(schedule(200)) == pytest.approx(1e-3)  # ... to lr at epoch 20
    assert float(schedule(2000)) == pytest.approx(0.0, abs=1e-9)  # cosine to 0
    # no weight decay on norms, biases, the class token and position embeddings
    pytest.importorskip("keras_hub")
    vit = ks.models.deit_small(
        32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    decayed = {
        v.path.split("/")[-2] + "/" + v.name
        for v in vit.weights
        if optimizer._use_weight_decay(v)
    }
    assert "query/kernel" in decayed and "dense_1/kernel" in decayed
    assert not any(
        part in name
        for name in decayed
        for part in ("bias", "gamma", "beta", "class_token", "position_embedding")
    )
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig(epochs=2, warmup_epochs=2).validate()
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lamb").validate()


def _tiny_transformer(monkeypatch, name):
    """Swap the recipe's transformer for a tiny one of the same family (the
    full-size networks are pinned by count in test_transformers.py)."""
    pytest.importorskip("keras_hub")
    builder = getattr(ks.models, name)
    if name == "deit_small":
        tiny = functools.partial(
            builder, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
        )
    else:
        tiny = functools.partial(
            builder,
            patch_size=2,
            window_size=4,
            embed_dim=8,
            depths=(1, 1),
            num_heads=(1, 2),
        )
    monkeypatch.setattr(ks.models, name, tiny)


@run_once("torch", "an example script over backend-agnostic models")
def test_transformer_recipe_smoke(tmp_path, monkeypatch):
    """The Swin-T recipe end to end through the CLI on the embedded data at
    32 px: AdamW with warm-up, RandAugment in the pipeline, the ViT alpha, a
    checkpoint (the DeiT-S recipe runs in the example's smoke test)."""
    recipe = "cifar100-swin-t"
    _tiny_transformer(monkeypatch, "swin_tiny")
    out = tmp_path / "run"
    argv = ["train", "--recipe", recipe, "--dataset", "occluded", "--limit", "16"]
    argv += ["--image-size", "32", "--epochs", "2", "--warmup-epochs", "1"]
    argv += ["--batch-size", "8", "--output-dir", str(out), "--quiet"]
    assert cli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["optimizer"] == "adamw" and config["rand_augment"] is True
    model = keras.saving.load_model(out / "checkpoint.keras")
    assert isinstance(model, ks.SUMixModel) and model.mixer.alpha == 2.0
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 2 and all(np.isfinite(row["loss"]) for row in history)


@run_once("torch", "an example script over backend-agnostic models")
def test_vit_example_smoke(tmp_path, examples_on_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    _tiny_transformer(monkeypatch, "deit_small")
    import cifar100_vit

    with tfds.testing.mock_data(
        num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        results = cifar100_vit.main(["--smoke", "--output-dir", str(tmp_path)])
    assert results["config"]["backbone"] == "deit_small"
    assert results["config"]["optimizer"] == "adamw"
    assert results["config"]["rand_augment"] is True
    model = keras.saving.load_model(tmp_path / "checkpoint.keras")
    assert isinstance(model, ks.SUMixModel) and model.mixer.alpha == 2.0


@host_side
@pytest.mark.parametrize("dataset", ["cub", "aircraft"])
def test_hub_fine_tuning_recipes_on_fixture_trees(tmp_path, dataset):
    """`cub-r18-hub` / `aircraft-r18-hub` (keras-hub's resnet_18_imagenet
    by default) on the fixture trees, from a locally saved preset."""
    keras_hub = pytest.importorskip("keras_hub")
    (cub_tree if dataset == "cub" else aircraft_tree)(tmp_path)
    preset = resnet_preset(tmp_path)
    module = "finetune_cub" if dataset == "cub" else "finetune_aircraft"
    sys.path.insert(0, str(EXAMPLES))
    try:
        example = __import__(module)
        argv = [
            "--recipe",
            f"{dataset}-r18-hub",
            "--smoke",
            "--data-dir",
            str(tmp_path),
        ]
        argv += ["--weights", f"hub:{preset}", "--output-dir", str(tmp_path / "o")]
        results = example.main(argv)
    finally:
        sys.path.remove(str(EXAMPLES))
        for name in ("_recipe_cli", module):
            sys.modules.pop(name, None)
    assert results["config"]["dataset"] == dataset and results["epochs_run"] == 1
    assert results["config"]["gamma"] == 1.0  # Tables 8-9, CutMix on ResNet-18
    model = keras.saving.load_model(tmp_path / "o" / "checkpoint.keras")
    assert isinstance(model.backbone, keras_hub.models.ResNetBackbone)
