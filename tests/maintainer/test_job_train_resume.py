"""Checks of the train job's interruptions (issue 15): resume is exact from any interruption, and a
non-finite value stops the run before it reaches any state.

Every run uses the `tiny` preset (5 iterations per epoch, 2 epochs, an evaluation after each)
with BatchNorm in the head as in `cpu-digits` (its running statistics must survive a resume
too) and the reference code. A KeyboardInterrupt is injected at each phase of an iteration
(forward, loss and center, backward, clip, optimiser step, EMA, evaluation, checkpoint write),
each *after* the phase has changed the state, so that the state in memory is half-applied; the
run is resumed with nothing injected and its final checkpoint must equal an uninterrupted run's
bit for bit (`torch.equal`): student, teacher, center, AdamW's state, RNG and metrics (the
timings aside). Real SIGINTs go to a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dino_course import use_reference
from dino_course.grading.reference_switch import ENV_VAR
from dino_course.job.checkpoints import load_checkpoint

pytestmark = pytest.mark.maintainer
ROOT = Path(__file__).resolve().parents[2]
STEPS_PER_EPOCH = 5  # tiny: 1437 training digits // batch 256


def tiny():
    from dino_course.job.train import PRESETS

    return PRESETS["tiny"].replace(threads=1, use_bn_in_head=True)


def train(output: Path, **options):
    from dino_course.job.train import run_training

    return run_training(tiny(), output, quiet=True, progress=False, figures=False, **options)


@pytest.fixture(scope="module")
def reference_everywhere():
    previous = os.environ.get(ENV_VAR)
    use_reference("all")
    yield
    use_reference(previous or None)


@pytest.fixture(scope="module")
def uninterrupted(reference_everywhere, tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("uninterrupted")
    train(output)
    return load_checkpoint(output / "checkpoint.pt")


def without_timings(metrics: dict) -> dict:
    """The metrics less their clock readings: the run's and each evaluation's training seconds."""
    kept = {key: value for key, value in metrics.items() if key != "train_seconds"}
    kept["evaluations"] = [{k: v for k, v in e.items() if k != "train_seconds"} for e in metrics.get("evaluations", [])]
    return kept


def assert_identical(got, want, where: str = "checkpoint") -> None:
    """Bitwise equality of nested dicts/lists of tensors and plain values."""
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype and torch.equal(got, want), where
    elif isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got, key=str) == sorted(want, key=str), f"{where}: keys differ"
        for key in want:
            assert_identical(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), f"{where}: lengths differ"
        for index, (a, b) in enumerate(zip(got, want)):
            assert_identical(a, b, f"{where}[{index}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def assert_same_run(output: Path, want: dict) -> None:
    got = load_checkpoint(output / "checkpoint.pt")
    for part in ("student", "teacher", "criterion", "optimizer", "rng", "iteration", "epoch", "config"):
        assert_identical(got[part], want[part], part)
    assert_identical(without_timings(got["metrics"]), without_timings(want["metrics"]), "metrics")
    assert_identical(without_timings(json.loads((output / "metrics.json").read_text())),
                     without_timings(want["metrics"]), "metrics.json")


def fail_on_call(monkeypatch, owner, name: str, call: int, error=KeyboardInterrupt, before: bool = False) -> None:
    """Replace `owner.name` so that its `call`-th call (1-based) raises `error`, after doing its work
    unless `before`: the state it changes is then changed and the rest of the iteration is not done."""
    original = getattr(owner, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if before and len(calls) == call:
            raise error(f"injected at {name}")
        result = original(*args, **kwargs)
        if len(calls) == call:
            raise error(f"injected after {name}")
        return result

    monkeypatch.setattr(owner, name, wrapper)


def _owners():
    import solutions.loss
    import solutions.student_teacher
    import solutions.training

    import dino_course.job.train as job

    return {
        # phase: (object, attribute) whose call is interrupted
        "forward": (solutions.student_teacher.StudentTeacherWrapper, "forward"),
        "loss and center": (solutions.loss.DINOLoss, "forward"),
        "backward": (torch.Tensor, "backward"),
        "clip": (solutions.training, "clip_gradients"),
        "optimizer step": (torch.optim.AdamW, "step"),
        "EMA": (solutions.student_teacher.StudentTeacherWrapper, "update_teacher"),
        "evaluation": (job, "evaluate"),
        "checkpoint write": (os, "fsync"),  # inside atomic_write_bytes, between writing and renaming
    }


# (phase, which call is interrupted, the checkpoint left as the resume point)
INTERRUPTS = [
    ("forward", 7, 5),  # iteration 6 of 10: epoch 1's checkpoint (iteration 5) is the resume point
    ("loss and center", 7, 5),
    ("backward", 1, 0),  # the first step: the checkpoint written after the random-init evaluation
    ("backward", 7, 5),
    ("clip", 7, 5),
    ("optimizer step", 7, 5),
    ("EMA", 7, 5),
    ("EMA", 5, 0),  # the last step of epoch 0, just before its evaluation and checkpoint
    ("evaluation", 2, 0),  # the evaluation after epoch 1 (the 1st is at random init)
    ("checkpoint write", 2, 0),  # the checkpoint after epoch 1 (the 1st is before the first step)
]


@pytest.mark.parametrize("phase, call, resume_point", INTERRUPTS, ids=[f"{p}-{c}" for p, c, _ in INTERRUPTS])
def test_an_interrupt_in_any_phase_resumes_to_the_uninterrupted_run(
    tmp_path, monkeypatch, uninterrupted, phase, call, resume_point
):
    owner, name = _owners()[phase]
    with monkeypatch.context() as patch:
        fail_on_call(patch, owner, name, call)
        with pytest.raises(KeyboardInterrupt):
            train(tmp_path)
    # nothing of the unfinished iteration was saved, and metrics.json agrees with the checkpoint
    left = load_checkpoint(tmp_path / "checkpoint.pt")
    assert left["iteration"] == resume_point
    assert len(left["metrics"]["evaluations"]) == resume_point // STEPS_PER_EPOCH + 1
    assert json.loads((tmp_path / "metrics.json").read_text()) == left["metrics"]
    assert list(tmp_path.glob(".*.tmp")) == []
    # a temporary file of a write killed outright (SIGKILL) is removed when the run resumes
    orphan = tmp_path / ".checkpoint.pt.k1ll3d_x.tmp"
    orphan.write_bytes(b"half a checkpoint")
    result = train(tmp_path, resume=True)
    assert not result.interrupted and not orphan.exists()
    assert_same_run(tmp_path, uninterrupted)


def test_the_random_init_evaluation_is_recorded_once_after_a_stop_before_the_first_step(tmp_path, uninterrupted):
    first = train(tmp_path, stop_after=0)
    assert first.interrupted and len(first.metrics["evaluations"]) == 1
    train(tmp_path, resume=True)
    assert_same_run(tmp_path, uninterrupted)


def test_stopping_after_every_iteration_resumes_to_the_uninterrupted_run(tmp_path, uninterrupted):
    """Saving between any two iterations (not only at epoch ends) keeps everything the next one needs."""
    for stop in (1, 4, 5, 6, 9):
        result = train(tmp_path, stop_after=stop, resume=stop > 1)
        assert result.interrupted and load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == stop
    train(tmp_path, resume=True)
    assert_same_run(tmp_path, uninterrupted)


# ---------------------------------------------------------------------------------------------- non-finite values


def _nan_teacher_output(forward):
    def wrapper(self, views):
        student_output, teacher_output = forward(self, views)
        return student_output, teacher_output.clone().fill_(float("nan"))

    return wrapper


def _nan_gradient(clip_gradients):
    def wrapper(model, clip):
        next(model.parameters()).grad[0].fill_(float("nan"))
        return clip_gradients(model, clip)

    return wrapper


@pytest.mark.parametrize("what, words", [
    ("teacher output", "teacher_output holds"),
    ("gradient", "gradients of 1 student parameter"),
])
def test_a_non_finite_step_stops_the_run_and_keeps_the_last_complete_checkpoint(
    tmp_path, monkeypatch, uninterrupted, what, words
):
    import solutions.student_teacher
    import solutions.training

    calls = []
    if what == "teacher output":
        owner, name, make = solutions.student_teacher.StudentTeacherWrapper, "forward", _nan_teacher_output
    else:
        owner, name, make = solutions.training, "clip_gradients", _nan_gradient
    original = getattr(owner, name)
    poisoned = make(original)

    def on_iteration_six(*args, **kwargs):
        calls.append(1)
        return (poisoned if len(calls) == 7 else original)(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(owner, name, on_iteration_six)
        with pytest.raises(FloatingPointError, match=words):
            train(tmp_path)
    left = load_checkpoint(tmp_path / "checkpoint.pt")
    assert left["iteration"] == 5 and bool(torch.isfinite(left["criterion"]["center"]).all())
    train(tmp_path, resume=True)  # the bad batch was a one-off: the run continues as if it never happened
    assert_same_run(tmp_path, uninterrupted)


def test_the_gradient_guard_names_a_non_finite_gradient_and_accepts_large_finite_ones():
    from dino_course.job.train import NonFiniteGradientError, _refuse_non_finite_gradients

    layer = torch.nn.Linear(64, 64)
    optimizer = torch.optim.AdamW(layer.parameters())
    guard = _refuse_non_finite_gradients(layer)
    layer.weight.grad = torch.full_like(layer.weight, 1e37)  # its sum overflows; every value is finite
    layer.bias.grad = torch.zeros_like(layer.bias)
    guard(optimizer, (), {})
    layer.bias.grad[3] = float("nan")
    with pytest.raises(NonFiniteGradientError, match=r"1 student parameter\(s\) hold NaN or inf \(bias\)"):
        guard(optimizer, (), {})


def test_the_cli_reports_a_non_finite_step_in_one_line(monkeypatch, capsys, tmp_path):
    import argparse

    import dino_course.job.train as job

    def non_finite(*args, **kwargs):
        raise FloatingPointError("DINOLoss: teacher_output holds 4 NaN and 0 infinite values of 4; the center was not updated.")

    monkeypatch.setattr(job, "run_training", non_finite)
    parser = argparse.ArgumentParser()
    job.add_train_arguments(parser)
    status = job.run_from_arguments(parser.parse_args(["--preset", "tiny", "--quiet", "--output", str(tmp_path)]))
    out = capsys.readouterr().out
    assert status == 2 and out.strip().count("\n") == 0 and "teacher_output" in out, out


# ---------------------------------------------------------------------------------------------- real Ctrl-C

# Runs the CLI in a subprocess whose loss.backward() sends itself `count` SIGINTs on its 7th call
# (iteration 6, mid-step); the signal arrives while the step is under way.
SIGINT_SCRIPT = """
import os, runpy, signal, sys
import torch
count, calls, original = int(sys.argv[1]), [], torch.Tensor.backward
def backward(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 7:
        for _ in range(count):
            os.kill(os.getpid(), signal.SIGINT)
    return original(self, *args, **kwargs)
torch.Tensor.backward = backward
sys.argv = ["dino-course", "train", "--preset", "tiny", "--threads", "1", "--no-progress", "--output", "run"] + sys.argv[2:]
runpy.run_module("dino_course", run_name="__main__")
"""


def cli_tiny():
    """The settings of `dino-course train --preset tiny --threads 1` (no BatchNorm flag on the command line)."""
    from dino_course.job.train import PRESETS

    return PRESETS["tiny"].replace(threads=1)


@pytest.fixture(scope="module")
def uninterrupted_cli(reference_everywhere, tmp_path_factory) -> dict:
    from dino_course.job.train import run_training

    output = tmp_path_factory.mktemp("uninterrupted_cli")
    run_training(cli_tiny(), output, quiet=True, progress=False, figures=False)
    return load_checkpoint(output / "checkpoint.pt")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("count, resume_point, words", [
    (1, 7, "stopped at iteration 7 of 10"),  # the step under way finishes, then it saves and stops
    (2, 5, "stopped inside iteration 6 (KeyboardInterrupt)"),  # a second Ctrl-C: at once, nothing of it saved
])
def test_a_real_ctrl_c_mid_step_resumes_to_the_uninterrupted_run(tmp_path, uninterrupted_cli, count, resume_point, words):
    from dino_course.job.train import run_training

    (tmp_path / "sigint.py").write_text(SIGINT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", ENV_VAR: "all"}
    done = subprocess.run([sys.executable, "sigint.py", str(count)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 3, done.stdout + done.stderr
    assert words in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["iteration"] == resume_point
    run_training(cli_tiny(), tmp_path / "run", resume=True, quiet=True, progress=False, figures=False)
    assert_same_run(tmp_path / "run", uninterrupted_cli)
