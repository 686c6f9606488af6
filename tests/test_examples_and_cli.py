"""Examples run in their smoke setting; the command line works and fails
cleanly."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import BACKEND, load_script

from keras_sumix import cli

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_smoke():
    results = load_script(ROOT / "examples" / "quickstart.py").main(["--smoke"])
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
    assert "AutoMix" not in printed  # a learned mixer needs its model
    assert out.exists()
    with pytest.raises(SystemExit, match="automix is a learned mixer"):
        cli.main(["show", "automix", "--output", str(out)])


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="a script over backend-agnostic models (tested on every backend); "
    "run once, on the fastest backend on CPU",
)
def test_demo_quick_trains_and_reports(tmp_path, capsys):
    from keras_sumix import demo

    assert cli.main(["demo", "--quick", "--quiet", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    # The printed table is `format_table` of what was written.
    assert demo.format_table(results) in printed
    assert results["seeds"] == list(demo.QUICK_SEEDS) and results["mixer"] == "cutmix"
    names = list(demo.METHODS)
    assert (
        list(results["methods"])
        == names
        == [
            "MCE (MixupModel)",
            "SUMix, authors' formula",
            'SUMix, variant="recommended"',
        ]
    )
    for name in names:
        assert f"| {name} | " in printed
    # One study record per method and seed, all with the demo's settings.
    runs = results["runs"]
    assert len(runs) == len(names) * len(results["seeds"])
    assert len({r["key"] for r in runs}) == len(runs)
    assert {r["signature"] for r in runs} == {demo.demo_config(quick=True).signature()}
    assert all(r["epochs_run"] == results["config"]["epochs"] == 2 for r in runs)
    # The last method is the recommended variant, through its name.
    recommended = results["methods"]['SUMix, variant="recommended"']
    assert recommended["cell"].startswith("embedded|cutmix|recommended|b")
    by_method = {
        name: {r["seed"]: r for r in runs if r["cell"] == row["cell"]}
        for name, row in results["methods"].items()
    }
    mce = by_method["MCE (MixupModel)"]
    for name, row in results["methods"].items():
        top1 = [by_method[name][s]["final_top1"] for s in results["seeds"]]
        assert row["top1"]["values"] == pytest.approx(top1)
        assert row["top1"]["n"] == 2 and all(0.0 <= v <= 1.0 for v in top1)
        assert row["top1"]["mean"] == pytest.approx(np.mean(top1))
        assert row["top1"]["std"] == pytest.approx(np.std(top1, ddof=1))
        # Paired with MCE seed by seed.
        paired = [
            by_method[name][s]["final_top1"] - mce[s]["final_top1"]
            for s in results["seeds"]
        ]
        assert row["top1_vs_mce"]["values"] == pytest.approx(paired)
        for key in ("pearson", "mae"):
            assert row[key]["n"] == 2 and row[key]["std"] is not None
        assert -1.0 <= row["pearson"]["mean"] <= 1.0
        assert 0.0 <= row["mae"]["mean"] <= 1.0
        # Every method is measured on the same held-out mixes.
        assert row["mean_true_lam"]["values"] == pytest.approx(
            results["methods"]["MCE (MixupModel)"]["mean_true_lam"]["values"]
        )
        assert row["seconds"]["n"] == 2 and row["seconds"]["mean"] > 0
    # MCE trains with the area lam, which does not depend on the network:
    # its fidelity is the same for every seed, and no paired difference.
    baseline = results["methods"]["MCE (MixupModel)"]
    assert baseline["top1_vs_mce"]["values"] == [0.0, 0.0]
    assert baseline["pearson"]["std"] == pytest.approx(0.0, abs=1e-12)
    assert baseline["mean_lam"]["mean"] == pytest.approx(
        mce[0]["fidelity"]["mean_area_lam"]
    )
    assert results["total_seconds"] >= sum(r["total_seconds"] for r in runs)
    assert (tmp_path / "mixes.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_config_is_the_study_setting_with_fewer_epochs():
    from keras_sumix import demo
    from keras_sumix.study import FULL
    from keras_sumix.study.runner import evaluation_epochs

    config = demo.demo_config()
    assert config.epochs == demo.EPOCHS and config.seeds == demo.SEEDS == (0, 1, 2)
    # The data, model and optimiser are the study's; top-1 is measured once.
    for field in ("embedded_train", "embedded_test", "min_scale", "max_scale"):
        assert getattr(config, field) == getattr(FULL, field)
    assert (config.clutter, config.widths) == (FULL.clutter, FULL.widths)
    assert evaluation_epochs(config) == {demo.EPOCHS - 1}
    assert evaluation_epochs(demo.demo_config(7, [3, 5])) == {6}
    assert demo.demo_config(7, [3, 5]).seeds == (3, 5)
    quick = demo.demo_config(quick=True)
    assert quick.embedded_train < config.embedded_train and quick.seeds == (0, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [1, 1]}, "seeds"),
    ],
)
def test_demo_config_rejects_bad_settings(kwargs, match):
    from keras_sumix import demo

    with pytest.raises(ValueError, match=match):
        demo.demo_config(**kwargs)


def test_demo_run_rejects_bad_arguments_before_training(tmp_path):
    from keras_sumix import demo

    with pytest.raises(TypeError, match="config"):
        demo.run({"epochs": 1}, output_dir=tmp_path)
    with pytest.raises(ValueError, match="verbose"):
        demo.run(demo.demo_config(quick=True), output_dir=tmp_path, verbose=3)
    assert not any(tmp_path.iterdir())


def test_demo_cli_rejects_repeated_seeds(capsys):
    assert cli.main(["demo", "--quick", "--seeds", "1", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seeds" in err[0]


def test_demo_table_of_the_committed_results():
    """`format_table` (the README's demo block) reads the committed
    `benchmarks/results/demo/results.json`; an older results dict is
    refused with a ValueError."""
    from keras_sumix import demo

    results = json.loads(
        (ROOT / "benchmarks" / "results" / "demo" / "results.json").read_text()
    )
    table = demo.format_table(results).splitlines()
    header = "| method | test top-1 % | top-1 vs MCE (paired), points |"
    assert table[2].startswith(header)
    rows = table[4:]
    assert [row.split(" | ")[0] for row in rows] == [
        f"| {name}" for name in demo.METHODS
    ]
    assert rows[0].split(" | ")[2] == "—" and all(" ± " in row for row in rows)
    assert f"seeds {', '.join(map(str, results['seeds']))}" in table[0]
    old = {"backend": "tensorflow", "config": {}, "methods": {"MCE": {"top1": 1.0}}}
    with pytest.raises(ValueError, match="results"):
        demo.format_table(old)
    with pytest.raises(ValueError, match="results"):
        demo.format_table([])


def test_bad_arguments_give_one_line(capsys):
    assert cli.main(["show", "cutmix", "--alpha", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "alpha" in err[0]
    assert cli.main(["show", "warpmix"]) == 2
    assert "Unknown mixer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["show", "cutmix", "--batch", "0"])


def _first_example(path: Path) -> str:
    text = path.read_text()
    start = text.index("```python\n") + len("```python\n")
    return text[start : text.index("```", start)]


def test_first_example_is_the_same_in_readme_and_docs():
    readme = _first_example(ROOT / "README.md")
    docs = _first_example(ROOT / "docs" / "getting-started.md")
    assert readme == docs
    assert 'variant="recommended"' in readme


@pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="under jax and torch the wheel tests run it, in environments "
    "without TensorFlow (tests/test_wheel.py)",
)
def test_readme_first_example_runs():
    namespace: dict = {}
    exec(compile(_first_example(ROOT / "README.md"), "README.md", "exec"), namespace)
    lam = namespace["history"].history["lam_sumix"]
    assert len(lam) == 3 and all(0.0 <= v <= 1.0 for v in lam), lam


def _parser_actions(parser):
    """Every option and positional of `parser` and of its sub-commands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for prog, sub_action in _parser_actions(sub):
                    yield f"{name} {prog}".strip(), sub_action
        yield "", action


def test_version_and_help_on_every_option(capsys):
    from keras_sumix import __version__

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"keras-sumix {__version__}"
    missing = [
        f"{command} {'/'.join(action.option_strings) or action.dest}"
        for command, action in _parser_actions(cli.build_parser())
        if not (action.help or "").strip()
    ]
    assert not missing, missing


def test_mixer_names_in_any_case():
    parse = cli.build_parser().parse_args
    assert parse(["train", "--mixer", "CutMix"]).mixer == "cutmix"
    assert parse(["train", "--mixer", "FMIX"]).mixer == "fmix"
    with pytest.raises(SystemExit):
        parse(["train", "--mixer", "WarpMix"])


@pytest.mark.parametrize(
    "error",
    [ImportError("needs `x`"), ValueError("bad `x`"), FileNotFoundError("no `x`")],
)
def test_user_errors_give_one_line_others_their_traceback(monkeypatch, capsys, error):
    def fail(args):
        raise error

    monkeypatch.setattr(cli, "_show", fail)
    assert cli.main(["show"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"keras-sumix show: error: {error}"]
    monkeypatch.setattr(cli, "_show", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        cli.main(["show"])


def _python(code: str, backend: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def test_cli_without_tensorflow_or_matplotlib_says_what_to_install(tmp_path):
    """What a `[jax]` or `[torch]` install sees (TensorFlow and matplotlib
    simulated missing): one line naming the extra, exit code 2, nothing
    written."""
    code = """if True:
        import importlib.abc, importlib.machinery, sys

        class Missing(importlib.abc.MetaPathFinder, importlib.abc.Loader):
            # Importing them fails as if not installed, and leaves nothing in
            # sys.modules (Keras and torch look there, or at find_spec).
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "matplotlib"):
                    return importlib.machinery.ModuleSpec(name, self)

            def create_module(self, spec):
                raise ModuleNotFoundError(f"No module named {spec.name!r}")

            def exec_module(self, module):
                pass

        sys.meta_path.insert(0, Missing())
        from keras_sumix import cli
        print(cli.main(["train", "--epochs", "1", "--output-dir", "run"]))
        print(cli.main(["show", "cutmix", "--output", "grid.png"]))
    """
    backend = "jax" if BACKEND == "tensorflow" else BACKEND  # Keras needs TF there
    result = _python(code, backend, tmp_path)
    assert result.stdout.split() == ["2", "2"], result.stdout + result.stderr
    err = result.stderr.strip().splitlines()
    assert len(err) == 2, result.stderr
    assert err[0].startswith("keras-sumix train: error:")
    assert "pip install 'keras-sumix[tensorflow]'" in err[0]
    assert err[1].startswith("keras-sumix show: error:")
    assert "pip install 'keras-sumix[viz]'" in err[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_keras_file_loads_once_keras_sumix_is_imported(tmp_path):
    """`keras.saving.load_model` of a saved SUMixModel without `import
    keras_sumix` fails with Keras's message naming the class (what
    docs/models.md explains); after the import it loads."""
    import keras_sumix

    backbone = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(2, 3),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    model = keras_sumix.SUMixModel(backbone, 3, keras_sumix.layers.CutMix(seed=0))
    model(np.zeros((1, 8, 8, 3), "float32"))
    model.save(tmp_path / "model.keras")
    code = """if True:
        import keras
        try:
            keras.saving.load_model("model.keras")
        except TypeError as error:
            print("without:", str(error)[:80])
        import keras_sumix
        model = keras.saving.load_model("model.keras")
        print("with:", type(model).__name__)
    """
    result = _python(code, BACKEND, tmp_path)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    assert lines[0].startswith("without: Could not locate class 'SUMixModel'")
    assert lines[1] == "with: SUMixModel"
