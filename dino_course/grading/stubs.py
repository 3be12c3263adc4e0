"""Generate the learner's exercise modules (`dino_course/X.py`) from `solutions/X.py`.

Each marked solution body becomes one line that raises `ExerciseNotStarted(lesson, name)`;
everything else (docstrings, given code, imports) is copied as is. Maintainers edit
`solutions/` and run `dino-course stubs`; `dino-course stubs --check` (and a maintainer
check) fails when a committed stub differs from what this generator makes.
"""

from __future__ import annotations

import ast
from pathlib import Path

from dino_course.grading.catalog import PACKAGE_DIR, SolutionModule, solution_modules
from dino_course.files.safe_files import atomic_write_text

HEADER = (
    "# Your exercises for Lesson {lesson}: replace each `raise ExerciseNotStarted(...)` line with your code.\n"
    "# Grade them with `pytest` (or `check(\"{lesson}\")` in the lesson notebook).\n"
    "# Maintainers: this file is generated from solutions/{module}.py by `dino-course stubs`;\n"
    "# edit the solution there and regenerate instead of editing this copy.\n"
)


def generate_stub(solution: SolutionModule) -> str:
    source = solution.path.read_text(encoding="utf-8")
    if "ExerciseNotStarted" not in source:
        raise ValueError(
            f"{solution.path}: import ExerciseNotStarted (from dino_course.grading import ExerciseNotStarted) "
            "so that the generated stubs can raise it"
        )
    lines = source.splitlines()
    out: list[str] = []
    cursor = 0
    for body in sorted(solution.bodies, key=lambda b: b.begin_line):
        out.extend(lines[cursor : body.begin_line - 1])
        out.append(f'{body.indent}raise ExerciseNotStarted("{solution.lesson}", "{body.name}")')
        cursor = body.end_line
    out.extend(lines[cursor:])
    text = HEADER.format(lesson=solution.lesson, module=solution.module) + "\n".join(out) + "\n"
    ast.parse(text, f"dino_course/{solution.module}.py")  # the stub itself must be valid Python
    return text


def stub_path(solution: SolutionModule) -> Path:
    return PACKAGE_DIR / f"{solution.module}.py"


def out_of_date_stubs() -> list[str]:
    """Names of committed stubs that differ from what the generator makes."""
    return [
        f"dino_course/{s.module}.py"
        for s in solution_modules()
        if not stub_path(s).exists() or stub_path(s).read_text(encoding="utf-8") != generate_stub(s)
    ]


def write_stubs() -> list[str]:
    """Regenerate every stub; return the ones that changed."""
    changed = out_of_date_stubs()
    for solution in solution_modules():
        if f"dino_course/{solution.module}.py" in changed:
            atomic_write_text(stub_path(solution), generate_stub(solution))
    return changed


def _function_source(tree: ast.Module, source: str, qualname: str) -> str | None:
    scope: list[ast.stmt] = tree.body
    node = None
    for part in qualname.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
        if node is None:
            return None
        scope = node.body
    return ast.get_source_segment(source, node)


def leaked_solution_lines(solution: SolutionModule, stub_text: str) -> list[str]:
    """Lines of a reference body that appear in the stub of the same exercise (should be none)."""
    solution_lines = solution.path.read_text(encoding="utf-8").splitlines()
    stub_tree = ast.parse(stub_text)
    leaked = []
    for body in solution.bodies:
        stub_function = _function_source(stub_tree, stub_text, body.name)
        if stub_function is None:
            leaked.append(f"{body.name}: missing from the stub")
            continue
        stub_lines = {line.strip() for line in stub_function.splitlines()}
        for line in solution_lines[body.begin_line : body.end_line - 1]:
            code = line.strip()
            if len(code) >= 12 and not code.startswith("#") and code in stub_lines:
                leaked.append(f"{body.name}: {code}")
    return leaked
