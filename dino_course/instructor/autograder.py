"""`dino-course autograder DIR`: a Gradescope autograder for the course, and its `run_autograder`.

Gradescope's documented layout (https://gradescope-autograders.readthedocs.io/en/latest/specs/):
the uploaded zip holds `setup.sh` (run once, as root, when Gradescope builds the image) and
`run_autograder` at its root; Gradescope unpacks it into `/autograder/source`, copies
`run_autograder` to `/autograder/run_autograder`, puts each student's files into
`/autograder/submission`, runs `/autograder/run_autograder` in `/autograder`, and uploads
`/autograder/results/results.json`. `DIR` gets:

    DIR/autograder.zip       upload this to Gradescope
    DIR/source/              what the zip holds, unpacked: setup.sh, run_autograder,
                             course/ (the full course: solutions and hidden checks),
                             points.toml, settings.json, requirements.txt

`run_autograder [ROOT] [--cache DIR]` grades `ROOT/submission` (ROOT is `/autograder` on
Gradescope; any folder laid out the same way elsewhere, which is how the course tests it),
each exercise in isolation with the time limit (`runner.Grader`), and writes
`ROOT/results/results.json`: one test per exercise (name, score, max_score, status, the
one-line verdict as output, visibility), the total score, the execution time, the verdict
table as the overall output, and the visibility settings of `points.toml`. If grading itself
fails, it still writes a results.json (score 0) that says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

from dino_course.grading.catalog import REPO_ROOT, exercises, lessons
from dino_course.grading.report import PASSED
from dino_course.instructor.points import DEFAULT_POINTS_FILE, Points, format_points, load_points
from dino_course.instructor.release import require_full_course
from dino_course.instructor.runner import Course, Grader, LessonCache, Limits, Runner, verdict_line
from dino_course.instructor.submit import ZIP_DATE, read_submission
from dino_course.files.safe_files import atomic_write_bytes, atomic_write_text

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu; it has
# already run apt-get update). It installs Python, the course's dependencies (CPU-only torch)
# and checks that the bundle gives the reference solutions full marks.
set -euo pipefail
apt-get install -y python3 python3-venv python3-pip
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
/autograder/venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install -r /autograder/source/requirements.txt
DINO_COURSE_PYTHON=/autograder/venv/bin/python bash /autograder/source/run_autograder /autograder --self-test
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this (as /autograder/run_autograder, in /autograder) for every submission.
# Elsewhere: run_autograder ROOT [--cache DIR], ROOT laid out as Gradescope's /autograder
# (ROOT/source = this bundle, ROOT/submission = the student's files, ROOT/results = output).
set -u
ROOT="${1:-${DINO_COURSE_AUTOGRADER_ROOT:-/autograder}}"
shift || true
PYTHON="${DINO_COURSE_PYTHON:-$ROOT/venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
export PYTHONPATH="$ROOT/source/course" PYTHONDONTWRITEBYTECODE=1
exec "$PYTHON" -m dino_course.instructor.autograder --root "$ROOT" "$@"
"""


def _requirements() -> str:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import re

        text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
        block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
        dependencies = re.findall(r'"([^"]+)"', block)
    else:
        project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        dependencies = project["dependencies"]
    header = "# the course's dependencies (pyproject.toml); torch comes from the CPU index in setup.sh\n"
    return header + "\n".join(dependencies) + "\n"


def _zip_folder(folder: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=ZIP_DATE)
                executable = path.name in ("setup.sh", "run_autograder")
                info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def build_autograder(target: str | Path, *, points_file: str | Path | None = None, limits: Limits = Limits()) -> Path:
    """Write the bundle into `target` (new or empty); return the path of autograder.zip."""
    require_full_course()
    target = Path(target).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(
            f"DIR {str(target)!r} exists and is not empty: give a new or empty folder (nothing is overwritten)"
        )
    if not target.parent.is_dir():
        raise ValueError(f"DIR {str(target)!r}: its parent folder does not exist")
    load_points(points_file)  # a bad points file is refused before anything is built
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        source = staging / "source"
        Course.snapshot(source / "course")
        atomic_write_text(source / "setup.sh", SETUP_SH)
        atomic_write_text(source / "run_autograder", RUN_AUTOGRADER)
        for name in ("setup.sh", "run_autograder"):
            os.chmod(source / name, 0o755)
        atomic_write_bytes(source / "points.toml", Path(points_file or DEFAULT_POINTS_FILE).read_bytes())
        settings = {
            "check_time_limit_s": limits.check_time_limit_s, "memory_mb": limits.memory_mb,
            "output_mb": limits.output_mb,
        }
        atomic_write_text(source / "settings.json", json.dumps(settings, indent=1, sort_keys=True) + "\n")
        atomic_write_text(source / "requirements.txt", _requirements())
        atomic_write_bytes(staging / "autograder.zip", _zip_folder(source))
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target / "autograder.zip"


# ----------------------------------------------------------------------------- run_autograder


def gradescope_results(result, points: Points, seconds: float, notes: list[str]) -> dict:
    """Gradescope's results.json for one graded submission."""
    tests = []
    known = exercises()
    for exercise_id, verdict in result.verdicts.items():
        exercise = known[exercise_id]
        index = [e.id for e in lessons()[exercise.lesson].exercises].index(exercise_id) + 1
        passed = verdict["outcome"] == PASSED
        tests.append({
            "name": f"Lesson {exercise.lesson} · {exercise.name}",
            "number": f"{exercise.lesson}.{index}",
            "score": points.of(exercise_id) if passed else 0,
            "max_score": points.of(exercise_id),
            "status": "passed" if passed else "failed",
            "output": verdict_line(verdict),
            "visibility": points.gradescope["test_visibility"],
        })
    score = sum(t["score"] for t in tests)
    output = result.report().render("DINO course: your exercises, each graded on its own")
    output += f"\nPoints: {format_points(score)} of {format_points(points.total)}"
    if notes:
        output += "\n\nNotes:\n" + "\n".join(f"- {note}" for note in notes)
    return {
        "score": score,
        "execution_time": max(1, round(seconds)),
        "output": output,
        "visibility": points.gradescope["visibility"],
        "stdout_visibility": points.gradescope["stdout_visibility"],
        "tests": tests,
        "extra_data": {"workers": result.workers, "flags": result.flags},
    }


def _failure_results(message: str, points: Points, seconds: float) -> dict:
    return {
        "score": 0,
        "execution_time": max(1, round(seconds)),
        "output": message,
        "visibility": points.gradescope["visibility"],
        "stdout_visibility": points.gradescope["stdout_visibility"],
        "tests": [],
    }


def run(root: Path, cache: Path | None = None) -> dict:
    """Grade `root/submission`, write `root/results/results.json`, return what was written."""
    started = time.monotonic()
    source = root / "source"
    points = load_points(source / "points.toml")
    settings = json.loads((source / "settings.json").read_text(encoding="utf-8"))
    limits = Limits(settings["check_time_limit_s"], settings["memory_mb"], settings["output_mb"])
    results_path = root / "results" / "results.json"
    work = Path(tempfile.mkdtemp(prefix="dino-autograder-"))
    try:
        submission = read_submission(root / "submission")
        if not submission.files:
            results = _failure_results(
                "No exercise files found in your submission. Upload the archive `dino-course submit` writes "
                "(dino-course-submission.zip), or the files dino_course/<module>.py themselves.\n"
                + "\n".join(f"- {note}" for note in submission.notes),
                points, time.monotonic() - started,
            )
        else:
            course = Course.snapshot(work / "course", source=source / "course")
            grader = Grader(Runner(course, work, limits), points, LessonCache(cache) if cache else None, log=print)
            result = grader.grade(submission)
            results = gradescope_results(result, points, time.monotonic() - started, result.notes)
            print(results["output"])
            for flag in result.flags:
                print(f"flag: {flag}")
    except Exception:  # noqa: BLE001 - the student must still get a results.json
        traceback.print_exc()
        results = _failure_results(
            "The autograder itself failed on this submission; your instructor has the details. Please tell them.",
            points, time.monotonic() - started,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    atomic_write_text(results_path, json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    return results


def self_test(root: Path) -> int:
    """Grade the bundled reference solutions as a submission: every exercise must pass."""
    source = root / "source"
    with tempfile.TemporaryDirectory(prefix="dino-autograder-self-test-") as scratch:
        fake = Path(scratch)
        os.symlink(source, fake / "source")
        (fake / "submission" / "dino_course").mkdir(parents=True)
        for path in sorted((source / "course" / "solutions").glob("*.py")):
            if not path.name.startswith("_"):
                shutil.copy(path, fake / "submission" / "dino_course" / path.name)
        results = run(fake)
    total = sum(t["max_score"] for t in results["tests"])
    failed = [t["name"] for t in results["tests"] if t["status"] != "passed"]
    print(f"self-test: the reference scores {results['score']} of {total}" + (f"; failing: {failed}" if failed else ""))
    return 0 if results["tests"] and not failed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="run_autograder", description="Grade one submission the way Gradescope runs it."
    )
    parser.add_argument("--root", default=os.environ.get("DINO_COURSE_AUTOGRADER_ROOT", "/autograder"))
    parser.add_argument("--cache", default=None, help="reuse lesson verdicts of identical files across runs (testing)")
    parser.add_argument("--self-test", action="store_true", help="grade the bundled reference solutions instead")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if not (root / "source" / "settings.json").exists():
        print(f"run_autograder: {root}/source is not a DINO course autograder bundle", file=sys.stderr)
        return 2
    if args.self_test:
        return self_test(root)
    run(root, Path(args.cache) if args.cache else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

