"""Long runs (slow; `make test` runs them once, under JAX): the SUMix loss
stays finite and the corrected lam in [0, 1] over a thousand steps at
batch size 2 (where lam's normalisation is most fragile) and at batch size
256 (where `semantic_scale = N` saturates `exp(-N x)`), in every
`lambda_mode` x `reduction`.

The checks are those of `benchmarks/long_runs.py` (whose full run, 2,000
steps at both batch sizes, wrote `benchmarks/results/long_runs.json`); here
batch 2 runs 1,000 steps and batch 256 runs 100, to keep the test near
30 s. The median step times are printed (`pytest -rP` shows them) and
written to a JSON in the test's temporary folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BACKEND, load_script

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BACKEND != "jax", reason="run once, under JAX"),
]
#: Steps per batch size (the full benchmark runs 2,000 at both).
STEPS = {2: 1000, 256: 100}


def _benchmark():
    return load_script(ROOT / "benchmarks" / "long_runs.py")


def test_long_runs_stay_finite_with_lam_in_unit_interval(tmp_path):
    bench = _benchmark()
    reports = [bench.run(steps, (batch,)) for batch, steps in STEPS.items()]
    report = {**reports[0], "runs": [r for rep in reports for r in rep["runs"]]}
    report["settings"]["steps"] = STEPS
    (tmp_path / "long_runs.json").write_text(json.dumps(report, indent=1))
    print(bench.markdown(report))
    assert len(report["runs"]) == 2 * 3 * 2
    for run in report["runs"]:
        name = f"batch {run['batch_size']}, {run['lambda_mode']}/{run['reduction']}"
        assert run["steps"] == STEPS[run["batch_size"]], name
        assert run["finite"], (name, "non-finite loss", run["first_nonfinite_step"])
        assert 0.0 <= run["lam_min"] <= run["lam_max"] <= 1.0, (name, run)
        assert run["median_step_ms"] > 0
