"""The exceptions the grading engine understands."""

from __future__ import annotations


class ExerciseNotStarted(NotImplementedError):
    """Raised by every exercise stub until the learner replaces it with an implementation.

    The grader reports a check that stops on this error as *not started* (not as a failure),
    so a fresh clone's `pytest` passes.
    """

    def __init__(self, lesson: str, exercise: str) -> None:
        self.lesson = lesson
        self.exercise = exercise
        super().__init__(
            f"Exercise {lesson} `{exercise}` is not started yet: replace the `raise` in its stub with "
            f"your implementation (or switch the reference on for this lesson: "
            f"DINO_COURSE_REFERENCE={lesson})."
        )


class LearnerCodeError(Exception):
    """A learner module could not be imported (syntax error, import error, crash at import)."""
