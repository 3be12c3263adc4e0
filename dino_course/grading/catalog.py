"""The course's catalogue of lessons and exercises, read from `solutions/`.

`solutions/` is the single source of truth. Each module there declares its lesson with three
module-level constants,

    LESSON = "3.1"
    LESSON_TITLE = "Student-teacher networks"
    LESSON_NOTEBOOK = "lessons/module3/3.1_student_teacher.ipynb"

and marks each exercise body with a pair of comments inside the function it belongs to:

    def ema_update(teacher, student, momentum):
        \"\"\"...the exercise text...\"\"\"
        # BEGIN SOLUTION
        ...reference body...
        # END SOLUTION

The exercise id is the (qualified) name of the function holding the markers, e.g.
`ema_update` or `StudentTeacherWrapper.update_teacher`. The catalogue is read from the
source text with `ast`, never by importing, so a broken module cannot hide the course plan.

The student edition (`dino-course release`) has no `solutions/`: there the same catalogue is
read from `dino_course/grading/course_plan.json`, which the release writes from this one
(`course_plan()`). With `solutions/` present the plan file, if any, is ignored.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

BEGIN_MARKER = "# BEGIN SOLUTION"
END_MARKER = "# END SOLUTION"

REPO_ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS_DIR = REPO_ROOT / "solutions"
PACKAGE_DIR = REPO_ROOT / "dino_course"
TESTS_DIR = REPO_ROOT / "tests"
COURSE_PLAN_PATH = PACKAGE_DIR / "grading" / "course_plan.json"  # the student edition's catalogue


@dataclass(frozen=True)
class ExerciseBody:
    """Where one exercise's reference body sits in its solution file (1-based, inclusive)."""

    name: str
    begin_line: int  # line of the BEGIN marker
    end_line: int  # line of the END marker
    indent: str


@dataclass(frozen=True)
class Exercise:
    lesson: str
    name: str
    module: str  # module name inside dino_course/ and solutions/, e.g. "student_teacher"

    @property
    def id(self) -> str:
        return f"{self.lesson}/{self.name}"

    @property
    def learner_path(self) -> str:
        return f"dino_course/{self.module}.py"


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    notebook: str
    modules: tuple[str, ...]
    exercises: tuple[Exercise, ...]


def lesson_sort_key(lesson_id: str) -> tuple[int, ...]:
    """'3.10' sorts after '3.9'."""
    return tuple(int(part) for part in lesson_id.split("."))


def _constant(tree: ast.Module, name: str) -> str | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return None


def _functions_by_line(tree: ast.Module) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every function, outermost first."""
    found: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qualname = prefix + child.name
                found.append((child.lineno, child.end_lineno or child.lineno, qualname))
                visit(child, qualname + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return found


def exercise_bodies(source: str, filename: str = "<solution>") -> list[ExerciseBody]:
    """Find every marked exercise body in a solution module's source."""
    lines = source.splitlines()
    functions = _functions_by_line(ast.parse(source, filename))
    bodies: list[ExerciseBody] = []
    begin: int | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped == BEGIN_MARKER:
            if begin is not None:
                raise ValueError(f"{filename}:{number}: nested '{BEGIN_MARKER}' (previous one on line {begin})")
            begin = number
        elif stripped == END_MARKER:
            if begin is None:
                raise ValueError(f"{filename}:{number}: '{END_MARKER}' without a matching '{BEGIN_MARKER}'")
            enclosing = [f for f in functions if f[0] < begin <= f[1]]  # comments after the last statement lie outside end_lineno
            if not enclosing:
                raise ValueError(f"{filename}:{begin}: solution markers must sit inside a function")
            name = max(enclosing, key=lambda f: f[0])[2]  # innermost function
            indent = lines[begin - 1][: len(lines[begin - 1]) - len(lines[begin - 1].lstrip())]
            bodies.append(ExerciseBody(name, begin, number, indent))
            begin = None
    if begin is not None:
        raise ValueError(f"{filename}:{begin}: '{BEGIN_MARKER}' is never closed")
    names = [b.name for b in bodies]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"{filename}: more than one solution block in {sorted(duplicates)}")
    return bodies


@dataclass(frozen=True)
class SolutionModule:
    module: str
    path: Path
    lesson: str
    title: str
    notebook: str
    bodies: tuple[ExerciseBody, ...]


def read_solution_module(path: Path) -> SolutionModule:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, str(path))
    lesson = _constant(tree, "LESSON")
    if lesson is None or not re.fullmatch(r"\d+\.\d+", lesson):
        raise ValueError(f"{path}: needs a module-level LESSON = \"<module>.<lesson>\" string, got {lesson!r}")
    return SolutionModule(
        module=path.stem,
        path=path,
        lesson=lesson,
        title=_constant(tree, "LESSON_TITLE") or f"Lesson {lesson}",
        notebook=_constant(tree, "LESSON_NOTEBOOK") or "",
        bodies=tuple(exercise_bodies(source, str(path))),
    )


@functools.lru_cache(maxsize=1)
def solution_modules() -> tuple[SolutionModule, ...]:
    """Every exercise module of the course, in lesson order."""
    if not SOLUTIONS_DIR.is_dir() and COURSE_PLAN_PATH.exists():
        return _modules_from_plan(COURSE_PLAN_PATH)
    modules = [read_solution_module(p) for p in sorted(SOLUTIONS_DIR.glob("*.py")) if not p.name.startswith("_")]
    return tuple(sorted(modules, key=lambda m: (lesson_sort_key(m.lesson), _order_in_notebook(m), m.module)))


def course_plan() -> dict:
    """The catalogue as plain data (what the student edition's `course_plan.json` holds):
    `{"modules": [{"module", "lesson", "title", "notebook", "exercises": [names]}, ...]}` in course order."""
    return {
        "modules": [
            {"module": m.module, "lesson": m.lesson, "title": m.title, "notebook": m.notebook,
             "exercises": [b.name for b in m.bodies]}
            for m in solution_modules()
        ]
    }


def _modules_from_plan(path: Path) -> tuple[SolutionModule, ...]:
    """The catalogue of a course without `solutions/`, from its plan file. There are no reference
    bodies, so `path` names where the solution would be and the bodies carry no lines."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["modules"]
        return tuple(
            SolutionModule(
                module=entry["module"], path=SOLUTIONS_DIR / f"{entry['module']}.py", lesson=entry["lesson"],
                title=entry["title"], notebook=entry["notebook"],
                bodies=tuple(ExerciseBody(name, 0, 0, "") for name in entry["exercises"]),
            )
            for entry in entries
        )
    except (ValueError, KeyError, TypeError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{path} is damaged ({problem}); restore it from the course release") from None


def _order_in_notebook(module: SolutionModule) -> int:
    """Where the lesson notebook first names `dino_course/<module>.py`, so that a lesson with several
    modules lists its exercises in the order the notebook teaches them."""
    path = REPO_ROOT / module.notebook if module.notebook else None
    if path is None or not path.exists():
        return 0
    position = path.read_text(encoding="utf-8").find(f"dino_course/{module.module}.py")
    return position if position >= 0 else 10**9


@functools.lru_cache(maxsize=1)
def lessons() -> dict[str, Lesson]:
    """Lesson id -> `Lesson`, in course order."""
    grouped: dict[str, list[SolutionModule]] = {}
    for module in solution_modules():
        grouped.setdefault(module.lesson, []).append(module)
    result = {}
    for lesson_id, modules in grouped.items():
        exercises = tuple(Exercise(lesson_id, b.name, m.module) for m in modules for b in m.bodies)
        first = modules[0]
        result[lesson_id] = Lesson(
            lesson_id, first.title, first.notebook, tuple(m.module for m in modules), exercises
        )
    return result


def exercises() -> dict[str, Exercise]:
    """Exercise id ('3.1/ema_update') -> `Exercise`, in course order."""
    return {e.id: e for lesson in lessons().values() for e in lesson.exercises}


def lesson_of_module(module: str) -> str | None:
    """The lesson an exercise module of `dino_course` belongs to, or None for infrastructure."""
    for solution in solution_modules():
        if solution.module == module:
            return solution.lesson
    return None
