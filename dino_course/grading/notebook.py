"""Grade a lesson from inside a notebook: `check("3.1")` or `check("3.1", "ema_update")`.

It runs the very same hidden checks as `pytest`, in the notebook's own process (so it takes
a second or two, not the time to start a new Python), and prints the same verdicts.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys

from dino_course import reference
from dino_course.grading.catalog import REPO_ROOT, TESTS_DIR, lessons
from dino_course.grading.report import GradeReport


def _reload_learner_modules() -> None:
    """Pick up the learner's latest edits (a notebook keeps modules imported)."""
    for lesson in lessons().values():
        if reference.is_reference(lesson.id):
            continue
        for module in lesson.modules:
            name = f"dino_course.{module}"
            if name in sys.modules:
                try:
                    importlib.reload(sys.modules[name])
                except Exception:  # the checks will import it again and report the error
                    sys.modules.pop(name, None)


def grade(lesson: str, exercise: str | None = None, *, verbose: bool = False) -> GradeReport:
    """Run the checks of `lesson` (optionally one `exercise`) and return the `GradeReport`."""
    import pytest

    from dino_course.grading.pytest_plugin import GradeCollector

    known = lessons()
    if lesson not in known:
        raise ValueError(f"lesson must be one of {sorted(known)}, got {lesson!r}")
    names = [e.name for e in known[lesson].exercises]
    if exercise is not None and exercise not in names:
        raise ValueError(f"exercise must be one of lesson {lesson}'s exercises {names}, got {exercise!r}")
    files = [TESTS_DIR / f"test_{module}.py" for module in known[lesson].modules]
    files = [str(f) for f in files if f.exists()]
    if not files:
        return GradeReport()
    _reload_learner_modules()
    args = [
        *files,
        f"--rootdir={REPO_ROOT}",
        "--lesson",
        lesson,
        "-p",
        "no:cacheprovider",
        "--capture=sys",
        "-q",
        "--no-header",
        "-W",
        "ignore",
    ]
    if exercise is not None:
        args += ["--exercise", exercise]
    collector = GradeCollector()
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        pytest.main(args, plugins=[collector])
    if verbose:
        print(output.getvalue())
    return collector.report()


def check(lesson: str, exercise: str | None = None, *, verbose: bool = False) -> None:
    """Print the per-exercise verdicts of `lesson` (or of one `exercise`); `verbose` adds pytest's output."""
    report = grade(lesson, exercise, verbose=verbose)
    title = f"Lesson {lesson} checks" + (f" ({exercise})" if exercise else "")
    if reference.is_reference(lesson):
        title += " (reference switched on for this lesson)"
    print(report.render(title))
