"""The learner's saved progress: self-ratings and quiz answers, in one small JSON file.

Where it lives (first match wins):

    $DINO_COURSE_PROGRESS                      an explicit file path (tests, or a learner's choice)
    a fresh temporary folder                   when DINO_COURSE_REFERENCE=all: the maintainers' runs
                                               (`dino-course notebooks`, `pytest --nbval-lax --reference`)
                                               must neither read nor change a real learner's answers,
                                               so the committed notebook outputs never show them
    <your working copy>/.dino_course/progress.json   otherwise (ignored by git)

Exercise verdicts are *not* stored here: they are always recomputed by running the hidden
checks, so the file cannot claim work that the code does not do.

Reliability:
- reading takes no lock and writes nothing (each save is an atomic rename, so a reader sees a whole
  file), so viewing works in a read-only copy; a UTF-8 byte-order mark is accepted;
- a save that cannot be written says where and why, and keeps the change in memory
  (`ProgressStore.pending`) to write it with the next save that works;
- every save is a read-merge-write under an inter-process lock (`file_lock.locked`): the file is
  re-read, the one changed entry is applied, and the result written back atomically
  (`safe_files.atomic_write_text`). Two notebooks saving at once therefore both keep their answers.
- a damaged or hand-edited file that does not match the format below is reported, renamed aside
  (`safe_files.keep_aside`, e.g. `progress.json.damaged-20250101-120000`) and a fresh file is started:
  never a crash, never a silent overwrite.

File format (version 1):

    {"format": "dino-course-progress", "version": 1,
     "ratings": {"<topic id>": {"value": 1..10, "saved_at": "<UTC ISO time>"}},
     "quiz": {"<question id>": {"answer": "<choice id>" | <number>, "attempts": >=1, "saved_at": "..."}}}

Quiz answers are stored, not their correctness: scores are recomputed from the current answer key.
Nothing is keyed by lesson number: ratings by topic id, answers by question id, and the lesson each
belongs to is looked up in the code at display time. So renumbering lessons (3.3 split into 3.3 and
3.4, the assessment moved from 3.4 to 3.5) needs no new version and no migration: an older file is
read as it is, each entry shown under the lesson that teaches its topic now.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dino_course.files.file_lock import locked
from dino_course.grading.catalog import REPO_ROOT
from dino_course.grading.reference_switch import ENV_VAR as REFERENCE_ENV_VAR
from dino_course.files.safe_files import atomic_write_text, keep_aside

PROGRESS_ENV_VAR = "DINO_COURSE_PROGRESS"
FORMAT = "dino-course-progress"
VERSION = 1
RATING_RANGE = (1, 10)

__all__ = ["PROGRESS_ENV_VAR", "ProgressStore", "ProgressFileDamaged", "default_progress_path", "empty_progress"]

_demo_folder: Path | None = None


class ProgressFileDamaged(ValueError):
    """The progress file could not be read as the format above (said why in the message)."""


def is_demo_mode() -> bool:
    """True when progress goes to a throw-away temporary file (DINO_COURSE_REFERENCE=all, no explicit path)."""
    return not os.environ.get(PROGRESS_ENV_VAR) and os.environ.get(REFERENCE_ENV_VAR, "").strip().lower() == "all"


def default_progress_path() -> Path:
    """The progress file this process uses (see the module docstring for the rule)."""
    global _demo_folder
    explicit = os.environ.get(PROGRESS_ENV_VAR, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    if is_demo_mode():
        if _demo_folder is None:
            _demo_folder = Path(tempfile.mkdtemp(prefix="dino-course-demo-progress-"))
        return _demo_folder / "progress.json"
    return REPO_ROOT / ".dino_course" / "progress.json"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def empty_progress() -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "ratings": {}, "quiz": {}}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate(data: Any) -> dict[str, Any]:
    """Return `data` if it matches the format; raise `ProgressFileDamaged` saying what is wrong."""
    if not isinstance(data, dict):
        raise ProgressFileDamaged(f"the top level is a {type(data).__name__}, not a JSON object")
    if data.get("format") != FORMAT:
        raise ProgressFileDamaged(f"'format' is {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("version") != VERSION:
        raise ProgressFileDamaged(f"'version' is {data.get('version')!r}; this course reads version {VERSION}")
    for section in ("ratings", "quiz"):
        if not isinstance(data.get(section), dict):
            raise ProgressFileDamaged(f"'{section}' is missing or not a JSON object")
    low, high = RATING_RANGE
    for topic, entry in data["ratings"].items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ProgressFileDamaged(f"rating of {topic!r} must be an integer {low}..{high}, got {entry!r}")
    for question, entry in data["quiz"].items():
        if not isinstance(entry, dict):
            raise ProgressFileDamaged(f"quiz entry {question!r} is not a JSON object")
        answer, attempts = entry.get("answer"), entry.get("attempts")
        if not (isinstance(answer, str) or _is_number(answer)):
            raise ProgressFileDamaged(f"quiz answer of {question!r} must be a choice id or a number, got {answer!r}")
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ProgressFileDamaged(f"quiz attempts of {question!r} must be an integer >= 1, got {attempts!r}")
    return data


def _reason(error: BaseException) -> str:
    """An OS error in words, without the traceback: 'Permission denied: /path'."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error) or type(error).__name__


def _report_to_stderr(message: str) -> None:
    print(f"dino-course: {message}", file=sys.stderr)


class ProgressStore:
    """Reads and updates one progress file safely (see the module docstring).

    Reading never needs write access: every save replaces the file by an atomic rename, so a
    reader always sees a whole file and takes no lock. A save that cannot be written (a read-only
    folder, a folder where the file should be, a full disk) says where and why, and the change is
    kept in memory (`pending`): this store shows it and writes it with the next save that works.

    Args:
        path: the JSON file; default `default_progress_path()`.
        report: called with a one-paragraph message when a damaged file is found and kept
            aside, or when a save fails (default: print to stderr). Every message is also kept
            in `notices`.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, report: Callable[[str], None] | None = None) -> None:
        if path is not None and (not isinstance(path, (str, os.PathLike)) or str(path) == ""):
            raise ValueError(f"path must be a file path (or None for the default), got {path!r}")
        if report is not None and not callable(report):
            raise ValueError(f"report must be a function taking a message (or None for stderr), got {report!r}")
        self.path = Path(path) if path is not None else default_progress_path()
        self.report = report or _report_to_stderr
        self.notices: list[str] = []
        self.pending: list[Callable[[dict[str, Any]], None]] = []  # changes not written yet

    def _notice(self, message: str) -> None:
        if message not in self.notices:  # say it once, not at every view
            self.notices.append(message)
            self.report(message)

    # -- reading ------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        """The file's content, validated; an empty progress if there is no file yet.

        Raises:
            ProgressFileDamaged, json.JSONDecodeError, UnicodeDecodeError: the content is damaged.
            OSError: the file cannot be read (a folder in its place, no permission).
        """
        try:
            text = self.path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark some editors add is harmless
        except (FileNotFoundError, NotADirectoryError):  # no file yet (or no folder that could hold one)
            return empty_progress()
        return validate(json.loads(text))

    def _read_or_recover(self) -> dict[str, Any]:
        """The file's content; call with the lock held. A damaged file is kept aside and replaced."""
        try:
            return self._read()
        except (ProgressFileDamaged, json.JSONDecodeError, UnicodeDecodeError) as exc:
            backup = keep_aside(self.path, "damaged")
            atomic_write_text(self.path, json.dumps(empty_progress(), indent=2) + "\n")
            self._notice(
                f"your progress file {self.path.name} could not be read ({exc}). It was kept as "
                f"{backup.name} in the same folder ({self.path.parent}) and a fresh one was started; "
                "copy entries back from the backup if you need them."
            )
            return empty_progress()

    def load(self) -> dict[str, Any]:
        """The current progress (a fresh, empty one if there is no file yet), with unsaved changes applied."""
        try:
            data = self._read()
        except (ProgressFileDamaged, json.JSONDecodeError, UnicodeDecodeError):
            try:
                with locked(self.path):
                    data = self._read_or_recover()
            except OSError as exc:
                self._notice(
                    f"your progress file {self.path} could not be read, and could not be set aside to start a "
                    f"fresh one ({_reason(exc)}); it was left as it is. Showing no saved answers."
                )
                data = empty_progress()
        except OSError as exc:
            self._notice(f"your progress file {self.path} could not be read ({_reason(exc)}). Showing no saved answers.")
            data = empty_progress()
        for change in self.pending:
            change(data)
        return data

    def ratings(self) -> dict[str, int]:
        return {topic: entry["value"] for topic, entry in self.load()["ratings"].items()}

    def quiz_answers(self) -> dict[str, dict[str, Any]]:
        return self.load()["quiz"]

    # -- writing ------------------------------------------------------------------------------

    def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply `change` (and any unsaved earlier ones) to the freshly read file and write it back,
        all under the lock. If the file cannot be written, the changes stay in `pending`."""
        self.pending.append(change)
        try:
            with locked(self.path):
                data = self._read_or_recover()
                for pending in self.pending:
                    pending(data)
                validate(data)  # never write a file that the next read would reject
                atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
        except (OSError, TimeoutError) as exc:
            self._notice(
                f"could not save your progress to {self.path} ({_reason(exc)}). Your answers are kept in memory "
                f"for this session and saved with the next save that works; to keep them elsewhere, set "
                f"${PROGRESS_ENV_VAR} to a file you can write."
            )
            return self.load()
        except BaseException:
            self.pending.remove(change)  # a change that cannot be applied (e.g. invalid) is not kept for later
            raise
        self.pending.clear()
        return data

    def save_pending(self) -> bool:
        """Try again to write the changes kept in memory; True when nothing is left unsaved."""
        if self.pending:
            self.update(lambda data: None)
        return not self.pending

    def set_rating(self, topic: str, value: int) -> None:
        """Save the self-rating (1..10) of `topic`."""
        if not isinstance(topic, str) or not topic:
            raise TypeError(f"topic must be a non-empty string, got {topic!r}")
        low, high = RATING_RANGE
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"value must be an integer from {low} to {high}, got {value!r}")

        def change(data: dict[str, Any]) -> None:
            data["ratings"][topic] = {"value": value, "saved_at": _now()}

        self.update(change)

    def record_answer(self, question: str, answer: str | float) -> int:
        """Save the latest `answer` to quiz `question`; return how many attempts it has had."""
        if not isinstance(question, str) or not question:
            raise TypeError(f"question must be a non-empty string, got {question!r}")
        if not (isinstance(answer, str) or _is_number(answer)):
            raise TypeError(f"answer must be a choice id (str) or a finite number, got {answer!r}")
        attempts = 0

        def change(data: dict[str, Any]) -> None:
            nonlocal attempts
            attempts = data["quiz"].get(question, {}).get("attempts", 0) + 1
            data["quiz"][question] = {"answer": answer, "attempts": attempts, "saved_at": _now()}

        self.update(change)
        return attempts

    def describe_location(self) -> str:
        """Where progress is saved, in words without absolute paths (for notebook outputs)."""
        if os.environ.get(PROGRESS_ENV_VAR, "").strip():
            return f"the file named by ${PROGRESS_ENV_VAR}"
        if is_demo_mode():
            return (
                "a temporary file, because the reference is switched on for the whole course "
                f"({REFERENCE_ENV_VAR}=all): nothing here is kept after this session"
            )
        try:
            return f"{self.path.relative_to(REPO_ROOT).as_posix()} in your copy of the course"
        except ValueError:
            return str(self.path)
