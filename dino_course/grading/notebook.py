"""Grade a lesson from inside a notebook: `check("3.1")` or `check("3.1", "ema_update")`.

It runs the very same hidden checks as `pytest`, in the notebook's own process (so it takes
a second or two, not the time to start a new Python), and prints the same verdicts.
"""

from __future__ import annotations

import contextlib
import io

from dino_course.grading import reference_switch as reference
from dino_course.grading.catalog import REPO_ROOT, TESTS_DIR, lessons
from dino_course.grading.report import GradeReport

PUBLIC_DIR = TESTS_DIR / "public"  # checks that need no reference (see dino_course.instructor.public_checks)


def grade(lesson: str, exercise: str | None = None, *, verbose: bool = False) -> GradeReport:
    """Run the checks of `lesson` (optionally one `exercise`) and return the `GradeReport`."""
    import pytest

    known = lessons()
    if lesson not in known:
        raise ValueError(f"lesson must be one of {sorted(known)}, got {lesson!r}")
    names = [e.name for e in known[lesson].exercises]
    if exercise is not None and exercise not in names:
        raise ValueError(f"exercise must be one of lesson {lesson}'s exercises {names}, got {exercise!r}")
    # The hidden checks (all of them: `--lesson` selects this lesson's, and an integration check
    # also runs the checks of the exercises it builds on) and the lesson's public checks (the
    # student edition has only those).
    files = sorted(TESTS_DIR.glob("test_*.py")) + [PUBLIC_DIR / f"test_public_{module}.py" for module in known[lesson].modules]
    files = [str(f) for f in files if f.exists()]
    if not files:
        return GradeReport()
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
    if verbose:
        args.append("--details")
    capture = _ConfigCapture()
    output = io.StringIO()
    with _native_stderr_into(output), contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        pytest.main(args, plugins=[capture])
    if verbose:
        print(output.getvalue())
    grades = getattr(capture.config, "dino_grades", None)
    if grades is None:  # pytest stopped before configuring (a usage error): say what it said
        raise RuntimeError(f"the checks could not be run:\n{output.getvalue().strip()}")
    return grades.report()


@contextlib.contextmanager
def _native_stderr_into(output: io.StringIO):
    """Send what compiled code writes to file descriptor 2 into `output`, not the notebook.

    `--capture=sys` (above) catches Python's prints only. Compiled libraries write to the file
    descriptor itself: PyTorch's profiler, which the `measure_forward` checks run, prints
    `USDT: ... profiler_start` lines (and, on a CUDA build without a GPU, `gpuGetDeviceCount failed`)
    whatever its log level. Those lines say nothing about the learner's code, so they join pytest's
    own output, shown only with `verbose=True`.
    """
    import os
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2 (e.g. a closed stream): nothing to catch
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            output.write(sink.read().decode("utf-8", errors="replace"))


class _ConfigCapture:
    """A pytest plugin that keeps the run's config, whose `dino_grades` holds the verdicts."""

    config = None

    def pytest_configure(self, config) -> None:
        self.config = config


def check(lesson: str, exercise: str | None = None, *, verbose: bool = False) -> None:
    """Print the per-exercise verdicts of `lesson` (or of one `exercise`); `verbose` adds pytest's output."""
    report = grade(lesson, exercise, verbose=verbose)
    title = f"Lesson {lesson} checks" + (f" ({exercise})" if exercise else "")
    if not any(TESTS_DIR.glob("test_*.py")):  # the student edition
        title += " (public checks: passing them does not mean the hidden ones pass)"
    if reference.is_reference(lesson):
        title += " (reference switched on for this lesson)"
    print(report.render(title))
