"""The course's own checks: single source of truth, stubs, the exercise <-> check mapping, and the
docstring examples (each run once)."""

from __future__ import annotations

import ast
import doctest
import functools
import importlib
import subprocess
import sys

import pytest

from dino_course.grading.catalog import PACKAGE_DIR, REPO_ROOT, TESTS_DIR, exercises, lessons, solution_modules
from dino_course.grading.stubs import generate_stub, leaked_solution_lines, out_of_date_stubs, stub_path
from dino_course.instructor.public_checks import course_docstring

pytestmark = pytest.mark.maintainer


def test_stubs_are_in_sync_with_solutions():
    stale = out_of_date_stubs()
    assert not stale, f"generated stubs differ from solutions/: {stale}; run `dino-course stubs`"


@pytest.mark.parametrize("solution", solution_modules(), ids=lambda s: s.module)
def test_no_solution_body_leaks_into_a_stub(solution):
    committed = stub_path(solution).read_text(encoding="utf-8")
    for text in (committed, generate_stub(solution)):
        leaked = leaked_solution_lines(solution, text)
        assert not leaked, f"solution lines found in dino_course/{solution.module}.py: {leaked[:5]}"


@pytest.mark.parametrize("solution", solution_modules(), ids=lambda s: s.module)
def test_every_stub_exercise_raises_its_own_not_started_error(solution):
    tree = ast.parse(stub_path(solution).read_text(encoding="utf-8"))
    raised = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and getattr(node.exc.func, "id", "") == "ExerciseNotStarted":
            raised.add(tuple(arg.value for arg in node.exc.args))
    expected = {(solution.lesson, body.name) for body in solution.bodies}
    assert raised == expected


def test_every_lesson_has_exercises_and_a_notebook():
    assert lessons(), "no lessons found in solutions/"
    for lesson in lessons().values():
        assert lesson.exercises, f"lesson {lesson.id} has no marked exercises"
        assert lesson.notebook and (REPO_ROOT / lesson.notebook).exists(), f"lesson {lesson.id}: notebook {lesson.notebook!r} missing"


@functools.lru_cache(maxsize=None)
def _collected_checks() -> tuple[tuple[str, str], ...]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--list-checks", str(TESTS_DIR)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    pairs = []
    for line in result.stdout.splitlines():
        if "\t" in line:
            exercise_id, nodeid = line.split("\t", 1)
            pairs.append((exercise_id, nodeid))
    return tuple(pairs)


def test_every_exercise_has_a_check_and_every_check_an_exercise():
    checks = _collected_checks()
    known = exercises()
    unknown = sorted({e for e, nodeid in checks if e != "-" and e not in known})
    assert not unknown, f"checks tied to exercises that do not exist: {unknown}"
    untied = sorted(nodeid for e, nodeid in checks if e == "-" and "/maintainer/" not in nodeid and "/browser/" not in nodeid)
    assert not untied, f"checks outside tests/maintainer that are not tied to an exercise: {untied[:5]}"
    unchecked = sorted(set(known) - {e for e, _ in checks})
    assert not unchecked, f"exercises without any check: {unchecked}"


# ----------------------------------------------------------------------------- docstring examples
# Each docstring example runs once in `pytest --reference --maintainer`: an exercise's in its public
# check (`test_documented_example` in tests/public/, on the learner's code, or on the reference with
# --reference), every other one (the given code's) here.


def _given_code_doctests(module_name: str) -> list[doctest.DocTest]:
    """The docstrings with examples of a module, those of exercises left out."""
    exercise_docstrings = {f"solutions.{e.module}.{e.name}" for e in exercises().values()}
    module = importlib.import_module(module_name)
    return [t for t in doctest.DocTestFinder().find(module) if t.examples and t.name not in exercise_docstrings]


def _modules_with_given_examples() -> list[str]:
    """The reference modules (whose given code is the lesson files' given code) and the modules of
    `dino_course`'s subpackages that have docstring examples outside exercises."""
    names = [f"solutions.{s.module}" for s in solution_modules()]
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.parent != PACKAGE_DIR and ">>>" in path.read_text(encoding="utf-8"):
            names.append(".".join(path.relative_to(REPO_ROOT).with_suffix("").parts))
    return [name for name in names if _given_code_doctests(name)]


@pytest.mark.parametrize("module_name", _modules_with_given_examples())
def test_given_code_docstring_examples_run(module_name):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for test in _given_code_doctests(module_name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of given code failed in {module_name}"


def test_every_exercise_docstring_example_runs_in_a_public_check():
    documented = {
        e for e, nodeid in _collected_checks() if "public/" in nodeid and "::test_documented_example" in nodeid
    }
    with_examples = {e for e in exercises() if doctest.DocTestParser().get_examples(course_docstring(e))}
    missing = sorted(with_examples - documented)
    assert not missing, f"docstring examples no public check runs (add them to its test_documented_example): {missing}"
