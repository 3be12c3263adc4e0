"""Lesson 3.5's skills check, self-rating sliders and progress dashboard, tested without a browser."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dino_course.assessment import dashboard, self_assessment as assessment
from dino_course.assessment.self_assessment import (
    DEMONSTRATED, NEEDS_WORK, NOT_AVAILABLE, SKILLS, TOPICS, RatingPanel, Skill, render_skills, skills_check,
)
from dino_course.grading.catalog import REPO_ROOT, Exercise, exercises, lessons
from dino_course.grading.report import FAILED, NOT_STARTED, PASSED, ExerciseVerdict, GradeReport
from dino_course.assessment.progress import ProgressStore

pytestmark = pytest.mark.maintainer

# The lessons the skills draw on (Module 3's). A lesson missing from a copy of the course cannot
# have its ids checked there: its check is skipped, not passed.
MAPPED_LESSONS = sorted({e.partition("/")[0] for s in SKILLS for e in s.exercises})


def test_skills_and_topics_follow_the_seed():
    assert len(SKILLS) == 5 and len(TOPICS) == 5
    assert len({s.id for s in SKILLS}) == 5 and len({t.id for t in TOPICS}) == 5
    assert all(s.exercises for s in SKILLS)
    assert MAPPED_LESSONS == ["3.1", "3.2", "3.3", "3.4"]


@pytest.mark.parametrize("lesson_id", MAPPED_LESSONS)
def test_every_mapped_exercise_exists_in_the_catalogue(lesson_id):
    if lesson_id not in lessons():
        pytest.skip(f"lesson {lesson_id} is not in this copy of the course")
    mapped = sorted({e for s in SKILLS for e in s.exercises if e.startswith(lesson_id + "/")})
    missing = [e for e in mapped if e not in exercises()]
    assert not missing, f"skills map to exercise ids that lesson {lesson_id} does not have: {missing}; known: {sorted(exercises())}"


def _report(outcomes: dict[str, str], reference: bool = False) -> GradeReport:
    verdicts = {}
    for exercise_id, outcome in outcomes.items():
        lesson, _, name = exercise_id.partition("/")
        exercise = exercises().get(exercise_id, Exercise(lesson, name, "?"))
        verdicts[exercise_id] = ExerciseVerdict(exercise, outcome, "hint text" if outcome == FAILED else "", 1, 1, reference)
    return GradeReport(verdicts)


ST_IDS = [e.id for e in lessons()["3.1"].exercises]


def test_skill_status_from_verdicts():
    skills = (
        Skill("all-pass", "all pass", ("3.1/ema_update", "3.1/build_teacher")),
        Skill("one-fails", "one fails", ("3.1/ema_update", "3.1/cosine_schedule")),
        Skill("not-started", "not started", ("3.1/sync_teacher",)),
        Skill("future", "future lesson", ("9.9/something",)),
        Skill("partly", "partly available", ("3.1/ema_update", "9.9/something")),
        Skill("typo", "unknown id", ("3.1/ema_updat",)),
        Skill("crashed", "grading crashed", ("3.1/ema_update",)),
    )
    outcomes = {e: PASSED for e in ST_IDS}
    outcomes["3.1/cosine_schedule"] = FAILED
    outcomes["3.1/sync_teacher"] = NOT_STARTED
    results = {r.skill.id: r for r in skills_check(skills[:-1], {"3.1": _report(outcomes)})}
    assert results["all-pass"].status == DEMONSTRATED and not results["all-pass"].with_reference
    assert results["one-fails"].status == NEEDS_WORK
    failed = next(e for e in results["one-fails"].exercises if e.outcome == FAILED)
    assert failed.message == "hint text" and failed.revisit.startswith("Lesson 3.1")
    assert results["not-started"].status == NEEDS_WORK
    assert results["future"].status == NOT_AVAILABLE
    assert results["partly"].status == DEMONSTRATED and results["partly"].missing_lessons == ["9.9"]
    assert results["typo"].status == NEEDS_WORK
    crashed = skills_check(skills[-1:], {"3.1": RuntimeError("boom")})[0]
    assert crashed.status == NEEDS_WORK and "boom" in crashed.exercises[0].message
    text = render_skills(list(results.values()))
    assert "revisit: Lesson 3.1" in text and "lesson 9.9 not available yet" in text


def test_reference_passes_are_labelled_as_not_your_own():
    result = skills_check(SKILLS[:1], {"3.1": _report({e: PASSED for e in ST_IDS}, reference=True)})[0]
    assert result.status == DEMONSTRATED and result.with_reference
    assert "reference code" in render_skills([result])
    assert "reference code" in assessment.skills_html([result])


def test_skills_check_runs_the_real_hidden_checks(monkeypatch):
    """With the reference on, the 3.1 skill is demonstrated; with the learner's stubs it needs work."""
    from dino_course.grading.reference_switch import use_reference

    monkeypatch.setenv("DINO_COURSE_REFERENCE", "")
    try:
        use_reference("3.1")
        result = skills_check(SKILLS[:1])[0]
        assert result.status == DEMONSTRATED and result.with_reference
        use_reference(None)
        stub = skills_check(SKILLS[:1])[0]
    finally:
        use_reference(None)
    if all(e.outcome == NOT_STARTED for e in stub.exercises):  # a fresh clone: the stubs are untouched
        assert stub.status == NEEDS_WORK
        assert all(e.revisit for e in stub.exercises)


def test_section_to_revisit_reads_the_lesson_notebook(tmp_path, monkeypatch):
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": "# Lesson 3.1\n## 4. The EMA update\nimplement `ema_update`"},
            {"cell_type": "code", "source": 'check("3.1", "ema_update")'},
            {"cell_type": "markdown", "source": "## 5. The momentum schedule"},
            {"cell_type": "code", "source": 'check("3.1", "cosine_schedule")'},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / lessons()["3.1"].notebook
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(notebook))
    monkeypatch.setattr(assessment, "REPO_ROOT", tmp_path)
    assert assessment.section_to_revisit("3.1/ema_update") == f'Lesson 3.1, section "4. The EMA update" ({lessons()["3.1"].notebook})'
    assert '"5. The momentum schedule"' in assessment.section_to_revisit("3.1/cosine_schedule")
    assert "the part on `sync_teacher`" in assessment.section_to_revisit("3.1/sync_teacher")
    path.unlink()
    assert "dino_course/student_teacher.py" in assessment.section_to_revisit("3.1/sync_teacher")
    assert "not in your copy" in assessment.section_to_revisit("9.9/x")


# ----------------------------------------------------------------------------- rating sliders


def test_rating_panel_saves_on_change_and_reloads(store):
    panel = RatingPanel(store)
    assert all("not rated yet" in panel.status[t.id].value for t in TOPICS)
    assert store.ratings() == {}
    panel.sliders["ema"].value = 8
    panel.sliders["heads"].value = 2
    assert store.ratings() == {"ema": 8, "heads": 2}
    assert panel.status["ema"].value == "saved"
    reopened = RatingPanel(store)
    assert reopened.sliders["ema"].value == 8 and reopened.sliders["heads"].value == 2
    assert reopened.status["ema"].value == "saved" and "not rated" in reopened.status["multicrop"].value
    reopened.save_all_button.click()  # "5 is right for me": save the untouched sliders too
    assert store.ratings() == {"ema": 8, "heads": 2, "multicrop": 5, "integration": 5, "debugging": 5}
    assert "saved 5 of 5" in reopened.message.value


def test_rating_panel_survives_a_damaged_file_and_an_unwritable_one(store, monkeypatch):
    store.path.write_text('{"format": "dino-course-progress", "version": 1, "ratings": {"ema": {"value": 42}}, "quiz": {}}')
    panel = RatingPanel(store)  # reported and kept aside, no crash
    assert panel.sliders["ema"].value == RatingPanel.UNRATED_POSITION
    assert len(list(store.path.parent.glob("progress.json.damaged-*"))) == 1

    def refuse(*args, **kwargs):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(store, "set_rating", refuse)
    panel.sliders["ema"].value = 9
    assert "not saved" in panel.status["ema"].value


# ----------------------------------------------------------------------------- dashboard


def test_dashboard_rows_combine_grades_ratings_and_quiz(store):
    from dino_course.assessment.quiz import questions

    store.set_rating("ema", 6)
    store.set_rating("debugging", 9)  # taught in 3.1 and 3.4
    first = next(q for q in questions() if q.lesson == "3.1" and q.kind == "choice")
    store.record_answer(first.id, first.key["answer"])
    outcomes = {e: PASSED for e in ST_IDS}
    outcomes["3.1/ema_update"] = FAILED
    rows = {r.lesson: r for r in dashboard.course_progress(store, {"3.1": _report(outcomes)}, grade=False)}
    row = rows["3.1"]
    assert (row.passed, row.failed, row.exercises_total) == (len(ST_IDS) - 1, 1, len(ST_IDS))
    assert row.rating == pytest.approx(7.5)
    assert (row.quiz_correct, row.quiz_answered) == (1, 1)
    assert row.quiz_total == sum(q.lesson == "3.1" for q in questions())
    text = dashboard.render_table(list(rows.values()))
    assert f"{len(ST_IDS) - 1} of {len(ST_IDS)}, 1 failed" in text and "7.5/10" in text
    assert "<table>" in dashboard.table_html(list(rows.values()))
    ax = dashboard.plot_progress(list(rows.values()))
    assert len(ax.patches) == 3 * len(rows)


def test_a_progress_file_saved_before_lesson_3_3_was_split_reads_the_same(store):
    """Lesson 3.3 (head, model, diagnostics) became 3.3 (head) and 3.4 (model, diagnostics), and the
    assessment moved from 3.4 to 3.5. The progress file keys ratings by topic id and quiz answers by
    question id, never by lesson, so a file saved before the split needs no migration: it is read as
    it is (no notice, nothing kept aside, not rewritten), and each rating and answer is shown under
    the lesson that teaches its topic now; nothing lands under 3.5, the assessment."""
    from dino_course.assessment.quiz import questions

    by_id = {q.id: q for q in questions()}
    saved_at = "2026-11-30T10:00:00Z"
    before_split = {
        "format": "dino-course-progress", "version": 1,
        "ratings": {"heads": {"value": 4, "saved_at": saved_at}, "integration": {"value": 8, "saved_at": saved_at},
                    "debugging": {"value": 6, "saved_at": saved_at}},
        "quiz": {"freeze-last-layer": {"answer": by_id["freeze-last-layer"].key["answer"], "attempts": 1, "saved_at": saved_at},
                 "uniform-collapse-entropy": {"answer": by_id["uniform-collapse-entropy"].key["answer"], "attempts": 2,
                                              "saved_at": saved_at}},
    }
    text = json.dumps(before_split, indent=2, sort_keys=True) + "\n"
    store.path.write_text(text, encoding="utf-8")
    rows = {r.lesson: r for r in dashboard.course_progress(store, {}, grade=False)}
    assert store.notices == [] and store.path.read_text(encoding="utf-8") == text
    assert by_id["freeze-last-layer"].lesson == "3.3" and by_id["uniform-collapse-entropy"].lesson == "3.4"
    assert rows["3.3"].rating == 4 and (rows["3.3"].quiz_correct, rows["3.3"].quiz_answered) == (1, 1)
    assert rows["3.4"].rating == pytest.approx(7.0)  # integration 8 and debugging 6, both taught in 3.4 now
    assert (rows["3.4"].quiz_correct, rows["3.4"].quiz_answered) == (1, 1)
    assert "3.5" not in rows, "the assessment has no exercises, topics or quiz questions of its own"


@pytest.mark.parametrize("n_lessons", [1, 9, 10, 20])
def test_progress_chart_labels_are_readable_and_do_not_overlap(n_lessons):
    """The 3.5 chart: no tick label overlaps another (9 lessons today, 10 or 20 later), no text under 9 pt."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        dashboard.LessonProgress(
            lesson=f"{3 + index // 5}.{index % 5 + 1}", title="a lesson", exercises_total=7, passed=index % 8,
            failed=0, not_started=0, reference=False, rating=5.0, quiz_correct=1, quiz_answered=2, quiz_total=3)
        for index in range(n_lessons)
    ]
    ax = dashboard.plot_progress(rows)
    figure = ax.figure
    figure.set_dpi(100)  # the notebooks' stored resolution (matplotlib-inline's default)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    labels = [label for label in ax.get_yticklabels() if label.get_text()]
    assert [label.get_text() for label in labels] == [f"Lesson {row.lesson}" for row in rows]
    boxes = [label.get_window_extent(renderer) for label in labels]
    for first, second in zip(boxes, boxes[1:]):
        assert not first.overlaps(second), f"tick labels overlap: {first} and {second}"
    texts = [text for text in figure.findobj(matplotlib.text.Text) if text.get_text()]
    small = {text.get_text(): text.get_fontsize() for text in texts if text.get_fontsize() < 9}
    assert not small, f"text below 9 pt in the progress chart: {small}"
    plt.close(figure)


def test_dashboard_without_grading_leaves_exercises_unknown(store):
    rows = dashboard.course_progress(store, grade=False)
    assert rows and all(r.passed is None for r in rows)
    assert "? of" in dashboard.render_table(rows)


def test_cli_progress_command(tmp_path):
    path = tmp_path / "progress.json"
    ProgressStore(path).set_rating("ema", 7)
    env = {**os.environ, "DINO_COURSE_PROGRESS": str(path), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "dino_course", "progress", "--no-grade"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "7.0/10" in result.stdout and "lesson" in result.stdout
    path.write_text("{broken")
    result = subprocess.run(
        [sys.executable, "-m", "dino_course", "progress", "--no-grade"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and "could not be read" in result.stderr


def test_untouched_stubs_are_not_started_without_running_checks(monkeypatch):
    """The shortcut agrees with the real grader on a fresh clone, and steps aside once a file changes."""
    from dino_course.grading import stubs
    from dino_course.grading.catalog import solution_modules

    monkeypatch.setenv("DINO_COURSE_REFERENCE", "")
    graded = []

    def fake_grade(lesson_id):
        graded.append(lesson_id)
        return GradeReport()

    solution = next(s for s in solution_modules() if s.lesson == "3.1")
    fresh = stubs.stub_path(solution).read_text(encoding="utf-8") == stubs.generate_stub(solution)
    reports = assessment.grade_lessons(["3.1"], grade=fake_grade)
    if fresh:
        assert graded == [] and reports["3.1"].counts("3.1")[NOT_STARTED] == len(ST_IDS)
    else:  # a learner's copy with work in it: the real checks run
        assert graded == ["3.1"]

    with monkeypatch.context() as patch:
        patch.setattr(stubs, "generate_stub", lambda solution: "an edited file")
        graded.clear()
        assessment.grade_lessons(["3.1"], grade=fake_grade)
        assert graded == ["3.1"], "an edited exercise file must be graded by its checks"

    monkeypatch.setenv("DINO_COURSE_REFERENCE", "3.1")
    graded.clear()
    assessment.grade_lessons(["3.1"], grade=fake_grade)
    assert graded == ["3.1"], "with the reference on, the checks run"
