"""Examples run in their smoke setting; the command line works and fails
cleanly."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_sumix import cli

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_smoke():
    results = _load(ROOT / "examples" / "quickstart.py").main(["--smoke"])
    assert set(results) == {"MCE", "SUMix"}
    assert all(0.0 <= v <= 1.0 for v in results.values())


def test_show_writes_png_and_prints_lams(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert (
        cli.main(["show", "cutmix", "fmix", "--batch", "4", "--output", str(out)]) == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = capsys.readouterr().out.splitlines()
    cut = next(line for line in lines if line.startswith("CutMix"))
    lams = np.array([float(v) for v in cut.split()[1:]])
    assert lams.shape == (4,) and np.all((lams >= 0) & (lams <= 1))


def test_show_defaults_to_every_mixer(tmp_path, capsys):
    out = tmp_path / "all.png"
    assert cli.main(["show", "--batch", "3", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("MixUp", "CutMix", "FMix", "SaliencyMix", "ResizeMix"):
        assert name in printed
    assert out.exists()


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="a script over backend-agnostic models (tested on every backend); "
    "run once, on the fastest backend on CPU",
)
def test_demo_quick_trains_and_reports(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--quiet", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| method | test top-1 |" in printed
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["methods"]) == [
        "MCE (MixupModel)",
        "SUMix, authors' formula",
        "SUMix, distance mode (per sample)",
    ]
    for row in results["methods"].values():
        assert 0.0 <= row["top1"] <= 1.0
        assert -1.0 <= row["pearson"] <= 1.0 and 0.0 <= row["mae"] <= 1.0
    assert (tmp_path / "mixes.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_arguments_give_one_line(capsys):
    assert cli.main(["show", "cutmix", "--alpha", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "alpha" in err[0]
    assert cli.main(["show", "warpmix"]) == 2
    assert "Unknown mixer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["show", "cutmix", "--batch", "0"])
