"""The mutation harness (`mutation_harness.py`) in CI: for every exercise module, realistic bugs
fail their own exercise with the hint that names them, and correct alternatives pass."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dino_course.grading.catalog import exercises, solution_modules

pytestmark = pytest.mark.maintainer

HARNESS = Path(__file__).with_name("mutation_harness.py")
MUTATIONS_DIR = Path(__file__).with_name("mutations")
MODULES = [s.module for s in solution_modules()]


def test_every_exercise_module_has_a_mutation_list():
    missing = [m for m in MODULES if not (MUTATIONS_DIR / f"{m}.py").exists()]
    assert not missing, f"no mutation list for {missing} in {MUTATIONS_DIR}"


@pytest.fixture(scope="module")
def harness_results() -> dict[str, tuple[str, str]]:
    """Every module's harness run, two at a time (one per core): (stdout, stderr) per module."""
    env = {k: v for k, v in os.environ.items() if k != "DINO_COURSE_REFERENCE"}
    env["OMP_NUM_THREADS"] = "1"  # tiny tensors: a thread pool only costs time

    def run(module: str) -> tuple[str, str]:
        result = subprocess.run(
            [sys.executable, str(HARNESS), module, "--json"], capture_output=True, text=True, timeout=1800, env=env,
        )
        return result.stdout, result.stderr

    present = [m for m in MODULES if (MUTATIONS_DIR / f"{m}.py").exists()]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        return dict(zip(present, pool.map(run, present)))


@pytest.mark.parametrize("module", MODULES)
def test_mutations(module, harness_results):
    if module not in harness_results:
        pytest.skip(f"no mutation list for {module} (test_every_exercise_module_has_a_mutation_list fails)")
    stdout, stderr = harness_results[module]
    assert stdout.strip(), stderr[-3000:]
    results = json.loads(stdout.strip().splitlines()[-1])
    problems = [f"{r['kind']} {r['exercise']} ({r['why']}): {'; '.join(r['problems'])}" for r in results if r["problems"]]
    assert not problems, "\n".join(problems)
    names = {e.name for e in exercises().values() if e.module == module}
    for name in names:
        bugs = [r for r in results if r["exercise"] == name and r["kind"] == "Bug"]
        alternatives = [r for r in results if r["exercise"] == name and r["kind"] == "Alternative"]
        assert len(bugs) >= 3, f"{module}/{name}: at least 3 realistic bugs, found {len(bugs)}"
        assert alternatives, f"{module}/{name}: at least one correct alternative"
