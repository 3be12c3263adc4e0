"""The notebooks' stored outputs state the course as it is now.

nbval in lax mode re-runs the notebooks but compares only the cells marked `# NBVAL_CHECK_OUTPUT`, so a
committed output can go on saying "34 of 34" after exercises were added. These checks read the stored
outputs that state course facts and compare them with what the course's code says now:

- a whole-lesson `check("<lesson>")` cell: the lesson's title, its exercises in order, "Score: N of M";
- a one-exercise `check("<lesson>", "<name>")` cell: the exercise still exists;
- Lesson 3.5: the progress table (lessons, titles, exercise and quiz counts, the course total), the
  skills check (skills and their exercise ids), the quiz's question counts, and the progress chart's
  size (it grows with the number of lessons).

When one fails, the fix is to regenerate the notebook it names: `dino-course notebooks <lesson>`.
"""

from __future__ import annotations

import base64
import html
import io
import re
import struct
from pathlib import Path

import nbformat
import pytest

from dino_course.grading import catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(REPO_ROOT.glob("lessons/module*/*.ipynb"))
ASSESSMENT = REPO_ROOT / "lessons" / "module3" / "3.5_assessment.ipynb"

WHOLE_LESSON_CHECK = re.compile(r'^check\("(\d+\.\d+)"\)$')
ONE_EXERCISE_CHECK = re.compile(r'check\("(\d+\.\d+)",\s*"([^"]+)"\)')
SCORE = re.compile(r"Score: (\d+) of (\d+) exercises passed")
EXERCISE_ROW = re.compile(r"^  \S+ (\S+)\s{2,}")
CELL = re.compile(r"<t[dh][^>]*>(.*?)</t[dh]>", re.S)
ROW = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S)


def _lesson_of(path: Path) -> str:
    return path.name.split("_", 1)[0]


def _stale(path: Path, problems: list[str]) -> str:
    return (
        f"{path.relative_to(REPO_ROOT)}: its stored outputs no longer match the course:\n  "
        + "\n  ".join(problems)
        + f"\nRegenerate it: dino-course notebooks {_lesson_of(path)}"
    )


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return data.get("text/html") or data.get("text/plain") or ""


def _code_cells(path: Path):
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_check_outputs_match_the_catalogue(path):
    lessons = catalog.lessons()
    exercises = catalog.exercises()
    problems = []
    for cell in _code_cells(path):
        source = cell.source.strip()
        for lesson, name in ONE_EXERCISE_CHECK.findall(source):
            if f"{lesson}/{name}" not in exercises:
                problems.append(f"a check cell names {lesson}/{name}, which is not an exercise of the course")
        match = WHOLE_LESSON_CHECK.match(source)
        if not match:
            continue
        lesson = lessons.get(match.group(1))
        if lesson is None:
            problems.append(f"check({match.group(1)!r}): no such lesson in the catalogue")
            continue
        text = "".join(_text(output) for output in cell.outputs)
        if not text:
            problems.append(f"check({lesson.id!r}) has no stored output")
            continue
        expected_names = [exercise.name for exercise in lesson.exercises]
        score = SCORE.search(text)
        if score is None or int(score.group(2)) != len(expected_names):
            stored = score.group(0) if score else "no 'Score: N of M' line"
            problems.append(f"check({lesson.id!r}) says {stored!r}; the lesson has {len(expected_names)} exercises")
        stored_names = [m.group(1) for line in text.splitlines() if (m := EXERCISE_ROW.match(line))]
        if stored_names != expected_names:
            problems.append(f"check({lesson.id!r}) lists {stored_names}; the lesson's exercises are {expected_names}")
        if f"Lesson {lesson.id} · {lesson.title}" not in text:
            problems.append(f"check({lesson.id!r}) does not show the lesson's title {lesson.title!r}")
    assert not problems, _stale(path, problems)


def _assessment_outputs() -> dict[str, str]:
    """The 3.5 outputs by what they show: the skills table, the progress table, the quiz count, the chart."""
    found = {}
    for cell in _code_cells(ASSESSMENT):
        for output in cell.outputs:
            data = output.get("data", {})
            text = _text(output)
            if "image/png" in data and "plot_progress" in cell.source:
                found["chart"] = data["image/png"]
            elif "<th style='text-align:left'>skill</th>" in text:
                found["skills"] = text
            elif "<th style='text-align:left'>lesson</th>" in text:
                found["progress"] = text
            elif re.search(r"\d+ questions: ", text):
                found["quiz"] = text
    return found


def _table(html_text: str) -> list[list[str]]:
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in CELL.findall(row)]
            for row in ROW.findall(html_text)][1:]


def test_assessment_progress_table_matches_the_course(tmp_path):
    from dino_course.assessment.dashboard import course_progress
    from dino_course.assessment.progress import ProgressStore

    stored = _assessment_outputs()
    assert "progress" in stored, _stale(ASSESSMENT, ["no stored progress table"])
    expected = course_progress(ProgressStore(tmp_path / "progress.json"), grade=False)
    rows = _table(stored["progress"])
    problems = []
    lesson_rows, total_row = rows[:-1], rows[-1]
    stored_lessons = [row[0] for row in lesson_rows]
    if stored_lessons != [row.lesson for row in expected]:
        problems.append(f"the progress table lists lessons {stored_lessons}; the course has {[r.lesson for r in expected]}")
    for row, want in zip(lesson_rows, expected):
        if row[1] != want.title:
            problems.append(f"lesson {want.lesson}'s title is {row[1]!r}, now {want.title!r}")
        counted = re.search(r"of (\d+)", row[2])
        if want.exercises_total and (counted is None or int(counted.group(1)) != want.exercises_total):
            problems.append(f"lesson {want.lesson}: {row[2]!r}, but it has {want.exercises_total} exercises")
        quiz = re.search(r"of (\d+)", row[4])
        if (int(quiz.group(1)) if quiz else 0) != want.quiz_total:
            problems.append(f"lesson {want.lesson}: quiz {row[4]!r}, but it has {want.quiz_total} questions")
    total = sum(row.exercises_total for row in expected)
    counted = re.search(r"of (\d+)", total_row[2])
    if total_row[1] != "whole course" or counted is None or int(counted.group(1)) != total:
        problems.append(f"the course total says {total_row[2]!r}; the course has {total} exercises")
    assert not problems, _stale(ASSESSMENT, problems)


def test_assessment_skills_check_matches_the_skill_map():
    from dino_course.assessment.self_assessment import SKILLS

    stored = _assessment_outputs()
    assert "skills" in stored, _stale(ASSESSMENT, ["no stored skills check"])
    rows = _table(stored["skills"])
    stored_skills = [(row[0], re.findall(r"\d+\.\d+/[A-Za-z_][\w.]*", row[2])) for row in rows]
    expected = [(skill.title, list(skill.exercises)) for skill in SKILLS]
    assert stored_skills == expected, _stale(ASSESSMENT, [f"the skills check shows {stored_skills}; SKILLS is {expected}"])


def test_assessment_quiz_count_matches_the_quiz():
    from dino_course.assessment.quiz import questions

    stored = _assessment_outputs()
    assert "quiz" in stored, _stale(ASSESSMENT, ["no stored quiz count"])
    kinds = [question.kind for question in questions()]
    expected = f"{len(kinds)} questions: {kinds.count('choice')} multiple choice, {kinds.count('number')} numeric"
    assert expected in stored["quiz"], _stale(ASSESSMENT, [f"the quiz cell says {stored['quiz'].strip()!r}, now {expected!r}"])


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def test_assessment_progress_chart_matches_the_plotting_code(tmp_path):
    """The stored chart is what `plot_progress` draws now for the course's lessons (its size, within 3 %)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dino_course.assessment.dashboard import course_progress, plot_progress
    from dino_course.assessment.progress import ProgressStore

    stored = _assessment_outputs()
    assert "chart" in stored, _stale(ASSESSMENT, ["no stored progress chart"])
    stored_size = _png_size(base64.b64decode(stored["chart"]))
    ax = plot_progress(course_progress(ProgressStore(tmp_path / "progress.json"), grade=False))
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")  # matplotlib-inline's defaults
    plt.close(ax.figure)
    drawn_size = _png_size(buffer.getvalue())
    # 3 %: the tight bounding box moves by a few pixels with font rendering; a changed layout moves it by far more
    close = all(abs(s - d) <= 0.03 * d for s, d in zip(stored_size, drawn_size))
    assert close, _stale(ASSESSMENT, [f"the progress chart is stored at {stored_size} px; plot_progress draws {drawn_size} px now"])
