"""Keras internals behind one module, and dependency caps the lock respects.

`keras_sumix/_keras_compat.py` is the only place that imports `keras.src`,
so that a Keras release that moves an internal breaks one module; and
`pyproject.toml` caps the fast-moving dependencies below their first
release not tested, so the tested versions (`requirements/lock.txt`) must
stay inside those caps: a lock update that outgrows a cap fails here until
the cap is raised (README, "Development").
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "keras_sumix"
COMPAT = PACKAGE / "_keras_compat.py"
# The lock holds the CPU build of TensorFlow, the same releases as
# `tensorflow` (what the `tensorflow` extra names).
LOCKED_AS = {"tensorflow": "tensorflow-cpu"}
# Capped: the dependencies the library imports at run time whose releases
# change what it relies on (Keras's internals, the backends, TFDS, keras-hub).
CAPPED = ("keras", "tensorflow", "jax", "torch", "tensorflow-datasets", "keras-hub")


def _mentions(folder: Path, text: str) -> list[str]:
    return sorted(
        str(path.relative_to(ROOT))
        for path in folder.rglob("*.py")
        if text in path.read_text(encoding="utf-8")
    )


def test_keras_internals_are_imported_in_one_module():
    assert _mentions(PACKAGE, "keras.src") == [str(COMPAT.relative_to(ROOT))]


def test_tests_read_keras_internals_through_the_compat_module():
    this = str(Path(__file__).resolve().relative_to(ROOT))
    assert [p for p in _mentions(ROOT / "tests", "keras.src") if p != this] == []


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    own = canonicalize_name(project["name"])
    return [r for r in map(Requirement, lines) if canonicalize_name(r.name) != own]


def _locked() -> dict[str, Version]:
    versions = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            versions[canonicalize_name(name)] = Version(version)
    return versions


def test_the_lock_satisfies_pyproject():
    locked = _locked()
    outside = []
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        name = LOCKED_AS.get(name, name)
        assert name in locked, f"{requirement} is not in requirements/lock.txt"
        if not requirement.specifier.contains(locked[name], prereleases=True):
            outside.append(f"{requirement} (locked: {locked[name]})")
    assert outside == [], "raise the cap in pyproject.toml (README, Development)"


@pytest.mark.parametrize("name", CAPPED)
def test_fast_moving_dependencies_are_capped(name):
    capped = [
        requirement
        for requirement in _requirements()
        if canonicalize_name(requirement.name) == name
    ]
    assert capped, f"{name} is not named in pyproject.toml"
    for requirement in capped:
        assert any(spec.operator == "<" for spec in requirement.specifier), (
            f"{requirement} has no upper bound"
        )
