"""The `dino-course` command (also `python -m dino_course`).

Learners:
    dino-course check [LESSON] [--exercise NAME]   grade one lesson (or all) and print verdicts
    dino-course progress [--no-grade]               your progress: exercises, self-ratings, quiz per lesson
    dino-course train [--preset cpu-digits] ...     train DINO with your code (see `dino-course train --help`)

Maintainers:
    dino-course stubs [--check]                     regenerate dino_course/ exercise stubs from solutions/
    dino-course notebooks [LESSON ...]              re-run lesson notebooks with the reference on, in place

Every subcommand honours DINO_COURSE_REFERENCE (see `dino_course.reference`).
"""

from __future__ import annotations

import argparse
import sys

def _run_check(args: argparse.Namespace) -> int:
    from dino_course.grading.catalog import lessons
    from dino_course.grading.notebook import grade

    if args.exercise and not args.lesson:
        raise ValueError("--exercise needs a LESSON, e.g. dino-course check 3.1 --exercise ema_update")
    chosen = [args.lesson] if args.lesson else list(lessons())
    failed = False
    for lesson in chosen:
        report = grade(lesson, args.exercise, verbose=args.details)
        print(report.render(f"Lesson {lesson} checks"))
        counts = report.counts()
        failed |= counts["failed"] > 0 or counts["not graded"] > 0
    return 1 if failed else 0


def _run_progress(args: argparse.Namespace) -> int:
    from dino_course.dashboard import print_progress

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
    from dino_course.lesson_notebooks import regenerate

    for path, seconds in regenerate(args.lessons or None, cell_timeout=args.timeout):
        print(f"ran {path} in {seconds:.0f} s")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from dino_course.train_job import run_from_arguments

    return run_from_arguments(args)


def build_parser() -> argparse.ArgumentParser:
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

    notebooks = commands.add_parser(
        "notebooks", help="maintainers: re-run lesson notebooks with the reference on and store their outputs"
    )
    notebooks.add_argument("lessons", nargs="*", help="lesson ids (default: every lesson with a notebook)")
    notebooks.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    notebooks.set_defaults(run=_run_notebooks)

    from dino_course.train_job import TRAIN_EPILOG, add_train_arguments

    train = commands.add_parser(
        "train", help="train DINO on a CPU (or under torchrun) with your code or the reference",
        description="Train DINO end to end with the course's code.", epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(train)
    train.set_defaults(run=_run_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except ValueError as exc:  # bad input: one clear line, no traceback
        print(f"dino-course {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
