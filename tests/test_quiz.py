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


# --- the question bank ---------------------------------------------------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BANK = quiz.bank()


def _headings() -> dict[str, set[str]]:
    found = {}
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(notebook.read_text())["cells"]
        found[notebook.name] = {line.lstrip("#").strip() for cell in cells if cell["cell_type"] == "markdown"
                                for line in "".join(cell["source"]).splitlines() if line.startswith("#")}
    return found


def test_every_lecture_has_a_bank_of_at_least_fifteen_mixed_questions():
    assert quiz.lectures() == [1, 2, 3, 4]
    for lecture in quiz.lectures():
        questions = quiz.bank(lecture)
        assert len(questions) >= 15, lecture
        assert {question.type for question in questions} == set(quiz.TYPES), lecture
        assert all(question.id.startswith(f"l{lecture}-") for question in questions)
    ids = [question.id for question in BANK]
    assert len(ids) == len(set(ids)), "question ids must be unique"


def test_every_question_links_to_a_heading_that_exists():
    headings = _headings()
    for question in BANK:
        assert question.heading in headings.get(question.notebook, set()), (question.id, question.notebook,
                                                                             question.heading)
        assert question.link == f"{question.notebook}#{question.heading.replace(' ', '-')}"


def test_every_lecture_notebook_ends_with_a_self_check_from_the_bank():
    notebooks = sorted(path.name for path in (ROOT / "notebooks").glob("0[1-4].*.ipynb"))
    for name in notebooks:
        assert quiz.for_notebook(name), f"no bank question on {name}"
        cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
        code = "".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
        assert f'quiz.self_check("{name}"' in code, name


def _right(question):
    """The right answer, given in the form a student types: letters for options."""
    if question.type == "single":
        return quiz.LETTERS[question.options.index(question.answer)]
    if question.type in ("multiple", "order"):
        return "".join(quiz.LETTERS[question.options.index(item)] for item in question.answer)
    return question.answer


def _wrong(question):
    if question.type == "single":
        return next(option for option in question.options if option != question.answer)
    if question.type == "multiple":
        return [option for option in question.options if option not in question.answer][:1]
    if question.type == "order":
        return list(reversed(question.answer))
    if question.type == "truefalse":
        return not question.answer
    return question.answer + max(10 * question.tolerance, 1)


@pytest.mark.parametrize("question", BANK, ids=[question.id for question in BANK])
def test_check_accepts_the_right_answer_and_rejects_a_wrong_one(question):
    right = quiz.check(question.id, _right(question))
    assert right.correct and right.question_id == question.id, right
    assert quiz.check(question.id, question.answer if question.type != "multiple" else list(question.answer)).correct
    wrong = quiz.check(question.id, _wrong(question))
    assert not wrong.correct, (question.id, _wrong(question))
    assert f"Re-read: {question.link}" in str(wrong)
    assert f'quiz.check("{question.id}"' in question.as_text()


def test_answers_in_other_forms_and_bad_answers():
    single = next(q for q in BANK if q.type == "single")
    assert quiz.check(single.id, _right(single).lower()).correct  # letters in either case
    with pytest.raises(ValueError, match="give its text or its letter"):
        quiz.check(single.id, "Z")
    order = next(q for q in BANK if q.type == "order")
    spaced = " ".join(_right(order))
    assert quiz.check(order.id, spaced).correct and quiz.check(order.id, spaced.replace(" ", ", ")).correct
    with pytest.raises(ValueError, match="each once"):
        quiz.check(order.id, _right(order)[:-1])
    truefalse = next(q for q in BANK if q.type == "truefalse")
    assert quiz.check(truefalse.id, str(truefalse.answer).lower()).correct
    with pytest.raises(ValueError, match="True or False"):
        quiz.check(truefalse.id, "maybe")
    numeric = next(q for q in BANK if q.type == "numeric")
    assert quiz.check(numeric.id, str(numeric.answer)).correct
    with pytest.raises(ValueError, match="a number"):
        quiz.check(numeric.id, "lots")
    with pytest.raises(KeyError, match="no question 'l9-nothing'"):
        quiz.check("l9-nothing", "A")


def test_a_draw_is_reproducible_spread_over_lectures_and_fresh_without_a_seed():
    first, again = quiz.draw(12, seed=7), quiz.draw(12, seed=7)
    assert [q.id for q in first] == [q.id for q in again] and len({q.id for q in first}) == 12
    assert sorted({q.lecture for q in first}) == [1, 2, 3, 4]
    assert all(sum(q.lecture == n for q in first) == 3 for n in range(1, 5))
    assert len({tuple(q.id for q in quiz.draw(12)) for _ in range(5)}) > 1
    assert len(quiz.draw(10_000)) == len(BANK)


def test_a_session_scores_and_points_at_weak_areas():
    session = quiz.Session()
    first, second, third = quiz.bank(3)[:3]
    session.check(first.id, _right(first))
    session.check(second.id, _wrong(second))
    session.check(third.id, _wrong(third))
    rows = {row[0]: tuple(row[1:]) for row in session.score().rows}
    assert rows[3] == (3, 1) and rows["all"] == (3, 1) and rows[1] == (0, 0)
    expected: dict[str, int] = {}
    for wrong in (second, third):
        expected[wrong.link] = expected.get(wrong.link, 0) + 1
    assert dict(session.weak_areas()) == expected
    assert "1 of 3 right" in session.summary().text and second.link in session.summary().text
    assert "No answers yet" in quiz.Session().summary().text


@pytest.mark.parametrize("kind", quiz.TYPES)
def test_each_kind_of_widget_answers_and_records_in_its_session(kind):
    question = next(q for q in BANK if q.type == kind)
    session = quiz.Session()
    box = quiz.ask(question.id, session)
    assert box._repr_mimebundle_()["text/plain"] == question.as_text()
    feedback = box.children[-1]
    if kind in ("single", "truefalse"):
        box.children[1].value = question.answer if kind == "single" else str(question.answer)
    elif kind == "multiple":
        for checkbox in box.children[1:-2]:
            checkbox.value = checkbox.description in question.answer
        box.children[-2].click()
    else:
        row = box.children[-2]
        row.children[0].value = question.answer if kind == "numeric" else _right(question)
        row.children[1].click()
    assert "right" in feedback.value, feedback.value
    assert session.answers[question.id].correct
