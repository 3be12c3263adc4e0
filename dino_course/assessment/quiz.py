"""The Module 3 quiz: why DINO works. Questions, the grader, scores and the quiz widget.

The questions live in `quiz_bank.py`. Each question's answer key (the right answer, a tolerance
for numbers, and an explanation for every answer a learner can give) is stored *encoded*, so a
learner who opens the notebook, or glances at the bank, does not see the answers. This is
obfuscation, not security: like `solutions/`, the key is there for anyone who decodes it
with `decode_key`. Maintainers edit a question by decoding its key, changing it and storing
`encode_key(question_id, key)` (see CONTRIBUTING.md, "Lesson 3.5's skills and quiz").

Decoded key of a multiple-choice question:

    {"answer": "<choice id>", "explanations": {"<choice id>": "<why this answer is right/wrong>", ...}}

Decoded key of a numeric question:

    {"answer": <number>, "tolerance": <absolute>, "explanation": "<shown when right or revealed>",
     "hint": "<shown when wrong>", "mistakes": [[<value>, <tolerance>, "<says what this slip is>"], ...]}
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from dino_course.assessment.quiz_bank import QUESTIONS

__all__ = [
    "Choice", "Question", "Feedback", "questions", "question", "grade_answer", "quiz_scores", "QuizPanel",
    "encode_key", "decode_key", "REVEAL_AFTER_ATTEMPTS",
]

# ipywidgets gives every radio option one fixed-height line (--jp-widgets-radio-item-height), so a
# long answer wrapped onto a second line ran into the next option and covered it (a learner could
# not click the option under it). Options of the quiz get rows as tall as their text instead.
CHOICES_CLASS = "dino-quiz-choices"
CHOICES_CSS = f"""<style>
.{CHOICES_CLASS} .widget-radio-box label {{
  height: auto; min-height: var(--jp-widgets-radio-item-height); line-height: 1.35;
  white-space: normal; padding: 3px 0; overflow: visible;
}}
.{CHOICES_CLASS} .widget-radio-box input {{ height: 1.35em; }}
</style>"""

REVEAL_AFTER_ATTEMPTS = 2  # after two wrong tries the right answer is shown with its explanation


# ----------------------------------------------------------------------------- the answer key


def _keystream(question_id: str, length: int) -> bytes:
    stream = b""
    counter = 0
    while len(stream) < length:
        stream += hashlib.sha256(f"dino-course quiz {question_id} {counter}".encode()).digest()
        counter += 1
    return stream[:length]


def encode_key(question_id: str, key: dict[str, Any]) -> str:
    """Encode a question's answer key (see the module docstring) for storing in `quiz_bank.py`."""
    data = json.dumps(key, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, _keystream(question_id, len(data))))).decode("ascii")


def decode_key(question_id: str, encoded: str) -> dict[str, Any]:
    """The answer key of `question_id` from its encoded form."""
    data = base64.b64decode(encoded)
    return json.loads(bytes(a ^ b for a, b in zip(data, _keystream(question_id, len(data)))).decode("utf-8"))


# ----------------------------------------------------------------------------- questions


@dataclass(frozen=True)
class Choice:
    id: str
    text: str


@dataclass(frozen=True)
class Question:
    id: str
    lesson: str  # the lesson whose ideas it asks about, e.g. "3.1"
    topic: str  # the self-rating topic it belongs to (see `assessment.TOPICS`)
    kind: str  # "choice" or "number"
    prompt: str
    choices: tuple[Choice, ...] = ()
    unit: str = ""
    encoded_key: str = ""

    @property
    def key(self) -> dict[str, Any]:
        return decode_key(self.id, self.encoded_key)


@functools.lru_cache(maxsize=1)
def questions() -> tuple[Question, ...]:
    """Every quiz question, in the order the notebook shows them."""
    return tuple(
        Question(
            id=q["id"],
            lesson=q["lesson"],
            topic=q["topic"],
            kind=q["kind"],
            prompt=q["prompt"],
            choices=tuple(Choice(c, t) for c, t in q.get("choices", ())),
            unit=q.get("unit", ""),
            encoded_key=q["key"],
        )
        for q in QUESTIONS
    )


def question(question_id: str) -> Question:
    for candidate in questions():
        if candidate.id == question_id:
            return candidate
    raise ValueError(f"question_id must be one of {[q.id for q in questions()]}, got {question_id!r}")


# ----------------------------------------------------------------------------- grading


@dataclass(frozen=True)
class Feedback:
    """What the learner sees after answering."""

    question_id: str
    correct: bool
    message: str  # the explanation of the answer given (or a hint for a wrong number)
    revealed: str = ""  # the right answer and its explanation, when `reveal` was asked for


def parse_number(answer: Any) -> float:
    """A numeric answer from a number or from text such as '0.998' or '1e-3'."""
    if isinstance(answer, bool):
        raise TypeError(f"answer must be a number, got {answer!r}")
    if isinstance(answer, (int, float)):
        value = float(answer)
    elif isinstance(answer, str):
        try:
            value = float(answer.strip().replace(" ", ""))
        except ValueError:
            raise ValueError(f"answer must be a number such as 0.998 or 250, got {answer!r}") from None
    else:
        raise TypeError(f"answer must be a number or text holding one, got {type(answer).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"answer must be a finite number, got {answer!r}")
    return value


def _format_number(value: float) -> str:
    return f"{value:g}"


def grade_answer(question_id: str, answer: Any, *, reveal: bool = False) -> Feedback:
    """Grade one answer and explain it.

    Args:
        question_id: the question's id.
        answer: a choice id ('a', 'b', ...) for a multiple-choice question; a number (or text
            holding one) for a numeric question.
        reveal: also return the right answer and its explanation (e.g. after two wrong tries).

    Raises:
        ValueError: unknown question, a choice id that the question does not have, or text that is not a number.
        TypeError: an answer of the wrong type.
    """
    q = question(question_id)
    key = q.key
    if q.kind == "choice":
        ids = [c.id for c in q.choices]
        if not isinstance(answer, str):
            raise TypeError(f"answer must be one of the choice ids {ids}, got {answer!r}")
        if answer not in ids:
            raise ValueError(f"answer must be one of the choice ids {ids}, got {answer!r}")
        correct = answer == key["answer"]
        revealed = ""
        if reveal and not correct:
            right = next(c for c in q.choices if c.id == key["answer"])
            revealed = f"The answer is ({right.id}) {right.text} {key['explanations'][right.id]}"
        return Feedback(q.id, correct, key["explanations"][answer], revealed)

    value = parse_number(answer)
    correct = abs(value - key["answer"]) <= key["tolerance"]
    if correct:
        message = key["explanation"]
    else:
        slips = [says for wrong, tolerance, says in key.get("mistakes", []) if abs(value - wrong) <= tolerance]
        message = slips[0] if slips else key["hint"]
    revealed = ""
    if reveal and not correct:
        unit = f" {q.unit}" if q.unit else ""
        revealed = f"The answer is {_format_number(key['answer'])}{unit}. {key['explanation']}"
    return Feedback(q.id, correct, message, revealed)


def is_correct(question_id: str, answer: Any) -> bool:
    """Whether a stored answer is right under the current key; False for answers that no longer parse."""
    try:
        return grade_answer(question_id, answer).correct
    except (TypeError, ValueError):
        return False


def quiz_scores(answers: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per lesson: {'correct', 'answered', 'total'} from stored answers ({question id: {'answer': ...}}).

    Answers to questions that are no longer in the bank are ignored (but left in the file).
    """
    scores: dict[str, dict[str, int]] = {}
    for q in questions():
        entry = scores.setdefault(q.lesson, {"correct": 0, "answered": 0, "total": 0})
        entry["total"] += 1
        stored = answers.get(q.id)
        if stored is not None:
            entry["answered"] += 1
            entry["correct"] += is_correct(q.id, stored.get("answer"))
    return scores


# ----------------------------------------------------------------------------- the widget


class QuizPanel:
    """One box per question: choices or a number field, a *Check* button, and feedback.

    Answers are saved to the progress store on every check, and the panel shows the saved
    answers again when it is rebuilt (e.g. when the notebook is reopened). The logic is
    plain Python: tests set `answer_widgets[qid].value` and call `check_buttons[qid].click()`.
    """

    def __init__(self, store, chosen: tuple[Question, ...] | None = None) -> None:
        import ipywidgets as widgets

        self.store = store
        self.questions = chosen if chosen is not None else questions()
        self.answer_widgets: dict[str, Any] = {}
        self.check_buttons: dict[str, Any] = {}
        self.feedback: dict[str, Any] = {}
        self.score_label = widgets.HTML()
        boxes = []
        saved = self._saved_answers()
        for number, q in enumerate(self.questions, start=1):
            prompt = widgets.HTML(f"<b>Q{number}.</b> {_escape(q.prompt)}")
            if q.kind == "choice":
                answer = widgets.RadioButtons(
                    options=[(f"({c.id}) {c.text}", c.id) for c in q.choices],
                    value=None,
                    layout=widgets.Layout(width="auto", height="auto"),
                    style={"description_width": "0px"},
                )
                answer.add_class(CHOICES_CLASS)
            else:
                answer = widgets.Text(placeholder="a number" + (f" ({q.unit})" if q.unit else ""))
            button = widgets.Button(description="Check", button_style="primary")
            feedback = widgets.HTML()
            button.on_click(lambda _button, qid=q.id: self.check(qid))
            self.answer_widgets[q.id], self.check_buttons[q.id], self.feedback[q.id] = answer, button, feedback
            if q.id in saved:
                self._restore(q, saved[q.id])
            boxes.append(widgets.VBox([prompt, answer, widgets.HBox([button]), feedback]))
        # the style sheet travels with the panel (an HTML widget), so every option wraps and stays clickable
        self.widget = widgets.VBox([widgets.HTML(CHOICES_CSS), *boxes, self.score_label])
        self._update_score(saved)

    def _saved_answers(self) -> dict[str, dict[str, Any]]:
        try:
            return self.store.quiz_answers()
        except OSError as exc:
            self.score_label.value = f"<i>Could not read your saved answers: {_escape(str(exc))}</i>"
            return {}

    def _restore(self, q: Question, entry: dict[str, Any]) -> None:
        answer = entry.get("answer")
        widget = self.answer_widgets[q.id]
        try:
            widget.value = answer if q.kind == "choice" else _format_number(parse_number(answer))
        except Exception:  # an answer that no longer fits the question: leave the widget empty
            return
        self._show(q, answer, entry.get("attempts", 1), saved_earlier=True)

    def _show(self, q: Question, answer: Any, attempts: int, *, saved_earlier: bool = False) -> bool:
        try:
            result = grade_answer(q.id, answer, reveal=attempts >= REVEAL_AFTER_ATTEMPTS)
        except (TypeError, ValueError) as exc:
            self.feedback[q.id].value = f"<span style='color:#b35c00'>{_escape(str(exc))}</span>"
            return False
        prefix = "Your saved answer: " if saved_earlier else ""
        if result.correct:
            text = f"<span style='color:#1a7f37'>✓ {prefix}correct.</span> {_escape(result.message)}"
        else:
            text = f"<span style='color:#cf222e'>✗ {prefix}not quite.</span> {_escape(result.message)}"
            if result.revealed:
                text += f"<br><i>{_escape(result.revealed)}</i>"
            else:
                text += " <i>Try again.</i>"
        self.feedback[q.id].value = text
        return True

    def check(self, question_id: str) -> None:
        """Grade the current answer to `question_id`, show the feedback and save the answer."""
        q = question(question_id)
        answer = self.answer_widgets[q.id].value
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            self.feedback[q.id].value = "<i>Choose an answer first.</i>" if q.kind == "choice" else "<i>Type a number first.</i>"
            return
        if q.kind == "number":
            try:
                answer = parse_number(answer)
            except (TypeError, ValueError) as exc:
                self.feedback[q.id].value = f"<span style='color:#b35c00'>{_escape(str(exc))}</span>"
                return
        try:
            attempts = self.store.record_answer(q.id, answer)
            saved = None
        except OSError as exc:  # unwritable folder, lock timeout: say so, keep the feedback
            attempts, saved = 1, f"<br><i>(could not save your answer: {_escape(str(exc))})</i>"
        self._show(q, answer, attempts)
        if saved:
            self.feedback[q.id].value += saved
        self._update_score()

    def _update_score(self, answers: dict[str, dict[str, Any]] | None = None) -> None:
        if answers is None:
            answers = self._saved_answers()
        chosen = {q.id for q in self.questions}
        correct = sum(is_correct(qid, entry.get("answer")) for qid, entry in answers.items() if qid in chosen)
        answered = sum(qid in answers for qid in chosen)
        self.score_label.value = f"<b>Score: {correct} of {len(chosen)} correct</b> ({answered} answered)"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)
