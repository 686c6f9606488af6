"""The benchmark scripts run (smoke settings) and write their reports.

Run once: they are scripts, not properties of a backend. The step benchmarks
run under torch, whose eager steps cost no compilation (the smoke checks the
script's structure, not its figures), with their one-backend workers in this
process (`in_process`): one of them (step_overhead.py, with its memory
workers) starts its workers as a real run does, in fresh processes, which
tests what they share. mixers.py runs under JAX (its compiled-step section),
xla_step.py under TensorFlow (XLA), device_check.py under JAX and torch (its
workers)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import BACKEND, load_script, run_once

import keras_sumix

ROOT = Path(__file__).resolve().parent.parent
# Run once: in the TensorFlow run (what needs TensorFlow), in the torch run
# (the step benchmarks, their workers in this process), or for the two
# longest (a minute or more each) with the JAX run's slow tests, so that
# `make test`'s two lanes take about the same time.
in_the_tensorflow_run = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="run once, in the TensorFlow run"
)
in_the_torch_run = run_once("torch", "a benchmark script, its workers in this process")


def in_the_slow_run(test):
    """Run `test` once, with the slow tests (under JAX)."""
    test = pytest.mark.skipif(BACKEND != "jax", reason="run once, with the slow ones")(
        test
    )
    return pytest.mark.slow(test)


def _run(*args: str, backend: str = "torch") -> None:
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


MIXER_ENTRIES = {
    "identity",
    "keras_cutmix",
    "keras_mixup",
    "keras_cv_cutmix",
    "keras_cv_mixup",
    "keras_cv_fouriermix",
    "sumix_mixup",
    "sumix_cutmix",
    "sumix_fmix",
    "sumix_saliencymix",
    "sumix_resizemix",
}


@in_the_slow_run
def test_mixers_benchmark_quick(tmp_path):
    out = tmp_path / "mixers.json"
    # One tf.data section (the other three differ only in the order of repeat
    # and batch, or the labels) with every layer, and the compiled step (JAX).
    sections = "batch_repeat_int,step"
    argv = ["--quick", "--sections", sections, "--output", str(out)]
    _run("benchmarks/mixers.py", *argv, backend="jax")
    report = json.loads(out.read_text())
    assert report["format"] == 3 and report["settings"]["quick"]
    sections = report["sections"]
    pipelines = {"batch_repeat_int"}
    assert set(sections) == {*pipelines, "step"}
    for key in pipelines:
        entries = sections[key]["entries"]
        assert {e["key"] for e in entries} == MIXER_ENTRIES, key
        assert all(e["median_img_s"] > 0 and e["loadavg_per_timing"] for e in entries)
        assert sections[key]["settings"]["prefetch"] == 2
    assert sections["batch_repeat_int"]["settings"]["labels"] == "integer"
    assert ".batch(B).repeat()" in sections["batch_repeat_int"]["pipeline"]
    (block,) = sections["step"]["backends"]
    assert block["backend"] == "jax"
    rows = {row["mixer"]: row for row in block["rows"]}
    assert set(rows) == {"none", "MixUp", "CutMix", "FMix", "SaliencyMix", "ResizeMix"}
    assert all(row["seconds_per_step"] > 0 for row in rows.values())
    assert all(rows[k]["mix_alone_seconds"] > 0 for k in rows if k != "none")
    judged = {(g["section"], g["entry"]) for g in report["goals"]}
    assert ("batch_repeat_int", "sumix_cutmix") in judged
    assert ("step", "FMix") in judged
    markdown = out.with_suffix(".md").read_text()
    assert "timed alone" in markdown and "compiled train step" in markdown


def in_process(script: str, *argv: str) -> dict:
    """`main(argv)` of `script`, its one-backend workers run in this process
    on this process's backend (a real run starts each in a fresh process:
    `test_step_overhead_with_its_workers_in_fresh_processes`)."""
    module = load_script(ROOT / script)

    def worker(backend: str, flags: list[str], path: str = "") -> dict:
        assert backend == BACKEND, (backend, BACKEND)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert module.main(flags) is None  # a worker prints, returns None
        return json.loads(printed.getvalue().strip().splitlines()[-1])

    module._subprocess = worker
    with contextlib.redirect_stdout(io.StringIO()):
        return module.main(list(argv))


def _quick_step(script: str, out: Path, *extra: str) -> dict:
    """Run a step benchmark in its quick setting, one step on torch, its
    workers in this process; its report (as written to `out`)."""
    args = ["--quick", "--backends", "torch", "--steps", "1", "--warmup", "1"]
    in_process(script, *args, *extra, "--output", str(out))
    return json.loads(out.read_text())


@in_the_torch_run
def test_step_overhead_quick(tmp_path):
    report = _quick_step("benchmarks/step_overhead.py", tmp_path / "step.json")
    (row,) = report["backends"]
    assert row["backend"] == "torch" and report["backbone"] == "tiny CNN"
    assert set(row["ratio_to_mce"]) == {"mce", "sumix", "sumix_fast"}
    assert all(v > 0 for v in row["seconds_per_step"].values())


@in_the_torch_run
def test_step_overhead_transformer_rows(tmp_path):
    """`--backbone swin_tiny` (its toy setting) and `--merge`."""
    out = tmp_path / "swin.json"
    report = _quick_step("benchmarks/step_overhead.py", out, "--backbone", "swin_tiny")
    assert report["backbone"] == "swin_tiny" and report["quick"] is True
    merged = tmp_path / "merged.json"
    script = "benchmarks/step_overhead.py"
    in_process(script, "--merge", str(out), str(out), "--output", str(merged))
    assert len(json.loads(merged.read_text())["backends"]) == 2
    assert "a one-layer swin_tiny toy" in merged.with_suffix(".md").read_text()


@in_the_torch_run
def test_step_overhead_with_its_workers_in_fresh_processes(tmp_path):
    """The script as run: the worker and the memory workers (one per model)
    each in a fresh process under the backend named, their JSON read back."""
    out = tmp_path / "step.json"
    argv = ["--quick", "--backends", "torch", "--memory", "--steps", "1"]
    _run("benchmarks/step_overhead.py", *argv, "--warmup", "1", "--output", str(out))
    (row,) = json.loads(out.read_text())["backends"]
    assert row["backend"] == "torch" and row["seconds_per_step"]["mce"] > 0
    memory = row["memory"]
    assert memory["mce"]["peak_rss_mb"] > memory["mce"]["rss_built_mb"] > 0
    assert memory["sumix_to_mce_peak_rss"] > 0
    assert "SUMix / MCE, peak RSS" in out.with_suffix(".md").read_text()


@in_the_torch_run
def test_puzzle_step_quick(tmp_path):
    out = tmp_path / "puzzle.json"
    (row,) = _quick_step("benchmarks/puzzle_step.py", out)["backends"]
    assert set(row["ratio_to_cutmix"]) == {
        "cutmix_mce",
        "puzzle_mce",
        "puzzle_sumix",
        "puzzle_sumix_raw",
    }
    assert row["ratio_to_cutmix"]["cutmix_mce"] == 1.0
    assert "goal <= 2.3" in out.with_suffix(".md").read_text()


@in_the_torch_run
def test_automix_step_quick(tmp_path):
    out = tmp_path / "automix.json"
    (row,) = _quick_step("benchmarks/automix_step.py", out)["backends"]
    assert set(row["ratio_to_cutmix"]) == {"cutmix_mce", "automix_mce", "automix_sumix"}
    assert row["ratio_to_cutmix"]["cutmix_mce"] == 1.0
    assert "AutoMix MCE / CutMix" in out.with_suffix(".md").read_text()


@in_the_torch_run
def test_method_step_quick(tmp_path):
    out = tmp_path / "method.json"
    report = _quick_step("benchmarks/method_step.py", out)
    (row,) = report["backends"]
    timed, skipped = set(row["seconds_per_step"]), set(row["skipped"])
    assert timed | skipped == set(report["variants"]) and not timed & skipped
    assert {"cutmix_mce", "decouple_mce", "decouple_sumix"} <= timed
    assert row["ratio_to_cutmix"]["cutmix_mce"] == 1.0
    assert "| MixupModel + CutMix + DecoupleMix | CNN |" in (
        out.with_suffix(".md").read_text()
    )
    script = load_script(ROOT / "benchmarks" / "method_step.py")
    # A method whose code is not in the checkout is reported as skipped.
    script.VARIANTS["fake"] = script.Variant("Fake", "cnn", requires=("keras", "Nope"))
    assert script.unavailable("fake") == "keras.Nope is not importable"
    fake = {**report, "variants": {**report["variants"], "fake": "Fake"}}
    fake["backends"] = [{**row, "skipped": {"fake": "keras.Nope is not importable"}}]
    assert "| Fake | CNN | skipped | - |" in script._markdown(fake)
    # `--merge`: single-backend reports of one setting, one report.
    merged = tmp_path / "merged.json"
    script.main(["--merge", str(out), str(out), "--output", str(merged)])
    assert len(json.loads(merged.read_text())["backends"]) == 2
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**report, "batch": report["batch"] + 1}))
    with pytest.raises(SystemExit, match="differ in"):
        script.main(["--merge", str(out), str(other), "--output", str(merged)])


@in_the_torch_run
def test_regularizer_gradients_quick(tmp_path):
    out = tmp_path / "regularizer.json"
    in_process("benchmarks/regularizer_gradients.py", "--quick", "--output", str(out))
    report = json.loads(out.read_text())
    assert report["settings"]["quick"] and report["machine"]["backend"] == "torch"
    forms = {form["form"]: form for form in report["forms"]}
    assert set(forms) == {"exp", "negative", "exp_t0.1"}
    for form in forms.values():
        for when in ("initial", "trained"):
            measured = form[when]
            assert measured["batches"] == 1
            # "both" sends gradient to the weights through the uncertainty.
            assert measured["reg_grad_all"] > 0 and measured["mix_grad_all"] > 0
            assert measured["ratio_all"] == pytest.approx(
                measured["reg_grad_all"] / measured["mix_grad_all"]
            )
        assert 0 <= form["test_top1"] <= 1
    assert "| negative | trained |" in out.with_suffix(".md").read_text()


@in_the_tensorflow_run
def test_mixers_benchmark_compiles_a_mix_alone_with_xla():
    # The step section's "mix alone" under TensorFlow (the quick smoke runs
    # the step under JAX), on MixUp, whose mask output is None.
    script = load_script(ROOT / "benchmarks" / "mixers.py")
    rng = np.random.default_rng(0)
    images = keras.ops.convert_to_tensor(rng.random((4, 8, 8, 3), dtype="float32"))
    call = script._compiled_mix(keras_sumix.layers.MixUp(seed=0), images)
    call()
    call()


@in_the_tensorflow_run
def test_xla_step_quick(tmp_path):
    out = tmp_path / "xla.json"
    # TensorFlow only: torch.compile's first step alone takes a minute here
    # (test_models checks that the compiled torch step trains as eagerly).
    _run(
        "benchmarks/xla_step.py",
        "--quick",
        "--backends",
        "tensorflow",
        "--output",
        str(out),
    )
    (block,) = json.loads(out.read_text())["backends"]
    assert block["backend"] == "tensorflow" and block["compiler"] == "XLA"
    assert {row["model"] for row in block["rows"]} == {"keras_ce", "mce", "sumix"}
    for row in block["rows"]:
        assert all(v > 0 for v in row["seconds_per_step"].values())
        assert row["speedup"] > 0
    assert "| tensorflow | XLA | sumix |" in out.with_suffix(".md").read_text()


@in_the_slow_run
def test_device_check_smoke_without_tensorflow(tmp_path):
    # The GPU machine it is meant for has JAX and torch but no TensorFlow:
    # block the import, as if it were not installed. `--budget 0`: no time
    # limit, so the whole plan runs however busy this machine is (what a
    # budget lets run is tested apart, below, without depending on speed).
    blocked = tmp_path / "no_tf" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('no tensorflow here')\n")
    out = tmp_path / "device_check.json"
    env = {**os.environ, "PYTHONPATH": str(blocked.parent)}
    env.pop("KERAS_BACKEND", None)  # the script sets it per worker
    command = ["benchmarks/device_check.py", "--smoke", "--budget", "0"]
    done = subprocess.run(
        [sys.executable, *command, "--output", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "smoke" and report["ran_on_gpu"] is False
    assert report["budget_seconds"] is None
    blocks = {b["backend"]: b for b in report["backends"]}
    assert blocks["tensorflow"]["status"] == "unavailable"
    planned = {tuple(item) for item in report["plan"]}
    assert ("resnet50", "float32") in planned and ("mixers", "float32") in planned
    for name in ("jax", "torch"):
        block = blocks[name]
        assert block["status"] == "done", block
        assert block["skipped"] == []
        assert block["device"]["platform"] == "cpu"
        groups = block["groups"]
        assert not [g for g in groups if "error" in g], groups
        steps = [g for g in groups if g["kind"] == "sumix"]
        (mixers,) = [g for g in groups if g["kind"] == "mixers"]
        ran = {(g["network"], g["precision"]) for g in steps}
        assert ran | {("mixers", "float32")} == planned
        for g in steps:
            assert set(g["seconds_per_step"]) == {"mce", "sumix", "sumix_fast"}
            assert g["ratio_to_mce"]["mce"] == 1.0 and g["ratio_to_mce"]["sumix"] > 0
        names = {row["mixer"] for row in mixers["rows"]}
        assert names == {
            "MixUp",
            "CutMix",
            "FMix",
            "SaliencyMix",
            "ResizeMix",
            "RandomChoice",
            "keras.layers.CutMix",
            "keras.layers.MixUp",
        }
        assert all(row["images_per_second"] > 0 for row in mixers["rows"])
        assert all(row["share_of_mce_step"] is not None for row in mixers["rows"])
    table = out.with_suffix(".md").read_text()
    assert "ran on **CPU" in table and "No GPU" in table
    assert "PASS" not in table and "FAIL" not in table  # not judged on a CPU


@in_the_tensorflow_run
def test_device_check_worker_stopped_at_the_budget_keeps_its_groups(
    tmp_path, monkeypatch
):
    """A worker stopped at the time limit: its finished groups are kept and the
    group it was running is reported skipped. The stop is simulated (no
    dependence on how fast this machine is)."""
    module = load_script(ROOT / "benchmarks" / "device_check.py")
    finished = {"kind": "sumix", "network": "resnet50", "precision": "float32"}

    def stopped_run(command, **kwargs):
        out = Path(command[command.index("--out") + 1])
        partial = {"status": "running", "groups": [finished], "skipped": []}
        out.write_text(json.dumps({**partial, "running": "mixers float32"}))
        assert kwargs["timeout"] == 11.0  # the share plus the grace
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(module.subprocess, "run", stopped_run)
    args = module.argparse.Namespace(smoke=True, grace=10.0)
    result = module._run_backend("jax", args, seconds=1.0, hard_end=1e18)
    assert result["status"] == "partial"
    assert result["groups"] == [finished]
    assert result["skipped"] == ["mixers float32: stopped at the time budget"]
    assert "running" not in result


@in_the_tensorflow_run
def test_device_check_table_judges_goals_on_a_gpu_only():
    module = load_script(ROOT / "benchmarks" / "device_check.py")
    seconds = {"mce": 0.10, "sumix": 0.21, "sumix_fast": 0.13}
    group = {
        "kind": "sumix",
        "network": "resnet50",
        "precision": "float32",
        "size": 224,
        "batch": 64,
        "seconds_per_step": seconds,
        "ratio_to_mce": {k: v / 0.10 for k, v in seconds.items()},
        "goals": {"sumix": False, "sumix_fast": True},
        "peak_memory": {
            "mce": {"bytes": 2 * 2**30, "exact": True},
            "sumix_fast": {"bytes": 3 * 2**30, "exact": False},
            "sumix": {"bytes": 4 * 2**30, "exact": True},
        },
    }
    mixers = {
        "kind": "mixers",
        "size": 224,
        "batch": 128,
        "rows": [
            {
                "mixer": "CutMix",
                "mode": "xla",
                "images_per_second": 1e5,
                "x_keras_cutmix": 2.0,
                "x_keras_mixup": 1.5,
                "mixing_seconds": 1e-3,
                "share_of_mce_step": 0.005,
                "goal_share": True,
            }
        ],
    }
    device = {"platform": "gpu", "name": "NVIDIA H200", "library": "jax"}
    report = {
        "mode": "full",
        "date": "today",
        "wall_seconds": 400.0,
        "backends": [
            {
                "backend": "jax",
                "status": "done",
                "device": device,
                "groups": [group, mixers],
                "skipped": [],
            },
            {
                "backend": "tensorflow",
                "status": "unavailable",
                "reason": "not installed",
            },
        ],
    }
    table = module._markdown(report)
    assert "ran on **GPU: NVIDIA H200**" in table and "No GPU" not in table
    assert "2.10x FAIL" in table and "1.30x PASS" in table
    assert "| jax | 2,048 MiB | 4,096 MiB | <= 3,072 MiB | 2.00x |" in table
    assert "0.50% PASS" in table
    assert "tensorflow**: unavailable (not installed)" in table
