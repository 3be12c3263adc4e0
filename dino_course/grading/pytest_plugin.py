"""pytest plugin that turns the hidden checks into per-exercise grades.

Loaded by the repository's `conftest.py`. It adds:

    --reference         run the checks with the reference solutions standing in (all lessons)
    --maintainer        also run the course's own checks (tests/maintainer/)
    --lesson 3.1,3.2    only the checks of these lessons
    --exercise NAME     only the checks of this exercise (with --lesson)
    --list-checks       with --collect-only: print "exercise-id <tab> test" for every check

Each check is tied to one exercise with `@pytest.mark.exercise("3.1", "ema_update")`.
A check that stops on the exercise's stub error is reported as *not started* (a skip, so
a fresh clone's `pytest` exits 0); a failure is summarised in one line with its hint;
every check gets a time limit so an endless loop fails its own exercise only.
"""

from __future__ import annotations

import os
import traceback

import pytest

from dino_course import reference
from dino_course.grading.catalog import PACKAGE_DIR, TESTS_DIR, exercises
from dino_course.grading.errors import ExerciseNotStarted, LearnerCodeError
from dino_course.grading.learner import import_learner_module
from dino_course.grading.report import FAILED, NOT_STARTED, PASSED, CheckResult, GradeReport

# Per-check time limit: the slowest reference check takes about 1 s on a laptop CPU, so 20 s
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
    group.addoption("--list-checks", action="store_true", help="print each check's exercise id while collecting")


def pytest_ignore_collect(collection_path, config: pytest.Config):
    """Do not even import the course's own checks unless asked: a learner's broken file must not
    break the collection of checks that are not theirs."""
    if MAINTAINER_DIR == collection_path or MAINTAINER_DIR in collection_path.parents:
        return None if config.getoption("maintainer") else True
    if BROWSER_DIR == collection_path or BROWSER_DIR in collection_path.parents:
        return None if "browser" in (config.getoption("markexpr") or "") else True
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exercise(lesson, name): the exercise a hidden check grades")
    config.addinivalue_line("markers", "maintainer: a check of the course itself, run with --maintainer")
    config.addinivalue_line("markers", "browser: starts JupyterLab and Chromium; run with -m browser")
    if config.getoption("reference"):
        os.environ[reference.ENV_VAR] = "all"
        reference.forget_exercise_modules()
    reference.reference_lessons()  # a bad DINO_COURSE_REFERENCE fails here, with a clear message
    # A check file that cannot be imported (its reference imports a learner module with a syntax
    # error, say) must not stop the other lessons from being graded.
    config.option.continue_on_collection_errors = True
    if not hasattr(config, "dino_grades"):
        config.dino_grades = GradeCollector()
        config.pluginmanager.register(config.dino_grades, "dino-course-grades")


def _exercise_id(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("exercise")
    if marker is None:
        return None
    if len(marker.args) != 2:
        raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.exercise(lesson, name), got {marker.args}")
    return f"{marker.args[0]}/{marker.args[1]}"


def _is_maintainer(item: pytest.Item) -> bool:
    return item.get_closest_marker("maintainer") is not None or MAINTAINER_DIR in item.path.parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lessons = {s.strip() for s in (config.getoption("lesson") or "").split(",") if s.strip()}
    exercise = config.getoption("exercise")
    keep, drop = [], []
    for item in items:
        exercise_id = _exercise_id(item)
        if _is_maintainer(item):
            selected = config.getoption("maintainer") and not lessons
        elif exercise_id is None:
            selected = item.get_closest_marker("browser") is None or "browser" in (config.getoption("markexpr") or "")
        else:
            lesson, _, name = exercise_id.partition("/")
            selected = (not lessons or lesson in lessons) and (exercise is None or name == exercise)
        (keep if selected else drop).append(item)
        if exercise_id is not None and selected and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(CHECK_TIME_LIMIT_S))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if config.getoption("list_checks"):
        writer = config.get_terminal_writer()
        for item in items:
            writer.line(f"{_exercise_id(item) or '-'}\t{item.nodeid}")


def _short_message(excinfo: pytest.ExceptionInfo, item: pytest.Item) -> str:
    exc = excinfo.value
    text = str(exc).strip()
    if isinstance(exc, LearnerCodeError):
        return text
    if "Timeout" in text and "pytest-timeout" in text:
        return (
            f"took longer than {CHECK_TIME_LIMIT_S:g} s and was stopped: is there an endless loop, "
            "or far more work than the exercise needs?"
        )
    if isinstance(exc, AssertionError):
        first = text.splitlines()[0] if text else ""
        if not first or first.startswith("assert "):
            return f"a check failed: {excinfo.exconly().splitlines()[0]}"
        return first
    exercise_id = _exercise_id(item) or ""
    module = exercises().get(exercise_id)
    where = ""
    if module is not None:
        frames = [
            f
            for f in traceback.extract_tb(excinfo.tb)
            if f.filename.replace("\\", "/").endswith(f"dino_course/{module.module}.py")
        ]
        if frames:
            where = f" at {module.learner_path}:{frames[-1].lineno}"
    first = text.splitlines()[0] if text else ""
    return f"your code raised {type(exc).__name__}{where}: {first}".rstrip(": ")


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A check file that fails to import fails the exercises of its module, with a readable reason."""
    report = yield
    if not report.failed or not isinstance(collector, pytest.Module) or collector.path.parent != TESTS_DIR:
        return report
    module = collector.path.stem.removeprefix("test_")
    affected = [e for e in exercises().values() if e.module == module]
    if affected:
        collector.config.dino_grades.record_collection_error(collector.nodeid, affected, _collection_error_message(report))
    return report


def _collection_error_message(report: pytest.CollectReport) -> str:
    text = str(report.longrepr)
    for exercise in exercises().values():
        if exercise.learner_path in text and not reference.is_reference(exercise.lesson):
            try:
                import_learner_module(exercise.module)
            except LearnerCodeError as exc:
                return f"could not be graded until {exercise.learner_path} imports again: {exc}"
    lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    return "could not be graded: the check file failed to import: " + (lines[-1] if lines else text.strip().splitlines()[-1])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    exercise_id = _exercise_id(item)
    if exercise_id is None:
        return report
    if call.excinfo is None:
        if call.when == "call" and report.passed and _stub_untouched(exercise_id):
            # A check that passes while the exercise is still its stub tests given code only:
            # never count that as the learner's pass.
            report.outcome = "skipped"
            report.longrepr = (str(item.path), (item.location[1] or 0) + 1, "not started")
            report.dino_verdict = (NOT_STARTED, "")
        return report
    if call.excinfo.errisinstance(pytest.skip.Exception):
        return report
    exc = call.excinfo.value
    if isinstance(exc, ExerciseNotStarted) and reference.reference_lessons() != "all":
        this = exercise_id.partition("/")[2]
        if exc.exercise == this:
            message = ""
        else:
            message = f"waiting for exercise {exc.lesson} `{exc.exercise}`"
        report.outcome = "skipped"
        report.longrepr = (str(item.path), (item.location[1] or 0) + 1, f"not started {message}".strip())
        report.dino_verdict = (NOT_STARTED, message)
    else:
        report.dino_verdict = (FAILED, _short_message(call.excinfo, item))
    return report


def _stub_untouched(exercise_id: str) -> bool:
    """True while the learner's file still holds the exercise's generated `raise` line."""
    exercise = exercises().get(exercise_id)
    if exercise is None or reference.is_reference(exercise.lesson):
        return False
    path = PACKAGE_DIR / f"{exercise.module}.py"
    marker = f'raise ExerciseNotStarted("{exercise.lesson}", "{exercise.name}")'
    return path.exists() and marker in path.read_text(encoding="utf-8")


class GradeCollector:
    """Collects one `CheckResult` per exercise check of a run."""

    def __init__(self) -> None:
        self.results: dict[str, CheckResult] = {}
        self._exercise_of: dict[str, str] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            exercise_id = _exercise_id(item)
            if exercise_id is not None:
                self._exercise_of[item.nodeid] = exercise_id

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        exercise_id = self._exercise_of.get(report.nodeid)
        if exercise_id is None:
            return
        current = self.results.get(report.nodeid)
        verdict = getattr(report, "dino_verdict", None)
        if verdict is not None:
            outcome, message = verdict
        elif report.failed:
            outcome, message = FAILED, report.longreprtext.strip().splitlines()[-1] if report.longreprtext else ""
        elif report.skipped:
            outcome, message = NOT_STARTED, "skipped"
        elif report.when == "call":
            outcome, message = PASSED, ""
        else:
            return
        if current is not None and current.outcome != PASSED:
            return  # keep the first problem (e.g. a failed setup over a teardown)
        self.results[report.nodeid] = CheckResult(report.nodeid, exercise_id, outcome, message)

    def record_collection_error(self, nodeid: str, affected, message: str) -> None:
        for exercise in affected:
            key = f"{nodeid}::<{exercise.name}>"
            self.results[key] = CheckResult(key, exercise.id, FAILED, message)

    def report(self) -> GradeReport:
        return GradeReport.from_results(list(self.results.values()), reference.reference_lessons())

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.results:
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
