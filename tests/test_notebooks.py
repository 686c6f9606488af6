"""The tutorial notebooks execute, in their smoke setting, under JAX."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BACKEND

NOTEBOOKS = sorted(
    (Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb")
)
# Run once: the kernels use JAX whatever the suite's backend; scheduled in the
# JAX run, which `make test` runs alongside the TensorFlow then torch runs
# (with the run-once tests of test_benchmarks and test_study there, the two
# lanes take about as long).
pytestmark = pytest.mark.skipif(BACKEND != "jax", reason="run once, in the JAX run")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("KERAS_SUMIX_SMOKE", "1")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=1800,  # a guard against a hung cell, not a time budget
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    assert all(
        cell.execution_count for cell in notebook.cells if cell.cell_type == "code"
    )


def test_there_are_notebooks():
    assert NOTEBOOKS
