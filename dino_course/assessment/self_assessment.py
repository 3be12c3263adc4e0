"""Lesson 3.5: the Module 3 self-assessment. Self-rating topics and sliders, and the skills check.

Self-ratings (1–10 per topic) are saved in the progress file (`dino_course.assessment.progress`). The
skills check is not a questionnaire: each practical skill is tied to the hidden checks of the
exercises that demonstrate it, and `skills_check()` runs those checks on your code (the same
ones `pytest` and `check()` run) to say which skills you have demonstrated and, for the others,
which lesson section to revisit.

Lessons that are not in your copy of the course yet are reported as "lesson not available yet"
rather than as failures.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dino_course.grading.catalog import REPO_ROOT, exercises, lesson_sort_key, lessons
from dino_course.grading.report import FAILED, NOT_STARTED, PASSED, GradeReport

__all__ = [
    "Topic", "TOPICS", "Skill", "SKILLS", "SkillResult", "ExerciseStatus", "skills_check", "grade_lessons",
    "section_to_revisit", "RatingPanel", "render_skills", "skills_html",
]


# ----------------------------------------------------------------------------- self-rating topics


@dataclass(frozen=True)
class Topic:
    id: str  # key in the progress file; never rename (old files would lose the rating)
    title: str
    lessons: tuple[str, ...]  # the lessons that teach it (the dashboard shows ratings per lesson)


TOPICS: tuple[Topic, ...] = (
    Topic("ema", "EMA teacher updates and momentum scheduling", ("3.1",)),
    Topic("multicrop", "Multi-crop augmentation strategy and implementation", ("3.2",)),
    Topic("heads", "Projection head architecture and normalisation", ("3.3",)),
    Topic("integration", "Integration of all components into a training pipeline", ("3.4",)),
    Topic("debugging", "Debugging and visualising student–teacher dynamics", ("3.1", "3.4")),
)


# ----------------------------------------------------------------------------- practical skills


@dataclass(frozen=True)
class Skill:
    id: str
    title: str
    exercises: tuple[str, ...]  # exercise ids ('3.1/ema_update') whose hidden checks demonstrate it


# Exercise ids are those of the lessons' exercise files (sample_crop_box, the 3.4 diagnostics, the 3.3
# head pieces). A maintainer check (tests/maintainer/test_assessment_self_assessment.py) fails when an id is
# missing from a lesson that exists.
SKILLS: tuple[Skill, ...] = (
    Skill(
        "student-teacher-wrapper",
        "Implement the student–teacher wrapper from scratch",
        (
            "3.1/build_teacher",
            "3.1/sync_teacher",
            "3.1/ema_update",
            "3.1/cosine_schedule",
            "3.1/StudentTeacherWrapper.forward",
            "3.1/StudentTeacherWrapper.update_teacher",
        ),
    ),
    Skill(
        "debug-multicrop",
        "Debug a multi-crop augmentation pipeline",
        ("3.2/view_recipes", "3.2/sample_crop_box", "3.2/group_by_resolution", "3.2/collate_multicrop"),
    ),
    Skill(
        "feature-quality",
        "Analyse feature quality and representation collapse",
        (
            "3.1/parameter_divergence",
            "3.4/l2_norm_consistency",
            "3.4/pairwise_cosine_similarities",
            "3.4/dimension_spread",
            "3.4/effective_rank",
            "3.4/prediction_entropies",
        ),
    ),
    Skill(
        "multicrop-memory",
        "Keep multi-crop training memory-efficient (one backbone pass per resolution)",
        ("3.2/group_by_resolution", "3.2/collate_multicrop", "3.4/MultiCropNetwork.forward", "3.4/measure_forward"),
    ),
    Skill(
        "integration",
        "Integrate the components into a complete training system",
        (
            "3.1/StudentTeacherWrapper.forward",
            "3.1/StudentTeacherWrapper.update_teacher",
            "3.3/l2_normalize",
            "3.3/DINOProjectionHead.forward",
            "3.3/cancel_last_layer_gradients",
            "3.4/MultiCropNetwork.forward",
        ),
    ),
)

DEMONSTRATED, NEEDS_WORK, NOT_AVAILABLE = "demonstrated", "needs work", "lesson not available yet"
UNKNOWN_CHECK, NOT_GRADED = "no such exercise", "could not be graded"


@dataclass(frozen=True)
class ExerciseStatus:
    exercise_id: str
    outcome: str  # passed / failed / not started / lesson not available yet / no such exercise / could not be graded
    message: str = ""
    reference: bool = False  # graded with the reference solution standing in, not your code
    revisit: str = ""  # where to look again, for anything not passed


@dataclass(frozen=True)
class SkillResult:
    skill: Skill
    status: str  # demonstrated / needs work / lesson not available yet
    exercises: tuple[ExerciseStatus, ...] = field(default_factory=tuple)

    @property
    def with_reference(self) -> bool:
        return any(e.reference for e in self.exercises if e.outcome == PASSED)

    @property
    def missing_lessons(self) -> list[str]:
        ids = {e.exercise_id.partition("/")[0] for e in self.exercises if e.outcome == NOT_AVAILABLE}
        return sorted(ids, key=lesson_sort_key)


# ----------------------------------------------------------------------------- where to revisit


@functools.lru_cache(maxsize=None)
def _notebook_cells(path: Path, mtime: float) -> tuple[tuple[str, str], ...]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return tuple((cell["cell_type"], "".join(cell.get("source", ""))) for cell in notebook.get("cells", []))


def section_to_revisit(exercise_id: str) -> str:
    """'Lesson 3.1, section "4. The EMA update" (lessons/module3/3.1_student_teacher.ipynb)' for an exercise.

    The section is the last Markdown heading before the notebook's first check cell of the
    exercise (`check("3.1", "ema_update")`), or before the first cell naming it; when the
    notebook is missing, it names the lesson and the exercise.
    """
    lesson_id, _, name = exercise_id.partition("/")
    lesson = lessons().get(lesson_id)
    if lesson is None:
        return f"Lesson {lesson_id} (not in your copy of the course yet)"
    where = f"Lesson {lesson_id}"
    notebook = REPO_ROOT / lesson.notebook if lesson.notebook else None
    if notebook is None or not notebook.exists():
        return f"{where}, the part on `{name}` (dino_course/{exercises()[exercise_id].module}.py)" if exercise_id in exercises() else where
    cells = _notebook_cells(notebook, notebook.stat().st_mtime)
    patterns = [f'check("{lesson_id}", "{name}")', f"check('{lesson_id}', '{name}')", f"`{name}`", name]
    for pattern in patterns:
        first = next((index for index, (_, source) in enumerate(cells) if pattern in source), None)
        if first is None:
            continue
        for kind, source in reversed(cells[: first + 1]):
            headings = [line.lstrip("#").strip() for line in source.splitlines() if line.startswith("#")]
            if kind == "markdown" and headings:
                return f'{where}, section "{headings[-1]}" ({lesson.notebook})'
        break
    return f"{where}, the part on `{name}` ({lesson.notebook})"


# ----------------------------------------------------------------------------- running the checks


def untouched_lessons_report(lesson_id: str) -> GradeReport | None:
    """All-'not started' verdicts for a lesson whose exercise files are still the generated stubs, else None.

    Every hidden check first calls the learner's code, and an untouched stub raises
    `ExerciseNotStarted` there, so running the checks could only say "not started": this says
    it from a text comparison, without running them (a learner at Lesson 3.5 has not touched
    Module 4 yet, and grading it would cost time for nothing).
    """
    from dino_course.grading import reference_switch as reference
    from dino_course.grading.catalog import solution_modules
    from dino_course.grading.report import ExerciseVerdict
    from dino_course.grading.stubs import generate_stub, stub_path

    if lesson_id not in lessons() or reference.is_reference(lesson_id):
        return None
    for solution in solution_modules():
        if solution.lesson != lesson_id:
            continue
        if not solution.path.exists():  # the student edition: no solutions to generate the stubs from
            return None
        path = stub_path(solution)
        if not path.exists() or path.read_text(encoding="utf-8") != generate_stub(solution):
            return None
    verdicts = {e.id: ExerciseVerdict(e, NOT_STARTED) for e in lessons()[lesson_id].exercises}
    return GradeReport(verdicts)


def grade_lessons(lesson_ids: Iterable[str], grade: Callable[[str], GradeReport] | None = None) -> dict[str, GradeReport | Exception]:
    """Grade each available lesson once; a grading crash is kept as the lesson's value, not raised.

    Lessons whose exercise files are untouched stubs are reported as not started without running
    their checks (see `untouched_lessons_report`).
    """
    if grade is None:
        from dino_course.grading.notebook import grade
    reports: dict[str, GradeReport | Exception] = {}
    for lesson_id in sorted(set(lesson_ids), key=lesson_sort_key):
        if lesson_id not in lessons():
            continue
        try:
            reports[lesson_id] = untouched_lessons_report(lesson_id) or grade(lesson_id)
        except Exception as exc:  # keep the other lessons' results; say what happened
            reports[lesson_id] = exc
    return reports


def _exercise_status(exercise_id: str, reports: dict[str, GradeReport | Exception]) -> ExerciseStatus:
    lesson_id = exercise_id.partition("/")[0]
    if lesson_id not in lessons():
        return ExerciseStatus(exercise_id, NOT_AVAILABLE, revisit=section_to_revisit(exercise_id))
    if exercise_id not in exercises():
        return ExerciseStatus(exercise_id, UNKNOWN_CHECK, f"Lesson {lesson_id} has no exercise with this id")
    report = reports.get(lesson_id)
    if isinstance(report, Exception) or report is None:
        reason = f"{type(report).__name__}: {report}" if report is not None else "lesson was not graded"
        return ExerciseStatus(exercise_id, NOT_GRADED, reason, revisit=section_to_revisit(exercise_id))
    verdict = report.verdicts.get(exercise_id)
    if verdict is None:
        return ExerciseStatus(exercise_id, NOT_GRADED, "no hidden check ran for it", revisit=section_to_revisit(exercise_id))
    revisit = "" if verdict.outcome == PASSED else section_to_revisit(exercise_id)
    return ExerciseStatus(exercise_id, verdict.outcome, verdict.message, verdict.reference, revisit)


def skills_check(
    skills: tuple[Skill, ...] = SKILLS, reports: dict[str, GradeReport | Exception] | None = None
) -> list[SkillResult]:
    """Run (or reuse, via `reports`) the hidden checks behind each skill and say which are demonstrated.

    A skill is *demonstrated* when every mapped exercise of the lessons you have passes; it
    *needs work* when one of them fails, is not started or could not be graded; it is
    *not available yet* when none of its lessons is in your copy of the course.
    """
    if reports is None:
        reports = grade_lessons(e.partition("/")[0] for s in skills for e in s.exercises)
    results = []
    for skill in skills:
        statuses = tuple(_exercise_status(e, reports) for e in skill.exercises)
        available = [s for s in statuses if s.outcome != NOT_AVAILABLE]
        if not available:
            status = NOT_AVAILABLE
        elif all(s.outcome == PASSED for s in available):
            status = DEMONSTRATED
        else:
            status = NEEDS_WORK
        results.append(SkillResult(skill, status, statuses))
    return results


_SYMBOL = {PASSED: "✓", FAILED: "✗", NOT_STARTED: "·", NOT_AVAILABLE: "–", UNKNOWN_CHECK: "?", NOT_GRADED: "!"}
_SKILL_SYMBOL = {DEMONSTRATED: "✓", NEEDS_WORK: "✗", NOT_AVAILABLE: "–"}


def _skill_line(result: SkillResult) -> str:
    notes = []
    if result.status == DEMONSTRATED and result.with_reference:
        notes.append("with reference code standing in, not yet your own")
    if result.status != NOT_AVAILABLE and result.missing_lessons:
        notes.append(f"lesson {', '.join(result.missing_lessons)} not available yet")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    label = "demonstrated so far" if result.status == DEMONSTRATED and result.missing_lessons else result.status
    return f"{_SKILL_SYMBOL[result.status]} {result.skill.title}: {label}{suffix}"


def render_skills(results: list[SkillResult]) -> str:
    """Plain-text report: one line per skill, then each exercise that is not passed and where to revisit it."""
    lines = []
    for result in results:
        lines.append(_skill_line(result))
        for status in result.exercises:
            if status.outcome == PASSED or status.outcome == NOT_AVAILABLE and result.status == NOT_AVAILABLE:
                continue
            line = f"    {_SYMBOL[status.outcome]} {status.exercise_id}: {status.outcome}"
            if status.message:
                line += f" ({status.message})"
            lines.append(line)
            if status.revisit and status.outcome != NOT_AVAILABLE:
                lines.append(f"        revisit: {status.revisit}")
    demonstrated = sum(r.status == DEMONSTRATED for r in results)
    available = sum(r.status != NOT_AVAILABLE for r in results)
    lines.append(f"{demonstrated} of {available} available skills demonstrated ({len(results)} skills in all)")
    return "\n".join(lines)


def skills_html(results: list[SkillResult]) -> str:
    """The same report as an HTML table for the notebook: every mapped check with its verdict, and what to revisit."""
    import html

    colour = {DEMONSTRATED: "#1a7f37", NEEDS_WORK: "#cf222e", NOT_AVAILABLE: "#6e7781"}
    rows = []
    for result in results:
        checks = "<br>".join(
            f"{_SYMBOL[e.outcome]} <code>{html.escape(e.exercise_id)}</code>"
            + ("" if e.outcome == PASSED else f" <small>{html.escape(e.outcome)}</small>")
            for e in result.exercises
        )
        todo = []
        for status in result.exercises:
            if status.outcome in (PASSED, NOT_AVAILABLE):
                continue
            text = f"<code>{html.escape(status.exercise_id.partition('/')[2])}</code>"
            if status.message:
                text += f": <small>{html.escape(status.message)}</small>"
            if status.revisit:
                text += f"<br>&nbsp;&nbsp;→ revisit {html.escape(status.revisit)}"
            todo.append(text)
        if not todo:
            todo = ["wait for the missing lesson" if result.status == NOT_AVAILABLE else "nothing: all its checks pass"]
        label = _skill_line(result).split(": ", 1)[1]
        rows.append(
            f"<tr><td style='text-align:left'>{html.escape(result.skill.title)}</td>"
            f"<td style='text-align:left;color:{colour[result.status]}'><b>{html.escape(label)}</b></td>"
            f"<td style='text-align:left'>{checks}</td>"
            f"<td style='text-align:left'>{'<br>'.join(todo)}</td></tr>"
        )
    header = "".join(f"<th style='text-align:left'>{h}</th>" for h in ("skill", "status", "hidden checks", "what to do"))
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# ----------------------------------------------------------------------------- self-rating widget


class RatingPanel:
    """One 1–10 slider per topic; every change is saved to the progress store at once.

    Saved ratings are loaded when the panel is built (so reopening the notebook shows them).
    A topic not rated yet shows its slider at 5 with "not rated yet"; *Save all* saves every
    slider as shown. Tests drive it by setting `sliders[topic].value` or `save_all_button.click()`.
    """

    UNRATED_POSITION = 5

    def __init__(self, store, topics: tuple[Topic, ...] = TOPICS) -> None:
        import ipywidgets as widgets

        self.store = store
        self.topics = topics
        self.sliders: dict[str, widgets.IntSlider] = {}
        self.status: dict[str, widgets.HTML] = {}
        self.message = widgets.HTML()
        try:
            saved = store.ratings()
        except OSError as exc:
            saved = {}
            self.message.value = f"<i>Could not read your saved ratings: {exc}</i>"
        rows = []
        for topic in topics:
            slider = widgets.IntSlider(
                value=saved.get(topic.id, self.UNRATED_POSITION),
                min=1,
                max=10,
                step=1,
                continuous_update=False,  # save once per drag, not on every pixel
                layout=widgets.Layout(width="320px"),
            )
            status = widgets.HTML("saved" if topic.id in saved else "<i>not rated yet</i>")
            slider.observe(lambda change, topic_id=topic.id: self._save(topic_id, change["new"]), names="value")
            self.sliders[topic.id], self.status[topic.id] = slider, status
            rows.append(widgets.HBox([widgets.HTML(topic.title, layout=widgets.Layout(width="420px")), slider, status]))
        self.save_all_button = widgets.Button(description="Save all as shown", tooltip="save every slider's value")
        self.save_all_button.on_click(lambda _button: self.save_all())
        self.widget = widgets.VBox([*rows, widgets.HBox([self.save_all_button, self.message])])

    def _save(self, topic_id: str, value: int) -> bool:
        try:
            self.store.set_rating(topic_id, int(value))
        except OSError as exc:  # unwritable folder or a stuck lock: say so, never raise into the widget
            self.status[topic_id].value = f"<span style='color:#cf222e'>not saved: {exc}</span>"
            return False
        self.status[topic_id].value = "saved"
        return True

    def save_all(self) -> None:
        saved = sum(self._save(topic.id, self.sliders[topic.id].value) for topic in self.topics)
        self.message.value = f"saved {saved} of {len(self.topics)} ratings"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
