"""The grading engine, exercised the way learners break things.

Each scenario writes a folder of learner files (the generated stubs, or the reference copied
over them as a learner who finished would have), edits them like a learner would (a correct
plain loop, a wrong formula, a syntax error, an endless loop, a crash), points the grader at it
with `DINO_COURSE_LEARNER_DIR` and runs `pytest` or `dino-course check` in a fresh process,
reading the verdict table it prints.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dino_course.grading import reference_switch as reference
from dino_course.grading.catalog import PACKAGE_DIR, REPO_ROOT, SOLUTIONS_DIR, exercises, lessons
from dino_course.grading.isolation import LEARNER_DIR_ENV
from dino_course.grading.notebook import grade

pytestmark = pytest.mark.maintainer

PLAIN_LOOP_EMA = """\
    with torch.no_grad():
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.copy_(momentum * t + (1 - momentum) * s)"""
MODULES = sorted({e.module for e in exercises().values()})


@pytest.fixture()
def stubs(tmp_path: Path) -> Path:
    """A fresh clone's learner files: every exercise still its stub."""
    for module in MODULES:
        shutil.copy(PACKAGE_DIR / f"{module}.py", tmp_path / f"{module}.py")
    return tmp_path


@pytest.fixture()
def finished(tmp_path: Path) -> Path:
    """A learner who has done every exercise (the reference, written into the learner's files)."""
    for module in MODULES:
        shutil.copy(SOLUTIONS_DIR / f"{module}.py", tmp_path / f"{module}.py")
    return tmp_path


def implement(folder: Path, lesson: str, module: str, exercise: str, body: str) -> None:
    """Replace a stub's `raise` line with `body`."""
    path = folder / f"{module}.py"
    text = path.read_text()
    line = next(l for l in text.splitlines() if f'raise ExerciseNotStarted("{lesson}", "{exercise}")' in l)
    indent = line[: len(line) - len(line.lstrip())]
    path.write_text(text.replace(line, textwrap.indent(textwrap.dedent(body), indent)))


def replace(folder: Path, module: str, old: str, new: str) -> None:
    path = folder / f"{module}.py"
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {module}.py"
    path.write_text(text.replace(old, new))


def _environment(folder: Path, time_limit: str) -> dict[str, str]:
    env = {**os.environ, LEARNER_DIR_ENV: str(folder), "DINO_COURSE_CHECK_TIME_LIMIT": time_limit}
    env.pop(reference.ENV_VAR, None)
    return env


def run_pytest(folder: Path, *args: str, time_limit: str = "20", lesson: str | None = "3.1") -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *(["--lesson", lesson] if lesson else []), *args],
        cwd=REPO_ROOT, env=_environment(folder, time_limit), capture_output=True, text=True, timeout=600,
    )
    return result.returncode, result.stdout + result.stderr


def run_check(folder: Path, *args: str, time_limit: str = "20") -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "dino_course", "check", *args],
        cwd=REPO_ROOT, env=_environment(folder, time_limit), capture_output=True, text=True, timeout=600,
    )
    return result.returncode, result.stdout + result.stderr


def verdict(output: str, exercise: str) -> str:
    match = re.search(rf"^  [✓✗·!] {re.escape(exercise)}\s+(.*)$", output, re.MULTILINE)
    assert match, f"no verdict for {exercise} in:\n{output[-3000:]}"
    return match.group(1)


def score(output: str) -> tuple[int, int]:
    match = re.search(r"Score: (\d+) of (\d+) exercises passed", output)
    assert match, output[-2000:]
    return int(match.group(1)), int(match.group(2))


# ----------------------------------------------------------------------------- verdicts


def test_fresh_copy_passes_with_everything_not_started(stubs):
    code, output = run_pytest(stubs, lesson=None)
    assert code == 0, output[-3000:]
    for exercise in exercises().values():
        assert verdict(output, exercise.name).startswith("not started"), exercise.id
    assert score(output) == (0, len(exercises()))
    assert re.search(r"^=+ \d+ skipped", output, re.MULTILINE), "a check passed although every exercise is a stub"


def test_a_correct_plain_loop_passes_and_a_wrong_exercise_fails_with_its_hint(stubs):
    implement(stubs, "3.1", "student_teacher", "ema_update", PLAIN_LOOP_EMA)
    implement(stubs, "3.1", "student_teacher", "build_teacher", "return student")  # a copy was asked for
    code, output = run_pytest(stubs)
    assert code == 1, output[-3000:]
    assert verdict(output, "ema_update") == "passed"
    assert verdict(output, "build_teacher").startswith("failed: build_teacher returned the student itself")
    assert verdict(output, "cosine_schedule").startswith("not started")


def test_a_broken_file_is_never_reported_as_success(finished):
    """A bug the grader once had: a NameError appended to student_teacher.py made Lesson 3.3 (then also model.py)
    report "6 of 6 (100 %)" with seven exercises missing from the table."""
    (finished / "student_teacher.py").write_text((finished / "student_teacher.py").read_text() + "\noops = undefined_name\n")
    code, output = run_check(finished, "3.4")
    assert code == 0, output
    in_lesson = {lesson: sum(e.lesson == lesson for e in exercises().values()) for lesson in ("3.1", "3.4")}
    assert score(output) == (in_lesson["3.4"], in_lesson["3.4"]), "Lesson 3.4 (model.py) imports student_teacher: it must still be graded, in full"
    code, output = run_check(finished, "3.1")
    assert code == 1
    assert score(output) == (0, in_lesson["3.1"])
    assert "NameError: name 'undefined_name' is not defined" in verdict(output, "ema_update")


def test_a_syntax_error_fails_its_own_file_only(finished):
    """A bug the grader once had: a syntax error in centering.py made `check 4.3` print
    "(no exercise checks ran)" and exit 0."""
    (finished / "centering.py").write_text((finished / "centering.py").read_text() + "\ndef broken(:\n")
    code, output = run_check(finished, "4.3")
    assert code == 0 and score(output) == (2, 2), output
    code, output = run_pytest(finished, lesson=None)
    assert code == 1
    assert score(output) == (len(exercises()) - 1, len(exercises()))
    message = verdict(output, "update_center")
    assert "has a syntax error (SyntaxError) on line" in message, message


@pytest.mark.parametrize("module", ["heads", "student_teacher", "multicrop", "centering", "temperature"])
def test_a_file_that_does_not_import_fails_only_its_own_exercises(finished, module):
    (finished / f"{module}.py").write_text((finished / f"{module}.py").read_text() + "\nfrom torch import no_such_name\n")
    code, output = run_pytest(finished, lesson=None)
    assert code == 1
    own = [e for e in exercises().values() if e.module == module]
    assert score(output) == (len(exercises()) - len(own), len(exercises()))
    for exercise in own:
        assert "could not be imported" in verdict(output, exercise.name) or "being imported" in verdict(output, exercise.name)
    assert len(output.splitlines()) < 120, "the learner should read a table, not pages of tracebacks"


def test_the_wrong_exercise_is_never_blamed(finished):
    """A wrong ema_update (τ and 1 − τ swapped) used to fail the correct update_teacher."""
    replace(
        finished, "student_teacher",
        "torch._foreach_mul_(teacher_params, momentum)\n        torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)",
        "torch._foreach_mul_(teacher_params, 1.0 - momentum)\n        torch._foreach_add_(teacher_params, student_params, alpha=momentum)",
    )
    code, output = run_pytest(finished, lesson=None)
    assert code == 1
    assert verdict(output, "ema_update").startswith("failed:")
    assert score(output) == (len(exercises()) - 1, len(exercises())), "only ema_update may fail"


def test_a_missing_exercise_is_named(finished):
    replace(finished, "student_teacher", "def ema_update(", "def ema_updates(")
    code, output = run_pytest(finished, "--exercise", "ema_update")
    assert code == 1
    assert "has no `ema_update`" in verdict(output, "ema_update")


def test_an_endless_loop_costs_one_time_limit(finished):
    """A `while True` in update_center used to make 23 checks each wait out the limit."""
    path = finished / "centering.py"
    text = path.read_text()
    path.write_text(text.replace("    # BEGIN SOLUTION\n", "    # BEGIN SOLUTION\n    while True:\n        pass\n", 1))
    started = time.perf_counter()
    code, output = run_check(finished, "4.1", time_limit="2")
    elapsed = time.perf_counter() - started
    assert code == 1
    assert "took longer than 2 s" in verdict(output, "update_center")
    assert elapsed < 30, f"grading a looping exercise took {elapsed:.0f} s: more than one time limit plus start-up"
    code, output = run_check(finished, "4.3", time_limit="2")
    assert code == 0 and score(output) == (2, 2), "the loss is graded with the reference update_center"


def test_an_exception_names_the_learner_line(stubs):
    implement(
        stubs, "3.1", "student_teacher", "parameter_divergence",
        "return {name: 1 / 0 for name in dict(student.named_parameters())}",
    )
    code, output = run_pytest(stubs, "--exercise", "parameter_divergence")
    assert code == 1
    assert verdict(output, "parameter_divergence").startswith("failed: your code raised ZeroDivisionError")
    assert re.search(r"^\s+at dino_course/student_teacher\.py:\d+$", output, re.MULTILINE), output[-2000:]
    assert "Traceback" not in output and "tests/test_student_teacher.py:" not in output
    code, output = run_pytest(stubs, "--exercise", "parameter_divergence", "--details")
    assert "ZeroDivisionError" in output and "tests/test_student_teacher.py" in output, "--details shows pytest's report"


def test_reference_mode_passes_whatever_the_learner_wrote(stubs):
    implement(stubs, "3.1", "student_teacher", "build_teacher", "return student")
    code, output = run_pytest(stubs, "--reference")
    assert code == 0, output[-3000:]
    assert "reference code" in output


# ----------------------------------------------------------------------------- in-process checks


def test_in_process_check_grades_one_exercise(monkeypatch):
    monkeypatch.setenv(reference.ENV_VAR, "3.1")
    reference.forget_exercise_modules()
    try:
        report = grade("3.1", "cosine_schedule")
    finally:
        reference.forget_exercise_modules()
    assert list(report.verdicts) == ["3.1/cosine_schedule"]
    assert report.verdicts["3.1/cosine_schedule"].outcome == "passed"
    assert report.verdicts["3.1/cosine_schedule"].reference


def test_in_process_check_leaves_the_notebooks_modules_alone(monkeypatch, finished):
    """`check()` in a notebook must not replace the modules (and classes) the notebook is using."""
    import dino_course.student_teacher as before_module
    import dino_course.networks.vit as before_vit

    monkeypatch.setenv(reference.ENV_VAR, "")
    monkeypatch.setenv(LEARNER_DIR_ENV, str(finished))
    report = grade("3.1")
    assert report.counts()["passed"] == len(lessons()["3.1"].exercises), report.render()
    assert sys.modules["dino_course.student_teacher"] is before_module
    assert sys.modules["dino_course.networks.vit"] is before_vit


def test_bad_reference_setting_is_named(monkeypatch):
    monkeypatch.setenv(reference.ENV_VAR, "9.9")
    with pytest.raises(ValueError, match="DINO_COURSE_REFERENCE"):
        reference.reference_lessons()
    with pytest.raises(ValueError, match="lesson must be one of"):
        grade("9.9")


def test_switching_the_reference_renews_the_package_attribute(monkeypatch):
    """`from dino_course import multicrop` after `use_reference` gets the module of the new setting,
    not the one an earlier import left on the package."""
    import importlib

    monkeypatch.setenv(reference.ENV_VAR, "")
    try:
        reference.use_reference(None)
        from dino_course import multicrop as learners

        reference.use_reference("3.2")
        from dino_course import multicrop as switched

        assert switched is importlib.import_module("solutions.multicrop")
        assert switched is not learners
        reference.use_reference(None)
        from dino_course import multicrop as back

        assert back is sys.modules["dino_course.multicrop"] and back is not switched
    finally:
        reference.forget_exercise_modules()


def test_native_stderr_of_the_checks_stays_out_of_the_notebook(monkeypatch, capfd):
    """What compiled code writes to descriptor 2 while the checks run (PyTorch's profiler prints
    `USDT: ... profiler_start` lines in the `measure_forward` checks) is kept with pytest's output,
    shown only with `verbose=True`; descriptor 2 works as before afterwards."""
    import pytest as pytest_module

    real_main = pytest_module.main

    def noisy_main(args, plugins=()):
        os.write(2, b"NATIVE-NOISE from a compiled library\n")
        return real_main(args, plugins=plugins)

    monkeypatch.setattr(pytest_module, "main", noisy_main)
    monkeypatch.setenv(reference.ENV_VAR, "3.1")
    reference.forget_exercise_modules()
    try:
        report = grade("3.1", "cosine_schedule")
        quiet = capfd.readouterr()
        grade("3.1", "cosine_schedule", verbose=True)
        verbose = capfd.readouterr()
    finally:
        reference.forget_exercise_modules()
    assert report.verdicts["3.1/cosine_schedule"].outcome == "passed"
    assert "NATIVE-NOISE" not in quiet.err + quiet.out
    assert "NATIVE-NOISE" in verbose.out and "NATIVE-NOISE" not in verbose.err
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


@pytest.mark.parametrize("import_seconds, remembered", [(0.0, False), (0.6, True)])
def test_a_cut_short_import_is_blamed_on_the_file_only_when_the_import_took_the_time(
    monkeypatch, tmp_path, import_seconds, remembered
):
    """A check stopped by the time limit while it imports the learner's file: when the check had
    already spent its time elsewhere (a slow machine), the next check imports the file afresh instead
    of failing every exercise in it as "did not finish importing"; when the import itself took the
    time (an endless loop at the top of the file), the verdict is remembered."""
    from dino_course.grading import isolation, pytest_plugin

    monkeypatch.setattr(pytest_plugin, "CHECK_TIME_LIMIT_S", 1.0)
    monkeypatch.setenv(LEARNER_DIR_ENV, str(tmp_path))
    runs = tmp_path / "runs.txt"
    (tmp_path / "centering.py").write_text(textwrap.dedent(f"""\
        import time
        from pathlib import Path
        runs = Path({str(runs)!r})
        runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
        if len(runs.read_text()) == 1:
            time.sleep({import_seconds})

            class Failed(Exception):
                pass

            raise Failed("Timeout >1.0s")  # what pytest-timeout raises when the check runs out of time
        def update_center():
            return "loaded"
        """))
    isolation.forget_worlds()
    try:
        with pytest.raises(Exception, match="Timeout"):
            isolation.load_learner_module("centering")
        if remembered:
            with pytest.raises(Exception, match="did not finish importing within the time limit"):
                isolation.load_learner_module("centering")
            assert runs.read_text() == "x"
        else:
            assert isolation.load_learner_module("centering").update_center() == "loaded"
            assert runs.read_text() == "xx"
    finally:
        isolation.forget_worlds()
