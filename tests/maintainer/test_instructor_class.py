"""A class of 40, graded end to end: the instructor edition's acceptance test.

It builds the student edition and the Gradescope bundle, writes 40 submissions made from the
course itself (`class_submissions.py`: the reference handed in five ways, the stubs, a half-done
course, 13 single-exercise bugs, a syntax error, endless loops, crashes, floods, deletions,
attempts at the reference, planted files, broken archives; the 40th is written by the real
`dino-course submit` in a copy of the student edition), grades them

1. with `dino-course grade` (run from the bundle's copy of the course, so both graders grade
   against the same bytes), and checks every per-exercise verdict, every gradebook row and
   total, the feedback files, that the submissions folder is untouched, and that a re-run
   resumes instead of grading again;
2. with the bundle's `run_autograder`, each student in a folder laid out as Gradescope's
   `/autograder` (archives unpacked as Gradescope does), and checks every test of every
   results.json. To stay within minutes, these runs reuse the batch's lesson verdicts for
   identical files (`--cache`, the same mechanism the batch uses between students); three of
   them (the reference, a runtime attempt at the reference, a process exit) grade from scratch
   inside the bundle.

Run with `pytest --reference --maintainer`. Measured on the shared 2-core development machine
while other jobs used about one core (load 3): 320 s for the module, 257 s of it the batch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from class_submissions import Expected, check_verdicts, make_class
from dino_course.grading.catalog import exercises, lessons
from dino_course.instructor.autograder import build_autograder
from dino_course.instructor.points import load_points
from dino_course.instructor.release import build_release
from dino_course.instructor.runner import Limits, lesson_modules

pytestmark = pytest.mark.maintainer

TIME_LIMIT = "3"  # seconds per exercise: enough for the reference on a busy machine, short for the loops
SUBMITTED = "s40-reference-through-dino-course-submit"


def _tree_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _python_env(course: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DINO_COURSE_")}
    env.update({"PYTHONPATH": str(course), "PYTHONDONTWRITEBYTECODE": "1", **extra})
    return env


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    root = tmp_path_factory.mktemp("classroom")
    build_release(root / "release")
    build_autograder(root / "bundle", limits=Limits(check_time_limit_s=float(TIME_LIMIT)))
    source = root / "gradescope" / "source"
    with zipfile.ZipFile(root / "bundle" / "autograder.zip") as archive:
        archive.extractall(source)
    course = source / "course"
    submissions = root / "submissions"
    expected = make_class(submissions, course / "solutions", course / "dino_course")

    # the 40th: a student's copy of the release, the reference typed in, `dino-course submit`
    student = root / "student-copy"
    shutil.copytree(root / "release", student, ignore=shutil.ignore_patterns(".git"))
    for path in (course / "solutions").glob("*.py"):
        if not path.name.startswith("_"):
            shutil.copy(path, student / "dino_course" / path.name)
    blocker = root / "no-solutions"
    (blocker / "solutions").mkdir(parents=True)
    (blocker / "solutions" / "__init__.py").write_text("raise ImportError('not in the student edition')\n")
    result = subprocess.run(
        [sys.executable, "-m", "dino_course", "submit", "--output", str(submissions / f"{SUBMITTED}.zip")],
        cwd=student, env=_python_env(student, PYTHONPATH=f"{student}{os.pathsep}{blocker}"),
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    expected[SUBMITTED] = Expected("passed")
    assert len(expected) == 40
    return {"root": root, "source": source, "course": course, "submissions": submissions, "expected": expected}


def _batch(classroom, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dino_course", "grade", str(classroom["submissions"]), "--output",
         str(classroom["root"] / "graded"), "--time-limit", TIME_LIMIT, *args],
        cwd=classroom["root"], env=_python_env(classroom["course"]), capture_output=True, text=True, timeout=1800,
    )


def test_batch_grading_of_a_class_of_40(classroom):
    before = _tree_hashes(classroom["submissions"])
    started = time.monotonic()
    result = _batch(classroom, "--jobs", "2")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    print(f"\nbatch of 40 graded in {elapsed:.0f} s\n" + result.stdout[-3000:])
    out = classroom["root"] / "graded"
    points = load_points(classroom["source"] / "points.toml")
    problems = []
    for student, expected in classroom["expected"].items():
        record = json.loads((out / "results" / f"{student}.json").read_text())["result"]
        verdicts = {e: (v["outcome"], v["message"]) for e, v in record["verdicts"].items()}
        problems += check_verdicts(student, expected, verdicts)
        if expected.notes and not any(re.search(expected.notes, n) for n in record["notes"]):
            problems.append(f"{student}: no note matching /{expected.notes}/ in {record['notes']}")
        if bool(record["flags"]) != expected.flagged:
            problems.append(f"{student}: flagged {record['flags']}, expected {'flags' if expected.flagged else 'none'}")
        feedback = (out / "feedback" / f"{student}.txt").read_text()
        assert f"feedback for {student}" in feedback and "Score:" in feedback and "Total:" in feedback
    assert not problems, "\n".join(problems)

    with open(out / "gradebook.csv", newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(classroom["expected"])
    for student, expected in classroom["expected"].items():
        want = {e: points.of(e) if expected.verdict(e)[0] == "passed" else 0 for e in exercises()}
        got = {e: float(rows[student][e]) for e in exercises()}
        assert got == want, student
        assert float(rows[student]["total"]) == sum(want.values()) and float(rows[student]["max"]) == points.total
    assert float(rows["s01-reference"]["total"]) == points.total
    assert float(rows["s08-stubs-untouched"]["total"]) == 0

    assert _tree_hashes(classroom["submissions"]) == before, "grading changed the submissions"
    assert not (out / ".work").exists(), "the batch left its working copies behind"

    again = _batch(classroom, "--jobs", "2")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming: 40 of 40" in again.stdout and "grading 0 submission(s)" in again.stdout, again.stdout


def _gradescope_root(classroom, student: str, base: Path) -> Path:
    """A folder laid out as Gradescope's /autograder for one student (archives unpacked, as
    Gradescope does with uploaded zips, except the one whose entry leaves the archive)."""
    root = base / student
    (root / "submission").mkdir(parents=True)
    (root / "results").mkdir()
    (root / "source").symlink_to(classroom["source"])
    path = classroom["submissions"] / f"{student}.zip"
    if path.exists() and student != "s37-archive-entry-escapes":
        with zipfile.ZipFile(path) as archive:
            archive.extractall(root / "submission")
    elif path.exists():
        shutil.copy(path, root / "submission")
    else:
        shutil.copytree(classroom["submissions"] / student, root / "submission", dirs_exist_ok=True)
    return root


def _run_autograder(classroom, root: Path, cache: Path) -> dict:
    result = subprocess.run(
        ["bash", str(classroom["source"] / "run_autograder"), str(root), "--cache", str(cache)],
        cwd=root, env=_python_env(classroom["course"], DINO_COURSE_PYTHON=sys.executable),
        capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text())


def _check_results(classroom, student: str, results: dict) -> list[str]:
    points = load_points(classroom["source"] / "points.toml")
    expected: Expected = classroom["expected"][student]
    problems = []
    for key in ("score", "execution_time", "output", "visibility", "stdout_visibility", "tests"):
        if key not in results:
            problems.append(f"{student}: results.json has no {key!r}")
    tests = results.get("tests", [])
    if len(tests) != len(exercises()):
        return problems + [f"{student}: {len(tests)} tests, expected one per exercise ({len(exercises())})"]
    verdicts = {}
    for exercise_id, test in zip(exercises(), tests):
        exercise = exercises()[exercise_id]
        assert test["name"] == f"Lesson {exercise.lesson} · {exercise.name}", test["name"]
        assert test["max_score"] == points.of(exercise_id)
        assert test["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
        outcome, _, message = test["output"].partition(": ")
        verdicts[exercise_id] = (outcome, message)
        want = points.of(exercise_id) if test["status"] == "passed" else 0
        if test["score"] != want or (test["status"] == "passed") != (outcome == "passed"):
            problems.append(
                f"{student} {exercise_id}: score {test['score']} / status {test['status']} / output {outcome}"
            )
    problems += check_verdicts(student, expected, verdicts)
    if results.get("score") != sum(t["score"] for t in tests):
        problems.append(f"{student}: score {results.get('score')} is not the sum of the tests' scores")
    if not isinstance(results.get("execution_time"), int) or results["execution_time"] < 1:
        problems.append(f"{student}: execution_time {results.get('execution_time')!r}")
    if expected.notes and not re.search(expected.notes, results.get("output", "")):
        problems.append(f"{student}: output does not mention /{expected.notes}/")
    return problems


def test_gradescope_autograder_on_the_same_class(classroom):
    if not (classroom["root"] / "graded" / ".cache").exists():
        pytest.skip("needs the batch grading test's lesson verdicts (run the module, not this test alone)")
    base = classroom["root"] / "autograder-runs"
    students = list(classroom["expected"])
    roots = {student: _gradescope_root(classroom, student, base) for student in students}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(students, pool.map(
            lambda s: _run_autograder(classroom, roots[s], classroom["root"] / "graded" / ".cache"), students)))
    problems = [p for student in students for p in _check_results(classroom, student, results[student])]
    assert not problems, "\n".join(problems)

    # three graded from scratch inside the bundle (a fresh cache shared by the three only)
    fresh = classroom["root"] / "fresh-cache"
    for student in ("s01-reference", "s32-imports-solutions-by-computed-name", "s25-calls-os-exit"):
        root = _gradescope_root(classroom, student, classroom["root"] / "autograder-fresh")
        problems = _check_results(classroom, student, _run_autograder(classroom, root, fresh))
        assert not problems, "\n".join(problems)
    # the reference's lessons, and for each of the two others every lesson that reads its temperature.py
    # (Lesson 4.2, and the lessons whose integration checks build on 4.2's exercises)
    reading = [lesson for lesson, modules in lesson_modules(classroom["course"]).items() if "temperature" in modules]
    assert len(list(fresh.glob("*.json"))) == len(lessons()) + 2 * len(reading)
