"""`keras-sumix evaluate RUN_DIR`: a trained run's robustness report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_once

from keras_sumix import cli, training
from keras_sumix.evaluation import GENERATED_CORRUPTIONS
from keras_sumix.training import (
    TrainConfig,
    load_run_config,
    load_test_images,
    occluded_split,
    train,
)

pytestmark = run_once(
    "torch",
    "the evaluate command: host-side logic over backend-agnostic models "
    "(tests/test_evaluation.py checks the protocols on every backend)",
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(TrainConfig(limit=48, epochs=1, batch_size=16, output_dir=str(out)), 0)
    return out


def _in_unit(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def test_evaluate_writes_evaluation_json(run_dir, capsys):
    assert cli.main(["evaluate", str(run_dir), "--limit", "32"]) == 0
    printed = capsys.readouterr().out
    assert "clean top-1" in printed and "evaluation.json" in printed
    results = json.loads((run_dir / "evaluation.json").read_text())
    assert {
        "clean_top1",
        "occlusion",
        "fgsm",
        "corruption",
        "lam_fidelity",
        "num_images",
    } <= set(results)
    # limit=48 -> a 16-image test split; --limit 32 keeps all of it.
    assert results["num_images"] == 16
    assert _in_unit(results["clean_top1"])
    occlusion = results["occlusion"]["top1"]
    assert list(occlusion) == [str(i / 10) for i in range(10)]
    assert all(_in_unit(v) for v in occlusion.values())
    assert occlusion["0.0"] == results["clean_top1"]
    assert results["fgsm"]["epsilon"] == pytest.approx(8 / 255)
    assert _in_unit(results["fgsm"]["error"])
    corruption = results["corruption"]
    assert corruption["corruptions"] == list(GENERATED_CORRUPTIONS)
    assert "not CIFAR-100-C" in corruption["source"]
    assert _in_unit(corruption["mean_top1"])
    fidelity = results["lam_fidelity"]
    assert fidelity["num_samples"] >= 2
    assert 0.0 <= fidelity["mae"] <= 1.0
    assert fidelity["pearson"] is None or -1.0 <= fidelity["pearson"] <= 1.0
    for key in ("mean_true_lam", "mean_lam", "mean_area_lam"):
        assert _in_unit(fidelity[key])


def test_evaluate_test_images_follow_the_run_and_limit(run_dir):
    config = load_run_config(run_dir)
    assert config == TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    images, labels = load_test_images(config, 4)
    assert images.shape == (4, 32, 32, 3) and labels.shape == (4,)
    # Un-normalised: the protocols work in [0, 1] pixel space.
    assert images.min() >= 0.0 and images.max() <= 1.0
    test = occluded_split(config, "test")
    np.testing.assert_allclose(images, test.images[:4], atol=1e-6)
    np.testing.assert_array_equal(labels, test.labels[:4])


def test_evaluate_bad_run_dir_gives_one_line(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RUN_DIR" in err[0]
    (tmp_path / "config.json").write_text("{}")
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.keras" in err[0]


def test_evaluate_run_is_the_library_s(run_dir):
    """The command only parses: `keras_sumix.training.evaluate_run` does the
    work, with the same results."""
    results = training.evaluate_run(run_dir, limit=4, batch_size=4)
    assert results == json.loads((run_dir / "evaluation.json").read_text())
    assert results["num_images"] == 4
    with pytest.raises(ValueError, match="limit"):
        training.evaluate_run(run_dir, limit=0)


def test_evaluate_a_bug_keeps_its_traceback_a_bad_run_dir_does_not(
    run_dir, tmp_path, monkeypatch, capsys
):
    def bug(*args, **kwargs):
        raise ValueError("a bug in the evaluation")

    monkeypatch.setattr(training, "evaluate_run", bug)
    with pytest.raises(ValueError, match="a bug in the evaluation"):
        cli.main(["evaluate", str(run_dir)])
    (tmp_path / "config.json").write_text('{"epochs": "many"}')
    (tmp_path / "checkpoint.keras").write_bytes(b"weights")
    assert cli.main(["evaluate", str(tmp_path)]) == 2  # checked before the run
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "epochs" in err[0], err
