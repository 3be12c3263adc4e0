"""The mutation harness: realistic learner bugs must fail their own exercise with a specific hint,
and correct alternatives must pass.

Each `tests/maintainer/mutations/<module>.py` lists, for the exercises of `solutions/<module>.py`,

    Bug(exercise, why, old, new, hint)      a mistake learners make; `hint` is a regular expression
                                            the exercise's verdict message must match (so the hint
                                            names the mistake, not just "a check failed")
    Alternative(exercise, why, old, new)    a correct implementation written differently

`old` is text of the exercise's reference body (between its solution markers) that must occur
there exactly once, and `new` replaces it; with `old=""`, `new` replaces the whole body.

For each mutation the harness writes the reference's files into a scratch folder, applies the
mutation to the exercise's module there, points the grader at that folder
(`DINO_COURSE_LEARNER_DIR`) and grades the whole lesson in-process. A bug passes the harness when
its exercise fails with a message matching `hint` and every other exercise of the lesson passes
(the grader blamed the right exercise); an alternative passes when the whole lesson passes.

    python tests/maintainer/mutation_harness.py [MODULE ...] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
MUTATIONS_DIR = HERE / "mutations"


@dataclass(frozen=True)
class Bug:
    exercise: str
    why: str
    old: str
    new: str
    hint: str  # regular expression (case-insensitive) the failure message must match


@dataclass(frozen=True)
class Alternative:
    exercise: str
    why: str
    old: str
    new: str


# Messages that say something failed without naming the mistake.
GENERIC = re.compile(r"^(a check failed:|your code raised|\w+Error in code your)")


def mutations_of(module: str) -> list[Bug | Alternative]:
    sys.modules.setdefault("mutation_harness", sys.modules[__name__])  # the lists import Bug from here
    path = MUTATIONS_DIR / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"mutations_{module}", path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded
    spec.loader.exec_module(loaded)
    return list(loaded.MUTATIONS)


def mutated_source(module: str, mutation: Bug | Alternative) -> str:
    """The reference module's source with `mutation` applied inside its exercise's body."""
    from dino_course.grading.catalog import SOLUTIONS_DIR, exercise_bodies

    path = SOLUTIONS_DIR / f"{module}.py"
    source = path.read_text(encoding="utf-8")
    bodies = {b.name: b for b in exercise_bodies(source, str(path))}
    if mutation.exercise not in bodies:
        raise ValueError(f"{module}: no exercise {mutation.exercise!r} (have {sorted(bodies)})")
    body = bodies[mutation.exercise]
    lines = source.splitlines(keepends=True)
    head, block, tail = lines[: body.begin_line], "".join(lines[body.begin_line : body.end_line - 1]), lines[body.end_line - 1 :]
    if mutation.old == "":
        block = textwrap.indent(textwrap.dedent(mutation.new).strip("\n") + "\n", body.indent)
    else:
        count = block.count(mutation.old)
        if count != 1:
            raise ValueError(f"{module}/{mutation.exercise} ({mutation.why}): `old` occurs {count} times in the body, not once")
        block = block.replace(mutation.old, mutation.new)
    return "".join(head) + block + "".join(tail)


def run(modules: list[str]) -> list[dict]:
    from dino_course.grading.catalog import SOLUTIONS_DIR, lesson_of_module
    from dino_course.grading.isolation import LEARNER_DIR_ENV
    from dino_course.grading.notebook import grade
    from dino_course.grading.report import FAILED, PASSED

    os.environ.pop("DINO_COURSE_REFERENCE", None)
    results = []
    with tempfile.TemporaryDirectory(prefix="dino-mutants-") as scratch:
        folder = Path(scratch)
        for solution in SOLUTIONS_DIR.glob("*.py"):
            shutil.copy(solution, folder / solution.name)
        os.environ[LEARNER_DIR_ENV] = str(folder)
        for module in modules:
            lesson = lesson_of_module(module)
            reference_text = (SOLUTIONS_DIR / f"{module}.py").read_text(encoding="utf-8")
            for mutation in mutations_of(module):
                target = folder / f"{module}.py"
                target.write_text(mutated_source(module, mutation), encoding="utf-8")
                started = time.perf_counter()
                report = grade(lesson)
                seconds = time.perf_counter() - started
                target.write_text(reference_text, encoding="utf-8")
                exercise_id = f"{lesson}/{mutation.exercise}"
                verdict = report.verdicts.get(exercise_id)
                others = {k: v.outcome for k, v in report.verdicts.items() if k != exercise_id and v.outcome != PASSED}
                problems = []
                if verdict is None:
                    problems.append("the exercise got no verdict")
                elif isinstance(mutation, Bug):
                    if verdict.outcome != FAILED:
                        problems.append(f"the bug was not caught: {verdict.outcome}")
                    elif not re.search(mutation.hint, verdict.message, re.IGNORECASE):
                        problems.append(f"the hint does not name the mistake: {verdict.message!r}")
                elif verdict.outcome != PASSED:
                    problems.append(f"the correct alternative was rejected: {verdict.message!r}")
                if others:
                    problems.append(f"other exercises did not pass: {others}")
                results.append(
                    {
                        "module": module,
                        "exercise": mutation.exercise,
                        "kind": type(mutation).__name__,
                        "why": mutation.why,
                        "message": verdict.message if verdict else "",
                        "specific": bool(verdict and verdict.message and not GENERIC.match(verdict.message)),
                        "seconds": round(seconds, 2),
                        "problems": problems,
                    }
                )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="exercise modules (default: every module with a mutation list)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    modules = args.modules or sorted(p.stem for p in MUTATIONS_DIR.glob("*.py") if not p.name.startswith("_"))
    results = run(modules)
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            mark = "ok " if not r["problems"] else "BAD"
            print(f"{mark} {r['kind']:<11} {r['module']}/{r['exercise']}: {r['why']}  ->  {r['message'][:110]}")
            for problem in r["problems"]:
                print(f"      {problem}")
        bugs = [r for r in results if r["kind"] == "Bug"]
        alternatives = [r for r in results if r["kind"] == "Alternative"]
        print(
            f"{len(bugs)} bugs ({sum(not r['problems'] for r in bugs)} caught by their own exercise with the expected hint, "
            f"{sum(r['specific'] for r in bugs)} with a specific hint), {len(alternatives)} alternatives "
            f"({sum(not r['problems'] for r in alternatives)} accepted)"
        )
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
