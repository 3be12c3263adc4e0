"""Grade one submission: every exercise in isolation, in processes of its own, with limits.

The batch grader (`batch.py`) and Gradescope's `run_autograder` (`autograder.py`) both use
`Grader.grade`. For one submission it does this:

1. **Static scan** of each exercise file (`scan_exercise_file`, with `ast`). A file that names the
   reference solutions (`solutions`), imports its own module (during grading that import would
   hand it the reference) or changes library code (`torch.testing.assert_close = ...`) is
   *refused*: its exercises get no points and a verdict that says why, and the stub stands in
   for it while the rest is graded. What an exercise file has no use for (`open`, `os`,
   `subprocess`, `exec`, ...) is *flagged* for the instructor, not refused.
2. **Worker processes** (`worker.py`) grade lessons with the course's own engine, so each
   exercise runs in its isolated world (the learner's exercise, the reference for the rest)
   with the per-check time limit. Every worker gets a fresh copy of the course with the
   submission's files in place, a session (process group) of its own, CPU, address-space and
   file-size (output included) limits, one thread, a private HOME and TMPDIR, and none of the
   caller's `DINO_COURSE_*` settings. A watchdog stops a worker that starts no new check for the
   per-check time limit plus `STALL_MARGIN_S` (an endless loop that swallows the time-limit
   exception), besides an overall wall-clock limit. Inside, a guard refuses what a learner file
   does to reach the reference or the hidden checks (a refused file, as in 1.), and to write or
   delete files or start processes (that exercise fails).
3. **Blame and carry on**: the worker logs which exercise's checks are running and stops as soon
   as a check has changed its copy of the course. When a worker crashes, is stopped, or changed
   its copy, the lessons it finished are kept, the exercise whose checks were running gets the
   failure as its verdict ("the grading process ended (exit code 3) ...", "your code changed or
   deleted files of the course ..."), and a new worker grades the rest without it. Only when
   there is no one to blame is a lesson graded exercise by exercise.
4. **Reuse** (optional, `LessonCache`): a lesson's verdicts depend only on the course, the limits
   and the learner's files it reads (`lesson_modules`: that is what isolation means), so
   identical lesson files are graded once per batch, and a re-run resumes from the cache.

This is isolation by processes, not a security sandbox: the learner's code runs as the same
user as the grader, in the same process as the checks, so a submission written to attack the
grader can forge its own verdicts, read other files the user can read, use the network or
fork without end (the guard of 2. sees only what goes through Python's audited functions).
For untrusted code at scale, use Gradescope's per-submission containers (`dino-course
autograder`), or run the batch inside a container or VM.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dino_course.grading.catalog import REPO_ROOT, exercises, lessons
from dino_course.grading.report import FAILED, NOT_GRADED, NOT_STARTED, PASSED, ExerciseVerdict, GradeReport
from dino_course.instructor.points import Points
from dino_course.instructor.submit import Submission
from dino_course.files.safe_files import atomic_write_text

COURSE_PARTS = ("dino_course", "solutions", "tests", "lessons", "conftest.py", "pyproject.toml")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "maintainer", "browser", "*.egg-info")
REFUSED = "refused"  # shown in the verdict text; the outcome itself is FAILED (no points)
STALL_MARGIN_S = 30.0  # beyond the per-check time limit, before a worker that starts no new check is stopped


# ----------------------------------------------------------------------------- static scan

# Names an exercise file has no use for: flagged for the instructor (the file is still graded).
FLAGGED_NAMES = {
    "open", "exec", "eval", "compile", "__import__", "globals", "setattr", "delattr", "breakpoint", "input",
}
FLAGGED_MODULES = {
    "os", "sys", "subprocess", "shutil", "pathlib", "importlib", "inspect", "gc", "ctypes", "signal", "socket",
    "builtins", "threading", "multiprocessing", "pickle", "io", "tempfile", "urllib", "requests", "http", "pytest",
}


@dataclass
class ScanResult:
    refusals: list[str] = field(default_factory=list)  # "line N: what", each enough to refuse the file
    flags: list[str] = field(default_factory=list)  # "line N: what", for the instructor's eyes


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    found.add(id(first.value))
    return found


def _findings(module: str, source: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return [], []  # the grader reports the syntax error itself
    refusals: list[tuple[int, str]] = []
    flags: list[tuple[int, str]] = []
    docstrings = _docstring_nodes(tree)
    imported: set[str] = set()
    own = f"dino_course.{module}"
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported.add((alias.asname or alias.name).split(".")[0])
                _check_import(alias.name, own, line, refusals, flags)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            _check_import(base, own, line, refusals, flags)
            for alias in node.names:
                imported.add(alias.asname or alias.name)
                if base in ("dino_course", ".") and alias.name == module:
                    refusals.append((line, f"imports its own module (`from {base} import {module}`)"))
                if alias.name == "solutions":
                    refusals.append((line, "imports the reference solutions (`solutions`)"))
        elif (isinstance(node, ast.Name) and node.id == "solutions") or (
            isinstance(node, ast.Attribute) and node.attr == "solutions"
        ):
            refusals.append((line, "refers to `solutions`, the reference solutions"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value.lower()
            if "solutions" in text:
                refusals.append((line, f"names the reference solutions in a string ({node.value[:40]!r})"))
            if text.strip() == own or text.startswith(own + "."):
                refusals.append(
                    (line, f"names its own module in a string ({node.value[:40]!r}): a dynamic self-import")
                )
        elif isinstance(node, ast.Name) and node.id in FLAGGED_NAMES:
            flags.append((line, f"uses `{node.id}`"))
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            root = target
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if root is not target and isinstance(root, ast.Name) and root.id in imported:
                refusals.append((node.lineno, f"changes library code (`{ast.unparse(target)[:50]} = ...`)"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            if node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in imported:
                refusals.append((node.lineno, f"changes library code (`{node.func.id}({node.args[0].id}, ...)`)"))
    return refusals, flags


def _check_import(name: str, own: str, line: int, refusals: list, flags: list) -> None:
    top = name.split(".")[0]
    if top == "solutions":
        refusals.append((line, f"imports the reference solutions (`{name}`)"))
    elif name == own:
        refusals.append((line, f"imports its own module (`{name}`): during grading that is the reference"))
    elif top in FLAGGED_MODULES:
        flags.append((line, f"imports `{name}`"))


def scan_exercise_file(module: str, source: str, stub_source: str | None = None) -> ScanResult:
    """Refusals and flags of a learner's exercise file; whatever the course's own stub already
    does (given code in the same file) is not held against it."""
    refusals, flags = _findings(module, source)
    if stub_source is not None:
        stub_refusals, stub_flags = _findings(module, stub_source)
        given = {what for _, what in stub_refusals + stub_flags}
        refusals = [(n, w) for n, w in refusals if w not in given]
        flags = [(n, w) for n, w in flags if w not in given]
    unique = lambda items: list(dict.fromkeys(f"line {n}: {w}" for n, w in sorted(items)))  # noqa: E731
    return ScanResult(unique(refusals), unique(flags))


# ----------------------------------------------------------------------------- the course copy


def _manifest(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under `root` (bytecode caches aside)."""
    found = {}
    for folder, dirs, files in os.walk(root, onerror=lambda error: found.setdefault(str(error.filename), "unreadable")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if name.endswith(".pyc"):
                continue
            try:
                found[relative] = "link" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                found[relative] = "unreadable"
    return found


class Course:
    """A read-only master copy of the full course that every worker's copy is made from."""

    def __init__(self, root: Path, source: Path | None = None) -> None:
        self.root = Path(root)
        self.source = source
        self.manifest = _manifest(self.root)
        self.fingerprint = hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode()).hexdigest()[:16]
        self._lock = threading.Lock()
        self._stubs = {m: (self.root / "dino_course" / f"{m}.py").read_bytes() for m in self.modules()}

    @classmethod
    def snapshot(cls, into: Path, source: Path = REPO_ROOT) -> "Course":
        """Copy the parts of the course that grading needs from `source` into `into`."""
        into.mkdir(parents=True, exist_ok=False)
        for part in COURSE_PARTS:
            origin = source / part
            if origin.is_dir():
                shutil.copytree(origin, into / part, ignore=SKIPPED)
            elif origin.is_file():
                shutil.copy2(origin, into / part)
        if not (into / "solutions").is_dir():
            raise ValueError(f"{source} is not the full course: it has no solutions/")
        return cls(into, source)

    @staticmethod
    def modules() -> list[str]:
        return sorted({e.module for e in exercises().values()})

    def stub(self, module: str) -> bytes:
        return self._stubs[module]

    def verify(self) -> list[str]:
        """Paths of the master that changed since it was made (empty: intact)."""
        current = _manifest(self.root)
        return sorted(p for p in set(current) | set(self.manifest) if current.get(p) != self.manifest.get(p))

    def ensure_intact(self) -> None:
        """Rebuild the master from its source if a submission managed to change it."""
        with self._lock:
            if not self.verify():
                return
            if self.source is None:
                raise RuntimeError(f"the course copy in {self.root} was changed during grading and cannot be rebuilt")
            _remove_tree(self.root)
            rebuilt = Course.snapshot(self.root, self.source)
            if rebuilt.fingerprint != self.fingerprint:
                raise RuntimeError("the course changed on disk during the batch: start it again")

    def make_copy(self, into: Path, learner: dict[str, bytes]) -> dict[str, str]:
        """A private copy with the learner's files in place; returns its expected manifest."""
        self.ensure_intact()
        shutil.copytree(self.root, into, ignore=SKIPPED)
        expected = dict(self.manifest)
        for module, data in learner.items():
            (into / "dino_course" / f"{module}.py").write_bytes(data)
            expected[f"dino_course/{module}.py"] = hashlib.sha256(data).hexdigest()
        return expected


def _remove_tree(path: Path) -> None:
    def unlock(function, target, _info):
        try:
            os.chmod(Path(target).parent, stat.S_IRWXU)
            os.chmod(target, stat.S_IRWXU)
            function(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=unlock)


# ----------------------------------------------------------------------------- limits and runs


@dataclass(frozen=True)
class Limits:
    check_time_limit_s: float = 20.0  # per exercise: the engine's DINO_COURSE_CHECK_TIME_LIMIT
    memory_mb: int = 8192  # address space of a worker (torch alone maps about 3.5 GB)
    output_mb: int = 64  # the largest file a worker may write, its captured output included
    startup_s: float = 60.0  # starting Python and torch and collecting the checks, on a busy machine

    def wall_limit(self, n_exercises: int) -> float:
        return self.startup_s + n_exercises * (self.check_time_limit_s + 10)

    def key(self) -> str:
        return f"t{self.check_time_limit_s:g}-m{self.memory_mb}-o{self.output_mb}"


@dataclass
class RunOutcome:
    results: dict[str, dict]  # lesson -> what the worker wrote for it
    failure: str = ""  # "" when the worker finished every lesson cleanly
    damaged: list[str] = field(default_factory=list)  # files of the copy changed, seen afterwards
    culprit: str | None = None  # the exercise whose checks were running when it failed (or that damaged the copy)
    culprit_damaged: list[str] = field(default_factory=list)  # what the worker saw that exercise change
    seconds: float = 0.0
    log: str = ""  # the failure and the worker's last output, for the instructor's log


def _worker_env(home: Path, copy: Path, limits: Limits) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "VIRTUAL_ENV", "CONDA_PREFIX", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({
        "HOME": str(home), "TMPDIR": str(home), "MPLCONFIGDIR": str(home), "MPLBACKEND": "Agg",
        "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        # Installed pytest plugins (nbval, ...) cost seconds of start-up in every worker and the checks
        # need none of them: the worker loads pytest-timeout itself.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "DINO_COURSE_CHECK_TIME_LIMIT": f"{limits.check_time_limit_s:g}",
        "DINO_COURSE_PROGRESS": str(home / "progress.json"),
    })
    return env


def _describe_exit(code: int | None, stopped: str | None, limits: Limits) -> str:
    """The verdict text for a worker that did not finish: `stopped` says why the runner stopped it."""
    if stopped is not None:
        return stopped
    if code == -signal.SIGXCPU:
        return "the grading process used up its CPU time and was stopped: an endless loop?"
    if code == -signal.SIGXFSZ:
        return f"the grading process was stopped: it wrote more than {limits.output_mb} MB (printing in a loop?)"
    if code == -signal.SIGKILL:
        return f"the grading process was killed: did it use more than {limits.memory_mb} MB of memory?"
    if code is not None and code < 0:
        return f"the grading process died from signal {signal.Signals(-code).name}"
    return (
        f"the grading process ended (exit code {code}) before its checks were done: "
        "does your code call exit(), sys.exit() or os._exit(), or kill the process?"
    )


class Runner:
    """Runs workers for submissions against one master `Course`."""

    def __init__(self, course: Course, work_dir: Path, limits: Limits = Limits(), python: str | None = None) -> None:
        self.course = course
        self.limits = limits
        self.python = python or sys.executable
        self.runs_dir = Path(work_dir) / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.runs_dir, 0o711)  # others' copies cannot be listed (for a non-root grader)
        self._active: set[subprocess.Popen] = set()
        self._stopped = False
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Kill every running worker and refuse new ones (Ctrl-C in a batch)."""
        with self._lock:
            self._stopped = True
            for process in list(self._active):
                _kill_group(process)

    def _watch(self, process: subprocess.Popen, events: Path, wall: float) -> tuple[int | None, str | None]:
        """Wait for the worker: (exit code, None), or (None, why it was stopped).

        Besides the overall wall-clock limit, a watchdog follows the worker's event log: a check
        may run for the per-check time limit (pytest-timeout then stops it), so a worker that
        starts no new check for that long plus `STALL_MARGIN_S` is stuck (an endless loop that
        swallows the time-limit exception) and is stopped then, not at the end of its budget.
        Before its first check, and between lessons, it has `startup_s`."""
        started = time.monotonic()
        last_change, last_size = started, -1
        stall = self.limits.check_time_limit_s + STALL_MARGIN_S
        while True:
            code = process.poll()
            if code is not None:
                return code, None
            now = time.monotonic()
            try:
                size = events.stat().st_size
            except OSError:
                size = 0
            if size != last_size:
                last_change, last_size = now, size
            in_check = "start" in _last_event(events) if size else False
            if in_check and now - last_change > stall:
                return None, (
                    f"a check was still running after {stall:.0f} s "
                    f"(the time limit is {self.limits.check_time_limit_s:g} s "
                    "per check) and the grading process was stopped: an endless loop that catches every exception, "
                    "including the time-limit one?"
                )
            if now - started > wall or (not in_check and now - last_change > self.limits.startup_s):
                return None, f"the grading process was stopped after {now - started:.0f} s: its checks did not finish"
            time.sleep(0.25)

    def run(
        self, learner: dict[str, bytes], lesson_ids: list[str], exercise: str | None = None, skip: tuple[str, ...] = ()
    ) -> RunOutcome:
        """One worker: grade `lesson_ids` (or one exercise of the one lesson), leaving out the
        exercises in `skip`, on a fresh copy."""
        started = time.monotonic()
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.runs_dir))
        try:
            copy, home, out = run_dir / "course", run_dir / "home", run_dir / "out"
            home.mkdir()
            out.mkdir()
            expected = self.course.make_copy(copy, learner)
            n = sum(len(lessons()[lesson].exercises) for lesson in lesson_ids) if exercise is None else 1
            wall = self.limits.wall_limit(max(1, n - len(skip)))
            spec = {
                "course": str(copy), "lessons": lesson_ids, "exercise": exercise, "out": str(out), "skip": list(skip),
                "limits": {
                    "cpu_s": int(wall) + 5, "memory_mb": self.limits.memory_mb, "output_mb": self.limits.output_mb,
                },
            }
            (run_dir / "spec.json").write_text(json.dumps(spec))
            with open(run_dir / "output.txt", "wb") as output, self._lock:
                if self._stopped:
                    raise RuntimeError("grading was stopped")
                process = subprocess.Popen(
                    [self.python, "-m", "dino_course.instructor.worker", str(run_dir / "spec.json")],
                    cwd=copy, env=_worker_env(home, copy, self.limits), stdin=subprocess.DEVNULL,
                    stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                )
                self._active.add(process)
            try:
                code, stopped = self._watch(process, out / "events.jsonl", wall)
            finally:
                _kill_group(process)  # also whatever the learner's code started
                with self._lock:
                    self._active.discard(process)
            timed_out = stopped is not None
            results = {}
            for lesson in lesson_ids:
                path = out / f"{lesson}.json"
                try:
                    results[lesson] = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    break  # written in order: a lesson without its file was not finished
            current = _manifest(copy)
            damaged = sorted(p for p in set(current) | set(expected) if current.get(p) != expected.get(p))
            finished = len(results) == len(lesson_ids) and code == 0 and not timed_out
            failure = "" if finished else _describe_exit(code, stopped, self.limits)
            culprit, culprit_damaged = _culprit(out / "events.jsonl")
            if culprit_damaged:
                shown = ", ".join(culprit_damaged[:4]) + (" ..." if len(culprit_damaged) > 4 else "")
                failure = (
                    f"your code changed or deleted files of the course while being graded ({shown}): "
                    "exercise code must not write or delete files"
                )
            log = ""
            if not finished:
                tail = (run_dir / "output.txt").read_bytes()[-2000:].decode("utf-8", "replace")
                log = f"{failure} [culprit: {culprit}]\n--- last output of the worker ---\n{tail}"
            return RunOutcome(results, failure, damaged, culprit, culprit_damaged, time.monotonic() - started, log)
        finally:
            _remove_tree(run_dir)


def _last_event(events: Path) -> dict:
    try:
        with open(events, "rb") as handle:
            handle.seek(max(0, events.stat().st_size - 4096))
            lines = handle.read().decode("utf-8", "replace").splitlines()
        return json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return {}


def _culprit(events: Path) -> tuple[str | None, list[str]]:
    """From the worker's event log: the exercise whose check started last (or that changed the
    copy), and the files it changed."""
    culprit, damaged = None, []
    try:
        lines = events.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None, []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if "start" in event:
            culprit = event["start"]
        elif "damaged" in event:
            return event["damaged"], list(event.get("paths", []))
        elif "lesson_done" in event:
            culprit = None
    return culprit, damaged


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ----------------------------------------------------------------------------- reuse across submissions


class LessonCache:
    """Verdicts of a lesson for given lesson files, on disk: identical files are graded once."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: str) -> dict | None:
        path = self.folder / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict) -> None:
        atomic_write_text(self.folder / f"{key}.json", json.dumps(value, sort_keys=True))


def lesson_modules(course_root: Path) -> dict[str, list[str]]:
    """The learner files a lesson's verdicts can depend on: its own modules, and those of any
    exercise of another lesson that one of its integration checks names ("4.1/update_center")."""
    known = exercises()
    result = {}
    for lesson in lessons().values():
        modules = set(lesson.modules)
        for module in lesson.modules:
            tests = course_root / "tests"
            for path in (tests / f"test_{module}.py", tests / "public" / f"test_public_{module}.py"):
                if path.exists():
                    for match in re.findall(r"[\"'](\d+\.\d+/[\w.]+)[\"']", path.read_text(encoding="utf-8")):
                        if match in known:
                            modules.add(known[match].module)
        result[lesson.id] = sorted(modules)
    return result


# ----------------------------------------------------------------------------- one submission


@dataclass
class SubmissionResult:
    verdicts: dict[str, dict]  # exercise id -> {outcome, message, location, checks_passed, checks_total}
    points: dict[str, float]
    total: float
    max_total: float
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0
    reused_lessons: list[str] = field(default_factory=list)

    def report(self) -> GradeReport:
        """The same `GradeReport` a learner's own run gives (for the table)."""
        known = exercises()
        return GradeReport({
            exercise_id: ExerciseVerdict(
                known[exercise_id], v["outcome"], v.get("message", ""), v.get("checks_passed", 0),
                v.get("checks_total", 0), False, v.get("location", ""),
            )
            for exercise_id, v in self.verdicts.items()
        })

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SubmissionResult":
        return cls(**data)


def _verdict(outcome: str, message: str = "", location: str = "") -> dict:
    return {"outcome": outcome, "message": message, "location": location, "checks_passed": 0, "checks_total": 0}


class Grader:
    """Grades submissions: static scan, workers with fall-backs, optional reuse, points."""

    def __init__(self, runner: Runner, points: Points, cache: LessonCache | None = None, log=None) -> None:
        self.runner = runner
        self.points = points
        self.cache = cache
        self.log = log or (lambda text: None)
        self.lesson_modules = lesson_modules(runner.course.root)
        self.stubs_text = {m: runner.course.stub(m).decode("utf-8") for m in runner.course.modules()}

    def _key(self, lesson: str, learner: dict[str, bytes]) -> str:
        digest = hashlib.sha256(f"{self.runner.course.fingerprint}|{self.runner.limits.key()}|{lesson}".encode())
        for module in self.lesson_modules[lesson]:
            digest.update(f"|{module}:{hashlib.sha256(learner[module]).hexdigest()}".encode())
        return digest.hexdigest()[:32]

    def grade(self, submission: Submission) -> SubmissionResult:
        started = time.monotonic()
        notes = list(submission.notes)
        flags: list[str] = []
        refused: dict[str, str] = {}  # module -> why
        learner: dict[str, bytes] = {}
        for module in self.runner.course.modules():
            data = submission.files.get(module)
            if data is None:
                notes.append(f"dino_course/{module}.py is not in the submission: its exercises count as not started")
                learner[module] = self.runner.course.stub(module)
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                learner[module] = data  # the grader reports it as a file that cannot be read
                continue
            scan = scan_exercise_file(module, text, self.stubs_text[module])
            flags.extend(f"dino_course/{module}.py {f}" for f in scan.flags)
            if scan.refusals:
                refused[module] = scan.refusals[0]
                flags.extend(f"dino_course/{module}.py {f} (refused)" for f in scan.refusals)
                learner[module] = self.runner.course.stub(module)
            else:
                learner[module] = data
        verdicts: dict[str, dict] = {}
        violations: list[dict] = []
        workers = 0
        reused: list[str] = []
        keys = {lesson: self._key(lesson, learner) for lesson in lessons()}

        def reuse(lesson: str) -> bool:
            found = self.cache.get(keys[lesson]) if self.cache else None
            if found is not None:
                reused.append(lesson)
                verdicts.update(found["verdicts"])
                violations.extend(found.get("violations", []))
            return found is not None

        waiting = [lesson for lesson in keys if not reuse(lesson)]
        # Lock only what is still to grade (another job grading the same files waits, then reuses)
        with self._locked([keys[lesson] for lesson in waiting]):
            pending = [lesson for lesson in waiting if not reuse(lesson)]
            if pending:
                done, workers = self._grade_lessons(pending, learner)
                for lesson, data in done.items():
                    verdicts.update(data["verdicts"])
                    violations.extend(data.get("violations", []))
                    if self.cache is not None:
                        self.cache.put(keys[lesson], data)
        for violation in violations:
            module = violation.get("module")
            what = f"{violation.get('what', 'used the reference solutions')} (line {violation.get('line', '?')})"
            if violation.get("kind", "reference") != "reference":
                flags.append(f"dino_course/{module}.py {what} (stopped at run time)")
            elif module in learner and module not in refused:
                refused[module] = what
                flags.append(f"dino_course/{module}.py {what} (refused at run time)")
        for exercise_id, exercise in exercises().items():
            if exercise.module in refused:
                verdicts[exercise_id] = _verdict(
                    FAILED,
                    f"{REFUSED}: dino_course/{exercise.module}.py {refused[exercise.module]}; "
                    "a submission may not use the reference solutions or change the grader, "
                    "so this file gets no points",
                )
            verdicts.setdefault(exercise_id, _verdict(NOT_GRADED, "no verdict: the grader could not run its checks"))
        ordered = {e: verdicts[e] for e in exercises()}
        points = {e: (self.points.of(e) if v["outcome"] == PASSED else 0) for e, v in ordered.items()}
        return SubmissionResult(
            ordered, points, sum(points.values()), self.points.total, list(dict.fromkeys(flags)), notes,
            round(time.monotonic() - started, 3), workers, reused,
        )

    @contextlib.contextmanager
    def _locked(self, keys: list[str]):
        """Hold the cache locks of these lesson keys (taken in lesson order, so threads never deadlock)."""
        if self.cache is None:
            yield
            return
        locks = [self.cache.lock(key) for key in keys]
        for lock in locks:
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(locks):
                lock.release()

    def _grade_lessons(self, todo: list[str], learner: dict[str, bytes]) -> tuple[dict[str, dict], int]:
        """Grade lessons with as few workers as the submission allows; returns (lesson -> data, workers).

        One worker grades them all. If it fails (crash, limit, changed files), the lessons it
        finished are kept, the exercise whose checks were running gets the failure as its verdict,
        and a new worker goes on with the rest, leaving that exercise out.
        """
        done: dict[str, dict] = {}
        blamed: dict[str, dict] = {}  # exercise id -> the verdict of the failure it caused
        workers = 0
        remaining = list(todo)
        while remaining:
            lesson = remaining[0]
            if all(e.id in blamed for e in lessons()[lesson].exercises):  # nothing left to run in it
                done[lesson] = {"lesson": lesson, "verdicts": {}, "violations": []}
                remaining.remove(lesson)
                continue
            outcome = self.runner.run(learner, remaining, skip=tuple(blamed))
            workers += 1
            trusted = not outcome.damaged or bool(outcome.culprit_damaged)
            for finished in list(remaining):
                if finished not in outcome.results or not trusted:
                    break
                done[finished] = outcome.results[finished]
                remaining.remove(finished)
            if not remaining:
                break
            self.log(f"lesson {remaining[0]}: {outcome.log.strip()[:2000]}")
            culprit = outcome.culprit if trusted else None
            if culprit is not None and culprit not in blamed:
                # The checks of `culprit` were running (in its own lesson, or as what an integration
                # check builds on): it takes the failure, and the next worker leaves it out.
                blamed[culprit] = _verdict(FAILED, outcome.failure or "the grading process gave no verdict")
                continue
            # Nothing to blame (a crash between checks, files changed behind the worker's back):
            # this lesson exercise by exercise, each in a worker of its own.
            data, count = self._by_exercise(remaining[0], learner, blamed)
            done[remaining[0]] = data
            workers += count
            remaining = remaining[1:]
        for lesson, data in done.items():
            data["verdicts"].update({e: v for e, v in blamed.items() if exercises()[e].lesson == lesson})
        return done, workers

    def _by_exercise(self, lesson: str, learner: dict[str, bytes], blamed: dict[str, dict]) -> tuple[dict, int]:
        """Grade one lesson exercise by exercise, one worker each."""
        verdicts: dict[str, dict] = {}
        violations: list[dict] = []
        count = 0
        for exercise in lessons()[lesson].exercises:
            if exercise.id in blamed:
                verdicts[exercise.id] = blamed[exercise.id]
                continue
            outcome = self.runner.run(learner, [lesson], exercise.name)
            count += 1
            data = outcome.results.get(lesson)
            if outcome.damaged:
                shown = ", ".join(outcome.damaged[:4]) + (" ..." if len(outcome.damaged) > 4 else "")
                verdicts[exercise.id] = _verdict(
                    FAILED, f"your code changed or deleted files of the course while being graded ({shown}): "
                    "exercise code must not write or delete files",
                )
            elif data is None or outcome.failure:
                verdicts[exercise.id] = _verdict(FAILED, outcome.failure or "the grading process gave no verdict")
            else:
                verdicts[exercise.id] = data["verdicts"].get(exercise.id, _verdict(NOT_GRADED, "no verdict"))
            if data is not None:
                violations.extend(data.get("violations", []))
        return {"lesson": lesson, "verdicts": verdicts, "violations": violations}, count


def verdict_line(verdict: dict) -> str:
    """One line for a verdict: `passed`, `failed: hint (at dino_course/x.py:12)`, ..."""
    line = verdict["outcome"] + (f": {verdict['message']}" if verdict.get("message") else "")
    if verdict.get("location"):
        line += f" (at {verdict['location']})"
    return line


__all__ = [
    "Course", "Grader", "LessonCache", "Limits", "Runner", "ScanResult", "SubmissionResult", "scan_exercise_file",
    "verdict_line", "NOT_STARTED",
]
