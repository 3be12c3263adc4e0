"""Packaging: the conda and pip routes install the same things."""

from __future__ import annotations

import re

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from dino_course.grading.catalog import REPO_ROOT

pytestmark = pytest.mark.maintainer

CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge names that differ from PyPI's


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def test_environment_yml_agrees_with_pyproject():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    pip_side = dict(_split(r) for r in pyproject["project"]["dependencies"])
    conda_side = {}
    in_dependencies = False
    for line in (REPO_ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_dependencies = True
            continue
        match = re.match(r"^  - ([^\s:]+.*)$", line)
        if in_dependencies and match and not match.group(1).startswith(("python", "pip")):
            name, spec = _split(match.group(1))
            conda_side[CONDA_TO_PIP.get(name, name)] = spec
    assert conda_side == pip_side, (
        f"only in environment.yml: {sorted(set(conda_side) - set(pip_side))}; "
        f"only in pyproject.toml: {sorted(set(pip_side) - set(conda_side))}; "
        f"different versions: {sorted(n for n in set(conda_side) & set(pip_side) if conda_side[n] != pip_side[n])}"
    )


def test_python_version_floor_is_the_same():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.10"
    assert "  - python>=3.10" in (REPO_ROOT / "environment.yml").read_text().splitlines()
