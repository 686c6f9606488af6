"""Examples run in their smoke setting; the command line works and fails
cleanly."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import BACKEND, load_script, run_once
from wheel_check import FIRST_EXAMPLE_DATA, first_example, smaller_first_example

from keras_sumix import cli

ROOT = Path(__file__).resolve().parent.parent


# Run once, under torch (eager: no compilation).
host_side = run_once("torch", "command line and scripts over backend-agnostic models")


@host_side
def test_quickstart_smoke():
    results = load_script(ROOT / "examples" / "quickstart.py").main(["--smoke"])
    assert set(results) == {"MCE", "SUMix"}
    assert all(0.0 <= v <= 1.0 for v in results.values())


@host_side
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


@host_side
def test_show_defaults_to_every_mixer(tmp_path, capsys):
    out = tmp_path / "all.png"
    assert cli.main(["show", "--batch", "3", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("MixUp", "CutMix", "FMix", "SaliencyMix", "ResizeMix"):
        assert name in printed
    assert "AutoMix" not in printed  # a learned mixer needs its model
    assert out.exists()
    assert cli.main(["show", "automix", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "automix is a learned mixer" in err[0]
    assert "docs/" not in err[0]  # no file the user does not have


def test_bad_arguments_give_one_line(capsys):
    assert cli.main(["show", "cutmix", "--alpha", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "alpha" in err[0]
    assert cli.main(["show", "warpmix"]) == 2
    assert "Unknown mixer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["show", "cutmix", "--batch", "0"])


def test_first_example_is_the_same_in_readme_and_docs():
    readme = first_example(ROOT / "README.md")
    docs = first_example(ROOT / "docs" / "getting-started.md")
    assert readme == docs
    assert 'variant="recommended"' in readme


@pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="under jax and torch the wheel tests run it, in environments "
    "without TensorFlow (tests/test_wheel.py; torch's on the whole data)",
)
def test_readme_first_example_runs():
    code = first_example(ROOT / "README.md")
    assert FIRST_EXAMPLE_DATA in code
    code = smaller_first_example(code)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
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


def _missing_package() -> ImportError:
    """The ImportError `keras_sumix._optional.optional_import` raises: from
    the failed import, naming the extra."""
    error = ImportError("needs `x`: pip install 'keras-sumix[x]'")
    error.__cause__ = ModuleNotFoundError("No module named 'x'")
    return error


def _raising(error: BaseException):
    def fail(*args, **kwargs):
        raise error

    return fail


@pytest.mark.parametrize(
    "error",
    [
        _missing_package(),
        FileNotFoundError("no `x`"),
        FileExistsError("a run in the way"),
        ConnectionError("offline"),
    ],
    ids=type,
)
def test_environment_errors_give_one_line_whenever_raised(monkeypatch, capsys, error):
    # Raised while preparing, then while running.
    for prepare in (_raising(error), lambda args: _raising(error)):
        monkeypatch.setattr(cli, "_prepare_show", prepare)
        assert cli.main(["show"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"keras-sumix show: error: {error}"]


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad `x` deep inside"),
        TypeError("bad `x` deep inside"),
        ImportError("cannot import name 'x' from 'keras_sumix.y'"),  # no cause
        ZeroDivisionError("division by zero"),
    ],
    ids=type,
)
def test_a_bug_while_running_keeps_its_traceback(monkeypatch, error):
    """Only preparing (validating what the user typed) turns a ValueError or
    TypeError into a user error; raised by the work itself, it is a bug."""
    monkeypatch.setattr(cli, "_prepare_show", lambda args: _raising(error))
    with pytest.raises(type(error), match=re.escape(str(error))):
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


@host_side
def test_a_bug_exits_1_with_its_traceback_a_user_error_2_with_one_line(tmp_path):
    """As the console script runs: a bug's traceback and exit code 1, a bad
    value's one line and exit code 2."""
    code = """if True:
        import sys
        from keras_sumix import cli

        def bug(*args):
            raise ValueError("a bug")

        cli._prepare_show = lambda args: bug
        sys.exit(cli.main(ARGV))
    """
    backend = "jax" if BACKEND == "tensorflow" else BACKEND  # no TF logs
    bug = _python(code.replace("ARGV", '["show"]'), backend, tmp_path)
    assert bug.returncode == 1, bug.stderr
    assert "Traceback" in bug.stderr and "ValueError: a bug" in bug.stderr
    argv = '["train", "--epochs", "0", "--output-dir", "run"]'
    user = _python(code.replace("ARGV", argv), backend, tmp_path)
    assert user.returncode == 2, user.stderr
    err = user.stderr.strip().splitlines()
    assert err == [
        "keras-sumix train: error: `epochs` must be >= 1. Received: epochs=0."
    ]
    assert list(tmp_path.iterdir()) == []  # refused before anything is written


@host_side
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


@host_side
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
