"""Points per exercise: one file (`points.toml` beside this module), with a default for the rest.

Release, autograder and batch grader read the same file, so the student README's table,
Gradescope's `max_score` and the gradebook's columns agree. An instructor edits it, or passes
another file with `--points`. The format is a small TOML subset, read here without a TOML
library (Python 3.10 has none): `key = value` lines, `[section]` headers and `#` comments;
values are numbers or double-quoted strings. Unknown exercise ids, negative points and unknown
Gradescope settings are refused with a message that names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from dino_course.grading.catalog import exercises, lessons

DEFAULT_POINTS_FILE = Path(__file__).with_name("points.toml")
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
GRADESCOPE_KEYS = {"visibility": "visible", "test_visibility": "visible", "stdout_visibility": "hidden"}

_LINE = re.compile(r'^(?:"(?P<quoted>[^"]+)"|(?P<bare>[A-Za-z0-9_.\-/]+))\s*=\s*(?P<value>.+?)\s*$')


@dataclass(frozen=True)
class Points:
    """Points of every exercise of the course, and Gradescope's visibility settings."""

    per_exercise: dict[str, float]
    gradescope: dict[str, str] = field(default_factory=lambda: dict(GRADESCOPE_KEYS))
    source: str = "defaults"

    def of(self, exercise_id: str) -> float:
        return self.per_exercise[exercise_id]

    @property
    def total(self) -> float:
        return sum(self.per_exercise.values())

    def table(self) -> str:
        """A Markdown table of lessons, exercises and points (the student README's)."""
        rows = ["| lesson | exercise | points |", "| --- | --- | ---: |"]
        for lesson in lessons().values():
            for exercise in lesson.exercises:
                rows.append(f"| {lesson.id} | `{exercise.name}` | {format_points(self.of(exercise.id))} |")
        rows.append(f"| | **total** | **{format_points(self.total)}** |")
        return "\n".join(rows)


def format_points(value: float) -> str:
    return f"{value:g}"


def _value(text: str, where: str):
    text = text.split("#", 1)[0].strip() if not text.startswith('"') else text
    if text.startswith('"'):
        match = re.match(r'^"([^"]*)"\s*(#.*)?$', text)
        if not match:
            raise ValueError(f"{where}: a string value must be one double-quoted string, got {text!r}")
        return match.group(1)
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number or a \"string\", got {text!r}") from None


def parse_points_text(text: str, name: str = "points.toml") -> Points:
    known = exercises()
    default: float = 1
    given: dict[str, float] = {}
    gradescope = dict(GRADESCOPE_KEYS)
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{name}:{number}"
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            match = re.match(r"^\[([A-Za-z_]+)\]\s*(#.*)?$", line)
            if not match or match.group(1) not in ("points", "gradescope"):
                raise ValueError(f"{where}: unknown section {line!r} (use [points] or [gradescope])")
            section = match.group(1)
            continue
        match = _LINE.match(line)
        if not match:
            raise ValueError(f"{where}: expected `key = value`, got {line!r}")
        key, value = match.group("quoted") or match.group("bare"), _value(match.group("value"), where)
        if section == "":
            if key != "default":
                raise ValueError(f"{where}: only `default = N` may stand before the first section, got {key!r}")
            default = _number(value, where, key)
        elif section == "points":
            if key not in known:
                raise ValueError(f"{where}: {key!r} is not an exercise of the course (ids look like '3.1/ema_update')")
            given[key] = _number(value, where, key)
        else:
            if key not in GRADESCOPE_KEYS:
                raise ValueError(f"{where}: unknown Gradescope setting {key!r}; known: {sorted(GRADESCOPE_KEYS)}")
            if value not in VISIBILITIES:
                raise ValueError(f"{where}: {key} must be one of {VISIBILITIES}, got {value!r}")
            gradescope[key] = value
    per_exercise = {exercise_id: given.get(exercise_id, default) for exercise_id in known}
    return Points(per_exercise, gradescope, name)


def _number(value, where: str, key: str) -> float:
    if isinstance(value, str) or value < 0:
        raise ValueError(f"{where}: points of {key!r} must be a number >= 0, got {value!r}")
    return value


def load_points(path: str | Path | None = None) -> Points:
    """The points file `path` (default: the course's `points.toml`)."""
    path = Path(path) if path is not None else DEFAULT_POINTS_FILE
    if not path.is_file():
        raise ValueError(f"points file {str(path)!r} does not exist")
    return parse_points_text(path.read_text(encoding="utf-8"), str(path))
