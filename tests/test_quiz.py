"""helpers.quiz: feedback is right, wrong answers explain, widgets read as text outside JupyterLab."""

from __future__ import annotations

import pytest

from helpers import quiz

QUESTION = quiz.Choice("Which model is AWS EC2?", ("SaaS", "PaaS", "IaaS"), "IaaS", "You manage the OS upward.")


def test_right_and_wrong_answers_give_feedback():
    assert str(QUESTION.check("IaaS")) == "✓ IaaS: right. You manage the OS upward."
    wrong = QUESTION.check("SaaS")
    assert not wrong.correct and "the answer is IaaS" in str(wrong)


def test_an_answer_outside_the_options_is_a_clear_error():
    with pytest.raises(ValueError, match="'FaaS' is not one of the options: SaaS, PaaS, IaaS"):
        QUESTION.check("FaaS")
    with pytest.raises(ValueError, match="not among the options"):
        quiz.Choice("?", ("a", "b"), "c", "")


def test_widget_gives_feedback_on_click_and_reads_as_text():
    box = quiz.ask(QUESTION)
    header, buttons, feedback = box.children
    buttons.value = "PaaS"
    assert "the answer is IaaS" in feedback.value
    buttons.value = "IaaS"
    assert "right" in feedback.value
    assert box._repr_mimebundle_()["text/plain"] == QUESTION.as_text()
