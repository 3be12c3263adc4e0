"""The pytest plugin of the student edition: per-exercise verdicts of the public checks.

The student edition (`dino-course release`) has no reference solutions and no hidden checks, so
the full course's plugin (`dino_course.grading.pytest_plugin`, whose isolated worlds are built
from the reference) cannot run there. Its `conftest.py` loads this one instead. It runs the
public checks (`tests/public/`) on the learner's own code and prints the same per-exercise table,
titled so that nobody mistakes it for the grade:

    public checks: passing them does not mean the hidden ones pass

Options, as in the full course: `--lesson 3.1,3.2`, `--exercise NAME`, `--details`,
`--list-checks`. A stub that still raises `ExerciseNotStarted` is *not started* (a skip, so a
fresh copy's `pytest` passes); a failure is one line with its hint and, where known, the line
of the learner's file. Each check has `DINO_COURSE_CHECK_TIME_LIMIT` seconds (20 by default).
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import pytest

from dino_course.grading import isolation
from dino_course.grading.catalog import Exercise, exercises, lessons
from dino_course.grading.errors import ExerciseNotStarted, LearnerCodeError
from dino_course.grading.report import FAILED, NOT_GRADED, NOT_STARTED, PASSED, CheckResult, GradeReport
from dino_course.instructor import public_checks

CHECK_TIME_LIMIT_S = float(os.environ.get("DINO_COURSE_CHECK_TIME_LIMIT", "20"))
TITLE = f"DINO course: your progress ({public_checks.PUBLIC_LABEL})"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dino-course")
    group.addoption("--lesson", default=None, help="only the checks of these lessons, e.g. 3.1 or 3.1,3.2")
    group.addoption("--exercise", default=None, help="only the checks of this exercise, e.g. ema_update")
    group.addoption("--details", action="store_true", help="show pytest's full report of each failed check too")
    group.addoption("--list-checks", action="store_true", help="print each check's exercise id while collecting")


def pytest_configure(config: pytest.Config) -> None:
    from dino_course.grading import reference_switch as reference

    try:
        reference.reference_lessons()  # DINO_COURSE_REFERENCE means nothing here: say so
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.addinivalue_line("markers", "exercise(lesson, name): the exercise a check grades")
    config.addinivalue_line("markers", "integration(*exercises): a check that also runs these exercises")
    config.option.continue_on_collection_errors = True
    if not (config.getoption("details") or config.option.verbose > 0):
        config.option.tbstyle = "no"
        config.option.reportchars = ""
    public_checks.forget_loaded_modules()
    if not hasattr(config, "dino_grades"):
        config.dino_grades = PublicGrades(config)
        config.pluginmanager.register(config.dino_grades, "dino-course-public-grades")


def _exercise_id(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("exercise")
    return f"{marker.args[0]}/{marker.args[1]}" if marker is not None and len(marker.args) == 2 else None


def _selected_lessons(config: pytest.Config) -> set[str]:
    return {s.strip() for s in (config.getoption("lesson") or "").split(",") if s.strip()}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen, name = _selected_lessons(config), config.getoption("exercise")
    keep, drop = [], []
    for item in items:
        exercise_id = _exercise_id(item)
        lesson, _, exercise = (exercise_id or "/").partition("/")
        selected = exercise_id is None or ((not chosen or lesson in chosen) and (name is None or exercise == name))
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


def _location(excinfo: pytest.ExceptionInfo, exercise: Exercise) -> str:
    path = isolation.learner_file(exercise.module)
    frames = [f for f in traceback.extract_tb(excinfo.tb) if Path(f.filename) == path]
    return f"dino_course/{exercise.module}.py:{frames[-1].lineno}" if frames else ""


def _stub_untouched(exercise: Exercise) -> bool:
    path = isolation.learner_file(exercise.module)
    marker = f'raise ExerciseNotStarted("{exercise.lesson}", "{exercise.name}")'
    return path.exists() and marker in path.read_text(encoding="utf-8")


def _verdict(excinfo: pytest.ExceptionInfo, exercise: Exercise) -> tuple[str, str, str]:
    exc = excinfo.value
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, ExerciseNotStarted):
        this = exc.lesson == exercise.lesson and exc.exercise == exercise.name
        return NOT_STARTED, "" if this else f"waiting for exercise {exc.lesson} `{exc.exercise}`", ""
    if isinstance(exc, LearnerCodeError):
        return FAILED, text, ""
    if isolation.is_time_limit(exc):
        message = f"took longer than {CHECK_TIME_LIMIT_S:g} s and was stopped: is there an endless loop?"
        return FAILED, message, _location(excinfo, exercise)
    if isinstance(exc, AssertionError):
        return FAILED, first or f"a check failed: {excinfo.exconly().splitlines()[0]}", _location(excinfo, exercise)
    if type(exc).__name__ == "Failed" and first.startswith("DID NOT RAISE"):
        return FAILED, f"`{exercise.name}` accepted an invalid argument without raising ({first})", ""
    return FAILED, f"your code raised {type(exc).__name__}: {first}".rstrip(": "), _location(excinfo, exercise)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    exercise_id = _exercise_id(item)
    if exercise_id is None or exercise_id not in exercises():
        return report
    exercise = exercises()[exercise_id]
    if call.excinfo is None:
        if call.when == "call" and report.passed and _stub_untouched(exercise):
            report.outcome = "skipped"
            report.longrepr = (str(item.path), (item.location[1] or 0) + 1, "not started")
            report.dino_verdict = (NOT_STARTED, "", "")
        return report
    if call.excinfo.errisinstance(pytest.skip.Exception):
        return report
    outcome, message, location = _verdict(call.excinfo, exercise)
    report.dino_verdict = (outcome, message, location)
    if outcome == NOT_STARTED:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), (item.location[1] or 0) + 1, f"not started {message}".strip())
    elif not (item.config.getoption("details") or item.config.option.verbose > 0):
        report.longrepr = f"{exercise.id}: {message}" + (f"\n  at {location}" if location else "")
    return report


class PublicGrades:
    """One `CheckResult` per public check; the run's `GradeReport` (as `config.dino_grades`)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, CheckResult] = {}
        self._exercise_of: dict[str, str] = {}
        self.collection_errors: dict[str, str] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            exercise_id = _exercise_id(item)
            if exercise_id is not None:
                self._exercise_of[item.nodeid] = exercise_id

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector):
        report = yield
        if isinstance(collector, pytest.Module) and report.failed:
            module = collector.path.stem.removeprefix("test_").removeprefix("public_")
            lines = [line[1:].strip() for line in str(report.longrepr).splitlines() if line.startswith("E ")]
            self.collection_errors[module] = f"the check file {collector.path.name} failed to import: " + (
                lines[-1] if lines else str(report.longrepr).strip().splitlines()[-1]
            )
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        exercise_id = self._exercise_of.get(report.nodeid)
        if exercise_id is None:
            return
        verdict = getattr(report, "dino_verdict", None)
        if verdict is not None:
            outcome, message, location = verdict
        elif report.failed:
            outcome, message, location = FAILED, (report.longreprtext or "failed").strip().splitlines()[-1], ""
        elif report.skipped:
            outcome, message, location = NOT_STARTED, "", ""
        elif report.when == "call":
            outcome, message, location = PASSED, "", ""
        else:
            return
        current = self.results.get(report.nodeid)
        if current is not None and current.outcome != PASSED:
            return
        self.results[report.nodeid] = CheckResult(report.nodeid, exercise_id, outcome, message, location)

    def expected_exercises(self) -> list[Exercise]:
        chosen, name = _selected_lessons(self.config), self.config.getoption("exercise")
        public = {p.stem.removeprefix("test_public_") for p in public_checks.PUBLIC_DIR.glob("test_public_*.py")}
        return [
            e
            for lesson in lessons().values()
            if not chosen or lesson.id in chosen
            for e in lesson.exercises
            if e.module in public and (name is None or e.name == name)
        ]

    def report(self) -> GradeReport:
        expected = self.expected_exercises()
        missing = {e.module: self.collection_errors.get(e.module, "none of its checks ran") for e in expected}
        return GradeReport.from_results(list(self.results.values()), frozenset(), expected=expected, missing=missing)

    def _nothing_to_report(self) -> bool:
        return bool(self.config.option.collectonly) or (not self.results and not self.expected_exercises())

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._nothing_to_report():
            return
        counts = self.report().counts()
        if (counts[FAILED] or counts[NOT_GRADED]) and session.exitstatus == 0:
            session.exitstatus = 1

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self._nothing_to_report():
            return
        terminalreporter.write_sep("=", "DINO course")
        for line in self.report().render(TITLE).splitlines():
            terminalreporter.write_line(line)
        terminalreporter.write_line(
            "Your grade comes from the hidden checks when you hand in: `dino-course submit` writes the archive."
        )
        if self.config.option.tbstyle == "no" and self.report().counts()[FAILED]:
            terminalreporter.write_line("(pytest's full report of each failed check: add --details)")
