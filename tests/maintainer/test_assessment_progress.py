"""Lesson 3.5's progress store: round trip, damaged files kept aside, concurrent saves, location rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from dino_course.assessment import progress
from dino_course.grading.catalog import REPO_ROOT
from dino_course.assessment.progress import PROGRESS_ENV_VAR, ProgressStore, default_progress_path, empty_progress

pytestmark = pytest.mark.maintainer


@pytest.fixture
def store(tmp_path):
    """A progress store that keeps what it reports in `reported` (conftest.py's drops it)."""
    notices = []
    s = ProgressStore(tmp_path / "progress.json", report=notices.append)
    s.reported = notices
    return s


def test_round_trip_survives_a_new_store(store):
    store.set_rating("ema", 7)
    store.set_rating("ema", 8)  # the latest rating wins
    store.set_rating("heads", 3)
    assert store.record_answer("q1", "b") == 1
    assert store.record_answer("q1", "c") == 2
    store.record_answer("q2", 0.998)
    again = ProgressStore(store.path)
    assert again.ratings() == {"ema": 8, "heads": 3}
    answers = again.quiz_answers()
    assert answers["q1"]["answer"] == "c" and answers["q1"]["attempts"] == 2
    assert answers["q2"]["answer"] == 0.998
    assert store.reported == []
    assert not list(store.path.parent.glob("*.tmp")), "atomic write left a temporary file behind"


def test_missing_file_reads_as_empty_and_is_not_created_by_reading(store):
    assert store.load() == empty_progress()
    assert not store.path.exists()


@pytest.mark.parametrize(
    "content, why",
    [
        ('{"format": "dino-course-progress", "version": 1, "ratings": {"ema": {"val', "truncated JSON"),
        ("\x00\x01\x02 not json", "binary garbage"),
        ('["a list"]', "not an object"),
        ('{"format": "something-else", "version": 1, "ratings": {}, "quiz": {}}', "wrong format"),
        ('{"format": "dino-course-progress", "version": 99, "ratings": {}, "quiz": {}}', "future version"),
        ('{"format": "dino-course-progress", "version": 1, "ratings": {"ema": {"value": 11}}, "quiz": {}}', "rating 11"),
        ('{"format": "dino-course-progress", "version": 1, "ratings": {"ema": {"value": "7"}}, "quiz": {}}', "rating text"),
        ('{"format": "dino-course-progress", "version": 1, "ratings": {}, "quiz": {"q": {"answer": "a", "attempts": 0}}}', "attempts 0"),
        ('{"format": "dino-course-progress", "version": 1, "ratings": {}}', "no quiz section"),
    ],
)
def test_damaged_file_is_reported_kept_aside_and_replaced(store, content, why):
    store.path.write_bytes(content.encode("utf-8", "surrogatepass"))
    assert store.load() == empty_progress(), why  # no crash
    backups = list(store.path.parent.glob("progress.json.damaged-*"))
    assert len(backups) == 1, f"{why}: the damaged file must be kept aside"
    assert backups[0].read_bytes() == content.encode("utf-8", "surrogatepass"), "the backup must be the file as it was"
    assert len(store.reported) == 1 and backups[0].name in store.reported[0], "the learner must be told where the backup is"
    assert json.loads(store.path.read_text()) == empty_progress(), "a fresh file is started"
    store.set_rating("ema", 4)  # and saving works again
    assert ProgressStore(store.path).ratings() == {"ema": 4}


def test_damage_found_while_saving_keeps_the_new_answer_and_the_old_file(store):
    store.path.write_text("{oops")
    store.record_answer("q1", "a")
    assert store.quiz_answers()["q1"]["answer"] == "a"
    assert len(list(store.path.parent.glob("progress.json.damaged-*"))) == 1
    assert len(store.reported) == 1


def test_default_reporter_prints_to_stderr(tmp_path, capsys):
    path = tmp_path / "progress.json"
    path.write_text("not json")
    ProgressStore(path).load()
    assert "could not be read" in capsys.readouterr().err


def test_bad_input_is_refused_with_a_clear_message(store):
    with pytest.raises(ValueError, match="value must be an integer from 1 to 10"):
        store.set_rating("ema", 0)
    with pytest.raises(ValueError, match="value"):
        store.set_rating("ema", True)
    with pytest.raises(TypeError, match="topic"):
        store.set_rating("", 5)
    with pytest.raises(TypeError, match="answer"):
        store.record_answer("q1", float("nan"))
    with pytest.raises(TypeError, match="answer"):
        store.record_answer("q1", None)
    assert not store.path.exists(), "a refused save must not write anything"


@pytest.mark.parametrize(
    "arguments, words",
    [(dict(path=""), "path must be a file path"), (dict(path=3), "path must be a file path .*, got 3$"),
     (dict(path="p.json", report="print"), "report must be a function")],
)
def test_a_bad_store_setting_is_refused_when_made(arguments, words):
    with pytest.raises(ValueError, match=words):
        ProgressStore(**arguments)


def test_location_rule(monkeypatch, tmp_path):
    monkeypatch.delenv(PROGRESS_ENV_VAR, raising=False)
    monkeypatch.setenv("DINO_COURSE_REFERENCE", "")
    assert default_progress_path() == REPO_ROOT / ".dino_course" / "progress.json"
    # the maintainers' reference runs (notebook outputs, nbval) never touch a learner's file
    monkeypatch.setenv("DINO_COURSE_REFERENCE", "all")
    demo = default_progress_path()
    assert REPO_ROOT not in demo.parents and progress.is_demo_mode()
    assert default_progress_path() == demo, "one demo file per process, so saved answers reload within a session"
    monkeypatch.setenv(PROGRESS_ENV_VAR, str(tmp_path / "mine.json"))
    assert default_progress_path() == tmp_path / "mine.json"
    assert not progress.is_demo_mode()


def test_progress_folder_is_ignored_by_git():
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".dino_course/progress.json"], cwd=REPO_ROOT, capture_output=True
    )
    assert ignored.returncode == 0, "add /.dino_course/ to .gitignore: a learner's answers must not be committed"


SAVER = textwrap.dedent(
    """
    import sys, time
    from dino_course.assessment.progress import ProgressStore
    path, name, count, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    store = ProgressStore(path)
    while time.time() < start_at:  # both processes start saving at the same moment
        time.sleep(0.001)
    for i in range(count):
        store.record_answer(f"{name}-{i}", i)
        store.set_rating(f"{name}-topic-{i % 5}", 1 + i % 10)
    """
)


def test_two_processes_saving_at_once_lose_nothing(tmp_path):
    """Each save is a locked read-merge-write: interleaved saves from two processes all survive."""
    import time

    path = tmp_path / "progress.json"
    count = 40
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start_at = time.time() + 2.0  # time for both interpreters to import
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path), name, str(count), str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("left", "right")
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()[-2000:]
    store = ProgressStore(path)
    answers = store.quiz_answers()
    for name in ("left", "right"):
        missing = [i for i in range(count) if f"{name}-{i}" not in answers]
        assert not missing, f"answers of the {name} notebook were lost: {missing}"
    assert len(store.ratings()) == 10
    assert not list(tmp_path.glob("progress.json.damaged-*")), "concurrent saves must never produce a damaged file"


# -- places the file cannot be read or written (issue: a progress store that never breaks) ------------


def test_viewing_takes_no_lock_and_writes_nothing(store, monkeypatch):
    store.set_rating("ema", 6)
    before = sorted(p.name for p in store.path.parent.iterdir())

    def no_writes(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(store.path) + ".lock")

    monkeypatch.setattr(progress, "locked", no_writes)  # as in a read-only folder: no lock file can be made
    assert ProgressStore(store.path).ratings() == {"ema": 6}
    assert sorted(p.name for p in store.path.parent.iterdir()) == before


def test_a_byte_order_mark_is_read_not_kept_aside(store):
    store.set_rating("ema", 9)
    store.path.write_bytes(b"\xef\xbb\xbf" + store.path.read_bytes())  # as Windows Notepad saves UTF-8
    assert ProgressStore(store.path).ratings() == {"ema": 9}
    assert not list(store.path.parent.glob("progress.json.damaged-*"))


def test_a_folder_where_the_file_belongs_is_said_and_answers_stay_in_memory(store):
    store.path.mkdir()
    assert store.load() == empty_progress()
    assert len(store.reported) == 1 and str(store.path) in store.reported[0]
    store.set_rating("ema", 5)  # no traceback
    assert "could not save your progress to" in store.reported[-1] and str(store.path) in store.reported[-1]
    assert store.ratings() == {"ema": 5}, "the answer is shown from memory"
    assert store.path.is_dir(), "nothing was written over the folder"
    store.path.rmdir()
    assert store.save_pending() and store.pending == []
    assert ProgressStore(store.path).ratings() == {"ema": 5}, "the retry wrote the kept answer"


def test_an_unwritable_place_keeps_every_answer_for_the_next_save(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    notices = []
    store = ProgressStore(blocker / "progress.json", report=notices.append)  # unwritable even for root
    store.set_rating("ema", 3)
    assert store.record_answer("q1", "a") == 1
    assert store.record_answer("q1", "b") == 2
    assert len(notices) == 1 and str(store.path) in notices[0] and "DINO_COURSE_PROGRESS" in notices[0]
    assert store.ratings() == {"ema": 3} and store.quiz_answers()["q1"]["attempts"] == 2
    store.path = tmp_path / "progress.json"  # e.g. after the learner points the store elsewhere
    assert store.save_pending()
    again = ProgressStore(tmp_path / "progress.json")
    assert again.ratings() == {"ema": 3} and again.quiz_answers()["q1"] == {**again.quiz_answers()["q1"], "answer": "b", "attempts": 2}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_can_be_viewed_and_says_why_it_cannot_save(store):
    store.set_rating("ema", 2)
    lock = store.path.with_name("progress.json.lock")
    lock.unlink(missing_ok=True)
    store.path.parent.chmod(0o555)
    try:
        fresh = ProgressStore(store.path, report=store.reported.append)
        assert fresh.ratings() == {"ema": 2}
        fresh.set_rating("heads", 7)
        assert "Permission denied" in store.reported[-1] and fresh.ratings() == {"ema": 2, "heads": 7}
    finally:
        store.path.parent.chmod(0o755)


def test_a_dangling_lock_link_is_replaced(store):
    lock = store.path.with_name("progress.json.lock")
    lock.symlink_to(store.path.parent / "gone" / "progress.json.lock")
    store.set_rating("ema", 8)
    assert ProgressStore(store.path).ratings() == {"ema": 8}
    assert lock.exists() and not lock.is_symlink()


def test_a_change_that_cannot_be_saved_for_a_bad_value_is_not_kept(store):
    def bad(data):
        data["ratings"]["ema"] = {"value": 99}

    with pytest.raises(ValueError, match="rating of 'ema'"):
        store.update(bad)
    assert store.pending == [] and store.ratings() == {}
    store.set_rating("ema", 4)  # later saves are not blocked by it
    assert ProgressStore(store.path).ratings() == {"ema": 4}
