"""The `dino-course` command (also `python -m dino_course`).

Learners:
    dino-course check [LESSON] [--exercise NAME]   grade one lesson (or all) and print verdicts
    dino-course progress [--no-grade]               your progress: exercises, self-ratings, quiz per lesson
    dino-course train [--preset cpu-digits] ...     train DINO with your code (see `dino-course train --help`)

    dino-course submit [--output FILE]              write your hand-in archive (exercise files and a manifest)

Instructors (see dino_course/instructor/):
    dino-course release DIR                         a student edition in DIR: no solutions, no hidden checks
    dino-course autograder DIR                      a Gradescope autograder bundle in DIR
    dino-course grade DIR_OF_SUBMISSIONS            grade a class: gradebook.csv and one feedback file each

Maintainers:
    dino-course stubs [--check]                     regenerate dino_course/ exercise stubs from solutions/
    dino-course notebooks [LESSON ...]              re-run lesson notebooks with the reference on, in place

Every subcommand honours DINO_COURSE_REFERENCE (see `dino_course.grading.reference_switch`).
Bad input to any subcommand is one line on stderr and exit status 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run_check(args: argparse.Namespace) -> int:
    from dino_course.grading.catalog import lessons
    from dino_course.grading.notebook import grade

    if args.exercise and not args.lesson:
        raise ValueError("--exercise needs a LESSON, e.g. dino-course check 3.1 --exercise ema_update")
    chosen = [args.lesson] if args.lesson else list(lessons())
    failed = False
    for lesson in chosen:
        report = grade(lesson, args.exercise, verbose=args.details)
        title = f"Lesson {lesson} checks"
        if _student_edition():
            title += " (public checks: passing them does not mean the hidden ones pass)"
        print(report.render(title))
        counts = report.counts()
        failed |= counts["failed"] > 0 or counts["not graded"] > 0
    return 1 if failed else 0


def _run_progress(args: argparse.Namespace) -> int:
    from dino_course.assessment.dashboard import print_progress

    print_progress(grade=not args.no_grade)
    return 0


def _run_stubs(args: argparse.Namespace) -> int:
    from dino_course.grading.stubs import out_of_date_stubs, write_stubs

    if args.check:
        stale = out_of_date_stubs()
        for path in stale:
            print(f"out of date: {path} (run `dino-course stubs`)")
        print("stubs in sync with solutions/" if not stale else f"{len(stale)} stub(s) out of date")
        return 1 if stale else 0
    changed = write_stubs()
    print("\n".join(f"regenerated {path}" for path in changed) or "stubs already in sync")
    return 0


def _run_notebooks(args: argparse.Namespace) -> int:
    from dino_course.maintenance.lesson_notebooks import regenerate

    for path, seconds in regenerate(args.lessons or None, cell_timeout=args.timeout):
        print(f"ran {path} in {seconds:.0f} s")
    return 0


def _run_submit(args: argparse.Namespace) -> int:
    from dino_course.instructor.submit import write_submission

    path, manifest, warnings = write_submission(args.output, overwrite=args.overwrite)
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"wrote {path}: {len(manifest['files'])} exercise files and manifest.json; hand in this file")
    return 0


def _limits(args: argparse.Namespace):
    from dino_course.instructor.runner import Limits

    if args.time_limit <= 0:
        raise ValueError(f"--time-limit must be a positive number of seconds, got {args.time_limit:g}")
    if args.memory_limit_mb < 512:
        raise ValueError(f"--memory-limit-mb must be at least 512, got {args.memory_limit_mb}")
    return Limits(check_time_limit_s=args.time_limit, memory_mb=args.memory_limit_mb)


def _run_release(args: argparse.Namespace) -> int:
    from dino_course.instructor.points import load_points
    from dino_course.instructor.release import build_release, release_summary

    commit = build_release(args.dir, points_file=args.points, git=not args.no_git)
    print(release_summary(Path(args.dir).resolve(), commit, load_points(args.points)))
    return 0


def _run_autograder(args: argparse.Namespace) -> int:
    from dino_course.instructor.autograder import build_autograder

    archive = build_autograder(args.dir, points_file=args.points, limits=_limits(args))
    print(f"wrote {archive} (upload it to Gradescope as the autograder); its contents: {archive.parent / 'source'}")
    return 0


def _run_grade(args: argparse.Namespace) -> int:
    from dino_course.instructor.batch import grade_batch

    grade_batch(
        args.submissions, args.output, jobs=args.jobs, limits=_limits(args), points_file=args.points,
        reuse=not args.no_reuse,
    )
    return 0


def _student_edition() -> bool:
    from dino_course.instructor.public_checks import is_student_edition

    return is_student_edition()


def _add_instructor_commands(commands) -> None:
    def limits(command: argparse.ArgumentParser) -> None:
        command.add_argument("--time-limit", type=float, default=20.0, help="seconds per exercise (default 20)")
        command.add_argument(
            "--memory-limit-mb", type=int, default=8192, help="memory per grading process (default 8192)"
        )
        command.add_argument("--points", help="points file (default: dino_course/instructor/points.toml)")

    release = commands.add_parser(
        "release", help="instructors: write a student edition (no solutions, no hidden checks) in DIR"
    )
    release.add_argument("dir", metavar="DIR", help="a new or empty folder")
    release.add_argument("--points", help="points file (default: dino_course/instructor/points.toml)")
    release.add_argument("--no-git", action="store_true", help="write the files only, not a git repository")
    release.set_defaults(run=_run_release)

    autograder = commands.add_parser("autograder", help="instructors: write a Gradescope autograder bundle in DIR")
    autograder.add_argument("dir", metavar="DIR", help="a new or empty folder")
    limits(autograder)
    autograder.set_defaults(run=_run_autograder)

    grade = commands.add_parser(
        "grade", help="instructors: grade a folder of submissions into a gradebook (CSV) and feedback files",
        description="Grade one submission per student (a .zip from `dino-course submit`, or a folder) in processes of "
        "their own. Isolation is by processes, not a security sandbox: for untrusted code at scale use Gradescope.",
    )
    grade.add_argument("submissions", metavar="DIR_OF_SUBMISSIONS", help="one .zip or one folder per student")
    grade.add_argument("--output", help="results folder (default: DIR_OF_SUBMISSIONS-graded next to it)")
    grade.add_argument("--jobs", type=int, default=None, help="submissions graded in parallel (default: CPU cores)")
    grade.add_argument("--no-reuse", action="store_true", help="grade identical lesson files again for every student")
    limits(grade)
    grade.set_defaults(run=_run_grade)


def _run_train(args: argparse.Namespace) -> int:
    from dino_course.job.train import run_from_arguments

    return run_from_arguments(args)


def build_parser() -> argparse.ArgumentParser:
    from dino_course.job.settings import integer_at_least  # imports no lesson file

    parser = argparse.ArgumentParser(prog="dino-course", description="Learn DINO by implementing it.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser("check", help="grade your exercises (one lesson, or all) and print verdicts")
    check.add_argument("lesson", nargs="?", help="lesson id such as 3.1 (default: every lesson)")
    check.add_argument("--exercise", help="only this exercise of the lesson")
    check.add_argument("--details", action="store_true", help="also print pytest's full report of each failed check")
    check.set_defaults(run=_run_check)

    progress = commands.add_parser("progress", help="your progress per lesson: exercises passed, self-ratings, quiz")
    progress.add_argument("--no-grade", action="store_true", help="skip running the checks (ratings and quiz only)")
    progress.set_defaults(run=_run_progress)

    stubs = commands.add_parser("stubs", help="maintainers: regenerate the exercise stubs in dino_course/ from solutions/")
    stubs.add_argument("--check", action="store_true", help="only report stubs that are out of date (exit 1)")
    stubs.set_defaults(run=_run_stubs)

    submit = commands.add_parser(
        "submit", help="write your hand-in archive: your exercise files and a manifest, nothing else"
    )
    submit.add_argument("--output", help="where to write it (default: dino-course-submission.zip in the course folder)")
    submit.add_argument("--overwrite", action="store_true", help="replace an existing archive of that name")
    submit.set_defaults(run=_run_submit)

    if not _student_edition():
        _add_instructor_commands(commands)

    notebooks = commands.add_parser(
        "notebooks", help="maintainers: re-run lesson notebooks with the reference on and store their outputs"
    )
    notebooks.add_argument("lessons", nargs="*", help="lesson ids (default: every lesson with a notebook)")
    notebooks.add_argument("--timeout", type=integer_at_least(1), default=600, help="seconds allowed per cell")
    notebooks.set_defaults(run=_run_notebooks)

    train_help = "train DINO on a CPU (or under torchrun) with your code or the reference"
    try:
        from dino_course.job.train import TRAIN_EPILOG, add_train_arguments
    except Exception as error:  # noqa: BLE001  (any error a learner's lesson file raises on import)
        # The job reads its settings' defaults from the lesson files. One that does not import (a syntax
        # error, say) must stop only `train`, never `check` or the other commands.
        _add_unavailable_train_command(commands, train_help, error)
        _add_debug_flags(commands)
        return parser
    train = commands.add_parser(
        "train", help=train_help,
        description="Train DINO end to end with the course's code.", epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(train)
    train.set_defaults(run=_run_train)
    _add_debug_flags(commands)
    return parser


def _add_debug_flags(commands) -> None:
    """`--debug` on every subcommand: bad input then shows Python's traceback instead of one line."""
    for command in commands.choices.values():
        if "-" in command.prefix_chars:  # not the stand-in `train` that takes every argument as it is
            command.add_argument(
                "--debug", action="store_true", help="on bad input show the full traceback, not one line"
            )


def _add_unavailable_train_command(commands, train_help: str, error: Exception) -> None:
    """A `train` command that takes any arguments and explains why the job cannot start."""
    import traceback

    from dino_course.grading.catalog import lesson_of_module

    files = [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
    if isinstance(error, SyntaxError) and error.filename:
        files.append(error.filename)
    lessons = [lesson_of_module(Path(name).stem) for name in files if Path(name).parent.name == "dino_course"]
    lesson = next((found for found in reversed(lessons) if found), "<lesson>")
    where = f" ({error.filename}, line {error.lineno})" if isinstance(error, SyntaxError) else ""
    message = (
        f"dino-course train cannot start: a lesson file it reads its settings from does not import{where}: "
        f"{type(error).__name__}: {error}\n"
        "  - fix that file (`dino-course check` shows which lesson fails), or\n"
        f"  - use the reference for its lesson: DINO_COURSE_REFERENCE={lesson} dino-course train ..."
    )
    # prefix_chars="\0": no argument is taken for an option, so `train --preset x --help` reaches the message
    train = commands.add_parser("train", help=train_help, add_help=False, prefix_chars="\0")
    train.add_argument("arguments", nargs="*")

    def explain(args: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 2

    train.set_defaults(run=explain)


def main(argv: list[str] | None = None) -> int:
    from dino_course.grading.reference_switch import reference_lessons

    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        # A bad DINO_COURSE_REFERENCE (an unknown lesson; any value in a student edition) is said here,
        # once, before a lesson file is imported through the switch (`train` would blame a lesson file).
        reference_lessons()
    except ValueError as exc:
        if "--debug" in arguments:
            raise
        print(f"dino-course: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except USER_ERRORS as exc:  # bad input: one clear line, no traceback (unless --debug)
        if getattr(args, "debug", False):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, TypeError):  # as likely a bug in an exercise as bad input: say where to look
            message += " (run again with --debug to see where)"
        print(f"dino-course {args.command}: {message}", file=sys.stderr)
        return 2


# What bad input raises anywhere behind a subcommand: a setting, a path or file that cannot be used
# (a `ValueError`, with `CheckpointError` and the job's `SettingError` among them), a value of the
# wrong type, or the operating system refusing a file or folder. Each message names the argument
# and the value; a bug shows as such with `--debug`.
USER_ERRORS = (ValueError, TypeError, OSError)


if __name__ == "__main__":
    sys.exit(main())
