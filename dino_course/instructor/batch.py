"""`dino-course grade DIR_OF_SUBMISSIONS`: grade a class on the instructor's machine.

DIR holds one submission per student: an archive from `dino-course submit` (`alice.zip`) or a
folder with its contents (`bob/dino_course/...`, e.g. unpacked from a learning platform). The
student's name is the file or folder name. Output (`--output`, default `DIR-graded/`):

    gradebook.csv            student, points per exercise, total, max, flags
    feedback/<student>.txt   the verdict table the student would see, points, notes
    results/<student>.json   verdicts, notes, flags, time (what a re-run resumes from)

Each submission is graded by `runner.Grader`: its own worker processes, each on its own fresh
copy of the course, with CPU, wall-clock, memory and output limits; submissions run in
parallel, one per core (`--jobs`). A submission that crashes, loops, prints megabytes or
deletes files gets its own verdicts and never stops the batch. Re-running the same command
resumes: a student whose result exists for the same submission, course and limits is not
graded again, and lessons already graded for identical files come from the cache
(`--no-reuse` grades every submission in full). Points come from the points file at the time
the gradebook is written, so changing points needs no re-grading.

Isolation is by processes, not a security sandbox (see `runner.py`): for untrusted code at
scale, use Gradescope's per-submission containers (`dino-course autograder`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from dino_course.grading.catalog import exercises
from dino_course.instructor.points import Points, format_points, load_points
from dino_course.instructor.release import require_full_course
from dino_course.instructor.runner import Course, Grader, LessonCache, Limits, Runner, SubmissionResult, verdict_line
from dino_course.instructor.submit import read_submission
from dino_course.files.safe_files import atomic_write_text

MARKER = ".dino-course-grades.json"
RESULT_FORMAT = 1


@dataclass
class BatchSummary:
    graded: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    output: Path | None = None
    seconds: float = 0.0


def student_name(path: Path) -> str:
    stem = path.stem if path.is_file() else path.name
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", stem).strip("._") or "student"


def find_submissions(folder: Path, output: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValueError(f"DIR_OF_SUBMISSIONS {str(folder)!r} is not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.resolve() == output.resolve():
            continue
        if not (path.is_dir() or (path.is_file() and path.suffix == ".zip")):
            continue
        name = student_name(path)
        if name in found:
            raise ValueError(f"DIR_OF_SUBMISSIONS: {found[name].name} and {path.name} both stand for student {name!r}")
        found[name] = path
    if not found:
        raise ValueError(
            f"DIR_OF_SUBMISSIONS {str(folder)!r} holds no submissions: expected one .zip (from `dino-course submit`) "
            "or one folder per student"
        )
    return found


def _prepare_output(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {str(output)!r} exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / MARKER).exists():
        raise ValueError(
            f"--output {str(output)!r} is a non-empty folder not written by `dino-course grade`: choose another"
        )
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / MARKER, json.dumps({"format": RESULT_FORMAT}) + "\n")


def _saved(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def feedback_text(student: str, result: SubmissionResult, points: Points) -> str:
    report = result.report()
    lines = [
        report.render(f"DINO course: feedback for {student}"), "",
        "Points (an exercise earns its points when it passes):",
    ]
    known = exercises()
    width = max(len(e) for e in known)
    for exercise_id, verdict in result.verdicts.items():
        earned = points.of(exercise_id) if verdict["outcome"] == "passed" else 0
        most = format_points(points.of(exercise_id))
        lines.append(f"  {exercise_id.ljust(width)}  {format_points(earned):>4} / {most}")
    total = sum(points.of(e) for e, v in result.verdicts.items() if v["outcome"] == "passed")
    lines.append(f"Total: {format_points(total)} of {format_points(points.total)} points")
    if result.notes:
        lines += ["", "Notes:"] + [f"  - {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def gradebook_csv(results: dict[str, SubmissionResult], points: Points) -> str:
    ids = list(exercises())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *ids, "total", "max", "flags"])
    for student in sorted(results):
        result = results[student]
        earned = [points.of(e) if result.verdicts[e]["outcome"] == "passed" else 0 for e in ids]
        writer.writerow([student, *map(format_points, earned), format_points(sum(earned)), format_points(points.total),
                         "; ".join(result.flags)])
    return buffer.getvalue()


def grade_batch(
    submissions: str | Path,
    output: str | Path | None = None,
    *,
    jobs: int | None = None,
    limits: Limits = Limits(),
    points_file: str | Path | None = None,
    reuse: bool = True,
    echo=print,
) -> BatchSummary:
    require_full_course()
    folder = Path(submissions).resolve()
    output = Path(output).resolve() if output is not None else folder.with_name(folder.name + "-graded")
    points = load_points(points_file)
    students = find_submissions(folder, output)
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    jobs = jobs or os.cpu_count() or 1
    _prepare_output(output)
    started = time.monotonic()
    work = output / ".work"
    if work.exists():
        shutil.rmtree(work, ignore_errors=True)  # what an interrupted run left behind
    work.mkdir()
    course = Course.snapshot(work / "course")
    runner = Runner(course, work, limits)
    cache = LessonCache(output / ".cache") if reuse else None
    print_lock = threading.Lock()
    log_path = output / "grading.log"

    def log(text: str) -> None:
        with print_lock, open(log_path, "a", encoding="utf-8") as handle:
            handle.write(text.rstrip() + "\n")

    grader = Grader(runner, points, cache, log=log)
    summary = BatchSummary(output=output)
    results: dict[str, SubmissionResult] = {}
    todo: list[tuple[str, Path, object]] = []
    for student, path in students.items():
        submission = read_submission(path)
        saved = _saved(output / "results" / f"{student}.json")
        if (
            saved is not None and saved.get("submission_sha256") == submission.sha256
            and saved.get("course") == course.fingerprint and saved.get("limits") == limits.key()
        ):
            results[student] = SubmissionResult.from_json(saved["result"])
            summary.resumed.append(student)
        else:
            todo.append((student, path, submission))
    if summary.resumed:
        echo(f"resuming: {len(summary.resumed)} of {len(students)} submissions already graded in {output}")
    echo(
        f"grading {len(todo)} submission(s) with {jobs} parallel job(s); "
        f"course {course.fingerprint}, limits {limits.key()}"
    )

    def one(student: str, submission) -> tuple[str, SubmissionResult]:
        result = grader.grade(submission)
        record = {
            "student": student, "submission_sha256": submission.sha256, "course": course.fingerprint,
            "limits": limits.key(), "result": result.to_json(),
        }
        atomic_write_text(output / "results" / f"{student}.json", json.dumps(record, indent=1, sort_keys=True) + "\n")
        atomic_write_text(output / "feedback" / f"{student}.txt", feedback_text(student, result, points))
        return student, result

    done = 0
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(one, student, submission) for student, _, submission in todo]
            for future in as_completed(futures):
                student, result = future.result()
                results[student] = result
                summary.graded.append(student)
                done += 1
                earned = sum(points.of(e) for e, v in result.verdicts.items() if v["outcome"] == "passed")
                with print_lock:
                    echo(
                        f"[{done}/{len(todo)}] {student}: {format_points(earned)}/{format_points(points.total)} points "
                        f"({result.seconds:.1f} s, {result.workers} worker(s)"
                        + (f", {len(result.reused_lessons)} lesson(s) reused" if result.reused_lessons else "")
                        + (", FLAGGED" if result.flags else "") + ")"
                    )
    except KeyboardInterrupt:
        runner.stop()
        echo(f"interrupted: {len(summary.graded)} graded this time; run the same command again to resume")
        raise
    for student in results:  # feedback for resumed students too, with today's points
        atomic_write_text(output / "feedback" / f"{student}.txt", feedback_text(student, results[student], points))
    atomic_write_text(output / "gradebook.csv", gradebook_csv(results, points))
    shutil.rmtree(work, ignore_errors=True)
    summary.seconds = time.monotonic() - started
    flagged = sorted(s for s, r in results.items() if r.flags)
    echo(
        f"gradebook: {output / 'gradebook.csv'} ({len(results)} students); feedback in {output / 'feedback'}"
        + (f"; flagged for a look: {', '.join(flagged)}" if flagged else "")
        + f"; {summary.seconds:.0f} s"
    )
    return summary


def verdict_lines(result: SubmissionResult) -> dict[str, str]:
    """Exercise id -> one-line verdict (for tests and scripts)."""
    return {e: verdict_line(v) for e, v in result.verdicts.items()}
