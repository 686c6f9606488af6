"""The benchmark scripts run (smoke settings) and write their reports.

Run once, the scripts under the JAX backend: they are scripts, not
properties of a backend (step_overhead starts its own per-backend workers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BACKEND

ROOT = Path(__file__).resolve().parent.parent
# Run once (the scripts run under JAX whatever the suite's backend), in the
# TensorFlow run, which `make test` runs alongside the (longer) JAX one.
pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="run once, in the TensorFlow run"
)


def _run(*args: str) -> None:
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_mixers_benchmark_quick(tmp_path):
    out = tmp_path / "mixers.json"
    # The jitted entries are covered by test_layers (compiled functions).
    _run("benchmarks/mixers.py", "--quick", "--no-jit", "--output", str(out))
    report = json.loads(out.read_text())
    assert report and out.with_suffix(".md").exists()


def test_step_overhead_quick(tmp_path):
    out = tmp_path / "step.json"
    _run(
        "benchmarks/step_overhead.py",
        "--quick",
        "--backends",
        "jax",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--output",
        str(out),
    )
    report = json.loads(out.read_text())
    (row,) = report["backends"]
    assert row["backend"] == "jax"
    assert set(row["ratio_to_mce"]) == {"mce", "sumix", "sumix_fast"}
    assert all(v > 0 for v in row["seconds_per_step"].values())
