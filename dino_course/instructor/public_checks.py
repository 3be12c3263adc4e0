"""Public checks: the part of the grading that needs no reference solution.

The hidden checks (`tests/test_<module>.py`) compare a learner's code with `solutions/`, so they
stay with the instructor. The public checks (`tests/public/test_public_<module>.py`) only look at
the learner's code itself: the docstring examples the course documents, types, shapes and
properties that any correct implementation has. The student edition ships them (it runs them
with `pytest`, `dino-course check` and `check("3.1")`, through `student_plugin`); in the full
course they run as well, inside the same isolated worlds as the hidden checks.

Public checks call the learner's code through `CourseModule("student_teacher")`:

- in the full course (a grading session of `dino_course.grading.pytest_plugin` is on), it is
  `LearnerModule`: exercise X from the learner, the reference standing in for everything else;
- in the student edition (no reference exists), it is the learner's own module, loaded afresh
  from their file once per run, so a notebook's `check()` always sees the file as saved.

Passing them does not mean the hidden checks pass: they cannot compare values with a reference.
"""

from __future__ import annotations

import ast
import doctest
import functools
import io
import json
import re
import sys
import types
from decimal import Decimal, InvalidOperation
from pathlib import Path

from dino_course.grading import isolation
from dino_course.grading.catalog import COURSE_PLAN_PATH, SOLUTIONS_DIR, TESTS_DIR, exercises
from dino_course.grading.errors import ExerciseNotStarted

PUBLIC_DIR = TESTS_DIR / "public"
PUBLIC_LABEL = "public checks: passing them does not mean the hidden ones pass"


def public_check_file(module: str) -> Path:
    return PUBLIC_DIR / f"test_public_{module}.py"


def is_student_edition() -> bool:
    """True in a release made by `dino-course release` (no `solutions/`, a course plan instead)."""
    return not SOLUTIONS_DIR.is_dir() and COURSE_PLAN_PATH.exists()


# ----------------------------------------------------------------------------- the learner's module

_loaded: dict[tuple[str, int, int], types.ModuleType] = {}


def forget_loaded_modules() -> None:
    """Drop the learner modules loaded for the student edition (the start of each run)."""
    _loaded.clear()


def _student_module(module: str) -> types.ModuleType:
    path = isolation.learner_file(module)
    stat = path.stat() if path.exists() else None
    key = (module, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
    if key not in _loaded:
        _loaded[key] = isolation.load_learner_module(module)  # one-line LearnerCodeError if it cannot load
    return _loaded[key]


class CourseModule:
    """What a public check calls the learner's module: `st = CourseModule("student_teacher")`."""

    def __init__(self, module: str) -> None:
        known = sorted({e.module for e in exercises().values()})
        if module not in known:
            raise ValueError(f"module must be one of the exercise modules {known}, got {module!r}")
        self._module = module

    def namespace(self) -> types.ModuleType:
        """The module object the current check sees (see the module docstring)."""
        scope = isolation.current_scope()
        if scope is not None:
            return isolation.world(scope).module(self._module)
        if not is_student_edition():
            # Outside a check of the full course (module level of a check file): the reference,
            # as LearnerModule gives, so that a broken learner file never breaks collection.
            return isolation.LearnerModule(self._module)  # type: ignore[return-value]
        return _student_module(self._module)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        namespace = self.namespace()
        try:
            return getattr(namespace, name)
        except AttributeError:
            raise AttributeError(
                f"dino_course/{self._module}.py has no `{name}`: was it renamed or deleted? Keep the course's names"
            ) from None

    def __repr__(self) -> str:
        return f"CourseModule('dino_course.{self._module}')"


# ----------------------------------------------------------------------------- documented examples


def _docstring_in_source(source: str, qualname: str) -> str | None:
    scope: list[ast.stmt] = ast.parse(source).body
    node = None
    for part in qualname.split("."):
        node = next(
            (n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
             and n.name == part),
            None,
        )
        if node is None:
            return None
        scope = node.body
    return ast.get_docstring(node, clean=True)


@functools.lru_cache(maxsize=None)
def _plan_docstrings() -> dict[str, str]:
    if not COURSE_PLAN_PATH.exists():
        return {}
    return json.loads(COURSE_PLAN_PATH.read_text(encoding="utf-8")).get("docstrings", {})


def course_docstring(exercise_id: str) -> str:
    """The exercise's docstring as the course wrote it (the learner may have edited their copy):
    from `solutions/` in the full course, from the course plan in the student edition."""
    exercise = exercises()[exercise_id]
    path = SOLUTIONS_DIR / f"{exercise.module}.py"
    if path.exists():
        text = _docstring_in_source(path.read_text(encoding="utf-8"), exercise.name)
    else:
        text = _plan_docstrings().get(exercise_id)
    if text is None:
        raise LookupError(f"no docstring recorded for exercise {exercise_id}")
    return text


def documented_docstrings() -> dict[str, str]:
    """Exercise id -> docstring, for every exercise (what the release stores in its course plan)."""
    return {exercise_id: course_docstring(exercise_id) for exercise_id in exercises()}


_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


class _TolerantChecker(doctest.OutputChecker):
    """Doctest's comparison, and in addition: the same text with numbers that differ by at most
    one unit in the last digit the docstring prints (0.9966 vs 0.9967), because a correct
    implementation that sums in another order may round the last printed digit the other way.
    Whole numbers (shapes, counts, indices) must match exactly."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        if super().check_output(want, got, optionflags):
            return True
        want_text, got_text = " ".join(want.split()), " ".join(got.split())
        if _NUMBER.sub("#", want_text) != _NUMBER.sub("#", got_text):
            return False
        for expected, actual in zip(_NUMBER.findall(want_text), _NUMBER.findall(got_text)):
            if not any(c in expected for c in ".eE"):
                if expected.lstrip("+") != actual.lstrip("+"):
                    return False
                continue
            try:
                e, a = Decimal(expected), Decimal(actual)
            except InvalidOperation:
                return False
            if abs(e - a) > Decimal(1).scaleb(e.as_tuple().exponent):
                return False
        return True


class _ExampleOutput(doctest._SpoofOut):
    """What an example shows: the values it displays and what its own code prints, but not what
    the learner's functions print on the way (a debugging `print` must not fail the example)."""

    def write(self, text: str) -> int:
        if sys._getframe(1).f_code.co_filename.startswith("<doctest "):
            return super().write(text)
        return len(text)


class _Runner(doctest.DocTestRunner):
    def __init__(self) -> None:
        super().__init__(checker=_TolerantChecker(), optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
        self._fakeout = _ExampleOutput()
        self.first_problem: tuple[str, doctest.Example, object] | None = None

    def report_failure(self, out, test, example, got) -> None:
        if self.first_problem is None:
            self.first_problem = ("output", example, got)

    def report_unexpected_exception(self, out, test, example, exc_info) -> None:
        if self.first_problem is None:
            self.first_problem = ("exception", example, exc_info)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_documented_examples(module: CourseModule, exercise_id: str) -> int:
    """Run the examples of the exercise's docstring against the learner's code; return how many ran.

    They run in the module the learner's exercise lives in (so `nn`, `torch` and the module's
    own names are there, as in the docstring). The first example whose printed result differs
    (beyond the last printed digit) or that raises fails the check with a one-line message; an
    example that reaches an unstarted exercise makes the check "not started".
    """
    exercise = exercises()[exercise_id]
    parser = doctest.DocTestParser()
    globs = dict(vars(module.namespace()))
    test = parser.get_doctest(course_docstring(exercise_id), globs, exercise_id, f"dino_course/{exercise.module}.py", 0)
    if not test.examples:
        raise LookupError(f"the docstring of {exercise_id} has no examples")
    runner = _Runner()
    saved_stdout = sys.stdout
    try:
        runner.run(test, out=io.StringIO().write, clear_globs=True)
    finally:
        sys.stdout = saved_stdout  # doctest swaps sys.stdout while it runs
    if runner.first_problem is None:
        return len(test.examples)
    kind, example, detail = runner.first_problem
    source = _one_line(example.source, 100)
    if kind == "exception":
        exc_type, exc, tb = detail
        if isinstance(exc, ExerciseNotStarted):
            raise exc.with_traceback(tb)
        raise AssertionError(
            f"the docstring example `{source}` raised {exc_type.__name__}: {_one_line(exc, 200)}"
        ).with_traceback(tb)
    raise AssertionError(
        f"the docstring example `{source}` printed {_one_line(detail)!s} instead of {_one_line(example.want)}"
    )
