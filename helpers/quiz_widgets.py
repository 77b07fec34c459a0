"""The widgets behind ``quiz.ask``: one per kind of question, each answering a click at once.

A widget shows the options in the session's order, lettered as ``as_text`` letters them, and reads as that
text wherever widgets do not render (nbval, a static render). Feedback names options by their text.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from helpers.quiz import LETTERS, Choice, Feedback, Question, Session, grade, remember


def feedback_html(result: Feedback) -> str:
    colour = "#009E73" if result.correct else "#D55E00"
    text = html.escape(str(result).split(" Re-read: ")[0])
    link = ""
    if result.link and not result.correct:
        notebook, _, section = result.link.partition("#")
        link = f' Re-read: <a href="{result.link}">{notebook}, {section.replace("-", " ")}</a>'
    return f'<span style="color:{colour}">{text}</span>{link}'


def _markdown_html(text: str) -> str:
    """A model answer as HTML: paragraphs, "- " lists and **bold**, the little Markdown it uses."""
    out = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        items = [line[2:] for line in lines if line.startswith("- ")]
        head = [line for line in lines if not line.startswith("- ")]
        for line in head:
            parts = html.escape(line).split("**")
            out.append("<p>" + "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts)) + "</p>")
        if items:
            out.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>")
    return "".join(out)


def widget(item: Question | Choice, session: Session | None) -> Any:
    """``item`` as a box of widgets: the prompt, its controls and a feedback line."""

    class QuestionBox(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
            bundle = super()._repr_mimebundle_(**kwargs)
            if bundle is not None:  # plain-text renders show the whole question, not a widget tree
                bundle["text/plain"] = item.as_text()
            return bundle

    feedback = widgets.HTML(value="")
    shown = item.shown_options()

    def answer(value: Any) -> None:
        try:
            result = item.check(value)
        except ValueError as exc:
            feedback.value = f'<span style="color:#D55E00">{html.escape(str(exc))}</span>'
            return
        remember(item, result, "widget")
        if session is not None:
            session.answers[item.id] = result
        feedback.value = feedback_html(result)

    def lettered(i: int, option: str) -> str:
        return f"{LETTERS[i]}. {option}"

    kind = item.type
    header = widgets.HTML(value=f"<b>[{html.escape(item.id)}] {html.escape(item.prompt)}</b>")
    if kind in ("single", "truefalse"):
        options = [(lettered(i, o), o) for i, o in enumerate(shown)] if kind == "single" else ["True", "False"]
        control = widgets.ToggleButtons(options=options, value=None, style={"button_width": "auto"})
        control.observe(lambda change: change["new"] is not None and answer(change["new"]), names="value")
        body: list[Any] = [control]
    elif kind == "written":
        draft = widgets.Textarea(placeholder="Your answer: a paragraph, in your own words",
                                 layout=widgets.Layout(width="100%", height="6em"))
        button = widgets.Button(description="Show model answer")
        ratings = [widgets.Button(description=rating.capitalize(), layout=widgets.Layout(display="none"))
                   for rating in ("again", "hard", "good", "easy")]
        graded = widgets.HTML(value="")

        def show(_: Any) -> None:
            feedback.value = _markdown_html(item.model()) + "<p>How did your answer compare? Grade it:</p>"
            for rating_button in ratings:
                rating_button.layout.display = None

        def rate(rating_button: Any) -> None:
            graded.value = html.escape(grade(item.id, rating_button.description.lower()))

        button.on_click(show)
        for rating_button in ratings:
            rating_button.on_click(rate)
        body = [draft, button]
        return QuestionBox([header, *body, feedback, widgets.HBox(ratings), graded])
    else:
        button = widgets.Button(description="Check")
        if kind == "multiple":
            boxes = [widgets.Checkbox(description=lettered(i, o), value=False, indent=False)
                     for i, o in enumerate(shown)]
            body = [*boxes, button]
            button.on_click(lambda _: answer([o for o, box in zip(shown, boxes, strict=True) if box.value]))
        elif kind == "numeric":
            field_ = widgets.FloatText(description=item.unit or "answer")
            body = [widgets.HBox([field_, button])]
            button.on_click(lambda _: answer(field_.value))
        else:  # order
            listing = "<br>".join(html.escape(lettered(i, o)) for i, o in enumerate(shown))
            field_ = widgets.Text(placeholder="letters in order, e.g. CAB")
            body = [widgets.HTML(value=listing), widgets.HBox([field_, button])]
            button.on_click(lambda _: answer(field_.value))
    return QuestionBox([header, *body, feedback])
