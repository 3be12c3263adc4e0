"""pytest plugin that turns the hidden checks into per-exercise grades.

Loaded by the repository's `conftest.py`. It adds:

    --reference         run the checks with the reference solutions standing in (all lessons)
    --maintainer        also run the course's own checks (tests/maintainer/)
    --lesson 3.1,3.2    only the checks of these lessons
    --exercise NAME     only the checks of this exercise (with --lesson)
    --details           pytest's full failure reports as well (also with -v)
    --list-checks       with --collect-only: print "exercise-id <tab> test" for every check

Each check is tied to one exercise with `@pytest.mark.exercise("3.1", "ema_update")` and runs
in that exercise's isolated world (`dino_course.grading.isolation`): the learner's exercise,
the reference for everything it builds on. An integration check, marked
`@pytest.mark.integration("ema_update", ...)` as well, also takes the named exercises from the
learner; it runs after the exercise's own checks and only when those named exercises pass.

Verdicts: a check that stops on the exercise's stub error is *not started* (a skip, so a fresh
clone's `pytest` exits 0); a failure is summarised in one line with its hint and the learner's
file and line. Every exercise of the lessons graded gets a verdict, "not graded" when no check
of it could run, and `pytest` exits non-zero when anything failed or could not be graded.
One time limit per exercise: after one of its checks runs out of time, its other checks are
reported "not run" at once.
"""

from __future__ import annotations

import ast
import os
import sys
import traceback
from pathlib import Path

import pytest

from dino_course.grading import reference_switch as reference
from dino_course.grading import isolation
from dino_course.grading.catalog import TESTS_DIR, Exercise, exercises, lessons
from dino_course.grading.errors import ExerciseNotStarted, LearnerCodeError
from dino_course.grading.report import FAILED, NOT_GRADED, NOT_STARTED, PASSED, CheckResult, GradeReport

# Per-exercise time limit: the slowest reference check takes about 1 s on a laptop CPU, so 20 s
# only stops endless loops. DINO_COURSE_CHECK_TIME_LIMIT overrides it (the engine's own tests).
CHECK_TIME_LIMIT_S = float(os.environ.get("DINO_COURSE_CHECK_TIME_LIMIT", "20"))
MAINTAINER_DIR = TESTS_DIR / "maintainer"
BROWSER_DIR = TESTS_DIR / "browser"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dino-course")
    group.addoption("--reference", action="store_true", help="grade the reference solutions instead of your code")
    group.addoption("--maintainer", action="store_true", help="also run the course's own checks (tests/maintainer)")
    group.addoption("--lesson", default=None, help="only the checks of these lessons, e.g. 3.1 or 3.1,3.2")
    group.addoption("--exercise", default=None, help="only the checks of this exercise, e.g. ema_update")
    group.addoption("--details", action="store_true", help="show pytest's full report of each failed check too")
    group.addoption("--list-checks", action="store_true", help="print each check's exercise id while collecting")


def pytest_ignore_collect(collection_path, config: pytest.Config):
    """Do not even import the course's own checks unless asked."""
    if MAINTAINER_DIR == collection_path or MAINTAINER_DIR in collection_path.parents:
        return None if config.getoption("maintainer") else True
    if BROWSER_DIR == collection_path or BROWSER_DIR in collection_path.parents:
        return None if "browser" in (config.getoption("markexpr") or "") else True
    return None


# ----------------------------------------------------------------------------- the grading session


_KEPT = ("dino_course", "dino_course.grading.reference_switch")


def _course_modules() -> dict[str, object]:
    """Modules a grading session imports afresh: the course's exercise and given modules, the
    reference, and the hidden check files (not the grading engine itself)."""
    found = {}
    for name, module in list(sys.modules.items()):
        if name in _KEPT or name.startswith("dino_course.grading"):
            continue
        if name.startswith("dino_course.") or name == "solutions" or name.startswith("solutions."):
            found[name] = module
            continue
        file = getattr(module, "__file__", None)
        if file and Path(file).name.startswith("test_") and Path(file).parent == TESTS_DIR:
            found[name] = module
    return found


class GradingSession:
    """Sets up the worlds the checks run in, and puts the process back as it was afterwards.

    During the session every exercise module imports as the reference (a check's given code and
    the reference it compares with are never the learner's), and modules a notebook had already
    imported are set aside so the checks get fresh ones; at the end they are restored, so an
    in-notebook `check()` leaves the notebook's own objects alone.
    """

    def __init__(self) -> None:
        self.saved = _course_modules()
        self.saved_attributes = {}
        for name in self.saved:
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            package = sys.modules.get(parent) if parent else None
            if package is not None and child in vars(package):
                self.saved_attributes[(parent, child)] = vars(package)[child]
                delattr(package, child)  # else `from dino_course import x` would find the old one
        reference.alias_every_lesson(True)
        isolation.forget_worlds()
        # The checks run tiny tensors: one thread is faster than a pool (0.5 s against 2 ms per
        # op on a busy 2-core machine), and the golden numbers were computed with one thread.
        import torch

        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def close(self) -> None:
        import torch

        torch.set_num_threads(self.threads)
        reference.alias_every_lesson(False)
        isolation.forget_worlds()
        for name in _course_modules():
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            package = sys.modules.get(parent) if parent else None
            if package is not None and child in vars(package):
                delattr(package, child)
        sys.modules.update(self.saved)
        for (parent, child), value in self.saved_attributes.items():
            if parent in sys.modules:
                setattr(sys.modules[parent], child, value)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exercise(lesson, name): the exercise a hidden check grades")
    config.addinivalue_line(
        "markers", "integration(*exercises): an integration check that also runs the learner's code of these exercises"
    )
    config.addinivalue_line("markers", "maintainer: a check of the course itself, run with --maintainer")
    config.addinivalue_line("markers", "browser: starts JupyterLab and Chromium; run with -m browser")
    if config.getoption("reference"):
        os.environ[reference.ENV_VAR] = "all"
        reference.forget_exercise_modules()
    reference.reference_lessons()  # a bad DINO_COURSE_REFERENCE fails here, with a clear message
    config.option.continue_on_collection_errors = True
    if not (config.getoption("details") or config.getoption("maintainer") or config.option.verbose > 0):
        # A learner reads the per-exercise table; pytest's tracebacks stay behind --details.
        config.option.tbstyle = "no"
        config.option.reportchars = ""
    if not hasattr(config, "dino_grades"):
        config.dino_grades = GradeCollector(config)
        config.pluginmanager.register(config.dino_grades, "dino-course-grades")
    if not hasattr(config, "dino_session"):
        config.dino_session = GradingSession()


def pytest_unconfigure(config: pytest.Config) -> None:
    session = getattr(config, "dino_session", None)
    if session is not None:
        session.close()
        del config.dino_session


# ----------------------------------------------------------------------------- selecting and ordering checks


def _exercise_id(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("exercise")
    if marker is None:
        return None
    if len(marker.args) != 2:
        raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.exercise(lesson, name), got {marker.args}")
    return f"{marker.args[0]}/{marker.args[1]}"


def _dependencies(item: pytest.Item) -> tuple[str, ...]:
    marker = item.get_closest_marker("integration")
    return tuple(marker.args) if marker is not None else ()


def _is_integration(item: pytest.Item) -> bool:
    return item.get_closest_marker("integration") is not None


def _is_maintainer(item: pytest.Item) -> bool:
    return item.get_closest_marker("maintainer") is not None or MAINTAINER_DIR in item.path.parents


def _selected_lessons(config: pytest.Config) -> set[str]:
    return {s.strip() for s in (config.getoption("lesson") or "").split(",") if s.strip()}


def _dependency_ids(item: pytest.Item) -> list[str]:
    lesson = (_exercise_id(item) or "").partition("/")[0]
    return [d if "/" in d else f"{lesson}/{d}" for d in _dependencies(item)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lessons_chosen = _selected_lessons(config)
    exercise = config.getoption("exercise")
    keep, drop = [], []
    for item in items:
        exercise_id = _exercise_id(item)
        if _is_maintainer(item):
            selected = config.getoption("maintainer") and not lessons_chosen
        elif exercise_id is None:
            selected = item.get_closest_marker("browser") is None or "browser" in (config.getoption("markexpr") or "")
        else:
            lesson, _, name = exercise_id.partition("/")
            selected = (not lessons_chosen or lesson in lessons_chosen) and (exercise is None or name == exercise)
        (keep if selected else drop).append(item)
    # An integration check needs the verdicts of the exercises it builds on: their own checks run
    # too (first), to decide whether it can be graded, without appearing in this run's table.
    needed = {d for item in keep if _is_integration(item) for d in _dependency_ids(item)}
    grades = getattr(config, "dino_grades", None)
    for item in list(drop):
        if _exercise_id(item) in needed and not _is_integration(item):
            drop.remove(item)
            keep.append(item)
            if grades is not None:
                grades.dependency_only.add(item.nodeid)
    for item in keep:
        if _exercise_id(item) is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(CHECK_TIME_LIMIT_S))
    # integration checks last: they need the verdicts of the exercises they build on
    keep.sort(key=_is_integration)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
    if config.getoption("list_checks"):
        writer = config.get_terminal_writer()
        for item in items:
            writer.line(f"{_exercise_id(item) or '-'}\t{item.nodeid}")


# ----------------------------------------------------------------------------- running one check


class NotRun(Exception):
    """A check the engine decided not to run; its message is the verdict's text."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    exercise_id = _exercise_id(item)
    if exercise_id is None or exercise_id not in exercises():
        return (yield)
    lesson = exercise_id.partition("/")[0]
    scope = isolation.scope_for(exercise_id, _dependencies(item), reference=reference.is_reference(lesson))
    with isolation.grading(scope):
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    exercise_id = _exercise_id(item)
    if exercise_id is None:
        return
    grades: GradeCollector = item.config.dino_grades
    if exercise_id in grades.timed_out:
        raise NotRun(FAILED, grades.timed_out[exercise_id])
    if _is_integration(item):
        own = grades.outcomes(exercise_id, include_integration=False)
        if FAILED in own or NOT_STARTED in own:
            raise NotRun(NOT_GRADED, "integration check not run: this exercise's own checks do not pass yet")
        for key in _dependency_ids(item):
            outcomes = grades.outcomes(key)
            name = key.partition("/")[2]
            if not outcomes:
                raise NotRun(NOT_GRADED, f"integration check not graded: it depends on `{name}`, which was not graded in this run")
            if FAILED in outcomes or NOT_GRADED in outcomes:
                raise NotRun(NOT_GRADED, f"integration check not graded: depends on `{name}`, which fails — fix that first")
            if NOT_STARTED in outcomes:
                raise NotRun(NOT_GRADED, f"integration check not graded: depends on `{name}`, which is not started")


def _learner_location(excinfo: pytest.ExceptionInfo, exercise: Exercise) -> str:
    """`dino_course/<module>.py:<line>` of the deepest frame in the learner's file, if any."""
    path = isolation.learner_file(exercise.module)
    frames = [f for f in traceback.extract_tb(excinfo.tb) if Path(f.filename) == path]
    return f"{isolation.learner_path_text(exercise.module)}:{frames[-1].lineno}" if frames else ""


def _definition_line(exercise: Exercise) -> str:
    """`dino_course/<module>.py:<line>` where the learner's exercise is defined."""
    path = isolation.learner_file(exercise.module)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ""
    scope, node = tree.body, None
    for part in exercise.name.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
        if node is None:
            return ""
        scope = node.body
    return f"{isolation.learner_path_text(exercise.module)}:{node.lineno}"


def _verdict(excinfo: pytest.ExceptionInfo, item: pytest.Item, exercise: Exercise) -> tuple[str, str, str]:
    """(outcome, one-line message, learner location) for a check that raised."""
    exc = excinfo.value
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, NotRun):
        return exc.outcome, text, ""
    if isinstance(exc, LearnerCodeError):
        return FAILED, text, ""
    if isolation.is_time_limit(exc):
        return FAILED, (
            f"took longer than {CHECK_TIME_LIMIT_S:g} s and was stopped: is there an endless loop, "
            "or far more work than the exercise needs?"
        ), _learner_location(excinfo, exercise) or _definition_line(exercise)
    if isinstance(exc, AssertionError):
        if not first or first.startswith("assert "):
            first = f"a check failed: {excinfo.exconly().splitlines()[0]}"
        return FAILED, first, _definition_line(exercise)
    if type(exc).__name__ == "Failed" and first.startswith("DID NOT RAISE"):
        return FAILED, (
            f"`{exercise.name}` accepted an invalid argument without raising ({first.removeprefix('DID NOT RAISE').strip()} "
            "expected): check the arguments as its docstring's Raises section says"
        ), _definition_line(exercise)
    location = _learner_location(excinfo, exercise)
    if not location:
        # The error came from given or reference code called with what the learner's code handed it.
        return FAILED, f"{type(exc).__name__} in code your `{exercise.name}` called or returned to: {first}".rstrip(": "), _definition_line(exercise)
    return FAILED, f"your code raised {type(exc).__name__}: {first}".rstrip(": "), location


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    exercise_id = _exercise_id(item)
    if exercise_id is None or exercise_id not in exercises():
        return report
    exercise = exercises()[exercise_id]
    details = item.config.getoption("details") or item.config.option.verbose > 0
    if call.excinfo is None:
        if call.when == "call" and report.passed and _stub_untouched(exercise):
            # A check that passes while the exercise is still its stub tests given code only:
            # never count that as the learner's pass.
            report.outcome = "skipped"
            report.longrepr = (str(item.path), (item.location[1] or 0) + 1, "not started")
            report.dino_verdict = (NOT_STARTED, "", "")
        return report
    if call.excinfo.errisinstance(pytest.skip.Exception):
        return report
    exc = _not_started_in(call.excinfo.value)
    if isinstance(exc, ExerciseNotStarted) and not reference.is_reference(exercise.lesson):
        this = exc.lesson == exercise.lesson and exc.exercise == exercise.name
        message = "" if this else f"waiting for exercise {exc.lesson} `{exc.exercise}`"
        report.outcome = "skipped"
        report.longrepr = (str(item.path), (item.location[1] or 0) + 1, f"not started {message}".strip())
        report.dino_verdict = (NOT_STARTED, message, "")
        return report
    outcome, message, location = _verdict(call.excinfo, item, exercise)
    if item.nodeid in item.config.dino_grades.dependency_only:
        # run only to decide whether an integration check of another lesson can run: its failure
        # is that lesson's business (and shows when it is graded), not this run's
        report.dino_verdict = (outcome, message, location)
        report.outcome = "skipped"
        report.longrepr = (str(item.path), (item.location[1] or 0) + 1, f"dependency check: {message}")
        return report
    if isolation.is_time_limit(exc):
        item.config.dino_grades.timed_out[exercise_id] = (
            f"not run: an earlier check of this exercise ran out of time ({CHECK_TIME_LIMIT_S:g} s)"
        )
    report.dino_verdict = (outcome, message, location)
    if isinstance(exc, NotRun):
        # not run at all: shown as a skip (the verdict table says why; a FAILED verdict still
        # makes the run exit non-zero), not as pytest's "error in setup"
        report.outcome = "skipped"
        report.longrepr = (str(item.path), (item.location[1] or 0) + 1, message)
    elif not details:
        report.longrepr = f"{exercise.id}: {message}" + (f"\n  at {location}" if location else "")
    return report


def _not_started_in(exc: BaseException) -> BaseException:
    """The stub's `ExerciseNotStarted` if `exc` is it or was raised while handling it (a check
    that wraps the learner's error in its own hint); else `exc` itself."""
    seen, current = set(), exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ExerciseNotStarted):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return exc


def _stub_untouched(exercise: Exercise) -> bool:
    """True while the learner's file still holds the exercise's generated `raise` line."""
    if reference.is_reference(exercise.lesson):
        return False
    path = isolation.learner_file(exercise.module)
    marker = f'raise ExerciseNotStarted("{exercise.lesson}", "{exercise.name}")'
    return path.exists() and marker in path.read_text(encoding="utf-8")


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A check file that fails to import leaves its exercises "not graded", with the reason."""
    report = yield
    if isinstance(collector, pytest.Module) and collector.path.parent == TESTS_DIR:
        module = collector.path.stem.removeprefix("test_")
        grades: GradeCollector = collector.config.dino_grades
        grades.collected_modules.add(module)
        if report.failed:
            lines = [line[1:].strip() for line in str(report.longrepr).splitlines() if line.startswith("E ")]
            reason = lines[-1] if lines else str(report.longrepr).strip().splitlines()[-1]
            grades.collection_errors[module] = f"the check file tests/test_{module}.py failed to import: {reason}"
    return report


class GradeCollector:
    """Collects one `CheckResult` per exercise check of a run and says which exercises it covers."""

    def __init__(self, config: pytest.Config | None = None) -> None:
        self.config = config
        self.results: dict[str, CheckResult] = {}
        self._exercise_of: dict[str, tuple[str, bool]] = {}
        self.timed_out: dict[str, str] = {}
        self.dependency_only: set[str] = set()  # checks run only to decide whether an integration check can run
        self.collected_modules: set[str] = set()
        self.collection_errors: dict[str, str] = {}

    def outcomes(self, exercise_id: str, *, include_integration: bool = True) -> set[str]:
        return {
            r.outcome
            for r in self.results.values()
            if r.exercise_id == exercise_id and (include_integration or not r.integration)
        }

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            exercise_id = _exercise_id(item)
            if exercise_id is not None:
                self._exercise_of[item.nodeid] = (exercise_id, _is_integration(item))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = self._exercise_of.get(report.nodeid)
        if found is None:
            return
        exercise_id, integration = found
        current = self.results.get(report.nodeid)
        verdict = getattr(report, "dino_verdict", None)
        if verdict is not None:
            outcome, message, location = verdict
        elif report.failed:
            outcome, message, location = FAILED, report.longreprtext.strip().splitlines()[-1] if report.longreprtext else "", ""
        elif report.skipped:
            outcome, message, location = NOT_STARTED, "skipped", ""
        elif report.when == "call":
            outcome, message, location = PASSED, "", ""
        else:
            return
        if current is not None and current.outcome != PASSED:
            return  # keep the first problem (e.g. a failed setup over a teardown)
        self.results[report.nodeid] = CheckResult(report.nodeid, exercise_id, outcome, message, location, integration)

    def expected_exercises(self) -> list[Exercise]:
        """Every exercise this run was asked to grade: of the lessons chosen (all by default),
        whose check files were collected, narrowed by --exercise."""
        if self.config is None:
            return []
        chosen = _selected_lessons(self.config)
        name = self.config.getoption("exercise")
        return [
            e
            for lesson in lessons().values()
            if not chosen or lesson.id in chosen
            for e in lesson.exercises
            if e.module in self.collected_modules and (name is None or e.name == name)
        ]

    def report(self) -> GradeReport:
        missing = {
            e.module: self.collection_errors.get(e.module, "none of its checks ran")
            for e in self.expected_exercises()
        }
        return GradeReport.from_results(
            [r for nodeid, r in self.results.items() if nodeid not in self.dependency_only], reference.reference_lessons(), expected=self.expected_exercises(), missing=missing
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._nothing_to_report():
            return
        counts = self.report().counts()
        if (counts[FAILED] or counts[NOT_GRADED]) and session.exitstatus == 0:
            session.exitstatus = 1

    def _nothing_to_report(self) -> bool:
        if self.config is not None and self.config.option.collectonly:
            return True
        return not self.results and not self.expected_exercises()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self._nothing_to_report():
            return
        mode = reference.reference_lessons()
        if mode == "all":
            title = "DINO course: grading the REFERENCE solutions (--reference / DINO_COURSE_REFERENCE=all)"
        elif mode:
            title = f"DINO course: your progress (reference switched on for lesson(s) {', '.join(sorted(mode))})"
        else:
            title = "DINO course: your progress"
        terminalreporter.write_sep("=", "DINO course")
        for line in self.report().render(title).splitlines():
            terminalreporter.write_line(line)
        if self.config is not None and self.config.option.tbstyle == "no" and self.report().counts()[FAILED]:
            terminalreporter.write_line("(pytest's full report of each failed check: add --details)")
