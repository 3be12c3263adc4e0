"""`dino-course train` runs the learner's code for every exercise it needs.

A learner who finished every lesson is simulated by a copy of the course whose exercise files are
the reference solutions, with no reference switch. For each exercise the job needs, one realistic
bug from the mutation lists (`tests/maintainer/mutations/`) is put into that copy; the job's
outputs (per-iteration losses and schedules, k-NN accuracies, collapse statistics, the attention
figure) must then differ from the bug-free copy's, or the job must stop with an error. If the job used given code or the reference instead, the bug could not show.

Each run is the `tiny` preset (2 epochs of 5 iterations, an evaluation after each, the figures),
in its own process (the course copy is imported from its own folder), two at a time.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mutation_harness import Bug, mutated_source, mutations_of

pytestmark = pytest.mark.maintainer

REPO_ROOT = Path(__file__).resolve().parents[2]

# Exercises of the course that the main job runs, by module. The others are lesson tools the job
# has no use for: sync_teacher (3.1: the job's teacher starts as a copy and is never re-synchronised;
# resuming loads both state dicts), parameter_divergence (3.1, a plot of the lesson), adaptive_head_dims (3.4, sizes
# a head for a given backbone; the presets name their sizes), measure_forward (3.4, a measurement of the lesson), the representation diagnostics of 3.4
# (the job's collapse monitor must stay right when a learner's diagnostics are wrong), entropy (4.2;
# likewise for the monitor's entropies), sharpen (4.2: the 4.3 loss sharpens the teacher's
# outputs inside its own softmax, as the lesson has the learner write it), gradient_norms_by_layer (4.4) and
# pca_project (4.5), the pictures of their lessons.
JOB_EXERCISES = {
    "student_teacher": ["build_teacher", "ema_update", "cosine_schedule",
                        "StudentTeacherWrapper.forward", "StudentTeacherWrapper.update_teacher"],
    "multicrop": ["view_recipes", "sample_crop_box", "group_by_resolution", "collate_multicrop"],
    "heads": ["build_mlp", "init_linear_weights", "l2_normalize", "WeightNormalizedLinear.effective_weight",
              "DINOProjectionHead.forward", "cancel_last_layer_gradients"],
    "model": ["MultiCropNetwork.forward"],
    "centering": ["update_center"],
    "temperature": ["teacher_temperature_schedule"],
    "loss": ["dino_loss", "DINOLoss.forward"],
    "training": ["parameter_groups", "clip_gradients", "TrainingSchedules.create", "apply_schedules", "train_step"],
    "evaluation": ["knn_classify", "knn_accuracy", "cls_attention_maps", "attention_mass_mask"],
}

# The bug to use where the list's first one cannot show in the tiny preset, with the reason.
BUG_FOR = {
    # norm_last_layer=True fixes g at 1, so ignoring g computes the right weight
    "WeightNormalizedLinear.effective_weight": "norm over dim 0 (the columns)",
    # the job's views are [global, global, local, ...]: no equal sizes apart from each other
    "group_by_resolution": "the last run is never closed",
    # a warm-up of one epoch is [warm-up temperature] whether one divides by W or by W - 1
    "teacher_temperature_schedule": "constant part at the warm-up temperature",
    # the tiny preset's batch is 256, for which the linear scaling rule multiplies by 1
    "TrainingSchedules.create": "no warm-up",
    # without the temperature the weights change but the tiny model's votes keep their winner
    "knn_classify": "the k least similar samples vote",
    # attention maps have no ties at the threshold, so < and <= agree
    "attention_mass_mask": "sorted ascending",
}

RUN_JOB = """
import hashlib, json, sys
from dino_course.job.train import PRESETS, run_training
result = run_training(PRESETS["tiny"], sys.argv[1], quiet=True, progress=False, figures=True)
metrics = result.metrics
print(json.dumps({
    "iterations": metrics["iterations"],
    "evaluations": [{k: v for k, v in e.items() if k != "train_seconds"} for e in metrics["evaluations"]],  # less the clock
    "warnings": metrics["warnings"],
    "attention_figure": hashlib.sha256(open(sys.argv[1] + "/attention_maps.png", "rb").read()).hexdigest(),
}, sort_keys=True, default=str))
"""


def _finished_course(folder: Path) -> Path:
    """A copy of the course in `folder` whose exercise files hold the reference solutions."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "dino_course", folder / "dino_course", ignore=ignore)
    shutil.copytree(REPO_ROOT / "solutions", folder / "solutions", ignore=ignore)
    for solution in (REPO_ROOT / "solutions").glob("*.py"):
        if not solution.name.startswith("_"):
            shutil.copy(solution, folder / "dino_course" / solution.name)
    return folder


def _run_job(course: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DINO_COURSE_REFERENCE", "DINO_COURSE_LEARNER_DIR")}
    env.update(PYTHONPATH=str(course), OMP_NUM_THREADS="1", MPLBACKEND="Agg", DINO_COURSE_PROGRESS=str(course / "progress.json"))
    return subprocess.run(
        [sys.executable, "-c", RUN_JOB, str(course / "run")], cwd=course, env=env,
        capture_output=True, text=True, timeout=300,
    )


def _bug(module: str, exercise: str) -> Bug:
    """The first bug of the exercise's mutation list, or the one `BUG_FOR` names."""
    bugs = [m for m in mutations_of(module) if isinstance(m, Bug) and m.exercise == exercise]
    if exercise in BUG_FOR:
        bugs = [m for m in bugs if m.why == BUG_FOR[exercise]]
    assert bugs, f"tests/maintainer/mutations/{module}.py lists no bug {BUG_FOR.get(exercise, '')!r} for {exercise}"
    return bugs[0]


def _job_with_bug(scratch: Path, module: str, exercise: str) -> tuple[Bug, subprocess.CompletedProcess]:
    bug = _bug(module, exercise)
    course = _finished_course(scratch / f"{module}-{exercise}")
    (course / "dino_course" / f"{module}.py").write_text(mutated_source(module, bug), encoding="utf-8")
    return bug, _run_job(course)


def test_every_exercise_the_job_needs_is_the_learners(tmp_path):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        baselines = [pool.submit(_run_job, _finished_course(tmp_path / f"reference-{i}")) for i in range(2)]
        runs = {
            (module, exercise): pool.submit(_job_with_bug, tmp_path, module, exercise)
            for module, exercises in JOB_EXERCISES.items()
            for exercise in exercises
        }
        first, second = (future.result() for future in baselines)
        assert first.returncode == 0, f"the bug-free course's job failed:\n{first.stderr[-3000:]}"
        assert first.stdout == second.stdout, "the job is not deterministic: two bug-free runs differ"
        reference = json.loads(first.stdout)
        unaffected = []
        for (module, exercise), future in runs.items():
            bug, run = future.result()
            if run.returncode != 0:
                # the job stopped: in the exercise's code, or later because of what it returned
                assert not re.search(r"^(SyntaxError|ImportError|ModuleNotFoundError|NameError)", run.stderr, re.M), (
                    f"the mutated course copy for {module}.{exercise} does not run:\n{run.stderr[-1500:]}"
                )
            elif json.loads(run.stdout) == reference:
                unaffected.append(f"{module}.{exercise} ({bug.why}): the job's outputs are unchanged")
        assert not unaffected, "the job does not run the learner's code for:\n" + "\n".join(unaffected)


def test_the_course_copy_is_what_a_finished_learner_has(tmp_path):
    """The simulation is honest: its exercise files are the solutions, and no reference switch is on."""
    course = _finished_course(tmp_path / "course")
    for module in JOB_EXERCISES:
        copied = (course / "dino_course" / f"{module}.py").read_bytes()
        assert hashlib.sha256(copied).digest() == hashlib.sha256((REPO_ROOT / "solutions" / f"{module}.py").read_bytes()).digest()
    env_check = subprocess.run(
        [sys.executable, "-c", "import dino_course.loss as m, sys; print(m.__file__); print(m.__name__)"],
        cwd=course, env={**{k: v for k, v in os.environ.items() if k != "DINO_COURSE_REFERENCE"}, "PYTHONPATH": str(course)},
        capture_output=True, text=True, check=True,
    )
    path, name = env_check.stdout.split()
    assert Path(path) == course / "dino_course" / "loss.py" and name == "dino_course.loss"
