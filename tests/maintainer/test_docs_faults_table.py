"""`docs/faults.md` stays true: every check its tables name exists, and every row names one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.maintainer
ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "faults.md"
REFERENCE = re.compile(r"`(tests/maintainer/[\w/]+\.py)::(\w+)`")


def _rows() -> list[str]:
    """The body rows of every table on the page (header and divider rows left out)."""
    rows = []
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not line.startswith("| fault |") and not set(line) <= set("|- "):
            rows.append(line)
    return rows


def _test_names(path: Path) -> set[str]:
    """Names of the test functions a file defines at module level or in a class."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test")}


def test_the_page_has_rows_and_each_names_a_check():
    rows = _rows()
    assert len(rows) >= 20, f"docs/faults.md: expected its tables, found {len(rows)} rows"
    for row in rows:
        assert REFERENCE.search(row.split("|")[-2]), f"docs/faults.md: a row names no check in its last column: {row}"


def test_every_named_check_exists():
    missing = []
    for row in _rows():
        for file, name in REFERENCE.findall(row):
            path = ROOT / file
            if not path.is_file() or name not in _test_names(path):
                missing.append(f"{file}::{name}")
    assert not missing, f"docs/faults.md names checks that do not exist: {missing}"


def test_the_interrupts_section_is_there():
    assert "\n## Interrupts and non-finite values\n" in PAGE.read_text(encoding="utf-8")
