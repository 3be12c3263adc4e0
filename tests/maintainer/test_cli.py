"""The `dino-course` command (`dino_course/cli.py`): bad input to any subcommand is one line on
stderr and exit status 2, never a traceback; `--debug` shows the traceback instead.

In-process (`cli.main`): an exception that escaped would fail the test, so "no traceback" is
what each passing case shows. The train job's own cases are in `test_job_train_validation.py`.
"""

from __future__ import annotations

import pytest

from dino_course import cli
from dino_course.grading.reference_switch import ENV_VAR

pytestmark = pytest.mark.maintainer

# (arguments, words the one line must hold: the argument and the value). "FILE" is a regular file,
# "NOWHERE" a path that does not exist, "CLASS" a folder with one student's folder.
BAD_INPUT = [
    (["check", "9.9"], ["lesson must be one of", "'9.9'"]),
    (["check", "3.1", "--exercise", "nope"], ["exercise must be one of", "'nope'"]),
    (["check", "--exercise", "ema_update"], ["--exercise needs a LESSON"]),
    (["submit", "--output", "FILE/hand-in.zip"], ["--output", "FILE"]),
    (["grade", "NOWHERE"], ["DIR_OF_SUBMISSIONS", "NOWHERE"]),
    (["grade", "NOWHERE", "--time-limit", "-1"], ["--time-limit must be a positive number", "-1"]),
    (["grade", "NOWHERE", "--memory-limit-mb", "10"], ["--memory-limit-mb must be at least 512", "10"]),
    (["grade", "CLASS", "--jobs", "0"], ["--jobs must be at least 1", "0"]),
    (["release", "FILE"], ["DIR", "FILE"]),
    (["autograder", "FILE"], ["DIR", "FILE"]),
    (["notebooks", "9.9"], ["lessons must be among", "'9.9'"]),
]


def _arguments(arguments: list[str], tmp_path) -> list[str]:
    (tmp_path / "file").write_text("")
    (tmp_path / "class" / "alice").mkdir(parents=True, exist_ok=True)
    places = {"FILE": str(tmp_path / "file"), "NOWHERE": str(tmp_path / "nowhere"), "CLASS": str(tmp_path / "class")}
    return [next((value.replace(k, v) for k, v in places.items() if k in value), value) for value in arguments]


@pytest.mark.parametrize("arguments, words", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, arguments, words):
    arguments = _arguments(arguments, tmp_path)
    status = cli.main(arguments)
    captured = capsys.readouterr()
    assert status == 2, (captured.out, captured.err)
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dino-course {arguments[0]}: "), captured.err
    for word in words:
        assert _arguments([word], tmp_path)[0] in lines[0], (word, lines[0])


@pytest.mark.parametrize("arguments", [["check", "9.9"], ["grade", "NOWHERE"], ["notebooks", "9.9"]])
def test_debug_shows_the_error_itself(tmp_path, arguments):
    with pytest.raises(ValueError):
        cli.main(_arguments(arguments, tmp_path) + ["--debug"])


def test_every_subcommand_takes_debug():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        assert "--debug" in command._option_string_actions, name


def test_a_count_below_one_is_refused_by_argparse(capsys):
    """`notebooks --timeout 0` used to wait for a kernel until killed."""
    with pytest.raises(SystemExit) as info:
        cli.main(["notebooks", "--timeout", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("argument --timeout: must be a positive integer, got '0'")


@pytest.mark.parametrize("command", [["check", "3.1"], ["train", "--preset", "tiny"], ["progress", "--no-grade"]])
def test_a_bad_reference_switch_is_one_line_before_any_lesson_file_loads(capsys, monkeypatch, command):
    """`train` used to blame "a lesson file" for it, `check` ended in pytest's INTERNALERROR traceback."""
    monkeypatch.setenv(ENV_VAR, "9.9")
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"dino-course: {ENV_VAR} must be") and "'9.9'" in err, err
    with pytest.raises(ValueError, match=ENV_VAR):
        cli.main([*command, "--debug"])


def test_a_type_error_says_debug_shows_where(capsys, monkeypatch):
    """A TypeError is as likely a bug in an exercise as bad input: its one line points to --debug."""

    def broken(args):
        raise TypeError("unsupported operand type(s) for +: 'Tensor' and 'str'")

    monkeypatch.setattr(cli, "_run_progress", broken)
    assert cli.main(["progress", "--no-grade"]) == 2
    err = capsys.readouterr().err
    assert err == "dino-course progress: unsupported operand type(s) for +: 'Tensor' and 'str' (run again with --debug to see where)\n"
