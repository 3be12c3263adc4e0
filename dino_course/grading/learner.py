"""What hidden checks call the learner's code: `st = LearnerModule("student_teacher")`.

Checks never import `dino_course.<module>` at the top of a test file: a syntax error there
would stop the whole test run. They hold a `LearnerModule` proxy instead, which gives, inside a
check of exercise X, X's isolated world (`dino_course.grading.isolation`).
"""

from __future__ import annotations

from dino_course.grading.isolation import LearnerModule, load_learner_module

__all__ = ["LearnerModule", "load_learner_module"]
