"""The package as users get it: build the sdist and wheel, check them with
twine, install the wheel into fresh virtual environments that hold only Keras
and one backend (no TensorFlow), and run `wheel_check.py` there.

Marked `wheel` (two environments are created and filled from the package
index, versions held to `requirements/lock.txt`); CI runs it once, the
Makefile's `test` target says where.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import keras_sumix

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"

pytestmark = pytest.mark.wheel

UV = Path(sys.executable).parent / "uv"
# pip's find-links folder (torch's CPU build on this machine), as the
# Makefile passes it to uv.
_LINKS = (
    os.environ.get("PIP_FIND_LINKS")
    or subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
        capture_output=True,
        text=True,
    ).stdout
)
FIND_LINKS = [arg for link in _LINKS.split() for arg in ("--find-links", link)]


def _run(*args: str | os.PathLike, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [os.fspath(a) for a in args], capture_output=True, text=True, **kwargs
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist and the wheel, built from this checkout (the build backend
    from the locked environment, no download)."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    return out


def test_build_and_twine_check(dist):
    version = keras_sumix.__version__
    wheel = dist / f"keras_sumix-{version}-py3-none-any.whl"
    sdist = dist / f"keras_sumix-{version}.tar.gz"
    assert wheel.exists() and sdist.exists(), sorted(p.name for p in dist.iterdir())
    result = _run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    assert result.stdout.count("PASSED") == 2, result.stdout
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"keras_sumix-{version}.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert f"keras_sumix-{version}.dist-info/licenses/LICENSE" in names
    # The library only: the study and the demo (`study/`), the tests and the
    # benchmarks run from a clone.
    info = f"keras_sumix-{version}.dist-info/"
    assert [n for n in names if not n.startswith(("keras_sumix/", info))] == []
    modules = {Path(n).stem for n in names} | {Path(n).parent.name for n in names}
    assert not modules & {"study", "demo"}, sorted(modules & {"study", "demo"})
    assert "Provides-Extra: study" not in metadata
    # Each backend extra pulls its backend and nothing else.
    requires = [line for line in metadata.splitlines() if "extra ==" in line]
    for extra, package in [("jax", "jax"), ("torch", "torch")]:
        mine = [r for r in requires if f'extra == "{extra}"' in r]
        assert len(mine) == 1, mine
        assert re.match(rf"Requires-Dist: {package}[<>=]", mine[0]), mine
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    for name in ["LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"]:
        assert f"keras_sumix-{version}/{name}" in members, name


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_wheel_without_tensorflow(dist, backend, tmp_path):
    """`pip install keras-sumix[BACKEND]` into an empty environment, then
    what that user does: every mixer, both models' fit / predict / .keras
    round trip, clear ImportErrors for what needs TensorFlow, and the
    README's first example."""
    env_dir = tmp_path / f"venv-{backend}"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    wheel = next(dist.glob("*.whl"))
    # uv (locked, like `make install`) resolves the wheel's extra exactly as
    # pip does, from the same index and find-links, in seconds rather than
    # minutes: pip spends most of this test resolving and unpacking.
    uv = [UV, "pip", "--quiet"]
    python_arg = ["--python", python]
    _run(*uv, "install", *python_arg, "-c", LOCK, f"{wheel}[{backend}]", *FIND_LINKS)
    installed = _run(*uv, "list", "--format=freeze", *python_arg).stdout.lower()
    names = {line.split("==")[0] for line in installed.splitlines()}
    assert backend in names and "keras" in names and "keras-sumix" in names, names
    assert not names & {"tensorflow", "tensorflow-cpu", "tensorflow_cpu"}, names
    assert {"jax": "torch", "torch": "jax"}[backend] not in names, names
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.pop("PYTHONPATH", None)
    # As on a user's machine, the first import writes the bytecode the
    # check's command-line runs then read (CI sets PYTHONDONTWRITEBYTECODE).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    check = ROOT / "tests" / "wheel_check.py"
    result = _run(python, check, tmp_path, ROOT / "README.md", cwd=tmp_path, env=env)
    assert "wheel check passed" in result.stdout, result.stdout
