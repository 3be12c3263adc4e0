"""Lesson 3.5's quiz: the bank is complete and consistent, the grader is right, the key is hidden."""

from __future__ import annotations

import json
import math

import pytest

from dino_course.assessment import quiz
from dino_course.assessment.self_assessment import TOPICS
from dino_course.grading.catalog import REPO_ROOT

pytestmark = pytest.mark.maintainer

NOTEBOOK = REPO_ROOT / "lessons" / "module3" / "3.5_assessment.ipynb"
QUESTIONS = quiz.questions()
CHOICE = [q for q in QUESTIONS if q.kind == "choice"]
NUMBER = [q for q in QUESTIONS if q.kind == "number"]


def test_bank_size_and_kinds():
    assert len(QUESTIONS) >= 12
    assert len(CHOICE) >= 6 and len(NUMBER) >= 3, "the quiz mixes multiple choice and numeric questions"
    assert len({q.id for q in QUESTIONS}) == len(QUESTIONS), "question ids must be unique"
    assert {q.kind for q in QUESTIONS} == {"choice", "number"}
    assert {q.topic for q in QUESTIONS} <= {t.id for t in TOPICS}


@pytest.mark.parametrize("q", CHOICE, ids=lambda q: q.id)
def test_choice_key_is_complete(q):
    key = q.key
    ids = [c.id for c in q.choices]
    assert len(ids) == len(set(ids)) >= 3
    assert key["answer"] in ids
    assert set(key["explanations"]) == set(ids), "every answer a learner can give needs its explanation"
    assert all(len(text) > 20 for text in key["explanations"].values())


@pytest.mark.parametrize("q", NUMBER, ids=lambda q: q.id)
def test_number_key_is_consistent(q):
    key = q.key
    assert math.isfinite(key["answer"]) and key["tolerance"] >= 0
    assert key["explanation"] and key["hint"]
    for wrong, tolerance, says in key["mistakes"]:
        assert abs(wrong - key["answer"]) > key["tolerance"] + tolerance, f"mistake {wrong} overlaps the right answer"
        assert says


def test_grader_on_every_question():
    for q in QUESTIONS:
        key = q.key
        if q.kind == "choice":
            right = quiz.grade_answer(q.id, key["answer"])
            assert right.correct and right.message == key["explanations"][key["answer"]]
            for choice in q.choices:
                if choice.id != key["answer"]:
                    wrong = quiz.grade_answer(q.id, choice.id, reveal=True)
                    assert not wrong.correct and wrong.message == key["explanations"][choice.id]
                    assert wrong.revealed.startswith(f"The answer is ({key['answer']})")
        else:
            assert quiz.grade_answer(q.id, key["answer"]).correct
            assert quiz.grade_answer(q.id, str(key["answer"])).correct, "text answers are parsed"
            off = key["answer"] + key["tolerance"] + max(1e-3, abs(key["answer"]) * 0.05)
            assert not quiz.grade_answer(q.id, off).correct


def test_numeric_answers_hand_computed():
    # independent of the key: values worked out by hand in the questions' explanations
    assert quiz.grade_answer("ema-window", 1 / (1 - 0.996)).correct
    assert quiz.grade_answer("momentum-halfway", 1 - (1 - 0.996) * (math.cos(math.pi / 2) + 1) / 2).correct
    assert quiz.grade_answer("multicrop-loss-terms", 2 * 10 - 2).correct
    assert quiz.grade_answer("local-crop-tokens", (96 // 16) ** 2).correct
    assert quiz.grade_answer("uniform-collapse-entropy", round(math.log(65536), 2)).correct
    assert not quiz.grade_answer("uniform-collapse-entropy", math.log2(65536)).correct


def test_common_slips_get_their_own_explanation():
    assert "itself" in quiz.grade_answer("multicrop-loss-terms", 20).message
    assert "CLS" in quiz.grade_answer("local-crop-tokens", "37").message
    assert "bits" in quiz.grade_answer("uniform-collapse-entropy", 16).message
    assert quiz.grade_answer("local-crop-tokens", 35).message == quiz.question("local-crop-tokens").key["hint"]


def test_grader_refuses_bad_input_clearly():
    with pytest.raises(ValueError, match="question_id"):
        quiz.grade_answer("no-such-question", "a")
    with pytest.raises(ValueError, match="choice ids"):
        quiz.grade_answer(CHOICE[0].id, "z")
    with pytest.raises(TypeError, match="choice ids"):
        quiz.grade_answer(CHOICE[0].id, 1)
    with pytest.raises(ValueError, match="number"):
        quiz.grade_answer(NUMBER[0].id, "two hundred")
    with pytest.raises(ValueError, match="finite"):
        quiz.grade_answer(NUMBER[0].id, "inf")


def test_key_round_trip_and_not_in_plain_text():
    key = {"answer": "b", "explanations": {"a": "no", "b": "yes"}}
    assert quiz.decode_key("x", quiz.encode_key("x", key)) == key
    bank = (REPO_ROOT / "dino_course" / "assessment" / "quiz_bank.py").read_text(encoding="utf-8")
    for q in QUESTIONS:
        texts = list(q.key["explanations"].values()) if q.kind == "choice" else [q.key["explanation"], q.key["hint"]]
        for text in texts:
            assert text[:40] not in bank, f"{q.id}: an explanation is readable in quiz_bank.py"
        assert "'answer'" not in bank and '"answer"' not in bank


@pytest.mark.skipif(not NOTEBOOK.exists(), reason="notebook not built")
def test_notebook_source_shows_no_answers():
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    source = "\n".join("".join(cell["source"]) for cell in notebook["cells"])
    assert "grade_answer(" not in source and "decode_key" not in source and ".key" not in source
    for q in QUESTIONS:
        texts = list(q.key["explanations"].values()) if q.kind == "choice" else [q.key["explanation"]]
        for text in texts:
            assert text[:40] not in source, f"{q.id}: the notebook source shows an explanation"


def test_scores_are_recomputed_from_answers():
    first, number = CHOICE[0], NUMBER[0]
    wrong = next(c.id for c in first.choices if c.id != first.key["answer"])
    answers = {
        first.id: {"answer": first.key["answer"], "attempts": 1},
        number.id: {"answer": "not a number any more", "attempts": 3},  # stale answers count as wrong, no crash
        "retired-question": {"answer": "a", "attempts": 1},
    }
    scores = quiz.quiz_scores(answers)
    assert sum(s["total"] for s in scores.values()) == len(QUESTIONS)
    assert sum(s["answered"] for s in scores.values()) == 2
    assert sum(s["correct"] for s in scores.values()) == 1
    answers[first.id]["answer"] = wrong
    assert sum(s["correct"] for s in quiz.quiz_scores(answers).values()) == 0


# ----------------------------------------------------------------------------- the widget, driven by setting values


def test_quiz_panel_feedback_saving_and_reveal(store):
    panel = quiz.QuizPanel(store)
    q = CHOICE[0]
    wrong = next(c.id for c in q.choices if c.id != q.key["answer"])
    panel.check_buttons[q.id].click()  # nothing chosen yet
    assert "Choose an answer" in panel.feedback[q.id].value
    panel.answer_widgets[q.id].value = wrong
    panel.check_buttons[q.id].click()
    assert "not quite" in panel.feedback[q.id].value and "Try again" in panel.feedback[q.id].value
    panel.check_buttons[q.id].click()  # second wrong try: the answer is revealed
    assert "The answer is" in panel.feedback[q.id].value
    panel.answer_widgets[q.id].value = q.key["answer"]
    panel.check_buttons[q.id].click()
    assert "✓" in panel.feedback[q.id].value
    assert store.quiz_answers()[q.id] == {**store.quiz_answers()[q.id], "answer": q.key["answer"], "attempts": 3}
    assert "Score: 1 of" in panel.score_label.value


def test_quiz_panel_numeric_input_and_reload(store):
    panel = quiz.QuizPanel(store)
    q = NUMBER[0]
    panel.answer_widgets[q.id].value = "two hundred"
    panel.check_buttons[q.id].click()
    assert "must be a number" in panel.feedback[q.id].value
    assert q.id not in store.quiz_answers(), "an unparsable answer is not saved"
    panel.answer_widgets[q.id].value = str(q.key["answer"])
    panel.check_buttons[q.id].click()
    assert "✓" in panel.feedback[q.id].value
    reopened = quiz.QuizPanel(store)  # the notebook is opened again
    assert float(reopened.answer_widgets[q.id].value) == q.key["answer"]
    assert "saved answer" in reopened.feedback[q.id].value
    assert "Score: 1 of" in reopened.score_label.value


def test_quiz_panel_reports_an_unwritable_store(store, monkeypatch):
    panel = quiz.QuizPanel(store)
    q = CHOICE[0]

    def refuse(*args, **kwargs):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(store, "record_answer", refuse)
    panel.answer_widgets[q.id].value = q.key["answer"]
    panel.check_buttons[q.id].click()  # no exception into the widget
    assert "could not save" in panel.feedback[q.id].value and "✓" in panel.feedback[q.id].value


def test_the_right_choice_does_not_give_itself_away_by_length():
    """A test-wise learner picks the longest option: it must not be right more often than chance."""
    longest_is_right = 0
    for q in CHOICE:
        lengths = {c.id: len(c.text) for c in q.choices}
        longest_is_right += lengths[q.key["answer"]] == max(lengths.values())
        assert max(lengths.values()) <= 2 * min(lengths.values()), f"{q.id}: choice lengths differ too much: {lengths}"
    assert longest_is_right <= len(CHOICE) / 3, f"the right answer is the longest in {longest_is_right} of {len(CHOICE)}"


def test_quiz_choices_get_rows_as_tall_as_their_text(store):
    """ipywidgets' fixed-height radio rows let a wrapped option run into (and cover) the next one."""
    panel = quiz.QuizPanel(store)
    style = panel.widget.children[0]
    assert quiz.CHOICES_CSS == style.value and "height: auto" in style.value
    for q in CHOICE:
        radio = panel.answer_widgets[q.id]
        assert quiz.CHOICES_CLASS in radio._dom_classes, q.id
