"""Per-exercise verdicts and the progress table that `pytest` and `check()` both print."""

from __future__ import annotations

from dataclasses import dataclass, field

from dino_course.grading.catalog import Exercise, exercises, lesson_sort_key, lessons

PASSED, FAILED, NOT_STARTED, NOT_GRADED = "passed", "failed", "not started", "not graded"
_SYMBOL = {PASSED: "✓", FAILED: "✗", NOT_STARTED: "·", NOT_GRADED: "!"}


@dataclass
class CheckResult:
    """The outcome of one hidden check (one pytest test)."""

    nodeid: str
    exercise_id: str
    outcome: str
    message: str = ""
    location: str = ""  # dino_course/<module>.py:<line> in the learner's file, where known
    integration: bool = False


@dataclass
class ExerciseVerdict:
    exercise: Exercise
    outcome: str
    message: str = ""
    checks_passed: int = 0
    checks_total: int = 0
    reference: bool = False
    location: str = ""  # dino_course/<module>.py:<line> of the first failure, where known


@dataclass
class GradeReport:
    """Everything one grading run found, ready to print or to query."""

    verdicts: dict[str, ExerciseVerdict] = field(default_factory=dict)

    @classmethod
    def from_results(
        cls,
        results: list[CheckResult],
        reference_lessons,
        *,
        expected: list[Exercise] = (),
        missing: dict[str, str] | None = None,
    ) -> "GradeReport":
        """One verdict per exercise: from its checks' results, and for every `expected` exercise
        that no check graded, "not graded" with the reason `missing[module]` gives."""
        by_exercise: dict[str, list[CheckResult]] = {e.id: [] for e in expected}
        for result in results:
            by_exercise.setdefault(result.exercise_id, []).append(result)
        known = exercises()
        verdicts = {}
        for exercise_id in sorted(by_exercise, key=_exercise_order(known)):
            checks = by_exercise[exercise_id]
            lesson, _, name = exercise_id.partition("/")
            exercise = known.get(exercise_id, Exercise(lesson, name, "?"))
            failed = [c for c in checks if c.outcome == FAILED]
            waiting = [c for c in checks if c.outcome == NOT_STARTED]
            passed = [c for c in checks if c.outcome == PASSED]
            not_graded = [c for c in checks if c.outcome == NOT_GRADED]
            location = ""
            if failed:
                outcome, message, location = FAILED, failed[0].message, failed[0].location
            elif waiting:
                outcome, message = NOT_STARTED, waiting[0].message
            elif passed:
                # an integration check that could not run leaves the exercise's own verdict, with a note
                outcome, message = PASSED, not_graded[0].message if not_graded else ""
            elif not_graded:
                outcome, message = NOT_GRADED, not_graded[0].message
            else:
                outcome, message = NOT_GRADED, (missing or {}).get(exercise.module, "none of its checks ran")
            verdicts[exercise_id] = ExerciseVerdict(
                exercise,
                outcome,
                message,
                checks_passed=sum(c.outcome == PASSED for c in checks),
                checks_total=len(checks),
                reference=reference_lessons == "all" or lesson in reference_lessons,
                location=location,
            )
        return cls(verdicts)

    def counts(self, lesson: str | None = None) -> dict[str, int]:
        chosen = [v for v in self.verdicts.values() if lesson is None or v.exercise.lesson == lesson]
        return {outcome: sum(v.outcome == outcome for v in chosen) for outcome in (PASSED, FAILED, NOT_STARTED, NOT_GRADED)}

    def lesson_complete(self, lesson: str) -> bool:
        """Every exercise of the lesson was graded in this run, and passed."""
        known = lessons().get(lesson)
        graded = {v.exercise.name for v in self.verdicts.values() if v.exercise.lesson == lesson and v.outcome == PASSED}
        return known is not None and graded == {e.name for e in known.exercises}

    def render(self, title: str = "DINO course: your progress") -> str:
        if not self.verdicts:
            return f"{title}\n  (no exercise checks ran)"
        lines = [title]
        known_lessons = lessons()
        lesson_ids = sorted({v.exercise.lesson for v in self.verdicts.values()}, key=lesson_sort_key)
        for lesson_id in lesson_ids:
            chosen = [v for v in self.verdicts.values() if v.exercise.lesson == lesson_id]
            title_text = known_lessons[lesson_id].title if lesson_id in known_lessons else ""
            counts = self.counts(lesson_id)
            status = "complete" if self.lesson_complete(lesson_id) else f"{counts[PASSED]}/{len(chosen)} passed"
            reference = " (reference code)" if all(v.reference for v in chosen) else ""
            lines.append(f"Lesson {lesson_id} · {title_text}: {status}{reference}")
            width = max(len(v.exercise.name) for v in chosen)
            for verdict in chosen:
                line = f"  {_SYMBOL[verdict.outcome]} {verdict.exercise.name.ljust(width)}  {verdict.outcome}"
                if verdict.message:
                    line += f": {verdict.message}"
                lines.append(line)
                if verdict.location:
                    lines.append(f"  {' ' * width}    at {verdict.location}")
        counts = self.counts()
        total = len(self.verdicts)
        lines.append(
            f"Score: {counts[PASSED]} of {total} exercises passed ({100 * counts[PASSED] / total:.0f} %), "
            f"{counts[FAILED]} failed, {counts[NOT_STARTED]} not started"
            + (f", {counts[NOT_GRADED]} not graded" if counts[NOT_GRADED] else "")
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def _exercise_order(known: dict[str, Exercise]):
    order = {exercise_id: index for index, exercise_id in enumerate(known)}

    def key(exercise_id: str):
        lesson = exercise_id.partition("/")[0]
        return (lesson_sort_key(lesson) if lesson.replace(".", "").isdigit() else (999,), order.get(exercise_id, 10**6), exercise_id)

    return key
