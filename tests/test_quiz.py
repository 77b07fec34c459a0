"""helpers.quiz: feedback is right, wrong answers explain, widgets read as text outside JupyterLab."""

from __future__ import annotations

import pytest

from helpers import catalog, progress, quiz

QUESTION = quiz.Choice("Which model is AWS EC2?", ("SaaS", "PaaS", "IaaS"), "IaaS", "You manage the OS upward.",
                       id="n01.1-test-ec2")


def test_right_and_wrong_answers_give_feedback():
    assert str(QUESTION.check("IaaS")) == "✓ IaaS: right. You manage the OS upward."
    wrong = QUESTION.check("SaaS")
    assert not wrong.correct and "the answer is IaaS" in str(wrong)


def test_an_answer_outside_the_options_is_a_clear_error():
    with pytest.raises(ValueError, match="'FaaS' is not an option of n01.1-test-ec2"):
        QUESTION.check("FaaS")
    with pytest.raises(ValueError, match="not among the options"):
        quiz.Choice("?", ("a", "b"), "c", "", id="n01.1-test-bad")
    with pytest.raises(TypeError):
        quiz.Choice("?", ("a", "b"), "a", "")  # a notebook question needs an id
    with pytest.raises(ValueError, match="looks like 'n02.3-malformed-json'"):
        quiz.Choice("?", ("a", "b"), "a", "", id="my question")


def test_widget_gives_feedback_on_click_and_reads_as_text():
    box = quiz.ask(QUESTION)
    header, buttons, feedback = box.children
    assert [label for label, _ in buttons.options] == [f"{quiz.LETTERS[i]}. {o}"
                                                      for i, o in enumerate(QUESTION.shown_options())]
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
        assert {question.type for question in questions} == set(quiz.CHECKED), lecture
        assert all(question.type == "written" for question in quiz.written(lecture))
        assert all(question.id.startswith(f"l{lecture}-") for question in questions)
    ids = [question.id for question in BANK + quiz.written()]
    assert len(ids) == len(set(ids)), "question ids must be unique"


def test_every_question_links_to_a_heading_that_exists():
    headings = _headings()
    for question in BANK + quiz.written():
        assert question.heading in headings.get(question.notebook, set()), (question.id, question.notebook,
                                                                             question.heading)
        assert question.link == f"{question.notebook}#{question.heading.replace(' ', '-')}"


def test_every_lecture_notebook_ends_with_a_self_check_from_the_bank():
    notebooks = sorted(path.name for path in (ROOT / "notebooks").glob("0[1-4].*.ipynb"))
    for name in notebooks:
        assert quiz.for_notebook(name), f"no bank question on {name}"
        code = "".join(catalog.sources(ROOT / "notebooks" / name, "code"))
        assert f'quiz.self_check("{name}"' in code, name


def _right(question):
    """The right answer, given in the form a student types: letters for options."""
    if question.type == "single":
        return quiz.LETTERS[question.shown_options().index(question.answer)]
    if question.type in ("multiple", "order"):
        return "".join(quiz.LETTERS[question.shown_options().index(item)] for item in question.answer)
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


@pytest.mark.parametrize("kind", quiz.CHECKED)
def test_each_kind_of_widget_answers_and_records_in_its_session(kind):
    question = next(q for q in BANK if q.type == kind)
    session = quiz.Session()
    box = quiz.ask(question.id, session)
    assert box._repr_mimebundle_()["text/plain"] == question.as_text()
    feedback = box.children[-1]
    if kind in ("single", "truefalse"):
        box.children[1].value = question.answer if kind == "single" else str(question.answer)
    elif kind == "multiple":
        for checkbox, option in zip(box.children[1:-2], question.shown_options(), strict=True):
            assert checkbox.description.endswith(f". {option}")
            checkbox.value = option in question.answer
        box.children[-2].click()
    else:
        row = box.children[-2]
        row.children[0].value = question.answer if kind == "numeric" else _right(question)
        row.children[1].click()
    assert "right" in feedback.value, feedback.value
    assert session.answers[question.id].correct


# --- options shown in a shuffled order --------------------------------------------------------------

SHUFFLED = [q for q in BANK if q.type in quiz.SHUFFLED]


@pytest.fixture
def restore_seed():
    before = quiz.seed()
    yield
    quiz.seed(before)


def test_the_suite_runs_with_the_seed_the_recorded_outputs_used():
    import os

    assert os.environ[quiz.SEED_VARIABLE] == "4207" == str(quiz.RECORDED_SEED) and quiz.seed() == 4207


def test_the_same_seed_shows_the_same_order_and_other_seeds_other_orders(restore_seed):
    quiz.seed(11)
    first = {q.id: q.shown_options() for q in SHUFFLED}
    assert first == {q.id: q.shown_options() for q in SHUFFLED}  # stable within a session
    assert all(sorted(order) == sorted(quiz.question(qid).options) for qid, order in first.items())
    quiz.seed(12)
    second = {q.id: q.shown_options() for q in SHUFFLED}
    assert sum(first[qid] != second[qid] for qid in first) > len(first) / 2
    quiz.seed(11)
    assert {q.id: q.shown_options() for q in SHUFFLED} == first  # setting the seed again reproduces it
    canonical = sum(q.shown_options() == q.options for q in SHUFFLED)
    assert canonical < len(SHUFFLED) / 3, "the shown order should not be the written one"


def test_the_seed_is_a_whole_number(restore_seed):
    with pytest.raises(ValueError, match="whole number"):
        quiz.seed("7")  # type: ignore[arg-type]
    assert quiz.seed(7) == 7 == quiz.seed()


@pytest.mark.parametrize("value", [1, 2, 3, 99])
def test_letters_follow_the_shown_order_and_text_works_under_any_seed(value, restore_seed):
    quiz.seed(value)
    for question in SHUFFLED:
        shown = question.shown_options()
        listed = question.as_text().splitlines()[1:1 + len(shown)]
        assert listed == [f"  {quiz.LETTERS[i]}. {option}" for i, option in enumerate(shown)]
        assert quiz.check(question.id, _right(question)).correct
        text = question.answer if question.type == "single" else list(question.answer)
        result = quiz.check(question.id, text)
        assert result.correct and not re_letter.fullmatch(result.answer)
    single = next(q for q in SHUFFLED if q.type == "single")
    wrong = next(i for i, option in enumerate(single.shown_options()) if option != single.answer)
    result = quiz.check(single.id, quiz.LETTERS[wrong])
    assert not result.correct and result.answer == single.shown_options()[wrong]
    assert result.right_answer == single.answer  # feedback names options by their text


re_letter = __import__("re").compile(r"[A-J]")


def test_a_notebook_question_is_shuffled_and_found_by_its_id(restore_seed):
    choice = quiz.Choice("Which port does the app listen on inside the container?", ("8000", "8001", "80"),
                         "8000", "The mapping is outside.", id="n03.4-test-port")
    assert "[n03.4-test-port]" in choice.as_text() and 'quiz.check("n03.4-test-port"' in choice.as_text()
    for value in (1, 2, 3, 4, 5):
        quiz.seed(value)
        letter = quiz.LETTERS[choice.shown_options().index("8000")]
        assert quiz.check("n03.4-test-port", letter).correct
    orders = set()
    for value in range(20):
        quiz.seed(value)
        orders.add(choice.shown_options())
    assert len(orders) > 1
    session = quiz.Session()
    session.check("n03.4-test-port", "80")
    assert dict((row[0], tuple(row[1:])) for row in session.score().rows)[3] == (1, 0)
    assert session.weak_areas() == []  # a notebook question has no section link of its own


# --- written-answer prompts ------------------------------------------------------------------------

WRITTEN = quiz.written()


def test_every_lecture_has_six_written_prompts_with_a_model_answer_and_points():
    for lecture in quiz.lectures():
        prompts = quiz.written(lecture)
        assert len(prompts) >= 6, lecture
        for item in prompts:
            assert 3 <= len(item.points) <= 6, item.id
            assert len(item.model_answer) >= 200, item.id
            assert item.model_answer.endswith(".") and all(point.strip() for point in item.points)
    assert not {q.id for q in WRITTEN} & {q.id for q in BANK}
    assert all(q.type != "written" for q in quiz.draw(10_000))


def test_a_written_prompt_is_revealed_not_checked():
    item = WRITTEN[0]
    text = item.as_text()
    assert text.startswith(f"[{item.id}] {item.prompt}") and f'quiz.reveal("{item.id}")' in text
    with pytest.raises(ValueError, match="written question.*quiz.reveal"):
        quiz.check(item.id, "my answer")
    shown = quiz.reveal(item.id).text
    assert item.model_answer in shown and all(f"- {point}" in shown for point in item.points)
    with pytest.raises(ValueError, match="only a written question"):
        quiz.reveal(BANK[0].id)
    box = quiz.ask(item.id)
    assert box._repr_mimebundle_()["text/plain"] == text
    button, feedback, ratings, graded = box.children[-4:]
    assert button.description == "Show model answer" and feedback.value == ""
    assert all(rating.layout.display == "none" for rating in ratings.children)
    button.click()
    assert "A grader looks for" in feedback.value and item.points[0][:20] in feedback.value
    assert [rating.description for rating in ratings.children if rating.layout.display is None] == [
        "Again", "Hard", "Good", "Easy"]
    ratings.children[2].click()
    assert graded.value.startswith(f"{item.id}: graded good; next review due ")
    last = progress.answers()[-1]
    assert (last.question, last.lecture, last.correct, last.rating, last.source) == (
        item.id, item.lecture, True, "good", "self-grade")


def test_written_prompts_are_drawn_evenly_and_reproducibly():
    first = quiz.draw_written(8, seed=2026)
    assert [q.id for q in first] == [q.id for q in quiz.draw_written(8, seed=2026)]
    assert all(sum(q.lecture == n for q in first) == 2 for n in quiz.lectures())
    assert all(q.type == "written" for q in first)


# --- a balanced bank ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lecture", [1, 2, 3, 4])
def test_no_option_position_or_length_gives_the_answer_away(lecture):
    singles = [q for q in quiz.bank(lecture) if q.type == "single"]
    positions = [q.options.index(q.answer) for q in singles]
    for position in set(positions):
        assert positions.count(position) <= 0.3 * len(singles), (lecture, position, positions.count(position))
    longest = [q.id for q in singles if all(len(q.answer) > len(o) for o in q.options if o != q.answer)]
    assert len(longest) <= 0.4 * len(singles), (lecture, longest)
    multiples = [q for q in quiz.bank(lecture) if q.type == "multiple"]
    spread = {position for q in multiples for position, option in enumerate(q.options) if option in q.answer}
    assert len(spread) >= 3, (lecture, spread)
    prefix = sum(set(q.options[:len(q.answer)]) == set(q.answer) for q in multiples)
    assert prefix <= len(multiples) / 2, (lecture, "the answers are the first options", prefix)
    truths = [q.answer for q in quiz.bank(lecture) if q.type == "truefalse"]
    assert max(truths.count(True), truths.count(False)) <= 0.65 * len(truths), (lecture, truths)


def _normal(text: str) -> str:
    import re

    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def _similar(first: str, second: str) -> float:
    import difflib

    return difflib.SequenceMatcher(None, _normal(first), _normal(second)).ratio()


def test_no_two_bank_questions_ask_the_same_thing():
    items = BANK + WRITTEN
    close = [(a.id, b.id) for i, a in enumerate(items) for b in items[i + 1:] if _similar(a.prompt, b.prompt) > 0.8]
    assert not close


# --- explanations agree with their answers ----------------------------------------------------------


def _wrong_options_named(question) -> list[str]:
    """Wrong options (longer than 15 characters) that the explanation quotes word for word."""
    wrong = [o for o in question.options if o != question.answer and len(o) > 15]
    return [o for o in wrong if _normal(o) in _normal(question.explanation)]


@pytest.mark.parametrize("question", [q for q in BANK if q.type == "single"], ids=lambda q: q.id)
def test_an_explanation_never_quotes_a_wrong_option_as_if_right(question):
    assert not _wrong_options_named(question)
    assert "option" not in question.explanation.lower() or "other options" in question.explanation.lower(), \
        "options are shown shuffled: an explanation must name them, not their position"


def test_the_check_of_explanations_can_fail():
    bad = quiz.Question("l9-x", "single", "?", "json.loads(body.read())", "Use json.loads(response.json()) here.",
                        "n.ipynb", "h", ("json.loads(body.read())", "json.loads(response.json())"))
    assert _wrong_options_named(bad) == ["json.loads(response.json())"]


def test_explanations_that_were_wrong_stay_right():
    parse = quiz.question("l2-lab2-parse-body")
    assert parse.answer == 'json.loads(response["Body"].read())'
    assert "StreamingBody" in parse.explanation and "bytes" in parse.explanation
    assert "last option" not in parse.explanation
    trail = quiz.question("l2-cloudtrail")
    assert "data event" in trail.explanation and "every API call" not in trail.prompt + trail.explanation
    layers = quiz.question("l3-dockerfile-new-layers")
    assert {"COPY rootfs/ /", "RUN mkdir -p /srv && echo note > /srv/build-note.txt"} <= set(layers.answer)
    assert "CMD" not in " ".join(layers.answer)


def test_no_question_teaches_a_known_mistake():
    """What the bank states as true (answers, true statements, explanations, model answers) repeats none of
    the mistakes the course notes or older versions of the bank made."""

    def taught(q) -> str:
        answers = [q.answer] if q.type == "single" else list(q.answer) if q.type == "multiple" else []
        true = [q.prompt] if q.type == "truefalse" and q.answer else []
        return " ".join([*answers, *true, q.explanation, q.model_answer, *q.points]).lower()

    for mistake in ("create_instance(", "s3:StopInstance", "Elastic Cloud Compute", 'ACL="public-read"',
                    "eventually consistent", "records every API call", "records each API call",
                    "root user's access key", "a new pod replaces the crashed"):
        found = [q.id for q in BANK + WRITTEN if mistake.lower() in taught(q)]
        assert not found, (mistake, found)
    assert "records each api call" in taught(quiz.Question("l9-x", "truefalse", "CloudTrail records each API call.",
                                                           True, "", "n", "h"))


# --- notebook questions: ids, and none repeats a bank question ---------------------------------------


def _notebook_choices() -> list[dict]:
    """Every quiz.Choice(...) call in the notebooks' code cells, read from the source (not run)."""
    import ast

    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for source in catalog.sources(path, "code"):
            if "Choice(" not in source:
                continue
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "Choice":
                    keywords = {keyword.arg: keyword.value for keyword in node.keywords}
                    literal = [arg.value if isinstance(arg, ast.Constant) else None for arg in node.args]
                    options = node.args[1]
                    listed = [e.value for e in options.elts] if isinstance(options, ast.Tuple) else None
                    found.append({"notebook": path.name, "prompt": literal[0], "answer": literal[2], "options": listed,
                                  "id": keywords.get("id"), "self_check": "self_check(" in source})
    return found


CHOICES = _notebook_choices()


def test_every_notebook_question_has_an_id_unique_across_bank_and_notebooks():
    import ast

    assert len(CHOICES) >= 30
    assert all(choice["id"] is not None for choice in CHOICES), [c["prompt"] for c in CHOICES if c["id"] is None]
    literal = [(c["notebook"], c["id"].value) for c in CHOICES if isinstance(c["id"], ast.Constant)]
    assert len(literal) >= sum(c["self_check"] for c in CHOICES)
    ids = [qid for _, qid in literal] + [q.id for q in BANK + WRITTEN]
    assert len(ids) == len(set(ids)), sorted(qid for qid in ids if ids.count(qid) > 1)
    for notebook, qid in literal:
        assert quiz.CHOICE_ID.fullmatch(qid) and qid.startswith(f"n{notebook[:4]}-"), (notebook, qid)


def _repeats(prompt: str, answer: str | None, options: list[str] | None) -> list[str]:
    """The bank questions a notebook question repeats: a near-identical prompt, or the same answer among
    mostly the same options."""
    found = []
    for question in BANK + WRITTEN:
        if _similar(prompt, question.prompt) > 0.8:
            found.append(question.id)
        elif answer and question.type == "single" and _similar(answer, question.answer) > 0.9 and options:
            shared = {_normal(o) for o in options} & {_normal(o) for o in question.options}
            if len(shared) >= 2:
                found.append(question.id)
    return found


def test_the_repeat_check_finds_a_repeat():
    bank_question = quiz.question("l1-multicloud-reason")
    assert _repeats("Which is the main reason for a multi-cloud strategy?", "x", None) == [bank_question.id]
    assert _repeats("What happens?", bank_question.answer, list(bank_question.options)[:2] + ["other"]) \
        == [bank_question.id]


def test_no_notebook_question_repeats_a_bank_question():
    repeats = {c["prompt"]: _repeats(c["prompt"], c["answer"], c["options"]) for c in CHOICES if c["prompt"]}
    assert not {prompt: ids for prompt, ids in repeats.items() if ids}
    prompts = [c["prompt"] for c in CHOICES if c["prompt"]]
    assert not [(a, b) for i, a in enumerate(prompts) for b in prompts[i + 1:] if _similar(a, b) > 0.8]
