"""Every Python block of the README and the docs runs as pasted.

A page's blocks run in order in one fresh interpreter, as a reader pastes
them one after another into one session (a later block may use what an
earlier one defined), from a scratch folder. A block that cannot run here
(it needs a download, a GPU, several hosts) is preceded by the line
`<!-- fragment: REASON -->`, and the reason must be given.

Run once, under torch (in the torch run of `make test`): eager, so a page's
small models train without minutes of compilation. The wheel tests run the
README's first example under JAX and torch (torch's on its whole data), and
tests/test_examples_and_cli.py under TensorFlow. A page whose code is
written for another backend says which in `BACKEND_OF`, and runs in that
backend's run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BACKEND, run_once
from wheel_check import smaller_first_example

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(
    r"(?:^<!-- fragment:(?P<reason>[^\n]*?)-->\n)?^```python\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)

# Pages whose code needs one backend: layers.md's `jax.jit` example and
# scaling.md's `keras.distribution` (JAX only). Each page runs once, in the
# lane of the backend its code runs on (the JAX lane's compilation cache
# then serves its subprocess too).
BACKEND_OF = {"layers.md": "jax", "scaling.md": "jax"}
in_the_torch_run = run_once("torch", "the pages' parser")


def blocks(page: Path) -> list[tuple[str | None, str]]:
    """`(fragment reason or None, code)` of every ```python block of `page`."""
    return [
        (m["reason"] if m["reason"] is None else m["reason"].strip(), m["code"])
        for m in _BLOCK.finditer(page.read_text())
    ]


@in_the_torch_run
def test_blocks_are_found_and_fragments_say_why():
    found = {page.name: blocks(page) for page in PAGES}
    assert found["README.md"] and found["layers.md"]
    for name, page_blocks in found.items():
        for reason, code in page_blocks:
            assert reason != "", f"{name}: a fragment without a reason:\n{code}"


@in_the_torch_run
def test_the_parser_reads_fragments(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n<!-- fragment: needs CUB -->\n"
        "```python\nload_cub()\n```\n```bash\nls\n```\n"
    )
    assert blocks(page) == [(None, "x = 1\n"), ("needs CUB", "load_cub()\n")]


RUNNABLE = [page for page in PAGES if any(r is None for r, _ in blocks(page))]


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: p.name)
def test_page_runs_as_pasted(page, tmp_path):
    backend = BACKEND_OF.get(page.name, "torch")
    if BACKEND != backend:
        pytest.skip(f"run once, in the {backend} run")
    script = "\n".join(
        f"# --- block {i} ---\n{code}"
        for i, (reason, code) in enumerate(blocks(page))
        if reason is None
    )
    script = smaller_first_example(script)  # the torch wheel test runs it whole
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.setdefault("MPLBACKEND", "Agg")
    # Under JAX, as in the JAX lane (Makefile): XLA compiles each program
    # once, without LLVM's costly passes; the arithmetic is the same.
    env.setdefault(
        "XLA_FLAGS",
        "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"{page.name}:\n{done.stderr[-4000:]}"
