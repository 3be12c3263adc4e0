"""Isolation: grade one exercise with the reference standing in for everything it builds on.

A hidden check of exercise X (say `StudentTeacherWrapper.update_teacher`) must give a verdict
about X alone. If it ran the learner's whole file, a wrong `ema_update` would make the correct
`update_teacher` fail, and a file that does not import would stop every lesson that imports it.
So each check runs in a *world* built for it:

- every exercise module is the reference (`solutions.<module>`), for the check itself and for
  all the given code it calls (the grading session aliases `dino_course.<module>` to it);
- except that the modules X lives in are fresh copies of the reference ("hybrids") into which
  the learner's X is installed: the learner's function (or method) itself, run with globals
  where every *other* exercise is the reference. Given code in the hybrid (a class whose method
  calls X, say) reaches the learner's X, as it would in the learner's own file.

An integration check names more exercises (`@pytest.mark.integration("ema_update", ...)`);
its world takes all of them from the learner and links the hybrids to each other.

The learner's files are read from `learner_dir()`: `dino_course/` of this checkout, or
`DINO_COURSE_LEARNER_DIR` (the mutation harness and the instructor's batch grader point it at
another folder of exercise files). They are loaded fresh for each world, never imported into
`sys.modules`, so grading never disturbs the modules a notebook is using.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import time
import traceback
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dino_course.grading.catalog import PACKAGE_DIR, Exercise, exercises, solution_modules
from dino_course.grading.errors import LearnerCodeError

LEARNER_DIR_ENV = "DINO_COURSE_LEARNER_DIR"


def learner_dir() -> Path:
    """The folder holding the learner's exercise files (`dino_course/` unless overridden)."""
    override = os.environ.get(LEARNER_DIR_ENV, "").strip()
    return Path(override).resolve() if override else PACKAGE_DIR


def learner_file(module: str) -> Path:
    return learner_dir() / f"{module}.py"


def learner_path_text(module: str) -> str:
    """How a learner's file is named in messages: `dino_course/<module>.py`."""
    return f"dino_course/{module}.py"


# ----------------------------------------------------------------------------- what is being graded


@dataclass(frozen=True)
class CheckScope:
    """The exercise a check grades, and the exercises it takes from the learner (X, plus the
    dependencies of an integration check). `reference=True`: X's lesson is switched to the
    reference, so the world is the reference itself."""

    exercise: Exercise
    learner_exercises: tuple[Exercise, ...]
    reference: bool = False

    @property
    def modules(self) -> frozenset[str]:
        return frozenset(e.module for e in self.learner_exercises)


_current: CheckScope | None = None
_worlds: dict[CheckScope, "World | LearnerCodeError"] = {}
_load_failures: dict[tuple[str, tuple[int, int]], LearnerCodeError] = {}


def current_scope() -> CheckScope | None:
    return _current


@contextlib.contextmanager
def grading(scope: CheckScope | None) -> Iterator[None]:
    """Run the body (a check's setup, call and teardown) for `scope`."""
    global _current
    previous, _current = _current, scope
    try:
        yield
    finally:
        _current = previous


def forget_worlds() -> None:
    """Drop every built world and remembered import failure (end of a grading session)."""
    _worlds.clear()
    _load_failures.clear()


# ----------------------------------------------------------------------------- loading the learner's files


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _location_in(exc: BaseException, path: Path) -> str:
    """' (line N)' of the deepest traceback frame inside the learner's file, if any."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f" (line {frames[-1].lineno})" if frames else ""


def is_time_limit(exc: BaseException) -> bool:
    """True for the exception pytest-timeout raises when a check runs out of time."""
    text = str(exc)
    return "Timeout" in text and ("pytest-timeout" in text or ">" in text) and type(exc).__name__ == "Failed"


def load_learner_module(module: str) -> types.ModuleType:
    """A fresh module object executed from the learner's file, or a one-line `LearnerCodeError`.

    Its imports of other exercise modules get the reference (the grading session aliases them),
    so the learner's file is never mixed with another of their files.
    """
    path = learner_file(module)
    shown = learner_path_text(module)
    if not path.exists():
        raise LearnerCodeError(f"{shown} is missing: restore the file (every exercise in it needs it)")
    key = (module, _stamp(path))
    if key in _load_failures:
        raise _load_failures[key]
    name = f"dino_course.{module}"
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = loaded  # while it runs, as a module being imported is (dataclasses look it up)
    started = time.monotonic()
    try:
        spec.loader.exec_module(loaded)
    except SyntaxError as exc:  # includes IndentationError
        error = LearnerCodeError(
            f"{shown} has a syntax error ({type(exc).__name__}) on line {exc.lineno}: {exc.msg}. "
            "Fix it and every exercise in the file can be graded again."
        )
        _load_failures[key] = error
        raise error from None
    except BaseException as exc:
        if is_time_limit(exc) and _import_used_the_time_limit(time.monotonic() - started):
            # Remembered, so that a file that never finishes importing costs one time limit, not one
            # per exercise in it. Only when the import itself took the time: when the check had spent
            # its time before importing (a slow machine), the next check imports it afresh.
            _load_failures[key] = LearnerCodeError(
                f"{shown} did not finish importing within the time limit: is there an endless loop outside "
                "a function (at the top level of the file)?"
            )
        if is_time_limit(exc):
            raise
        if not isinstance(exc, Exception):
            raise
        what = "could not be imported" if isinstance(exc, ImportError) else "raised an error while being imported"
        error = LearnerCodeError(f"{shown} {what}{_location_in(exc, path)}: {type(exc).__name__}: {exc}")
        _load_failures[key] = error
        raise error from None
    finally:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
    return loaded


def _import_used_the_time_limit(seconds: float) -> bool:
    """True when an import stopped by the time limit had itself run for at least half of it."""
    from dino_course.grading.pytest_plugin import CHECK_TIME_LIMIT_S  # the plugin imports this module

    return seconds >= CHECK_TIME_LIMIT_S / 2


# ----------------------------------------------------------------------------- building a world


def _reference_module(module: str) -> types.ModuleType:
    return importlib.import_module(f"solutions.{module}")


def _fresh_reference(module: str) -> types.ModuleType:
    """A new module object executed from `solutions/<module>.py`: the reference, but a copy that
    a check may change (install the learner's X into) without touching `solutions.<module>`."""
    pristine = _reference_module(module)
    name = f"dino_course.{module}"
    fresh = types.ModuleType(name, pristine.__doc__)
    fresh.__file__ = pristine.__file__
    fresh.__package__ = "dino_course"
    code = _compiled_reference(pristine.__file__)
    previous = sys.modules.get(name)
    sys.modules[name] = fresh
    try:
        exec(code, fresh.__dict__)
    finally:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
    return fresh


_compiled: dict[str, types.CodeType] = {}


def _compiled_reference(path: str) -> types.CodeType:
    if path not in _compiled:
        _compiled[path] = compile(Path(path).read_text(encoding="utf-8"), path, "exec")
    return _compiled[path]


def _defined_in(module: types.ModuleType) -> dict[str, object]:
    """Functions and classes a module defines itself (not the ones it imports)."""
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, (types.FunctionType, type)) and getattr(value, "__module__", None) == module.__name__
    }


def _missing(exercise: Exercise, what: str) -> LearnerCodeError:
    return LearnerCodeError(
        f"{learner_path_text(exercise.module)} has no `{what}`: was it renamed or deleted? "
        "The exercise must keep its name and signature."
    )


def _install(exercise: Exercise, learner: types.ModuleType, hybrid: types.ModuleType) -> None:
    """Put the learner's X into the hybrid module (a function) or the hybrid's class (a method)."""
    owner, _, method = exercise.name.rpartition(".")
    if not owner:
        if not isinstance(vars(learner).get(method), types.FunctionType):
            raise _missing(exercise, method)
        setattr(hybrid, method, vars(learner)[method])
        return
    learner_class, hybrid_class = vars(learner).get(owner), vars(hybrid).get(owner)
    if not isinstance(learner_class, type) or method not in vars(learner_class):
        raise _missing(exercise, exercise.name)
    for name, value in vars(learner_class).items():
        # the method itself, and any helper the learner added to the class for it
        if name == method or (name not in vars(hybrid_class) and not name.startswith("__")):
            setattr(hybrid_class, name, value)
            _point_class_cell(value, learner_class, hybrid_class)


def _point_class_cell(member: object, old: type, new: type) -> None:
    """`super()` inside a method uses the `__class__` cell of its class: make it the hybrid's."""
    function = getattr(member, "__func__", member)  # staticmethod / classmethod
    if isinstance(member, property):
        functions = [f for f in (member.fget, member.fset, member.fdel) if f is not None]
    else:
        functions = [function]
    for f in functions:
        code, closure = getattr(f, "__code__", None), getattr(f, "__closure__", None)
        if code is None or not closure:
            continue
        for name, cell in zip(code.co_freevars, closure):
            if name == "__class__":
                with contextlib.suppress(ValueError):
                    if cell.cell_contents is old:
                        cell.cell_contents = new


@dataclass
class World:
    """The modules one check sees: hybrids for the modules of the scope, the reference elsewhere."""

    hybrids: dict[str, types.ModuleType]

    def module(self, module: str) -> types.ModuleType:
        return self.hybrids.get(module) or _reference_module(module)


def _build(scope: CheckScope) -> World:
    if scope.reference:
        return World({})
    learners = {m: load_learner_module(m) for m in sorted(scope.modules)}
    hybrids = {m: _fresh_reference(m) for m in sorted(scope.modules)}
    for exercise in scope.learner_exercises:
        _install(exercise, learners[exercise.module], hybrids[exercise.module])
    # Point every name that means "the reference's X", "the learner's X" or "the reference
    # module" at the hybrid's object instead, in the hybrids and in the learner's globals, so
    # that the learner's code calls the reference for everything else (and, in an integration
    # check, the learner's code for the other exercises of the scope).
    relink: dict[int, object] = {}
    for module, hybrid in hybrids.items():
        pristine = _reference_module(module)
        relink[id(pristine)] = hybrid
        for name, value in _defined_in(pristine).items():
            relink[id(value)] = vars(hybrid)[name]
        for name, value in _defined_in(learners[module]).items():
            if name in vars(hybrid) and vars(hybrid)[name] is not value:
                relink[id(value)] = vars(hybrid)[name]
    for namespace in [*hybrids.values(), *learners.values()]:
        for name, value in list(vars(namespace).items()):
            if id(value) in relink and not name.startswith("__"):
                setattr(namespace, name, relink[id(value)])
    return World(hybrids)


def world(scope: CheckScope) -> World:
    """The world for `scope`, built once per grading session (a load error is remembered too)."""
    if scope not in _worlds:
        try:
            _worlds[scope] = _build(scope)
        except LearnerCodeError as exc:
            _worlds[scope] = exc
    found = _worlds[scope]
    if isinstance(found, LearnerCodeError):
        raise LearnerCodeError(str(found)) from None
    return found


def scope_for(exercise_id: str, depends: Iterable[str] = (), *, reference: bool = False) -> CheckScope:
    """The scope of a check of `exercise_id`; `depends` lists exercise ids (or names of the same
    lesson) an integration check also takes from the learner."""
    known = exercises()
    exercise = known[exercise_id]
    chosen = [exercise]
    for dependency in depends:
        key = dependency if "/" in dependency else f"{exercise.lesson}/{dependency}"
        if key not in known:
            raise ValueError(f"integration dependency {dependency!r} of {exercise_id} is not an exercise")
        chosen.append(known[key])
    return CheckScope(exercise, tuple(dict.fromkeys(chosen)), reference)


def exercise_modules() -> tuple[str, ...]:
    return tuple(s.module for s in solution_modules())


class LearnerModule:
    """What a hidden check calls the learner's module: `st = LearnerModule("student_teacher")`.

    Inside a check of exercise X, `st.name` comes from X's world: the learner's X where `name`
    is X (or a given object of X's module, which then calls the learner's X), the reference for
    everything else. Outside a check (module level of a check file) it is the reference, so a
    learner's broken file can never break the collection of the checks.
    """

    def __init__(self, module: str) -> None:
        if module not in exercise_modules():
            raise ValueError(f"module must be one of the exercise modules {exercise_modules()}, got {module!r}")
        self._module = module

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        scope = current_scope()
        module = _reference_module(self._module) if scope is None else world(scope).module(self._module)
        try:
            return getattr(module, name)
        except AttributeError:
            raise AttributeError(f"{self._module} has no attribute {name!r} (a hidden check asked for it)") from None

    def __repr__(self) -> str:
        return f"LearnerModule('dino_course.{self._module}')"
