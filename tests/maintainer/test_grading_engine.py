"""The grading engine, exercised the way learners break things.

Each scenario copies the course into a temporary folder, edits the learner's
`dino_course/student_teacher.py` like a learner would (a correct plain loop, a wrong
formula, a syntax error, an endless loop, a crash) and runs `pytest` there in a fresh
process, reading the verdict table it prints.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dino_course import reference
from dino_course.grading.catalog import REPO_ROOT, lessons
from dino_course.grading.notebook import grade

pytestmark = pytest.mark.maintainer

STUB = "dino_course/student_teacher.py"
PLAIN_LOOP_EMA = """\
    with torch.no_grad():
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.copy_(momentum * t + (1 - momentum) * s)"""


@pytest.fixture()
def course_copy(tmp_path: Path) -> Path:
    for name in ("dino_course", "solutions", "tests"):
        shutil.copytree(REPO_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "maintainer", "browser"))
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    return tmp_path


def implement(root: Path, exercise: str, body: str) -> None:
    path = root / STUB
    text = path.read_text()
    line = next(l for l in text.splitlines() if f'raise ExerciseNotStarted("3.1", "{exercise}")' in l)
    indent = line[: len(line) - len(line.lstrip())]
    path.write_text(text.replace(line, textwrap.indent(textwrap.dedent(body), indent)))


def run_pytest(root: Path, *args: str, time_limit: str = "20", lesson: str | None = "3.1") -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "DINO_COURSE_CHECK_TIME_LIMIT": time_limit}
    env.pop(reference.ENV_VAR, None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *(["--lesson", lesson] if lesson else []), *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    return result.returncode, result.stdout + result.stderr


def verdict(output: str, exercise: str) -> str:
    match = re.search(rf"^  [✓✗·] {re.escape(exercise)}\s+(.*)$", output, re.MULTILINE)
    assert match, f"no verdict for {exercise} in:\n{output[-3000:]}"
    return match.group(1)


def test_fresh_copy_passes_with_everything_not_started(course_copy):
    code, output = run_pytest(course_copy, lesson=None)
    assert code == 0, output[-3000:]
    for lesson in lessons().values():
        for exercise in lesson.exercises:
            assert verdict(output, exercise.name).startswith("not started"), exercise.id
    assert re.search(r"Score: 0 of \d+ exercises passed", output)
    assert re.search(r"^=+ \d+ skipped", output, re.MULTILINE), "a check passed although every exercise is a stub"


def test_a_correct_plain_loop_passes_and_a_wrong_exercise_fails_with_its_hint(course_copy):
    implement(course_copy, "ema_update", PLAIN_LOOP_EMA)
    # a typical mistake: handing back the student itself instead of a copy
    implement(course_copy, "build_teacher", "return student")
    code, output = run_pytest(course_copy)
    assert code == 1, output[-3000:]
    assert verdict(output, "ema_update") == "passed"
    assert verdict(output, "build_teacher").startswith("failed: build_teacher must return a new nn.Module")
    assert verdict(output, "cosine_schedule").startswith("not started")


def test_a_syntax_error_is_reported_against_its_own_exercises(course_copy):
    implement(course_copy, "ema_update", "for t in teacher.parameters()\n    pass")
    code, output = run_pytest(course_copy)
    assert code == 1
    for exercise in lessons()["3.1"].exercises:
        message = verdict(output, exercise.name)
        assert "has a syntax error (SyntaxError) on line" in message and "expected ':'" in message, exercise.name


def test_an_endless_loop_fails_only_its_exercise(course_copy):
    implement(course_copy, "cosine_schedule", "while True:\n    pass")
    implement(course_copy, "ema_update", PLAIN_LOOP_EMA)
    code, output = run_pytest(course_copy, "--exercise", "cosine_schedule", time_limit="2")
    assert code == 1
    assert "took longer than 2 s" in verdict(output, "cosine_schedule")
    code, output = run_pytest(course_copy, "--exercise", "ema_update", time_limit="2")
    assert code == 0 and verdict(output, "ema_update") == "passed"


def test_an_exception_names_the_learner_line(course_copy):
    implement(course_copy, "parameter_divergence", "return {name: 1 / 0 for name in dict(student.named_parameters())}")
    code, output = run_pytest(course_copy, "--exercise", "parameter_divergence")
    assert code == 1
    message = verdict(output, "parameter_divergence")
    assert re.search(r"your code raised ZeroDivisionError at dino_course/student_teacher.py:\d+", message), message


def test_an_import_time_crash_does_not_stop_other_lessons(course_copy):
    path = course_copy / STUB
    path.write_text(path.read_text() + "\nraise RuntimeError('half-finished edit')\n")
    code, output = run_pytest(course_copy, lesson=None)
    assert code == 1
    assert "raised RuntimeError while being imported" in verdict(output, "ema_update")
    for lesson in lessons().values():  # every lesson is still graded, each exercise with a verdict
        assert f"Lesson {lesson.id} ·" in output
        for exercise in lesson.exercises:
            verdict(output, exercise.name)


def test_reference_mode_passes_whatever_the_learner_wrote(course_copy):
    implement(course_copy, "build_teacher", "return student")
    code, output = run_pytest(course_copy, "--reference")
    assert code == 0, output[-3000:]
    assert "reference code" in output


def test_in_process_check_grades_one_exercise(monkeypatch):
    monkeypatch.setenv(reference.ENV_VAR, "3.1")
    reference.forget_exercise_modules()
    try:
        report = grade("3.1", "cosine_schedule")
    finally:
        reference.forget_exercise_modules()
    assert list(report.verdicts) == ["3.1/cosine_schedule"]
    assert report.verdicts["3.1/cosine_schedule"].outcome == "passed"
    assert report.verdicts["3.1/cosine_schedule"].reference


def test_bad_reference_setting_is_named(monkeypatch):
    monkeypatch.setenv(reference.ENV_VAR, "9.9")
    with pytest.raises(ValueError, match="DINO_COURSE_REFERENCE"):
        reference.reference_lessons()
    with pytest.raises(ValueError, match="lesson must be one of"):
        grade("9.9")
