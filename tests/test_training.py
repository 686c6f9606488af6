"""`keras-sumix train`, the recipes, resume, and the recipe examples in their
smoke setting (mock TFDS data and fixture trees)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import keras
import pytest
from fixtures import aircraft_tree, cub_tree

import keras_sumix as ks
from keras_sumix import cli
from keras_sumix.recipes import RECIPES
from keras_sumix.training import TrainConfig, build_backbone, train

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
    for name in RECIPES:
        TrainConfig.from_recipe(name, data_dir="/data").validate()


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


@pytest.fixture
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield
    for name in (
        "_recipe_cli",
        "cifar100_resnet18",
        "finetune_cub",
        "finetune_aircraft",
    ):
        sys.modules.pop(name, None)


def test_cifar100_example_smoke(tmp_path, examples_on_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import cifar100_resnet18

    with tfds.testing.mock_data(
        num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        results = cifar100_resnet18.main(["--smoke", "--output-dir", str(tmp_path)])
    assert results["config"]["backbone"] == "resnet18_cifar"
    assert (tmp_path / "results.json").exists()


def test_finetune_cub_example_smoke(tmp_path, examples_on_path):
    import finetune_cub

    cub_tree(tmp_path)
    argv = ["--smoke", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")]
    results = finetune_cub.main(argv)
    assert results["config"]["dataset"] == "cub" and results["epochs_run"] == 1


def test_finetune_aircraft_example_smoke(tmp_path, examples_on_path):
    import finetune_aircraft

    aircraft_tree(tmp_path)
    out = tmp_path / "o"
    argv = ["--smoke", "--data-dir", str(tmp_path), "--output-dir", str(out)]
    results = finetune_aircraft.main([*argv, "--no-sumix"])
    assert results["config"]["sumix"] is False
    assert results["config"]["backbone"] == "resnet18"
    with pytest.raises(ValueError, match="weights"):
        finetune_aircraft.main([*argv, "--weights", "imagenet"])


def test_keras_hub_preset_backbone_is_wired(tmp_path, monkeypatch):
    """`weights="hub:<preset>"` loads `keras_hub.models.Backbone.from_preset`
    (faked here: keras-hub needs a download, and its tensorflow-text
    dependency pulls a full TensorFlow build)."""
    requested = []

    def from_preset(preset):
        requested.append(preset)
        inputs = keras.Input((None, None, 3))
        return keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))  # a 4-D map

    fake = types.SimpleNamespace(
        models=types.SimpleNamespace(
            Backbone=types.SimpleNamespace(from_preset=from_preset)
        )
    )
    monkeypatch.setitem(sys.modules, "keras_hub", fake)
    config = TrainConfig(
        limit=32,
        epochs=1,
        batch_size=16,
        weights="hub:resnet_18_imagenet",
        output_dir=str(tmp_path),
    )
    assert train(config, verbose=0)["epochs_run"] == 1
    assert requested == ["resnet_18_imagenet"]


def test_keras_hub_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ImportError, match="keras-hub"):
        build_backbone(TrainConfig(weights="hub:resnet_18_imagenet"), (32, 32, 3))
