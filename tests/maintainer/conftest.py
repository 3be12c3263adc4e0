"""Fixtures shared by the maintainer checks of `dino_course/assessment/`."""

from __future__ import annotations

import pytest

from dino_course.assessment.progress import ProgressStore


@pytest.fixture
def store(tmp_path) -> ProgressStore:
    """A learner's progress file in a temporary folder, whose notices are dropped."""
    return ProgressStore(tmp_path / "progress.json", report=lambda message: None)
