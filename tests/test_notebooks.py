"""The tutorial notebooks execute, in their smoke setting, under torch."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BACKEND

NOTEBOOKS = sorted(
    (Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb")
)
# Run once, in the torch run (the kernels use torch whatever the suite's
# backend): eager steps, no compilation, for a smoke setting of a few steps;
# `make test` runs the TensorFlow then torch runs alongside the JAX one (with
# its slow and wheel tests), and this keeps the two lanes about as long.
pytestmark = pytest.mark.skipif(BACKEND != "torch", reason="run once, in the torch run")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("KERAS_SUMIX_SMOKE", "1")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
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
    figures = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert figures  # every tutorial shows at least one picture


def test_there_are_notebooks():
    assert NOTEBOOKS
