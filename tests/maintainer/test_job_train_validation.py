"""Checks that the train job refuses bad input up front, in one line that names the setting.

`TrainConfig` checks every field when it is made; the output folder is probed before any data
loads; the settings that depend on the data are checked once it is loaded, before the model is
built. `dino-course` prints each refusal as one line on stderr, exits 2, and shows the
traceback only with `--debug`. Most checks call `dino_course.cli.main` in-process (a
subprocess costs seconds of imports); two run the real command to see what a user sees.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dino_course import cli
from dino_course.grading.reference_switch import ENV_VAR
from dino_course.job import train
from dino_course.job.settings import FIELD_RULES, SettingError
from dino_course.job.train import PRESETS, TrainConfig

pytestmark = pytest.mark.maintainer
ROOT = Path(__file__).resolve().parents[2]

# (TrainConfig field, a value it must refuse): the types (a bool is not an int), non-finite
# numbers and the edges of each range.
BAD_FIELDS = [
    ("batch_size", 0), ("batch_size", -5), ("batch_size", 2.0), ("batch_size", True), ("batch_size", "64"),
    ("epochs", 0), ("epochs", None), ("eval_every", 0), ("seed", -1), ("threads", -2), ("threads", 100000),
    ("base_lr", float("nan")), ("base_lr", float("inf")), ("base_lr", 0.0), ("base_lr", -1e-3), ("base_lr", "1e-3"),
    ("min_lr", -1e-6), ("weight_decay", float("nan")), ("weight_decay_end", -0.1), ("clip_grad", -1.0),
    ("teacher_temp", 0.0), ("teacher_temp", -0.04), ("warmup_teacher_temp", float("nan")), ("student_temp", 0),
    ("knn_temperature", 0.0), ("momentum_teacher", 1.5), ("momentum_teacher", -0.1), ("momentum_teacher_end", 2.0),
    ("center_momentum", float("nan")), ("flip_p", 1.1), ("jitter_p", -0.5), ("solarize_p", float("inf")),
    ("global_scale", (0.5, 0.2)), ("global_scale", (0.0, 1.0)), ("local_scale", (0.05, 1.5)), ("local_scale", 0.4),
    ("local_scale", (0.1, 0.2, 0.3)), ("n_local", -1), ("n_local", 2.5), ("knn_k", 0),
    ("use_bn_in_head", "no"), ("use_bn_in_head", 1), ("norm_last_layer", None), ("download", "yes"),
    ("dataset", "mnist"), ("data", ""), ("image_size", 4), ("image_size", 4096), ("test_fraction", 1.0),
    ("test_fraction", 0), ("pixel_mean", (0.5, 0.5)), ("pixel_std", (0.3, 0.0, 0.3)),
    ("patch_size", 0), ("embed_dim", -24), ("depth", 0), ("num_heads", 0), ("output_dim", 0),
    ("hidden_dim", 1.5), ("bottleneck_dim", 0), ("global_size", 0), ("local_size", -8),
    ("warmup_epochs", -1), ("warmup_teacher_temp_epochs", -1), ("freeze_last_layer", -1),
]


def test_every_setting_has_a_rule_and_every_preset_keeps_them():
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    assert set(FIELD_RULES) == fields
    for name, preset in PRESETS.items():
        assert TrainConfig.from_dict(preset.to_dict()) == preset, name


@pytest.mark.parametrize("field, value", BAD_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_FIELDS])
def test_a_bad_setting_is_refused_naming_it_and_its_value(field, value):
    with pytest.raises(SettingError) as info:
        PRESETS["tiny"].replace(**{field: value})
    message = str(info.value)
    assert message.startswith(f"{field} must be "), message
    assert message.endswith(f"got {value!r}") and "\n" not in message, message


@pytest.mark.parametrize(
    "changes, setting",
    [
        (dict(embed_dim=24, num_heads=5), "num_heads"),
        (dict(patch_size=4, global_size=18), "global_size"),
        (dict(patch_size=4, local_size=10), "local_size"),
        (dict(epochs=2, warmup_epochs=3), "warmup_epochs"),
    ],
)
def test_settings_that_do_not_fit_each_other_are_refused(changes, setting):
    with pytest.raises(SettingError, match=rf"^{setting} must be .*, got {changes[setting]}$"):
        PRESETS["tiny"].replace(**changes)


def test_a_saved_config_is_checked_too():
    values = PRESETS["tiny"].to_dict() | {"teacher_temp": -1.0}
    with pytest.raises(SettingError, match="teacher_temp must be a finite number > 0, got -1.0"):
        TrainConfig.from_dict(values)


# (command-line arguments, the flag and value the one line must name)
BAD_ARGUMENTS = [
    (["--batch-size", "0"], "--batch-size", "0"),
    (["--batch-size", "-5"], "--batch-size", "-5"),
    (["--lr", "nan"], "--lr", "nan"),
    (["--lr", "-1"], "--lr", "-1.0"),
    (["--teacher-temp", "0"], "--teacher-temp", "0.0"),
    (["--warmup-teacher-temp", "inf"], "--warmup-teacher-temp", "inf"),
    (["--momentum-teacher", "1.5"], "--momentum-teacher", "1.5"),
    (["--epochs", "0"], "--epochs", "0"),
    (["--n-local", "-1"], "--n-local", "-1"),
    (["--output-dim", "0"], "--output-dim", "0"),
    (["--eval-every", "0"], "--eval-every", "0"),
    (["--seed", "-3"], "--seed", "-3"),
    (["--threads", "-1"], "--threads", "-1"),
    (["--dataset", "mnist"], "--dataset", "'mnist'"),
    (["--image-size", "2"], "--image-size", "2"),
    (["--knn-k", "0"], "--knn-k", "0"),
]


def _main(capsys, arguments: list[str]) -> tuple[int, str, str]:
    status = cli.main(["train", "--preset", "tiny", "--no-progress", "--quiet", *arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("arguments, flag, shown", BAD_ARGUMENTS, ids=[" ".join(a[0]) for a in BAD_ARGUMENTS])
def test_the_cli_refuses_a_bad_option_in_one_line(capsys, tmp_path, monkeypatch, arguments, flag, shown):
    monkeypatch.chdir(tmp_path)
    status, out, err = _main(capsys, arguments)
    assert status == 2 and out == "", (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dino-course train: {flag} must be "), err
    assert lines[0].endswith(f"got {shown}"), err
    assert not (tmp_path / "runs").exists(), "a refused setting must stop the job before it creates its folder"


def test_an_output_that_is_a_file_is_refused_before_anything_else(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "taken"
    blocker.write_text("")
    for output, words in [(blocker, "it is a file"), (blocker / "run", f"lies under {str(blocker)!r}")]:
        status, out, err = _main(capsys, ["--output", str(output)])
        assert status == 2 and out == "", (out, err)
        assert err.count("\n") == 1 and err.startswith("dino-course train: --output must be a folder you can write to"), err
        assert words in err and f"got {str(output)!r}" in err, err


def test_run_training_probes_the_output_folder_before_loading_data(tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the data was loaded before the output folder was checked")

    monkeypatch.setattr(train, "load_dataset", no_data)
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingError, match="output must be a folder you can write to"):
        train.run_training(PRESETS["tiny"], tmp_path / "file" / "run", quiet=True, progress=False)


@pytest.mark.parametrize("stop_after", [-1, 2.0, True, "3"])
def test_run_training_refuses_a_bad_stop_after(tmp_path, stop_after):
    with pytest.raises(SettingError, match=rf"^stop_after must be None or an integer >= 0 \(iterations\), got {stop_after!r}$"):
        train.run_training(PRESETS["tiny"], tmp_path / "run", stop_after=stop_after, quiet=True, progress=False)
    assert not (tmp_path / "run").exists(), "refused before the output folder is made"


def test_the_output_probe_leaves_nothing_behind(tmp_path):
    folder = train.prepare_output_folder(tmp_path / "a" / "b")
    assert folder.is_dir() and list(folder.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_folder_without_write_permission_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(SettingError, match=r"output must be a folder you can write to \(permission denied\)"):
            train.prepare_output_folder(locked / "run")
    finally:
        locked.chmod(0o700)


def test_a_failed_write_probe_is_refused_naming_the_reason(tmp_path, monkeypatch):
    """Whatever the OS says (here: a full disk), the probe turns it into the one `--output` line."""

    def full_disk(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(SettingError, match=r"output must be a folder you can write to \(no space left on device\)"):
        train.prepare_output_folder(tmp_path / "run")


def _image_folder(root: Path, per_class: int) -> Path:
    from PIL import Image

    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for index in range(per_class):
            Image.new("RGB", (12, 12), (index * 20, 0, 0)).save(root / label / f"{index}.png")
    return root


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--batch-size", "5000"], "--batch-size must be at most the 1438 training images of this data, got 5000"),
        (["--batch-size", "4", "--data", "IMAGES"], "--knn-k must be at most the 10 training images"),
    ],
)
def test_settings_that_do_not_fit_the_data_are_named_before_the_model_is_built(
    capsys, tmp_path, monkeypatch, reference_on, arguments, expected
):
    images = _image_folder(tmp_path / "images", per_class=6)  # 12 images, 10 after the held-out split
    monkeypatch.setattr(train, "build_model", lambda *args: pytest.fail("the model was built"))
    arguments = [str(images) if value == "IMAGES" else value for value in arguments]
    status, out, err = _main(capsys, ["--output", str(tmp_path / "run"), *arguments])
    assert status == 2 and out == "", (out, err)
    assert err.count("\n") == 1 and err.startswith(f"dino-course train: {expected}"), err


def test_a_missing_data_folder_is_one_line(capsys, tmp_path, reference_on):
    status, out, err = _main(capsys, ["--output", str(tmp_path / "run"), "--data", str(tmp_path / "nowhere")])
    assert status == 2 and err.count("\n") == 1 and "data must be a folder" in err and "nowhere" in err, err


def test_debug_re_raises_the_error(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingError, match="--batch-size must be a positive integer, got 0"):
        cli.main(["train", "--preset", "tiny", "--batch-size", "0", "--debug"])


def _command(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop(ENV_VAR, None)
    return subprocess.run([sys.executable, "-m", "dino_course", *arguments], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(180)
def test_the_command_shows_one_line_and_with_debug_the_traceback(tmp_path):
    plain = _command(["train", "--preset", "tiny", "--lr", "nan"], tmp_path)
    assert plain.returncode == 2, plain.stdout + plain.stderr
    assert plain.stdout == "" and plain.stderr == "dino-course train: --lr must be a finite number > 0, got nan\n"
    debug = _command(["train", "--preset", "tiny", "--lr", "nan", "--debug"], tmp_path)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr, debug.stderr
    assert debug.stderr.rstrip().endswith("SettingError: --lr must be a finite number > 0, got nan"), debug.stderr


@pytest.mark.parametrize("flag, value", [("--stop-after", "-1"), ("--epochs", "2.5"), ("--preset", "huge")])
def test_argparse_refuses_malformed_values_naming_the_flag(capsys, flag, value):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", flag, value])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"dino-course train: error: argument {flag}") and value in last, last


def test_the_flags_are_the_ones_the_cli_has():
    """Each name `flag_of` gives for a command-line setting is an option of `dino-course train`."""
    parser = cli.build_parser()
    options = {
        option for action in parser._subparsers._group_actions[0].choices["train"]._actions
        for option in action.option_strings
    }
    for setting in train._OVERRIDES:
        assert train.flag_of(setting) in options, setting
    assert train.flag_of("output") in options
