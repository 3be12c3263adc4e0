"""`dino-course release DIR`: the student edition of the course, as a ready git repository.

What goes in: the lessons, the `dino_course` package (exercise stubs and given code), the public
checks (`tests/public/`, which need no reference), a README for students with the points table,
`pyproject.toml`, `environment.yml`, `.gitignore`, a `conftest.py` that loads the student
edition's pytest plugin, and `dino_course/grading/course_plan.json` (the catalogue of lessons and
exercises, which the full course reads from `solutions/`, plus each exercise's docstring for
the public checks and the version of every lesson for `dino-course submit`'s manifest).

What stays out: `solutions/`, the hidden checks and their data (`tests/test_*.py`,
`tests/conftest.py`, the golden numbers), the maintainer and browser checks, benchmarks, CI.
Before anything is written, the release is built in a temporary folder and searched for leaks
(`find_leaks`): any distinctive line of a reference body or of a hidden check, any file with the
bytes of a solution or check file. A leak stops the release.

The release is deterministic: the same course gives the same bytes in every file and the same
git commit id (fixed author and dates; `SOURCE_DATE_EPOCH` overrides the date).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from dino_course.grading.catalog import (
    COURSE_PLAN_PATH,
    PACKAGE_DIR,
    REPO_ROOT,
    SOLUTIONS_DIR,
    TESTS_DIR,
    course_plan,
    exercise_bodies,
    lessons,
)
from dino_course.instructor.points import Points, format_points, load_points
from dino_course.instructor.public_checks import PUBLIC_LABEL, documented_docstrings
from dino_course.files.safe_files import atomic_write_bytes

RELEASE_AUTHOR = ("DINO course release", "dino-course-release@invalid")
DEFAULT_DATE = 946684800  # 2000-01-01T00:00:00Z: a fixed date, so the commit id is reproducible
SKIPPED_NAMES = {"__pycache__", ".ipynb_checkpoints", ".DS_Store"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".tmp")

STUDENT_CONFTEST = '''\
# The student edition grades your exercises with the public checks in tests/public/ (they need no
# reference solution). Passing them does not mean the hidden checks, which give your grade, pass.
pytest_plugins = ["dino_course.instructor.student_plugin"]
'''

STUDENT_GITIGNORE_EXTRA = (
    "\n# `dino-course submit` writes your hand-in archive here; it is not part of the course\n"
    "/dino-course-submission*.zip\n"
)


def require_full_course() -> None:
    """Release, autograder and batch grading need the reference and the hidden checks."""
    if not SOLUTIONS_DIR.is_dir() or not any(TESTS_DIR.glob("test_*.py")):
        raise ValueError(
            "this command needs the full course (solutions/ and the hidden checks in tests/); "
            "run it in the instructor's copy, not in a student edition"
        )


def _files_under(root: Path, relative: str) -> list[Path]:
    base = root / relative
    found = []
    for path in sorted(base.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p in SKIPPED_NAMES or (p.startswith(".") and p != ".gitignore") for p in parts):
            continue
        if path.is_file() and not path.name.endswith(SKIPPED_SUFFIXES) and not path.is_symlink():
            found.append(path)
    return found


def release_sources(source: Path = REPO_ROOT) -> dict[str, Path]:
    """Release path -> source file, for every file copied as it is (the generated ones are added later)."""
    files: dict[str, Path] = {}
    for folder in ("lessons", "dino_course", "tests/public"):
        for path in _files_under(source, folder):
            files[path.relative_to(source).as_posix()] = path
    files.pop(COURSE_PLAN_PATH.relative_to(REPO_ROOT).as_posix(), None)  # regenerated below
    for name in ("pyproject.toml", "environment.yml"):
        files[name] = source / name
    return files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def student_plan() -> dict:
    """The course plan the release ships: catalogue, docstrings, lesson versions, stub hashes."""
    plan = course_plan()
    stub_hashes = {m["module"]: _sha((PACKAGE_DIR / f"{m['module']}.py").read_bytes()) for m in plan["modules"]}
    versions = {}
    for lesson in lessons().values():
        digest = hashlib.sha256()
        for module in lesson.modules:
            digest.update(f"{module}:{stub_hashes[module]}\n".encode())
        versions[lesson.id] = digest.hexdigest()[:12]
    plan["lesson_versions"] = versions
    plan["stub_sha256"] = stub_hashes
    plan["docstrings"] = documented_docstrings()
    return plan


def _lesson_table() -> str:
    rows = ["| lesson | notebook | your file | exercises |", "| --- | --- | --- | --- |"]
    for lesson in lessons().values():
        files = ", ".join(f"`dino_course/{m}.py`" for m in lesson.modules)
        names = ", ".join(f"`{e.name}`" for e in lesson.exercises)
        rows.append(f"| {lesson.id} {lesson.title} | `{lesson.notebook}` | {files} | {names} |")
    return "\n".join(rows)


def student_readme(points: Points) -> str:
    return f"""# DINO, hands on: student edition

A course on **DINO** (self-**di**stillation with **no** labels, Caron et al. 2021): a student
network learns to match an exponential-moving-average teacher across multi-crop views of the
same image, with no labels at all. You implement the method's pieces yourself, as small
functions in the package `dino_course`, guided by the Jupyter notebooks in `lessons/`.
Everything runs on a laptop CPU.

## Set up

Python 3.10 or newer:

```bash
python -m venv .venv && . .venv/bin/activate && pip install -e . && jupyter lab lessons/
```

With conda instead: `conda env create -f environment.yml && conda activate dino-course`.
`pip install -e .` matters: the *editable* install means the notebooks and `pytest` use the
files you edit in `dino_course/`.

## How it works

1. Open a lesson, e.g. `lessons/module3/3.1_student_teacher.ipynb`. It explains one idea, then
   asks you to implement a function, e.g. `ema_update` in `dino_course/student_teacher.py`.
2. Each exercise is a function whose docstring is the exercise (the equation, shapes, an
   example) and whose body is one line, `raise ExerciseNotStarted(...)`. Replace that line with
   your code. Keep the function's name and signature.
3. Check your work: `check("3.1")` in the notebook, `dino-course check 3.1`, or `pytest` for
   everything. They print, per exercise, *passed*, *failed* with a hint, or *not started*.

**These are {PUBLIC_LABEL}.** They run the docstring examples and check types, shapes and
properties that any correct implementation has. Your grade comes from hidden checks that also
compare your results with a reference solution, each exercise on its own.

## Lessons

{_lesson_table()}

## Points

Each exercise earns its points when all its hidden checks pass (all or nothing, graded on its
own: a mistake in one exercise never costs points in another).

{points.table()}

## Handing in

```bash
dino-course submit
```

writes `dino-course-submission.zip` in this folder: your exercise files (`dino_course/<module>.py`
of the lessons above) and a manifest with the lesson versions and file hashes, nothing else.
Upload that archive where your instructor tells you (e.g. Gradescope). Rules the grader enforces:

- only the exercise files are graded; anything else you change is ignored;
- an exercise file must not import or read the course's reference solutions (an exercise that
  does gets no points), nor write or delete files;
- every check has a time limit (20 seconds unless your instructor says otherwise); an endless
  loop fails that exercise only.
"""


def _git(args: list[str], cwd: Path, date: int) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_AUTHOR_NAME": RELEASE_AUTHOR[0], "GIT_AUTHOR_EMAIL": RELEASE_AUTHOR[1],
        "GIT_COMMITTER_NAME": RELEASE_AUTHOR[0], "GIT_COMMITTER_EMAIL": RELEASE_AUTHOR[1],
        "GIT_AUTHOR_DATE": f"@{date} +0000", "GIT_COMMITTER_DATE": f"@{date} +0000",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
    }
    result = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false",
         "-c", "core.autocrlf=false", *args],
        cwd=cwd, env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


def _check_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(
            f"DIR {str(target)!r} exists and is not empty: give a new or empty folder (nothing is overwritten)"
        )
    if not target.parent.is_dir():
        raise ValueError(f"DIR {str(target)!r}: its parent folder does not exist")


def build_release(target: str | Path, *, points_file: str | Path | None = None, git: bool = True) -> str:
    """Write the student edition into `target` (new or empty); return the commit id ('' without git)."""
    from dino_course.grading.stubs import out_of_date_stubs

    require_full_course()
    target = Path(target).resolve()
    _check_target(target)
    if git and shutil.which("git") is None:
        raise ValueError("git is not installed: the release is a git repository (install git, or pass --no-git)")
    points = load_points(points_file)
    stale = out_of_date_stubs()
    if stale:
        raise ValueError(
            f"the exercise stubs are out of date with solutions/ ({', '.join(stale)}): run `dino-course stubs` first"
        )
    date = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_DATE))

    contents: dict[str, bytes] = {name: path.read_bytes() for name, path in release_sources().items()}
    contents[COURSE_PLAN_PATH.relative_to(REPO_ROOT).as_posix()] = (
        json.dumps(student_plan(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    ).encode()
    contents["conftest.py"] = STUDENT_CONFTEST.encode()
    contents["README.md"] = student_readme(points).encode()
    contents[".gitignore"] = (REPO_ROOT / ".gitignore").read_bytes() + STUDENT_GITIGNORE_EXTRA.encode()
    if points_file is not None:  # the numbers the README shows travel with the release
        contents["dino_course/instructor/points.toml"] = Path(points_file).read_bytes()

    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name in sorted(contents):
            atomic_write_bytes(staging / name, contents[name])
        problems = find_leaks(staging)
        if problems:
            raise ValueError("the release would leak hidden material, nothing written: " + "; ".join(problems[:5]))
        commit = ""
        if git:
            _git(["init", "-q"], staging, date)
            _git(["add", "-A"], staging, date)
            _git(["commit", "-q", "-m", "DINO course: student edition"], staging, date)
            commit = _git(["rev-parse", "HEAD"], staging, date)
        if target.exists():
            target.rmdir()  # empty (checked above); the rename below takes its place
        os.replace(staging, target)
        os.chmod(target, 0o777 & ~_umask())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return commit


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- leak search


def _code_lines(text: str, minimum: int) -> set[str]:
    return {
        line.strip()
        for line in text.splitlines()
        if len(line.strip()) >= minimum and not line.strip().startswith(("#", '"""', "'''"))
    }


def secret_lines(source: Path = REPO_ROOT) -> dict[str, str]:
    """Distinctive lines of the reference bodies and the hidden checks -> where they come from.

    A line counts when it is long enough to mean something (16+ characters) and appears nowhere
    in what the release contains by design (the given code and stubs of `dino_course/`, the
    public checks, the lesson notebooks' text), so a match in a release is a leak, not a
    coincidence like `optimizer.step()` shown in a lesson.
    """
    public: set[str] = set()
    for folder in ("dino_course", "tests/public", "lessons"):
        for path in _files_under(source, folder):
            if path.suffix == ".py":
                public |= _code_lines(path.read_text(encoding="utf-8"), 1)
            elif path.suffix == ".ipynb":
                public |= _json_strings(path.read_text(encoding="utf-8"))
    secrets: dict[str, str] = {}
    for path in sorted((source / "solutions").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for body in exercise_bodies(text, str(path)):
            for line in lines[body.begin_line : body.end_line - 1]:
                code = line.strip()
                if len(code) >= 16 and not code.startswith("#") and code not in public:
                    secrets.setdefault(code, f"solutions/{path.name} ({body.name})")
    for path in sorted((source / "tests").glob("test_*.py")):
        for code in _code_lines(path.read_text(encoding="utf-8"), 24) - public:
            secrets.setdefault(code, f"tests/{path.name}")
    return secrets


def find_leaks(release: Path, source: Path = REPO_ROOT) -> list[str]:
    """Everything in `release` that a student edition must not contain (empty list: none)."""
    problems = []
    if (release / "solutions").exists():
        problems.append("a solutions/ folder")
    hidden_names = {p.name for p in (source / "tests").glob("*") if p.is_file()}
    for path in sorted((release / "tests").glob("*")) if (release / "tests").exists() else []:
        if path.is_file() and path.name in hidden_names:
            problems.append(f"tests/{path.name} (a hidden check file)")
    secret_files = {
        _sha(p.read_bytes()): p.relative_to(source).as_posix()
        for folder in ("solutions", "tests")
        for p in (source / folder).rglob("*")
        if p.is_file() and "public" not in p.relative_to(source).parts and "__pycache__" not in p.parts
    }
    secrets = secret_lines(source)
    for path in sorted(release.rglob("*")):
        if ".git" in path.relative_to(release).parts or not path.is_file():
            continue
        name = path.relative_to(release).as_posix()
        data = path.read_bytes()
        if _sha(data) in secret_files:
            problems.append(f"{name} has the bytes of {secret_files[_sha(data)]}")
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        lines = {line.strip() for line in text.splitlines()}
        if path.suffix == ".ipynb":  # notebook sources are JSON strings: one line per "...\n" entry
            lines |= _json_strings(text)
        for line in sorted(lines & secrets.keys()):
            problems.append(f"{name} contains a line of {secrets[line]}: {line[:80]}")
    return problems


def _json_strings(text: str) -> set[str]:
    found = set()
    for match in re.findall(r'"((?:[^"\\]|\\.)*)"', text):
        try:
            found.add(json.loads(f'"{match}"').strip())
        except ValueError:
            continue
    return found


def release_summary(target: Path, commit: str, points: Points) -> str:
    files = sum(1 for p in target.rglob("*") if p.is_file() and ".git" not in p.relative_to(target).parts)
    return (
        f"student edition written to {target}: {files} files"
        + (f", git commit {commit[:12]}" if commit else "")
        + f"; {len(points.per_exercise)} exercises, {format_points(points.total)} points"
    )
