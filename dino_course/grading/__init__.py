"""The grading engine: exercise catalogue, reference switch, stub generator, hidden checks, `check()`.

Learners meet two things from here: the `ExerciseNotStarted` error their stubs raise, and
`check()` (re-exported as `dino_course.check`) that grades a lesson from inside a notebook.
"""

from dino_course.grading.errors import ExerciseNotStarted, LearnerCodeError

__all__ = ["ExerciseNotStarted", "LearnerCodeError", "check"]


def check(lesson: str, exercise: str | None = None, *, verbose: bool = False):
    """Run the hidden checks of one lesson (or one exercise of it) in-process and print verdicts."""
    from dino_course.grading.notebook import check as _check

    return _check(lesson, exercise, verbose=verbose)
