"""Questions with instant feedback: buttons in JupyterLab, plain text everywhere else.

``ask(question)`` shows a question as buttons; clicking one says at once whether it is right and why.
Where widgets cannot run (nbval, a static render) the same question reads as text, and
``question.check(answer)`` gives the same feedback as a printable result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Feedback:
    correct: bool
    answer: str
    right_answer: str
    explanation: str

    def __str__(self) -> str:
        if self.correct:
            return f"✓ {self.answer}: right. {self.explanation}"
        return f"✗ {self.answer}: not quite; the answer is {self.right_answer}. {self.explanation}"


@dataclass(frozen=True)
class Choice:
    """A single-choice question."""

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


def _widget(question: Choice) -> Any:
    import ipywidgets as widgets

    class QuestionBox(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
            bundle = super()._repr_mimebundle_(**kwargs)
            if bundle is not None:  # plain-text renders show the whole question, not a widget tree
                bundle["text/plain"] = question.as_text()
            return bundle

    buttons = widgets.ToggleButtons(options=list(question.options), value=None,
                                    style={"button_width": "auto"})
    feedback = widgets.HTML(value="")

    def on_pick(change: dict) -> None:
        if change["new"] is not None:
            result = question.check(change["new"])
            colour = "#009E73" if result.correct else "#D55E00"
            feedback.value = f'<span style="color:{colour}">{result}</span>'

    buttons.observe(on_pick, names="value")
    return QuestionBox([widgets.HTML(value=f"<b>{question.prompt}</b>"), buttons, feedback])


def ask(question: Choice) -> Any:
    """The question as an interactive widget (or as text where ipywidgets is not installed)."""
    try:
        return _widget(question)
    except ImportError:
        from helpers.display import Markdown

        return Markdown(question.as_text())
