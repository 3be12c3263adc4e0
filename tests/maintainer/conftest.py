"""Fixtures shared by several maintainer checks."""

from __future__ import annotations

import os

import pytest

from dino_course import use_reference
from dino_course.assessment.progress import ProgressStore
from dino_course.grading.reference_switch import ENV_VAR


@pytest.fixture
def reference_on():
    """The reference stands in for every lesson during the test; the switch is restored after."""
    previous = os.environ.get(ENV_VAR)
    use_reference("all")
    yield
    use_reference(previous or None)


@pytest.fixture
def store(tmp_path) -> ProgressStore:
    """A learner's progress file in a temporary folder, whose notices are dropped."""
    return ProgressStore(tmp_path / "progress.json", report=lambda message: None)
