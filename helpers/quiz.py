"""Questions with instant feedback: widgets in JupyterLab, plain text and ``check()`` everywhere else.

Two sources of questions:

* ``Choice(...)``: a single-choice question written in a notebook cell;
* the question bank, ``data/questions/lecture-N.json``: single and multiple choice, true/false, numeric and
  ordering questions, each with its answer, an explanation and the notebook section that teaches it.

In JupyterLab ``ask(question)`` shows a widget that answers a click at once, with the explanation and, for
a wrong answer, the section to re-read. Where widgets cannot run (nbval, a static render) the same question
reads as text, and ``check("l3-uts-namespace", "B")`` gives the same feedback. A :class:`Session` keeps the
answers given through it and reports a score and the sections to revisit::

    review = quiz.Session()
    review.ask("l3-uts-namespace")            # a widget; clicks are recorded
    review.check("l2-explicit-deny", True)    # or answer in code
    review.score()                            # right/answered per lecture
    review.weak_areas()                       # what to re-read
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BANK = ROOT / "data" / "questions"
TYPES = ("single", "multiple", "truefalse", "numeric", "order")
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Feedback:
    correct: bool
    answer: str
    right_answer: str
    explanation: str
    question_id: str = ""
    link: str = ""  # the notebook section that teaches it: "03.2-namespaces-and-cgroups.ipynb#2.-Each-..."

    def __str__(self) -> str:
        if self.correct:
            return f"✓ {self.answer}: right. {self.explanation}"
        where = f" Re-read: {self.link}" if self.link else ""
        return f"✗ {self.answer}: not quite; the answer is {self.right_answer}. {self.explanation}{where}"


@dataclass(frozen=True)
class Choice:
    """A single-choice question written in a notebook."""

    prompt: str
    options: tuple[str, ...]
    answer: str
    explanation: str

    def __post_init__(self) -> None:
        if self.answer not in self.options:
            raise ValueError(f"the answer {self.answer!r} is not among the options {self.options}")

    def check(self, answer: str) -> Feedback:
        """Feedback on one answer; an answer that is not an option is a clear error."""
        if answer not in self.options:
            raise ValueError(f"{answer!r} is not one of the options: {', '.join(self.options)}")
        return Feedback(answer == self.answer, answer, self.answer, self.explanation)

    def as_text(self) -> str:
        return f"{self.prompt}\n" + "\n".join(f"  ( ) {option}" for option in self.options)


# --- the question bank ----------------------------------------------------------------------------


def anchor(heading: str) -> str:
    """The fragment JupyterLab gives a Markdown heading: its text with spaces as hyphens."""
    return heading.strip().replace(" ", "-")


@dataclass(frozen=True)
class Question:
    """A question from the bank; ``check`` accepts an answer in the forms ``as_text`` describes."""

    id: str
    type: str
    prompt: str
    answer: Any
    explanation: str
    notebook: str
    heading: str
    options: tuple[str, ...] = ()
    tolerance: float = 0.0
    unit: str = ""
    lecture: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any], lecture: int = 0) -> Question:
        answer = data["answer"]
        if data["type"] in ("multiple", "order"):
            answer = tuple(answer)
        return cls(data["id"], data["type"], data["question"], answer, data["explanation"],
                   data["link"]["notebook"], data["link"]["heading"], tuple(data.get("options", ())),
                   float(data.get("tolerance", 0)), data.get("unit", ""), lecture)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"{self.id}: type must be one of {', '.join(TYPES)}, not {self.type!r}")
        if self.type == "single" and self.answer not in self.options:
            raise ValueError(f"{self.id}: the answer {self.answer!r} is not among the options")
        if self.type == "multiple" and not set(self.answer) <= set(self.options):
            raise ValueError(f"{self.id}: an answer is not among the options")
        if self.type == "order" and sorted(self.answer) != sorted(self.options):
            raise ValueError(f"{self.id}: the order must use exactly the options")
        if self.type == "truefalse" and not isinstance(self.answer, bool):
            raise ValueError(f"{self.id}: a true/false answer must be true or false")
        if self.type == "numeric" and not isinstance(self.answer, (int, float)):
            raise ValueError(f"{self.id}: a numeric answer must be a number")

    @property
    def link(self) -> str:
        return f"{self.notebook}#{anchor(self.heading)}"

    # answers: the forms a student may type, turned into one canonical form

    def _option(self, value: Any) -> str:
        """An option given as its text or its letter (A, B, ...)."""
        if isinstance(value, str):
            text = value.strip()
            if text in self.options:
                return text
            if len(text) == 1 and text.upper() in LETTERS[: len(self.options)]:
                return self.options[LETTERS.index(text.upper())]
        letters = ", ".join(LETTERS[: len(self.options)])
        raise ValueError(f"{value!r} is not an option of {self.id}: give its text or its letter ({letters})")

    def _options(self, value: Any) -> list[str]:
        """Several options: a list of texts or letters, or a string of letters ("AC", "C A B")."""
        if isinstance(value, str):
            words = value.replace(",", " ").split()
            # "CAB" is three letters; "C A B" and "C, A, B" are the same three
            value = list(words[0]) if len(words) == 1 and words[0].isalpha() and words[0].isupper() else words
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"answer {self.id} with a list of options or a string of letters, not {value!r}")
        return [self._option(item) for item in value]

    def normalise(self, answer: Any) -> Any:
        if self.type == "single":
            return self._option(answer)
        if self.type == "multiple":
            return tuple(sorted(set(self._options(answer)), key=self.options.index))
        if self.type == "order":
            chosen = self._options(answer)
            if sorted(chosen) != sorted(self.options):
                raise ValueError(f"order all {len(self.options)} items of {self.id}, each once")
            return tuple(chosen)
        if self.type == "truefalse":
            if isinstance(answer, bool):
                return answer
            words = {"true": True, "t": True, "yes": True, "false": False, "f": False, "no": False}
            if isinstance(answer, str) and answer.strip().lower() in words:
                return words[answer.strip().lower()]
            raise ValueError(f"answer {self.id} with True or False, not {answer!r}")
        try:
            number = float(answer)
        except (TypeError, ValueError):
            raise ValueError(f"answer {self.id} with a number, not {answer!r}") from None
        if math.isnan(number):
            raise ValueError(f"answer {self.id} with a number, not NaN")
        return number

    def _show(self, value: Any) -> str:
        if self.type in ("multiple", "order"):
            return ", ".join(value)
        if self.type == "numeric":
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            return f"{shown} {self.unit}".strip()
        return str(value)

    def check(self, answer: Any) -> Feedback:
        given = self.normalise(answer)
        if self.type == "numeric":
            correct = abs(given - self.answer) <= self.tolerance + 1e-9 * max(1.0, abs(self.answer))
        elif self.type == "multiple":
            correct = set(given) == set(self.answer)
        else:
            correct = given == self.answer
        return Feedback(correct, self._show(given), self._show(self.answer), self.explanation, self.id, self.link)

    def as_text(self) -> str:
        lines = [f"[{self.id}] {self.prompt}"]
        lines += [f"  {LETTERS[i]}. {option}" for i, option in enumerate(self.options)]
        how = {"single": "one letter", "multiple": "every right letter, e.g. \"AC\"",
               "truefalse": "True or False", "numeric": f"a number{' in ' + self.unit if self.unit else ''}",
               "order": "the letters in the right order, e.g. \"CAB\""}[self.type]
        lines.append(f"  answer with quiz.check(\"{self.id}\", ...): {how}")
        return "\n".join(lines)


@cache
def _load(lecture: int) -> tuple[Question, ...]:
    data = json.loads((BANK / f"lecture-{lecture}.json").read_text(encoding="utf-8"))
    return tuple(Question.from_dict(item, data["lecture"]) for item in data["questions"])


def lectures() -> list[int]:
    return sorted(int(path.stem.split("-")[1]) for path in BANK.glob("lecture-*.json"))


def bank(lecture: int | None = None) -> list[Question]:
    """Every question of one lecture, or of all of them."""
    chosen = [lecture] if lecture is not None else lectures()
    return [question for number in chosen for question in _load(number)]


def question(question_id: str) -> Question:
    for candidate in bank():
        if candidate.id == question_id:
            return candidate
    raise KeyError(f"no question {question_id!r} in the bank (ids look like 'l3-uts-namespace')")


def check(question_id: str, answer: Any) -> Feedback:
    """Feedback on an answer to a bank question, with the section to re-read when it is wrong."""
    return question(question_id).check(answer)


def for_notebook(notebook: str) -> list[Question]:
    """The bank's questions on what one notebook teaches (its self-check)."""
    return [candidate for candidate in bank() if candidate.notebook == notebook]


def draw(count: int = 10, seed: int | None = None, lectures_: Iterable[int] | None = None) -> list[Question]:
    """A mixed quiz: ``count`` questions spread evenly over the lectures. The same seed draws the same quiz;
    ``seed=None`` draws a fresh one."""
    generator = random.Random(seed)
    pools = {number: list(_load(number)) for number in (lectures_ or lectures())}
    for pool in pools.values():
        generator.shuffle(pool)
    drawn: list[Question] = []
    while len(drawn) < count and any(pools.values()):
        for number in sorted(pools):
            if pools[number] and len(drawn) < count:
                drawn.append(pools[number].pop())
    return drawn


# --- widgets --------------------------------------------------------------------------------------


class Session:
    """The answers given through it (by widget or by ``check``), for a score and the sections to revisit."""

    def __init__(self) -> None:
        self.answers: dict[str, Feedback] = {}

    def check(self, question_id: str, answer: Any) -> Feedback:
        result = check(question_id, answer)
        self.answers[question_id] = result
        return result

    def ask(self, item: Question | Choice | str) -> Any:
        return ask(item, self)

    def score(self) -> Any:
        from helpers.display import Table

        rows = []
        for number in lectures():
            mine = [result for qid, result in self.answers.items() if question(qid).lecture == number]
            rows.append((number, len(mine), sum(result.correct for result in mine)))
        rows.append(("all", sum(row[1] for row in rows), sum(row[2] for row in rows)))
        return Table(rows, headers=("lecture", "answered", "right"), title="score")

    def weak_areas(self) -> list[tuple[str, int]]:
        """(section link, wrong answers) for every section with a wrong answer, most wrong first."""
        counts: dict[str, int] = {}
        for result in self.answers.values():
            if not result.correct:
                counts[result.link] = counts.get(result.link, 0) + 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


    def summary(self) -> Any:
        """The score in words and, for each section with a wrong answer, a link to re-read it."""
        from helpers.display import Markdown

        if not self.answers:
            return Markdown("No answers yet: answer some questions above (or with `check`), then run this again.")
        right = sum(result.correct for result in self.answers.values())
        lines = [f"**{right} of {len(self.answers)} right.**"]
        weak = self.weak_areas()
        if weak:
            lines.append("Re-read, most missed first:")
            for link, count in weak:
                notebook, _, section = link.partition("#")
                lines.append(f"- [{notebook}: {section.replace('-', ' ')}]({link}) ({count} wrong)")
        else:
            lines.append("Nothing to re-read: every answer was right.")
        return Markdown("\n".join(lines))


def _feedback_html(result: Feedback) -> str:
    colour = "#009E73" if result.correct else "#D55E00"
    text = str(result).split(" Re-read: ")[0]
    link = ""
    if result.link and not result.correct:
        notebook, _, section = result.link.partition("#")
        link = f' Re-read: <a href="{result.link}">{notebook}, {section.replace("-", " ")}</a>'
    return f'<span style="color:{colour}">{text}</span>{link}'


def _widget(item: Question | Choice, session: Session | None) -> Any:
    import ipywidgets as widgets

    class QuestionBox(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
            bundle = super()._repr_mimebundle_(**kwargs)
            if bundle is not None:  # plain-text renders show the whole question, not a widget tree
                bundle["text/plain"] = item.as_text()
            return bundle

    feedback = widgets.HTML(value="")

    def answer(value: Any) -> None:
        try:
            result = item.check(value)
        except ValueError as exc:
            feedback.value = f'<span style="color:#D55E00">{exc}</span>'
            return
        if session is not None and isinstance(item, Question):
            session.answers[item.id] = result
        feedback.value = _feedback_html(result)

    kind = item.type if isinstance(item, Question) else "single"
    prompt = item.prompt
    if kind in ("single", "truefalse"):
        options = list(item.options) if kind == "single" else ["True", "False"]
        control = widgets.ToggleButtons(options=options, value=None, style={"button_width": "auto"})
        control.observe(lambda change: change["new"] is not None and answer(change["new"]), names="value")
        body: list[Any] = [control]
    else:
        button = widgets.Button(description="Check")
        if kind == "multiple":
            boxes = [widgets.Checkbox(description=option, value=False, indent=False) for option in item.options]
            body = [*boxes, button]
            button.on_click(lambda _: answer([box.description for box in boxes if box.value]))
        elif kind == "numeric":
            field_ = widgets.FloatText(description=item.unit or "answer")
            body = [widgets.HBox([field_, button])]
            button.on_click(lambda _: answer(field_.value))
        else:  # order
            listing = "<br>".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(item.options))
            field_ = widgets.Text(placeholder="letters in order, e.g. CAB")
            body = [widgets.HTML(value=listing), widgets.HBox([field_, button])]
            button.on_click(lambda _: answer(field_.value))
    return QuestionBox([widgets.HTML(value=f"<b>{prompt}</b>"), *body, feedback])


def ask(item: Question | Choice | str, session: Session | None = None) -> Any:
    """The question (or a bank id) as an interactive widget, or as text where ipywidgets is not installed."""
    if isinstance(item, str):
        item = question(item)
    try:
        return _widget(item, session)
    except ImportError:
        from helpers.display import Markdown

        return Markdown(item.as_text())


def self_check(notebook: str, extra: Sequence[Choice] = (), session: Session | None = None) -> None:
    """Show a notebook's self-check: its own questions, then the bank's questions on what it teaches."""
    from IPython.display import display

    for item in [*extra, *for_notebook(notebook)]:
        display(ask(item, session))


__all__ = ["Choice", "Feedback", "Question", "Session", "ask", "bank", "check", "draw", "for_notebook",
           "lectures", "question", "self_check"]
