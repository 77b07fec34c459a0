"""Questions with instant feedback: widgets in JupyterLab, plain text and ``check()`` everywhere else.

Two sources of questions:

* ``Choice(..., id="n03.2-net-namespace")``: a single-choice question written in a notebook cell;
* the question bank, ``data/questions/lecture-N.json``: single and multiple choice, true/false, numeric and
  ordering questions, each with its answer, an explanation and the notebook section that teaches it, and
  written-answer prompts with a model answer and the points a grader looks for.

Options are shown in an order shuffled per session, so that a letter or a position says nothing about the
answer. The order of one question is a function of the session's seed and the question's id: the same all
session long, and the same again on another machine with the same seed. The seed comes from the environment
variable ``CLOUDNOTES_QUIZ_SEED`` when it is set (the test suite and recorded outputs use it), otherwise it is
drawn once when this module is imported; ``seed()`` reports it and ``seed(n)`` sets it, for instance to take
again the quiz someone printed.

In JupyterLab ``ask(question)`` shows a widget that answers a click at once, with the explanation and, for
a wrong answer, the section to re-read. Where widgets cannot run (nbval, a static render) the same question
reads as text, with letters in this session's order, and ``check("l3-uts-namespace", "B")`` (a letter as
shown, or the option's text) gives the same feedback. A written question is graded by the student:
``reveal(id)`` shows its model answer and points. A :class:`Session` keeps the answers given through it and
reports a score and the sections to revisit::

    review = quiz.Session()
    review.ask("l3-uts-namespace")            # a widget; clicks are recorded
    review.check("l2-explicit-deny", True)    # or answer in code
    review.score()                            # right/answered per lecture
    review.weak_areas()                       # what to re-read
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BANK = ROOT / "data" / "questions"
CHECKED = ("single", "multiple", "truefalse", "numeric", "order")  # the kinds check() grades
TYPES = (*CHECKED, "written")
SHUFFLED = ("single", "multiple", "order")
LETTERS = "ABCDEFGHIJ"
SEED_VARIABLE = "CLOUDNOTES_QUIZ_SEED"
RECORDED_SEED = 4207  # the seed of the stored outputs: the test suite and `make execute` set it


# --- the session's seed: the order in which options are shown -------------------------------------


def _initial_seed() -> int:
    value = os.environ.get(SEED_VARIABLE, "").strip()
    if not value:
        return random.SystemRandom().randrange(1, 10_000)  # short enough to write on a printed quiz
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{SEED_VARIABLE} must be a whole number, not {value!r}") from None


_seed = _initial_seed()


def seed(value: int | None = None) -> int:
    """The seed that orders every question's options in this session; ``seed(n)`` sets it (and so reorders
    every question shown from then on). Two sessions with the same seed show the same letters."""
    global _seed
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"a seed is a whole number, not {value!r}")
        _seed = value
    return _seed


def shown_order(question_id: str, options: Sequence[str]) -> tuple[str, ...]:
    """``options`` in the order this session shows them for ``question_id``: fixed by (seed, id)."""
    shown = list(options)
    random.Random(f"{_seed}/{question_id}").shuffle(shown)
    return tuple(shown)


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


class _Options:
    """Answering by option: the text, or a letter as this session shows it."""

    id: str
    options: tuple[str, ...]

    def shown_options(self) -> tuple[str, ...]:
        """The options in the order this session shows them (``as_text`` and the widget): letter A is the
        first of these. ``options`` keeps the order they were written in."""
        return shown_order(self.id, self.options)

    def _option(self, value: Any) -> str:
        """An option given as its text or as its letter in this session's order (A, B, ...)."""
        shown = self.shown_options()
        if isinstance(value, str):
            text = value.strip()
            if text in self.options:
                return text
            if len(text) == 1 and text.upper() in LETTERS[: len(shown)]:
                return shown[LETTERS.index(text.upper())]
        letters = ", ".join(LETTERS[: len(shown)])
        raise ValueError(f"{value!r} is not an option of {self.id}: give its text or its letter as shown "
                         f"({letters}); the options are: {'; '.join(shown)}")

    def _listing(self) -> list[str]:
        return [f"  {LETTERS[i]}. {option}" for i, option in enumerate(self.shown_options())]


# --- questions written in a notebook ----------------------------------------------------------------

_CHOICES: dict[str, Choice] = {}
CHOICE_ID = re.compile(r"n\d{2}\.\d-[a-z0-9]+(-[a-z0-9]+)*")


@dataclass(frozen=True)
class Choice(_Options):
    """A single-choice question written in a notebook, with an id such as ``n02.3-malformed-json`` (``n``,
    the notebook's number, a short name) by which ``quiz.check(id, answer)`` finds it."""

    prompt: str
    options: tuple[str, ...]
    answer: str
    explanation: str
    id: str = field(kw_only=True)
    type = "single"
    link = ""

    def __post_init__(self) -> None:
        if not CHOICE_ID.fullmatch(self.id):
            raise ValueError(f"a notebook question's id looks like 'n02.3-malformed-json', not {self.id!r}")
        if self.answer not in self.options:
            raise ValueError(f"the answer {self.answer!r} is not among the options {self.options}")
        _CHOICES[self.id] = self  # running its cell again replaces it

    @property
    def lecture(self) -> int:
        return int(self.id[1:3])

    def check(self, answer: Any) -> Feedback:
        """Feedback on one answer: an option's text, or its letter as shown in this session."""
        given = self._option(answer)
        return Feedback(given == self.answer, given, self.answer, self.explanation, self.id)

    def as_text(self) -> str:
        return "\n".join([f"[{self.id}] {self.prompt}", *self._listing(),
                          f"  answer with quiz.check(\"{self.id}\", ...): {HOW['single']}"])


# --- the question bank ----------------------------------------------------------------------------


def anchor(heading: str) -> str:
    """The fragment JupyterLab gives a Markdown heading: its text with spaces as hyphens."""
    return heading.strip().replace(" ", "-")


HOW = {"single": "a letter as listed here, or the option's text",
       "multiple": "every right letter as listed here, e.g. \"AC\", or a list of option texts",
       "truefalse": "True or False",
       "order": "the letters as listed here, in the right order, e.g. \"CAB\", or a list of option texts"}


@dataclass(frozen=True)
class Question(_Options):
    """A question from the bank; ``check`` accepts an answer in the forms ``as_text`` describes. A written
    question has no ``answer``: ``model_answer`` and ``points`` are what ``reveal`` shows."""

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
    model_answer: str = ""
    points: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any], lecture: int = 0) -> Question:
        answer = data.get("answer")
        if data["type"] in ("multiple", "order"):
            answer = tuple(answer)
        return cls(data["id"], data["type"], data["question"], answer, data.get("explanation", ""),
                   data["link"]["notebook"], data["link"]["heading"], tuple(data.get("options", ())),
                   float(data.get("tolerance", 0)), data.get("unit", ""), lecture,
                   data.get("model_answer", ""), tuple(data.get("points", ())))

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
        if self.type == "written" and not (self.model_answer and self.points):
            raise ValueError(f"{self.id}: a written question needs a model_answer and points")
        if self.type != "written" and (self.model_answer or self.points):
            raise ValueError(f"{self.id}: only a written question has a model_answer and points")

    @property
    def link(self) -> str:
        return f"{self.notebook}#{anchor(self.heading)}"

    def shown_options(self) -> tuple[str, ...]:
        return super().shown_options() if self.type in SHUFFLED else self.options

    # answers: the forms a student may type, turned into one canonical form

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
        if self.type == "written":
            raise ValueError(f"{self.id} is a written question, graded by you: write your answer, then "
                             f"compare it with the model answer, quiz.reveal(\"{self.id}\")")
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
        """An answer as feedback shows it: option texts, never letters, so it reads the same in any order."""
        if self.type == "multiple":
            return "; ".join(value)
        if self.type == "order":
            return " → ".join(value)
        if self.type == "numeric":
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            return f"{shown} {self.unit}".strip()
        return str(value)

    def check(self, answer: Any) -> Feedback:
        """Feedback on an answer: for options, their text or their letters as shown in this session."""
        given = self.normalise(answer)
        if self.type == "numeric":
            correct = abs(given - self.answer) <= self.tolerance + 1e-9 * max(1.0, abs(self.answer))
        elif self.type == "multiple":
            correct = set(given) == set(self.answer)
        else:
            correct = given == self.answer
        return Feedback(correct, self._show(given), self._show(self.answer), self.explanation, self.id, self.link)

    def as_text(self) -> str:
        lines = [f"[{self.id}] {self.prompt}", *self._listing()]
        if self.type == "written":
            lines.append(f"  write your answer, then compare it with the model answer: quiz.reveal(\"{self.id}\")")
            return "\n".join(lines)
        how = HOW.get(self.type) or f"a number{' in ' + self.unit if self.unit else ''}"
        lines.append(f"  answer with quiz.check(\"{self.id}\", ...): {how}")
        return "\n".join(lines)

    def model(self) -> str:
        """A written question's model answer and the points a grader looks for, as Markdown."""
        if self.type != "written":
            raise ValueError(f"{self.id} is answered with quiz.check(\"{self.id}\", ...); only a written "
                             f"question has a model answer to reveal")
        points = "\n".join(f"- {point}" for point in self.points)
        return f"**[{self.id}] Model answer.** {self.model_answer}\n\n**A grader looks for:**\n{points}"


@cache
def _load(lecture: int) -> tuple[Question, ...]:
    data = json.loads((BANK / f"lecture-{lecture}.json").read_text(encoding="utf-8"))
    return tuple(Question.from_dict(item, data["lecture"]) for item in data["questions"])


def lectures() -> list[int]:
    return sorted(int(path.stem.split("-")[1]) for path in BANK.glob("lecture-*.json"))


def _chosen(lecture: int | Iterable[int] | None) -> list[int]:
    if lecture is None:
        return lectures()
    return [lecture] if isinstance(lecture, int) else sorted(lecture)


def bank(lecture: int | None = None) -> list[Question]:
    """Every question of one lecture, or of all of them, that ``check`` grades (written ones: ``written``)."""
    return [item for number in _chosen(lecture) for item in _load(number) if item.type != "written"]


def written(lecture: int | None = None) -> list[Question]:
    """The written-answer prompts of one lecture, or of all of them."""
    return [item for number in _chosen(lecture) for item in _load(number) if item.type == "written"]


def question(question_id: str) -> Question | Choice:
    """A bank question (written ones included), or a notebook question created in this kernel, by id."""
    for number in lectures():
        for candidate in _load(number):
            if candidate.id == question_id:
                return candidate
    if question_id in _CHOICES:
        return _CHOICES[question_id]
    raise KeyError(f"no question {question_id!r} in the bank (ids look like 'l3-uts-namespace') nor among "
                   f"this kernel's notebook questions (ids look like 'n03.2-net-namespace': run their cell)")


def check(question_id: str, answer: Any) -> Feedback:
    """Feedback on an answer to a bank or notebook question, with the section to re-read when it is wrong.
    Give an option as its text or as its letter as shown in this session (``as_text``, the widget). The answer
    is kept in the progress file (``helpers.progress``)."""
    item = question(question_id)
    result = item.check(answer)
    remember(item, result, "check")
    return result


def remember(item: Question | Choice, result: Feedback, source: str) -> None:
    """Append an answer to the progress file; a file that cannot be written costs a warning, never the answer."""
    from helpers import progress

    try:
        progress.record(item.id, correct=result.correct, source=source, lecture=item.lecture)
    except OSError as error:
        warnings.warn(f"this answer was not saved to {progress.path()}: {error}", progress.ProgressWarning,
                      stacklevel=3)


def grade(question_id: str, rating: str) -> str:
    """Grade your own answer to a written question against its model answer (``reveal``): again (missed it),
    hard, good or easy. The rating schedules the question's next review; returns when that is."""
    from helpers import progress

    item = question(question_id)
    if item.type != "written":
        raise ValueError(f"{question_id} is graded by quiz.check(\"{question_id}\", ...); only a written question "
                         "is graded by its reader")
    progress.record(item.id, rating=rating, source="self-grade", lecture=item.lecture)  # refuses an unknown rating
    card = progress.cards([a for a in progress.answers() if a.question == item.id])[item.id]
    return f"{item.id}: graded {rating}; next review due {card.due:%Y-%m-%d %H:%M} UTC"


def reveal(question_id: str) -> Any:
    """A written question's model answer and the points a grader looks for (Markdown)."""
    from helpers.display import Markdown

    item = question(question_id)
    if isinstance(item, Choice):
        raise ValueError(f"{question_id} is answered with quiz.check(\"{question_id}\", ...); only a written "
                         f"question has a model answer to reveal")
    return Markdown(item.model())  # model() refuses a bank question that is not a written one


def for_notebook(notebook: str) -> list[Question]:
    """The bank's questions on what one notebook teaches (its self-check)."""
    return [candidate for candidate in bank() if candidate.notebook == notebook]


def _spread(pools: dict[int, list[Question]], count: int, seed: int | None) -> list[Question]:
    generator = random.Random(seed)
    for pool in pools.values():
        generator.shuffle(pool)
    drawn: list[Question] = []
    while len(drawn) < count and any(pools.values()):
        for number in sorted(pools):
            if pools[number] and len(drawn) < count:
                drawn.append(pools[number].pop())
    return drawn


def draw(count: int = 10, seed: int | None = None, lectures_: Iterable[int] | None = None) -> list[Question]:
    """A mixed quiz: ``count`` questions that ``check`` grades, spread evenly over the lectures. The same seed
    draws the same quiz; ``seed=None`` draws a fresh one."""
    return _spread({number: bank(number) for number in _chosen(lectures_)}, count, seed)


def draw_written(count: int = 8, seed: int | None = None, lectures_: Iterable[int] | None = None) -> list[Question]:
    """``count`` written-answer prompts spread evenly over the lectures, drawn like ``draw``."""
    return _spread({number: written(number) for number in _chosen(lectures_)}, count, seed)


# --- sessions and widgets -------------------------------------------------------------------------


class Session:
    """The answers given through it (by widget or by ``check``), for a score and the sections to revisit."""

    def __init__(self) -> None:
        self.answers: dict[str, Feedback] = {}

    def check(self, question_id: str, answer: Any) -> Feedback:
        item = question(question_id)
        result = item.check(answer)
        remember(item, result, "session")
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
            if not result.correct and result.link:
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


def ask(item: Question | Choice | str, session: Session | None = None) -> Any:
    """The question (or an id) as an interactive widget, or as text where ipywidgets is not installed."""
    if isinstance(item, str):
        item = question(item)
    try:
        from helpers.quiz_widgets import widget

        return widget(item, session)
    except ImportError:
        from helpers.display import Markdown

        return Markdown(item.as_text())


def self_check(notebook: str, extra: Sequence[Choice] = (), session: Session | None = None) -> None:
    """Show a notebook's self-check: its own questions, then the bank's questions on what it teaches."""
    from IPython.display import display

    for item in [*extra, *for_notebook(notebook)]:
        display(ask(item, session))


__all__ = ["Choice", "Feedback", "Question", "Session", "ask", "bank", "check", "draw", "draw_written",
           "for_notebook", "forget", "grade", "lectures", "question", "remember", "reveal", "seed", "self_check",
           "written"]


def forget(confirm: bool | None = None) -> str:
    """Start again from no answers: the progress file is set aside after asking (``helpers.progress.forget``)."""
    from helpers import progress

    return progress.forget(confirm=confirm)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.quiz anki OUT.apkg`` (the bank as an Anki deck) or ``sheet OUT.html`` (the exam sheet)."""
    import argparse

    from helpers import exports

    parser = argparse.ArgumentParser(prog="python -m helpers.quiz", description="The question bank outside the "
                                     "notebooks.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("anki", help="write every bank question as an Anki deck (.apkg)").add_argument("out")
    commands.add_parser("sheet", help="write the comparison tables of 05.1 as one HTML page").add_argument("out")
    arguments = parser.parse_args(argv)
    if arguments.command == "anki":
        count = exports.anki_deck(Path(arguments.out))
        print(f"wrote {count} notes to {arguments.out}: in Anki, File > Import, and choose it (importing a newer "
              "deck updates these notes)")
    else:
        count = exports.exam_sheet(Path(arguments.out))
        print(f"wrote {count} tables to {arguments.out}: open it in a browser and print it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
