"""Maintainers: re-run the lesson notebooks with the reference on and store their outputs.

The committed notebooks carry outputs so a learner sees the pictures before running
anything; nbval re-runs them in CI. `dino-course notebooks [LESSON ...]` refreshes them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dino_course.grading.catalog import REPO_ROOT, lessons
from dino_course.grading.reference_switch import ENV_VAR
from dino_course.files.safe_files import atomic_write_text


def _notebooks_named(lesson_id: str) -> list[Path]:
    return sorted((REPO_ROOT / "lessons").glob(f"module*/{lesson_id}_*.ipynb"))


def lesson_notebooks(lesson_ids: list[str] | None = None) -> list[Path]:
    """Notebook paths of the chosen lessons (default: all), in course order."""
    known = lessons()
    if lesson_ids is not None:
        # a lesson without exercises (e.g. 3.5, the assessment) is known by its notebook's name
        unknown = sorted(i for i in set(lesson_ids) - set(known) if not _notebooks_named(i))
        if unknown:
            raise ValueError(f"lessons must be among {sorted(known)} or name a notebook <id>_*.ipynb, got unknown {unknown}")
    chosen = lesson_ids or list(known)
    paths = []
    for lesson_id in chosen:
        if lesson_id not in known:
            paths += [p for p in _notebooks_named(lesson_id) if p not in paths]
            continue
        notebook = known[lesson_id].notebook
        if notebook and notebook not in [str(p.relative_to(REPO_ROOT)) for p in paths]:
            paths.append(REPO_ROOT / notebook)
    extra = sorted(p for p in (REPO_ROOT / "lessons").rglob("*.ipynb") if ".ipynb_checkpoints" not in str(p))
    if lesson_ids is None:  # notebooks without exercises (e.g. an assessment) too
        paths += [p for p in extra if p not in paths]
    return paths


def run_notebook(path: Path, cell_timeout: int = 600) -> float:
    """Execute `path` in place with the reference on; return the seconds it took."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    previous = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = "all"
    start = time.perf_counter()
    try:
        NotebookClient(
            notebook, timeout=cell_timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    finally:
        if previous is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = previous
    seconds = time.perf_counter() - start
    for cell in notebook.cells:  # keep diffs small: no per-run timestamps
        cell.metadata.pop("execution", None)
    atomic_write_text(path, nbformat.writes(notebook) + "\n")
    return seconds


def regenerate(lesson_ids: list[str] | None = None, cell_timeout: int = 600):
    for path in lesson_notebooks(lesson_ids):
        if not path.exists():
            raise ValueError(f"notebook {path} named by its lesson does not exist")
        yield path.relative_to(REPO_ROOT), run_notebook(path, cell_timeout)
