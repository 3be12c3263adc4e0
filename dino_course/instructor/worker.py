"""The grading process one run of `runner.Runner` starts (not a command for people).

    python -m dino_course.instructor.worker SPEC.json

SPEC names the course copy (with the learner's files in `dino_course/`), the lessons to grade
(or one exercise of one lesson), exercises to leave out, the process's limits and a folder for
the results. The worker grades each lesson with the course's own engine in this process, as
`pytest` and `check()` do (hidden and public checks, each exercise in its isolated world, the
per-check time limit), and writes `<lesson>.json` as soon as the lesson is done, so that what it
finished survives a crash in a later lesson. In `events.jsonl` it logs the exercise whose check
starts, and the end of each lesson, so the runner knows which exercise was running when the
process died; after every check it compares its copy of the course with how it found it (file
sizes and times) and, if a check changed it, logs that exercise and exits at once.

It also keeps a guard on the learner's code, which the static scan cannot fully see
(`importlib.import_module("sol" + "utions...")`):

- an `open` (or listing) of anything in the copy's `solutions/` or `tests/` (the public checks
  excepted) while a function of a learner file is running is refused (`PermissionError`) and
  recorded;
- a call, from a learner file, of the reference version of the exercise being graded (reached
  through `solutions` or through the grader's own alias of `dino_course.<module>`) is refused
  and recorded;
- writing, deleting, renaming or changing the permissions of any file outside the run's
  private HOME/TMPDIR, and starting or signalling processes, are refused and recorded too.

These are Python's audit hooks (PEP 578): they see what goes through Python's own functions,
not what C code does directly (`ctypes`), which is why the runner also compares the copy with
its manifest afterwards. The runner turns a recorded use of the reference into a "refused"
verdict for every exercise of that file; a refused write or process only fails the exercise
whose code tried it (through the `PermissionError`) and is flagged for the instructor.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PERMISSION_MESSAGE = "the reference solutions and hidden checks are not available to submissions"


READ_EVENTS = frozenset({"open", "os.listdir", "os.scandir"})
CHANGE_EVENTS = frozenset({
    "os.remove", "os.rmdir", "os.rename", "os.truncate", "os.chmod", "os.chown", "os.link", "os.symlink",
    "os.utime", "os.mkdir", "shutil.rmtree", "shutil.copyfile", "shutil.copytree", "shutil.move",
})
PROCESS_EVENTS = frozenset({
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
    "os.killpg", "pty.spawn",
})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Guard:
    """Watches the learner's files while they run (see the module docstring)."""

    def __init__(self, root: Path, modules: list[str], private: Path) -> None:
        self.root = root
        self.learner_files = {str(root / "dino_course" / f"{m}.py"): m for m in modules}
        self.protected = (str(root / "solutions") + os.sep, str(root / "tests") + os.sep)
        self.allowed = str(root / "tests" / "public") + os.sep
        self.private = str(private) + os.sep  # the run's HOME and TMPDIR: the one place it may write
        self.violations: list[dict] = []
        self._busy = False

    def _learner_frame(self):
        frame = sys._getframe(2)  # _learner_frame <- audit <- the code that raised the event
        if frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
            return None  # the import system loading a module (an import of an aliased exercise module)
        while frame is not None:
            if frame.f_code.co_filename in self.learner_files:
                return frame
            frame = frame.f_back
        return None

    def record(self, frame, what: str, kind: str = "reference") -> None:
        from dino_course.grading import isolation

        scope = isolation.current_scope()
        self.violations.append({
            "module": self.learner_files[frame.f_code.co_filename], "line": frame.f_lineno, "what": what,
            "kind": kind, "exercise": scope.exercise.id if scope is not None else None,
        })

    def _is_protected(self, path: str) -> bool:
        inside = any(path == p.rstrip(os.sep) or path.startswith(p) for p in self.protected)
        return inside and not (path == self.allowed.rstrip(os.sep) or path.startswith(self.allowed))

    def audit(self, event: str, args: tuple) -> None:
        """Refuse, from learner code: reading the reference or the hidden checks ("reference"),
        changing files outside the run's private folder or starting or signalling processes
        ("harm")."""
        if self._busy or not (event in READ_EVENTS or event in CHANGE_EVENTS or event in PROCESS_EVENTS):
            return
        self._busy = True  # realpath and the frame walk must not audit themselves
        try:
            problem = self._problem(event, args)
            if problem is None:
                return
            frame = self._learner_frame()
            if frame is None:
                return
            what, kind = problem
            self.record(frame, what, kind)
        finally:
            self._busy = False
        if kind == "reference":
            raise PermissionError(f"{PERMISSION_MESSAGE} ({what})")
        raise PermissionError(f"exercise code must not write or delete files, or start or signal processes ({what})")

    def _problem(self, event: str, args: tuple) -> tuple[str, str] | None:
        if event in PROCESS_EVENTS:
            return f"calls {event}", "harm"
        target = args[0] if args else None
        if target is None or isinstance(target, int):
            return None
        try:
            path = os.path.realpath(os.fsdecode(target))
        except (TypeError, ValueError):
            return None
        writing = event in CHANGE_EVENTS
        if event == "open":
            mode, flags = (args[1] if len(args) > 1 else None), (args[2] if len(args) > 2 else 0)
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
        if writing:
            if path.startswith(self.private) or path == os.devnull:
                return None
            shown = os.path.relpath(path, self.root) if path.startswith(str(self.root) + os.sep) else path
            return f"{event} on {shown}", "harm"
        if self._is_protected(path):
            return f"opens {os.path.relpath(path, self.root)}", "reference"
        return None

    def wrap_references(self) -> None:
        """Put a guard around the reference of every exercise in this session's `solutions` modules
        (each pytest session imports them afresh, with the check files that use them)."""
        from dino_course.grading.catalog import exercises

        for exercise in exercises().values():
            module = sys.modules.get(f"solutions.{exercise.module}")
            if module is None:
                continue
            owner_name, _, name = exercise.name.rpartition(".")
            owner = getattr(module, owner_name) if owner_name else module
            current = vars(owner).get(name) if owner_name else getattr(module, name, None)
            if current is None or getattr(current, "_dino_guarded", False):
                continue
            setattr(owner, name, self._guarded(current, exercise.id, exercise.name))

    def _guarded(self, original, exercise_id: str, shown: str):
        wrapper_of = type(original) if isinstance(original, (classmethod, staticmethod)) else None
        function = original.__func__ if wrapper_of else original
        guard = self

        def guarded(*args, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename in guard.learner_files:
                from dino_course.grading import isolation

                scope = isolation.current_scope()
                if scope is not None and exercise_id in {e.id for e in scope.learner_exercises}:
                    guard.record(caller, f"calls the reference solution of `{shown}`")
                    raise PermissionError(f"{PERMISSION_MESSAGE} (`{shown}`)")
            return function(*args, **kwargs)

        for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(guarded, attribute, getattr(function, attribute, None))
        guarded.__dict__.update({k: v for k, v in getattr(function, "__dict__", {}).items() if k != "__wrapped__"})
        guarded._dino_guarded = True
        return wrapper_of(guarded) if wrapper_of else guarded

    def take(self) -> list[dict]:
        found, self.violations = self.violations, []
        return found


class _Session:
    """pytest plugin of the worker: keeps the run's config, leaves out the exercises the runner
    skips, guards the session's reference modules, logs which exercise is running, and stops the
    process as soon as a check has changed the course copy (so that exercise takes the blame)."""

    def __init__(self, guard: Guard, events, skip: set[str], baseline: dict[str, tuple[int, int]]) -> None:
        self.guard = guard
        self.events = events
        self.skip = skip
        self.baseline = baseline
        self.config = None
        self.current: str | None = None
        self._ids: dict[str, str | None] = {}  # check -> exercise id

    def pytest_configure(self, config) -> None:
        self.config = config

    def pytest_collection_modifyitems(self, config, items) -> None:
        if self.skip:
            items[:] = [item for item in items if _exercise_of(item) not in self.skip]

    def pytest_collection_finish(self, session) -> None:
        self.guard.wrap_references()

    def pytest_runtest_logstart(self, nodeid, location) -> None:
        exercise_id = self._ids.get(nodeid)
        if exercise_id is not None:
            self.current = exercise_id
            _event(self.events, {"start": exercise_id})

    def pytest_itemcollected(self, item) -> None:
        self._ids[item.nodeid] = _exercise_of(item)

    def pytest_runtest_logfinish(self, nodeid, location) -> None:
        changed = _changed(self.guard.root, self.baseline)
        if changed:
            _event(self.events, {"damaged": self._ids.get(nodeid) or self.current, "paths": changed[:20]})
            os._exit(86)


def _exercise_of(item) -> str | None:
    marker = item.get_closest_marker("exercise")
    return f"{marker.args[0]}/{marker.args[1]}" if marker is not None and len(marker.args) == 2 else None


def _event(handle, data: dict) -> None:
    handle.write(json.dumps(data) + "\n")
    handle.flush()


def _stat_manifest(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime in ns) of every file of the copy: cheap enough after each check."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            found[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns)
    return found


def _changed(root: Path, baseline: dict[str, tuple[int, int]]) -> list[str]:
    current = _stat_manifest(root)
    return sorted(p for p in set(current) | set(baseline) if current.get(p) != baseline.get(p))


def grade_lesson(lesson: str, exercise: str | None, plugin: _Session):
    """The lesson's `GradeReport`, from the same checks `check(lesson)` runs (hidden and public)."""
    import pytest

    from dino_course.grading.catalog import REPO_ROOT, TESTS_DIR, lessons

    # as `check(lesson)` does: every hidden check file (`--lesson` selects the lesson's checks, and
    # those of the exercises its integration checks build on) and the lesson's public checks
    public = [TESTS_DIR / "public" / f"test_public_{m}.py" for m in lessons()[lesson].modules]
    args = [str(f) for f in sorted(TESTS_DIR.glob("test_*.py")) + public if f.exists()]
    args += [f"--rootdir={REPO_ROOT}", "--lesson", lesson, "-p", "no:cacheprovider", "--capture=fd", "-q"]
    args += ["-W", "ignore"]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):  # (the runner sets it: the checks need only pytest-timeout)
        args += ["-p", "pytest_timeout"]
    if exercise is not None:
        args += ["--exercise", exercise]
    pytest.main(args, plugins=[plugin])
    grades = getattr(plugin.config, "dino_grades", None)
    if grades is None:
        raise RuntimeError("pytest stopped before grading (a usage error)")
    return grades.report()


def _limit_self(limits: dict) -> None:
    """CPU seconds, address space and file size (output included) of this process."""
    import resource

    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    for kind, megabytes in ((resource.RLIMIT_AS, limits["memory_mb"]), (resource.RLIMIT_FSIZE, limits["output_mb"])):
        size = int(megabytes) * 1024 * 1024
        resource.setrlimit(kind, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    if spec.get("limits"):
        _limit_self(spec["limits"])
    root = Path(spec["course"]).resolve()
    import dino_course

    if Path(dino_course.__file__).resolve().parent != root / "dino_course":
        print(f"worker: imported dino_course from {dino_course.__file__}, not from the copy {root}", file=sys.stderr)
        return 3
    import torch

    from dino_course.grading.catalog import exercises
    from dino_course.files.safe_files import atomic_write_text

    torch.set_num_threads(1)
    guard = Guard(root, sorted({e.module for e in exercises().values()}), Path(os.environ.get("HOME", root)).resolve())
    sys.addaudithook(guard.audit)
    out = Path(spec["out"])
    events = open(out / "events.jsonl", "a", encoding="utf-8")
    plugin = _Session(guard, events, set(spec.get("skip", [])), _stat_manifest(root))
    for lesson in spec["lessons"]:
        report = grade_lesson(lesson, spec.get("exercise"), plugin)
        verdicts = {
            exercise_id: {
                "outcome": v.outcome, "message": v.message, "location": v.location,
                "checks_passed": v.checks_passed, "checks_total": v.checks_total,
            }
            for exercise_id, v in report.verdicts.items()
        }
        data = {"lesson": lesson, "verdicts": verdicts, "violations": guard.take()}
        atomic_write_text(out / f"{lesson}.json", json.dumps(data, sort_keys=True))
        _event(events, {"lesson_done": lesson})
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
