"""The reference switch: let the reference solutions stand in for a learner's exercises.

One environment variable decides, everywhere (pytest, notebooks, nbval, the CLI):

    DINO_COURSE_REFERENCE=all        every lesson uses the reference solutions
    DINO_COURSE_REFERENCE=3.1,3.2    only these lessons do; the others use your code
    (unset or empty)                 your code everywhere

`pytest --reference` sets it to `all` for one run. In a notebook, call
`dino_course.use_reference("3.1")` *before* importing the lesson's module.

How it works: an import hook sits in front of Python's normal import system. When code
imports an exercise module such as `dino_course.student_teacher` and that module's lesson
is switched on, the hook hands back `solutions.student_teacher` instead, the very same module
object, so `dino_course.student_teacher is solutions.student_teacher`. Nothing else in the
course needs to know which one it got.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys

from dino_course.grading.catalog import SOLUTIONS_DIR, lesson_of_module, lessons, solution_modules

ENV_VAR = "DINO_COURSE_REFERENCE"

__all__ = ["ENV_VAR", "reference_lessons", "is_reference", "use_reference", "install"]


def reference_lessons() -> frozenset[str] | str:
    """'all', or the set of lesson ids switched to the reference (maybe empty)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if raw and not SOLUTIONS_DIR.is_dir():
        raise ValueError(
            f"{ENV_VAR}={raw} asks for the reference solutions, but this student edition of the course "
            f"has none: unset {ENV_VAR}"
        )
    if raw.lower() == "all":
        return "all"
    ids = frozenset(part.strip() for part in raw.split(",") if part.strip())
    unknown = sorted(ids - set(lessons()))
    if unknown:
        raise ValueError(
            f"{ENV_VAR} must be 'all' or a comma-separated list of lesson ids from {sorted(lessons())}, "
            f"got unknown lesson(s) {unknown}"
        )
    return ids


def is_reference(lesson: str) -> bool:
    switched = reference_lessons()
    return switched == "all" or lesson in switched


def use_reference(lessons: str | list[str] | tuple[str, ...] | None = "all") -> None:
    """Switch the reference on for `lessons` ('all', a lesson id, or a list); None switches it off.

    Forgets already-imported exercise modules so the next import follows the new setting.
    Objects you created before the call keep the code they were made with.
    """
    if lessons is None:
        value = ""
    elif isinstance(lessons, str):
        value = lessons
    else:
        value = ",".join(lessons)
    previous = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = value
    try:
        reference_lessons()  # validate now, with a clear message
    except ValueError:
        if previous is None:
            del os.environ[ENV_VAR]
        else:
            os.environ[ENV_VAR] = previous
        raise
    forget_exercise_modules()


def forget_exercise_modules() -> None:
    """Drop imported exercise modules (learner or aliased reference) from `sys.modules`.

    The package attribute goes too: `from dino_course import multicrop` looks at the attribute
    before `sys.modules`, so a stale one would hand back the module of the previous setting.
    """
    package = sys.modules.get("dino_course")
    for solution in solution_modules():
        sys.modules.pop(f"dino_course.{solution.module}", None)
        if package is not None and solution.module in vars(package):
            delattr(package, solution.module)


class _AliasLoader(importlib.abc.Loader):
    """Loads `dino_course.X` as the already-importable module `solutions.X`."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        # The import system stamped the alias spec on the module; give it its own back so
        # that `importlib.reload` and pickling keep seeing `solutions.X`.
        module.__spec__ = importlib.util.find_spec(self.target)


_alias_every_lesson = False


def alias_every_lesson(on: bool) -> None:
    """While on, every exercise module imports as the reference, whatever the setting says.

    The grading session turns it on: a hidden check sees the reference everywhere except for the
    one exercise it grades, which `dino_course.grading.isolation` installs from the learner's file.
    """
    global _alias_every_lesson
    _alias_every_lesson = on


class _ReferenceFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith("dino_course.") or fullname.count(".") != 1:
            return None
        module = fullname.split(".", 1)[1]
        lesson = lesson_of_module(module)
        if lesson is None or not (_alias_every_lesson or is_reference(lesson)):
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(f"solutions.{module}"))


def install() -> None:
    """Put the hook in front of the import system (idempotent)."""
    if not any(isinstance(finder, _ReferenceFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ReferenceFinder())
