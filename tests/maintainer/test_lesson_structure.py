"""Every lesson notebook states its time budget at the top and ends with what the learner built and the next lesson.

The closing cell's table names the lesson's exercises, so an exercise added to a lesson must be added
there too; "Next" names the following lesson by its title (the catalogue's, or the notebook's heading for a
lesson without exercises), so a renamed lesson is renamed there.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from dino_course.grading import catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(REPO_ROOT.glob("lessons/module*/*.ipynb"), key=lambda p: catalog.lesson_sort_key(p.name.split("_", 1)[0]))
TITLE = re.compile(r"^# Lesson (\d+\.\d+) · (.+)$", re.M)
TABLE_NAME = re.compile(r"^\| `([A-Za-z_][\w.]*)` \|", re.M)


def _cells(path: Path):
    return nbformat.read(path, as_version=4).cells


def _title(path: Path) -> tuple[str, str]:
    match = TITLE.search(_cells(path)[0].source)
    assert match, f"{path.name}: the first cell must start with '# Lesson <id> · <title>'"
    return match.group(1), match.group(2)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_states_its_time_budget_first(path):
    first = _cells(path)[0]
    assert first.cell_type == "markdown" and re.search(r"\*\*Time\.\*\* About \S+", first.source), (
        f"{path.name}: the first cell must state the time budget ('**Time.** About N minutes: ...')")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_ends_with_what_you_built_and_the_next_lesson(path):
    last = _cells(path)[-1]
    assert last.cell_type == "markdown" and re.match(r"## What you (built|did)\b", last.source), (
        f"{path.name}: the last cell must be '## What you built' (or '## What you did' for a lesson without exercises)")
    lesson_id, _ = _title(path)
    lesson = catalog.lessons().get(lesson_id)
    if lesson is not None:
        listed = TABLE_NAME.findall(last.source)
        expected = [exercise.name for exercise in lesson.exercises]
        assert sorted(listed) == sorted(expected), (
            f"{path.name}: 'What you built' lists {listed}; the lesson's exercises are {expected}")
    index = NOTEBOOKS.index(path)
    if index + 1 < len(NOTEBOOKS):
        next_id, next_title = _title(NOTEBOOKS[index + 1])
        if next_id in catalog.lessons():  # the catalogue's title (solutions/: LESSON_TITLE) is the lesson's name
            next_title = catalog.lessons()[next_id].title
        expected_next = f"**Next: Lesson {next_id} — {next_title}**"
        assert expected_next in last.source, f"{path.name}: the last cell must point on with {expected_next!r}"
    else:
        assert "**Next:" in last.source, f"{path.name}: the last lesson's last cell must still say what comes next"
