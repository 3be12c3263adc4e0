"""docs/seed_map.md stays true: every exercise id it names exists, every section it names is a heading.

The map ties each item of the course author's Module 3 summary to a lesson section and, for skills, to
the exercises whose hidden checks grade them. A renamed exercise or heading must be renamed there too.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from dino_course.grading import catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_MAP = REPO_ROOT / "docs" / "seed_map.md"

# `3.1/ema_update`, `3.1/StudentTeacherWrapper.forward`: an exercise id in backticks
EXERCISE_ID = re.compile(r"`(\d+\.\d+/[A-Za-z_][A-Za-z0-9_.]*)`")
# `3.1 § 4. The EMA update`, up to the next `;` or table bar: a lesson and one of its headings
SECTION = re.compile(r"(\d+\.\d+) § ([^;|]+?)\s*(?=;|\|)")


def _table_rows() -> list[str]:
    return [line for line in SEED_MAP.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith("| seed item") and not line.startswith("| ---")]


def _notebook(lesson: str) -> Path:
    found = sorted(REPO_ROOT.glob(f"lessons/module*/{lesson}_*.ipynb"))
    assert len(found) == 1, f"docs/seed_map.md names lesson {lesson}: expected one notebook lessons/module*/{lesson}_*.ipynb, found {found}"
    return found[0]


def _headings(path: Path) -> set[str]:
    notebook = nbformat.read(path, as_version=4)
    return {line.lstrip("#").strip() for cell in notebook.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("#")}


def test_seed_map_has_rows_with_exercises_and_sections():
    rows = _table_rows()
    assert len(rows) >= 60, f"docs/seed_map.md: expected the whole seed summary mapped (>= 60 rows), found {len(rows)}"
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 3 and all(cells), f"docs/seed_map.md: a row needs seed item | lesson | exercise or status: {row}"


def test_every_exercise_named_in_the_seed_map_exists():
    named = sorted({match for row in _table_rows() for match in EXERCISE_ID.findall(row)})
    assert named, "docs/seed_map.md names no exercise id"
    known = set(catalog.exercises())
    missing = [exercise_id for exercise_id in named if exercise_id not in known]
    assert not missing, (
        f"docs/seed_map.md names exercises the course does not have: {missing}. Rename them in the map, or add "
        f"the exercise (CONTRIBUTING.md, 'Adding an exercise'); the catalogue has {len(known)} exercises."
    )


def test_every_section_named_in_the_seed_map_is_a_heading_of_its_notebook():
    wrong = []
    for row in _table_rows():
        for lesson, heading in SECTION.findall(row):
            path = _notebook(lesson)
            if heading not in _headings(path):
                wrong.append(f"{lesson} § {heading!r} (not a heading of {path.relative_to(REPO_ROOT)})")
    assert not wrong, "docs/seed_map.md names sections that do not exist:\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize("text, expected", [
    ("| x | 3.1 § 4. The EMA update | `3.1/ema_update` |", [("3.1", "4. The EMA update")]),
    ("| x | 3.2 § 1 · Why many crops?; 4.3 § Pair by pair | y |", [("3.2", "1 · Why many crops?"), ("4.3", "Pair by pair")]),
])
def test_section_pattern_reads_the_map_format(text, expected):
    assert SECTION.findall(text) == expected
