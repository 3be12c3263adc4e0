"""The package's layout shows its architecture, and its dependencies point one way.

The top of `dino_course/` holds the lesson files (one per exercise module of `solutions/`) and the
command line; given code lives in subpackages, one per job, each saying in its `__init__`
docstring what lives there. Imports go from the top layers to the bottom ones only: the files
layer and grading at the bottom, the job, widgets and self-assessment on top of the lessons.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dino_course.grading.catalog import PACKAGE_DIR, solution_modules

pytestmark = pytest.mark.maintainer

LESSON_FILES = {s.module for s in solution_modules()}
TOP_LEVEL_GIVEN = {"__init__", "__main__", "cli"}

# Layers, bottom first. A module may import from its own layer's package and from lower layers.
LAYERS = [
    {"files"},                              # atomic writes and locks
    {"grading"},                            # catalogue, reference switch, hidden-check engine
    {"data"},                               # datasets and batched image operations
    {"lessons"},                            # the learner's exercise files
    {"networks", "job", "widgets", "assessment"},  # built from the lessons (complete DINO models, the job)
    {"instructor", "maintenance"},          # class tooling and regeneration for maintainers
    {"cli", "__main__", "package"},         # the command line and `import dino_course`
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _component(module: str) -> str:
    """The layer name of a dotted module under dino_course."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] in LESSON_FILES:
        return "lessons"
    return parts[1]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """The dino_course modules (or attributes of packages) that `path` imports, at any depth."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("dino_course"):
            if node.module == "dino_course":
                imported.update(f"dino_course.{alias.name}" for alias in node.names)
            else:
                imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names if alias.name.startswith("dino_course"))
    return imported


def test_the_top_of_the_package_is_the_lessons_and_the_command_line():
    top = {path.stem for path in PACKAGE_DIR.glob("*.py")}
    assert top - LESSON_FILES - TOP_LEVEL_GIVEN == set(), "given modules belong in a subpackage"
    assert LESSON_FILES <= top


def test_every_subpackage_says_what_lives_there():
    for init in PACKAGE_DIR.glob("*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert docstring and len(docstring.split()) >= 15, f"{init}: a docstring saying what lives here"
    unknown = {p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")} - set(RANK)
    assert not unknown, f"subpackages missing from LAYERS in this test: {unknown}"


def test_dependencies_point_one_way():
    wrong = []
    for name, path in sorted(_modules().items()):
        here = _component(name)
        for target in sorted(_imports(path) - {"dino_course"}):  # the package itself comes with any submodule
            there = _component(target)
            if there != here and RANK[there] > RANK[here]:
                wrong.append(f"{name} ({here}) imports {target} ({there})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_a_lesson_file_imports_only_its_own_and_earlier_lessons():
    """A learner's unfinished later lesson must never stop an earlier lesson's file from importing."""
    from dino_course.grading.catalog import lesson_sort_key

    lesson_of = {s.module: s.lesson for s in solution_modules()}
    wrong = []
    for solution in solution_modules():
        for target in _imports(solution.path):
            module = target.removeprefix("dino_course.")
            if module in lesson_of and lesson_sort_key(lesson_of[module]) > lesson_sort_key(solution.lesson):
                wrong.append(f"{solution.module} (Lesson {solution.lesson}) imports {module} (Lesson {lesson_of[module]})")
    assert not wrong, "\n".join(wrong)
