"""Your progress across the whole course: exercises passed, self-ratings and quiz score per lesson.

Shown in the Lesson 3.5 notebook (a table and a small chart) and on the command line:

    dino-course progress              grade every lesson now, then print the table
    dino-course progress --no-grade   only ratings and quiz (fast: runs no checks)

Exercise counts always come from running the hidden checks (never from a saved file), so the
table cannot claim work your code does not do.
"""

from __future__ import annotations

from dataclasses import dataclass

from dino_course.assessment.self_assessment import TOPICS, grade_lessons
from dino_course.grading.catalog import lesson_sort_key, lessons
from dino_course.grading.report import FAILED, NOT_STARTED, PASSED, GradeReport
from dino_course.assessment.progress import ProgressStore
from dino_course.assessment.quiz import quiz_scores

__all__ = ["LessonProgress", "course_progress", "render_table", "table_html", "plot_progress", "print_progress"]


@dataclass(frozen=True)
class LessonProgress:
    lesson: str
    title: str
    exercises_total: int
    passed: int | None  # None: not graded (--no-grade, or grading crashed)
    failed: int | None
    not_started: int | None
    reference: bool  # graded with the reference standing in
    rating: float | None  # mean self-rating (1–10) of the topics this lesson teaches
    quiz_correct: int
    quiz_answered: int
    quiz_total: int


def course_progress(
    store: ProgressStore,
    reports: dict[str, GradeReport | Exception] | None = None,
    *,
    grade: bool = True,
) -> list[LessonProgress]:
    """One row per lesson with exercises (in course order), plus lessons that only have quiz questions.

    Args:
        store: where the ratings and quiz answers are read from.
        reports: grading reports to reuse (e.g. from the skills check); lessons missing from it are graded.
        grade: False skips grading (exercise columns empty).
    """
    known = lessons()
    reports = dict(reports or {})
    if grade:
        missing = [lesson_id for lesson_id in known if lesson_id not in reports]
        reports.update(grade_lessons(missing))
    data = store.load()
    ratings = {topic: entry["value"] for topic, entry in data["ratings"].items()}
    scores = quiz_scores(data["quiz"])
    lesson_ids = sorted(set(known) | set(scores), key=lesson_sort_key)
    rows = []
    for lesson_id in lesson_ids:
        lesson = known.get(lesson_id)
        total = len(lesson.exercises) if lesson else 0
        report = reports.get(lesson_id)
        if isinstance(report, GradeReport) and total:
            counts = report.counts(lesson_id)
            passed, failed, not_started = counts[PASSED], counts[FAILED], counts[NOT_STARTED]
            reference = bool(report.verdicts) and all(
                v.reference for v in report.verdicts.values() if v.exercise.lesson == lesson_id
            )
        else:
            passed = failed = not_started = None
            reference = False
        topic_ratings = [ratings[t.id] for t in TOPICS if lesson_id in t.lessons and t.id in ratings]
        score = scores.get(lesson_id, {"correct": 0, "answered": 0, "total": 0})
        rows.append(
            LessonProgress(
                lesson=lesson_id,
                title=lesson.title if lesson else "(lesson not in your copy yet)",
                exercises_total=total,
                passed=passed,
                failed=failed,
                not_started=not_started,
                reference=reference,
                rating=sum(topic_ratings) / len(topic_ratings) if topic_ratings else None,
                quiz_correct=score["correct"],
                quiz_answered=score["answered"],
                quiz_total=score["total"],
            )
        )
    return rows


def _cells(row: LessonProgress) -> list[str]:
    if row.exercises_total == 0:
        exercises = "–"
    elif row.passed is None:
        exercises = f"? of {row.exercises_total}"
    else:
        exercises = f"{row.passed} of {row.exercises_total}"
        if row.failed:
            exercises += f", {row.failed} failed"
        if row.reference:
            exercises += " (reference)"
    rating = f"{row.rating:.1f}/10" if row.rating is not None else "–"
    quiz = f"{row.quiz_correct} of {row.quiz_total}" if row.quiz_total else "–"
    return [row.lesson, row.title, exercises, rating, quiz]


HEADERS = ["lesson", "title", "exercises passed", "self-rating", "quiz"]


def _totals(rows: list[LessonProgress]) -> list[str]:
    graded = [r for r in rows if r.passed is not None]
    total = sum(r.exercises_total for r in rows)
    exercises = f"{sum(r.passed for r in graded)} of {total}" if graded else f"? of {total}"
    ratings = [r.rating for r in rows if r.rating is not None]
    quiz_total = sum(r.quiz_total for r in rows)
    return [
        "all",
        "whole course",
        exercises,
        f"{sum(ratings) / len(ratings):.1f}/10" if ratings else "–",
        f"{sum(r.quiz_correct for r in rows)} of {quiz_total}" if quiz_total else "–",
    ]


def render_table(rows: list[LessonProgress]) -> str:
    """The dashboard as aligned plain text (for the command line)."""
    table = [HEADERS, *[_cells(r) for r in rows], _totals(rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.insert(len(lines) - 1, lines[1])
    return "\n".join(lines)


def table_html(rows: list[LessonProgress]) -> str:
    import html

    def row_html(cells: list[str], tag: str = "td") -> str:
        return "<tr>" + "".join(f"<{tag} style='text-align:left'>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"

    body = "".join(row_html(_cells(r)) for r in rows)
    totals = _totals(rows)
    return (
        f"<table><thead>{row_html(HEADERS, 'th')}</thead><tbody>{body}"
        f"<tr style='font-weight:bold'>{row_html(totals)[4:-5]}</tr></tbody></table>"
    )


def plot_progress(rows: list[LessonProgress], ax=None):
    """A grouped bar chart: fraction of exercises passed, self-rating / 10, quiz fraction, per lesson.

    Horizontal bars, one group per lesson, so the lesson labels sit one under the other and never overlap,
    however many lessons and exercises the course has; the figure grows with the number of lessons.
    Text is 10 pt (9 pt at the smallest), readable at the notebooks' stored 100 dpi.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 1.0 + 0.45 * max(len(rows), 1)))
    labels = [f"Lesson {r.lesson}" for r in rows]
    series = {
        "exercises passed": [r.passed / r.exercises_total if r.passed is not None and r.exercises_total else 0 for r in rows],
        "self-rating / 10": [r.rating / 10 if r.rating is not None else 0 for r in rows],
        "quiz correct": [r.quiz_correct / r.quiz_total if r.quiz_total else 0 for r in rows],
    }
    positions = np.arange(len(rows))
    height = 0.26
    for offset, (name, values) in zip((-height, 0, height), series.items()):
        ax.barh(positions + offset, values, height, label=name)
    ax.set_yticks(positions, labels, fontsize=10)
    ax.invert_yaxis()  # the first lesson on top, as in the table
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("fraction", fontsize=10)
    ax.tick_params(axis="x", labelsize=10)
    ax.set_title("Your progress by lesson", fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=10)
    ax.figure.tight_layout()
    return ax


def print_progress(store: ProgressStore | None = None, *, grade: bool = True) -> list[LessonProgress]:
    """The command line's `dino-course progress`: print the table (and any notice about the file)."""
    store = store or ProgressStore()
    rows = course_progress(store, grade=grade)
    print("DINO course: your progress" + ("" if grade else " (exercises not graded: --no-grade)"))
    print(render_table(rows))
    print(f"Ratings and quiz answers are saved in {store.describe_location()}.")
    return rows
