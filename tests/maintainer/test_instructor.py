"""The instructor edition's parts: the student release, submit, points, the static scan, the CLI.

The class of 40 graded end to end is in `test_instructor_class.py`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dino_course.grading.catalog import REPO_ROOT, SOLUTIONS_DIR, TESTS_DIR, exercises, lessons
from dino_course.instructor.points import load_points, parse_points_text
from dino_course.instructor.release import build_release, find_leaks, secret_lines
from dino_course.instructor.runner import scan_exercise_file
from dino_course.instructor.submit import MAX_FILE_BYTES, read_archive, read_folder

pytestmark = pytest.mark.maintainer


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("edition") / "release"
    build_release(target)
    return target


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*")) if p.is_file() and ".git" not in p.relative_to(folder).parts
    }


def _run(args: list[str], cwd: Path, pythonpath: list[Path], **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DINO_COURSE_")}
    environment.update(PYTHONPATH=os.pathsep.join(map(str, pythonpath)), PYTHONDONTWRITEBYTECODE="1", **env)
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def no_solutions(tmp_path_factory) -> Path:
    """A folder that makes `import solutions` fail (this environment's editable install would find the
    instructor's copy): the student edition must never need it."""
    folder = tmp_path_factory.mktemp("blocker")
    (folder / "solutions").mkdir()
    (folder / "solutions" / "__init__.py").write_text("raise ImportError('solutions is not in the student edition')\n")
    return folder


# ----------------------------------------------------------------------------- release


def test_release_holds_no_solution_and_no_hidden_check(release):
    assert not (release / "solutions").exists()
    assert sorted(p.name for p in (release / "tests").iterdir()) == ["public"]
    hidden = {p.name for p in TESTS_DIR.glob("test_*.py")}
    assert hidden and not hidden & {p.name for p in release.rglob("*.py")}
    assert not find_leaks(release), find_leaks(release)
    secrets = secret_lines()
    assert len(secrets) > 500, "the leak search found too few distinctive lines to mean anything"
    text = "\n".join(data.decode("utf-8", "replace") for data in _files(release).values())
    modules = {e.module for e in exercises().values()}
    for module in modules:  # (the grading engine's docstrings show the marker format: that is no leak)
        assert "# BEGIN SOLUTION" not in (release / "dino_course" / f"{module}.py").read_text()
    lines = {line.strip() for line in text.splitlines()}  # a grep, independent of find_leaks' reading
    leaked = sorted(lines & set(secrets))
    assert not leaked, f"lines of {sorted({secrets[line] for line in leaked})} are in the release: {leaked[:3]}"


def test_the_leak_search_finds_a_planted_solution_line(release, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(release, copy, ignore=shutil.ignore_patterns(".git"))
    line, origin = next((line, origin) for line, origin in secret_lines().items() if origin.startswith("solutions/"))
    path = copy / "dino_course" / "helpers_planted.py"
    path.write_text(f"def helper(x):\n    {line}\n")
    assert any("helpers_planted.py" in problem for problem in find_leaks(copy))
    shutil.copy(SOLUTIONS_DIR / "loss.py", copy / "dino_course" / "loss_copy.py")
    assert any("loss_copy.py has the bytes of solutions/loss.py" in problem for problem in find_leaks(copy))


def test_release_is_deterministic_and_a_git_repository(release, tmp_path):
    again = tmp_path / "again"
    commit = build_release(again)
    assert _files(again) == _files(release)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=release, capture_output=True, text=True).stdout.strip()
    assert head == commit
    status = subprocess.run(["git", "status", "--porcelain"], cwd=release, capture_output=True, text=True).stdout
    assert status == "", f"the release is not committed cleanly: {status}"


def test_release_readme_shows_the_points_and_labels_the_public_checks(release):
    readme = (release / "README.md").read_text()
    points = load_points()
    assert "public checks: passing them does not mean the hidden ones pass" in readme
    assert f"| | **total** | **{points.total:g}** |" in readme
    for exercise_id, exercise in exercises().items():
        assert f"| {exercise.lesson} | `{exercise.name}` | {points.of(exercise_id):g} |" in readme
    assert "dino-course submit" in readme and "solutions/" not in readme
    plan = json.loads((release / "dino_course" / "grading" / "course_plan.json").read_text())
    assert [m["module"] for m in plan["modules"]] == [m for lesson in lessons().values() for m in lesson.modules]
    assert set(plan["docstrings"]) == set(exercises())


def test_release_refuses_a_non_empty_folder(release):
    result = _run([sys.executable, "-m", "dino_course", "release", str(release)], REPO_ROOT, [REPO_ROOT])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"dino-course release: DIR {str(release)!r} exists and is not empty: "
        "give a new or empty folder (nothing is overwritten)"
    ]


def test_students_run_the_public_checks(release, tmp_path, no_solutions):
    copy = tmp_path / "student"
    shutil.copytree(release, copy, ignore=shutil.ignore_patterns(".git"))
    fresh = _run([sys.executable, "-m", "pytest", "-q"], copy, [copy, no_solutions])
    assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-2000:]
    assert "public checks: passing them does not mean the hidden ones pass" in fresh.stdout
    assert f"Score: 0 of {len(exercises())} exercises passed" in fresh.stdout
    for path in SOLUTIONS_DIR.glob("*.py"):
        if not path.name.startswith("_"):
            shutil.copy(path, copy / "dino_course" / path.name)
    solved = _run([sys.executable, "-m", "pytest", "-q"], copy, [copy, no_solutions])
    assert solved.returncode == 0, solved.stdout[-3000:] + solved.stderr[-2000:]
    assert f"Score: {len(exercises())} of {len(exercises())} exercises passed" in solved.stdout
    # a broken exercise fails its public check with a hint
    broken = (copy / "dino_course" / "temperature.py").read_text().replace(
        "return torch.softmax(logits.float() / temperature, dim=-1)", "return torch.softmax(logits.float(), dim=-1)")
    (copy / "dino_course" / "temperature.py").write_text(broken)
    check = _run([sys.executable, "-m", "dino_course", "check", "4.2"], copy, [copy, no_solutions])
    assert check.returncode == 1 and "✗ sharpen" in check.stdout and "public checks" in check.stdout, check.stdout
    help_text = _run([sys.executable, "-m", "dino_course", "--help"], copy, [copy, no_solutions]).stdout
    assert "submit" in help_text and "autograder" not in help_text
    reference = _run([sys.executable, "-m", "dino_course", "check", "4.2"], copy, [copy, no_solutions],
                     DINO_COURSE_REFERENCE="4.2")
    assert reference.returncode == 2 and "student edition" in reference.stderr, reference.stdout + reference.stderr
    assert "Traceback" not in reference.stderr
    in_pytest = _run([sys.executable, "-m", "pytest", "-q"], copy, [copy, no_solutions], DINO_COURSE_REFERENCE="all")
    assert in_pytest.returncode != 0 and "student edition" in in_pytest.stderr + in_pytest.stdout


# ----------------------------------------------------------------------------- submit


def test_submit_writes_only_the_exercise_files(release, tmp_path, no_solutions):
    copy = tmp_path / "student"
    shutil.copytree(release, copy, ignore=shutil.ignore_patterns(".git"))
    (copy / "notes.txt").write_text("my notes")
    first = _run([sys.executable, "-m", "dino_course", "submit"], copy, [copy, no_solutions])
    assert first.returncode == 0, first.stderr
    archive = copy / "dino-course-submission.zip"
    with zipfile.ZipFile(archive) as opened:
        names = sorted(opened.namelist())
        manifest = json.loads(opened.read("manifest.json"))
    modules = sorted({e.module for e in exercises().values()})
    assert names == sorted(["manifest.json"] + [f"dino_course/{m}.py" for m in modules])
    assert set(manifest["lesson_versions"]) == set(lessons()) and len(manifest["files"]) == len(modules)
    again = _run([sys.executable, "-m", "dino_course", "submit"], copy, [copy, no_solutions])
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    same = _run([sys.executable, "-m", "dino_course", "submit", "--output", str(tmp_path / "b.zip")], copy,
                [copy, no_solutions])
    assert same.returncode == 0 and (tmp_path / "b.zip").read_bytes() == archive.read_bytes(), "not deterministic"
    # what submit warns about, and what it refuses
    loss = copy / "dino_course" / "loss.py"
    loss.write_text(loss.read_text() + "\nfrom solutions import loss\n")
    warned = _run([sys.executable, "-m", "dino_course", "submit", "--overwrite"], copy, [copy, no_solutions])
    assert warned.returncode == 0 and "warning: dino_course/loss.py" in warned.stdout and "no points" in warned.stdout
    (copy / "dino_course" / "centering.py").unlink()
    (copy / "dino_course" / "centering.py").symlink_to(copy / "dino_course" / "loss.py")
    refused = _run([sys.executable, "-m", "dino_course", "submit", "--overwrite"], copy, [copy, no_solutions])
    assert refused.returncode == 2 and "dino_course/centering.py is a link" in refused.stderr


def _zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            if name in links:
                info.external_attr = (0o120777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def test_reading_a_submission_keeps_only_exercise_files(tmp_path):
    path = tmp_path / "s.zip"
    path.write_bytes(_zip({
        "dino_course/loss.py": b"x = 1\n", "/etc/passwd": b"", "../up.py": b"", "dino_course/heads.py": b"/etc",
        "dino_course/networks/vit.py": b"given code", "dino_course/model.py": b"x" * (MAX_FILE_BYTES + 1),
    }, links=("dino_course/heads.py",)))
    submission = read_archive(path)
    assert submission.files == {"loss": b"x = 1\n"}
    notes = "\n".join(submission.notes)
    for refused in ("/etc/passwd", "../up.py", "dino_course/heads.py: a symbolic link", "dino_course/model.py"):
        assert f"refused {refused}" in notes, notes
    assert "ignored 1 file(s)" in notes and "dino_course/networks/vit.py" in notes
    folder = tmp_path / "loose"
    folder.mkdir()
    (folder / "temperature.py").write_text("y = 2\n")
    (folder / "README.md").write_text("hi")
    assert read_folder(folder).files == {"temperature": b"y = 2\n"}


# ----------------------------------------------------------------------------- points and scan


def test_points_file_errors_name_the_line():
    assert load_points().total == sum(load_points().per_exercise.values()) > len(exercises())
    assert parse_points_text("default = 2\n").total == 2 * len(exercises())
    for text, message in (
        ('[points]\n"3.1/nope" = 1\n', "points.toml:2: '3.1/nope' is not an exercise"),
        ('[points]\n"3.1/ema_update" = -1\n', "must be a number >= 0"),
        ("[grades]\n", "unknown section"),
        ('[gradescope]\nvisibility = "public"\n', "visibility must be one of"),
        ("default = lots\n", "expected a number"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_points_text(text)


@pytest.mark.parametrize("code, refused", [
    ("from solutions.loss import dino_loss", "imports the reference solutions"),
    ("import solutions", "imports the reference solutions"),
    ("x = open('../solutions/loss.py').read()", "names the reference solutions"),
    ("from dino_course import loss as me", "imports its own module"),
    ("import dino_course.loss", "imports its own module"),
    ("from . import loss", "imports its own module"),
    ("import importlib\nm = importlib.import_module('dino_course.loss')", "names its own module"),
    ("import torch\ntorch.testing.assert_close = print", "changes library code"),
    ("import torch\nsetattr(torch, 'allclose', print)", "changes library code"),
    ("import sys\nsys.modules['dino_course.loss'] = None", "changes library code"),
])
def test_scan_refuses_uses_of_the_reference_and_the_grader(code, refused):
    result = scan_exercise_file("loss", code + "\n")
    assert result.refusals and refused in result.refusals[0], result


def test_scan_passes_the_reference_and_flags_without_refusing():
    for path in SOLUTIONS_DIR.glob("*.py"):
        if not path.name.startswith("_"):
            result = scan_exercise_file(path.stem, path.read_text())
            assert not result.refusals and not result.flags, (path.name, result)
    flagged = scan_exercise_file("loss", '"""Docstrings may say solutions."""\nimport os\nx = open("data.txt")\n')
    assert not flagged.refusals and [f.split(": ", 1)[1] for f in flagged.flags] == ["imports `os`", "uses `open`"]


def test_instructor_commands_answer_bad_input_in_one_line(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    for args, message in (
        (["grade", str(tmp_path / "missing")], "is not a folder"),
        (["grade", str(tmp_path / "full")], "holds no submissions"),
        (["grade", str(tmp_path), "--jobs", "0"], "--jobs must be at least 1"),
        (["grade", str(tmp_path), "--time-limit", "0"], "--time-limit must be a positive number"),
        (["autograder", str(tmp_path / "full")], "exists and is not empty"),
        (["release", str(tmp_path / "a" / "b")], "its parent folder does not exist"),
        (["release", str(tmp_path / "new"), "--points", str(tmp_path / "nope.toml")], "does not exist"),
    ):
        result = _run([sys.executable, "-m", "dino_course", *args], REPO_ROOT, [REPO_ROOT])
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, lines)
        assert lines[0].startswith(f"dino-course {args[0]}: "), (args, lines)
