"""The question bank outside the notebooks: an Anki deck, and a one-page exam sheet.

``python -m helpers.quiz anki cloudnotes.apkg`` writes every bank question as an Anki note: the prompt with
its options on the front; the answer, the explanation (or, for a written question, the model answer and the
points a grader looks for) and the section that teaches it on the back. Notes are tagged by lecture and by
notebook, and their ids are fixed (the deck's and the note type's numbers below, each note's GUID made from the
question's id), so importing an updated deck updates the notes already in Anki instead of adding copies.

``python -m helpers.quiz sheet exam-sheet.html`` writes the comparison tables of the midterm review (05.1) as
one HTML page to print.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from helpers import catalog, quiz

DECK_ID = 1_905_316_842  # fixed forever: Anki recognises the deck by it
MODEL_ID = 1_905_316_843  # the note type, likewise
DECK_NAME = "Cloud computing midterm (cloudnotes)"
REVIEW = quiz.ROOT / "notebooks" / "05.1-midterm-review.ipynb"


def _front(question: quiz.Question) -> str:
    prompt = html.escape(question.prompt)
    if question.type in ("single", "multiple", "order"):
        options = "".join(f"<li>{html.escape(option)}</li>" for option in question.options)
        how = {"single": "one answer", "multiple": "every right answer", "order": "put them in order"}[question.type]
        return f"{prompt}<ul>{options}</ul><i>({how})</i>"
    if question.type == "truefalse":
        return f"{prompt}<br><i>(true or false)</i>"
    if question.type == "numeric":
        return f"{prompt}<br><i>(a number{' in ' + html.escape(question.unit) if question.unit else ''})</i>"
    return f"{prompt}<br><i>(write a paragraph, then compare)</i>"


def _back(question: quiz.Question) -> tuple[str, str]:
    if question.type == "written":
        points = "".join(f"<li>{html.escape(point)}</li>" for point in question.points)
        return html.escape(question.model_answer), f"A grader looks for:<ul>{points}</ul>"
    answer = question.answer
    if question.type == "multiple":
        shown = "<ul>" + "".join(f"<li>{html.escape(a)}</li>" for a in answer) + "</ul>"
    elif question.type == "order":
        shown = "<ol>" + "".join(f"<li>{html.escape(a)}</li>" for a in answer) + "</ol>"
    elif question.type == "truefalse":
        shown = "True" if answer else "False"
    elif question.type == "numeric":
        shown = html.escape(f"{answer:g} {question.unit}".strip())
    else:
        shown = html.escape(str(answer))
    return shown, html.escape(question.explanation)


def _tag(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-")


def anki_deck(out: Path) -> int:
    """Write the whole bank as an Anki package at ``out``; return the number of notes."""
    import genanki

    model = genanki.Model(
        MODEL_ID, "cloudnotes question",
        fields=[{"name": "Id"}, {"name": "Question"}, {"name": "Answer"}, {"name": "Explanation"},
                {"name": "Section"}],
        templates=[{"name": "Card 1", "qfmt": "{{Question}}",
                    "afmt": "{{FrontSide}}<hr id=answer><b>{{Answer}}</b><p>{{Explanation}}</p>"
                            "<p><small>{{Section}} &middot; {{Id}}</small></p>"}],
        sort_field_index=0)
    deck = genanki.Deck(DECK_ID, DECK_NAME)
    for question in quiz.bank() + quiz.written():
        answer, explanation = _back(question)
        section = f"Re-read: notebooks/{question.notebook}, section “{question.heading}”"
        deck.add_note(genanki.Note(
            model=model, fields=[question.id, _front(question), answer, explanation, html.escape(section)],
            guid=genanki.guid_for("cloudnotes", question.id),
            tags=[f"cloudnotes::lecture-{question.lecture}",
                  f"cloudnotes::{_tag(question.notebook.removesuffix('.ipynb'))}", f"cloudnotes::{question.type}"]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    genanki.Package(deck).write_to_file(str(out))
    return len(deck.notes)


def _tables(notebook: Path) -> list[tuple[str, str]]:
    """(heading, Markdown) for every Markdown table in the notebook, under the heading it sits below."""
    found, heading = [], ""
    for text in catalog.sources(notebook, "markdown"):
        block: list[str] = []
        for line in text.splitlines() + [""]:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            if line.startswith("|"):
                block.append(line)
            elif block:
                found.append((heading, "\n".join(block)))
                block = []
    return found


def exam_sheet(out: Path, notebook: Path = REVIEW) -> int:
    """Write the comparison tables of the midterm review as one printable HTML page; return how many."""
    import mistune

    render: Any = mistune.create_markdown(plugins=["table"])
    tables = _tables(notebook)
    sections: dict[str, list[str]] = {}
    for heading, table in tables:
        sections.setdefault(heading, []).append(render(table))
    parts = [f"<section><h2>{html.escape(heading)}</h2>{''.join(rendered)}</section>"
             for heading, rendered in sections.items()]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cloud computing midterm: exam sheet</title>
<style>
body {{ font: 10pt/1.3 system-ui, sans-serif; margin: 1.2cm; columns: 2; column-gap: 1cm; }}
h1 {{ column-span: all; font-size: 14pt; }} h2 {{ font-size: 11pt; margin: .6em 0 .2em; }}
section {{ break-inside: avoid; }} table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #999; padding: 2px 4px; vertical-align: top; text-align: left; }}
</style></head><body>
<h1>Cloud computing midterm: exam sheet (the comparison tables of {html.escape(notebook.name)})</h1>
{''.join(parts)}
</body></html>
"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return len(tables)
