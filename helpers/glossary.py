"""The course's key terms (``data/glossary.json``): a one-line definition in English and the term in Chinese,
as the course notes were written in both. ``search("镜像")`` or ``search("layer")`` finds terms by any part."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from helpers.display import Table

GLOSSARY = Path(__file__).resolve().parent.parent / "data" / "glossary.json"


@cache
def _data() -> dict[str, Any]:
    return json.loads(GLOSSARY.read_text(encoding="utf-8"))


def terms(lecture: int | None = None) -> list[dict[str, Any]]:
    """Every term (of one lecture), sorted by lecture, then alphabetically."""
    return [term for term in _data()["terms"] if lecture is None or term["lecture"] == lecture]


def find(text: str) -> list[dict[str, Any]]:
    """Terms whose English name, Chinese name or definition contains ``text`` (any case)."""
    needle = text.strip().casefold()
    if not needle:
        raise ValueError("search for some text, for example search('namespace') or search('命名空间')")
    return [term for term in terms()
            if any(needle in term[key].casefold() for key in ("term", "chinese", "definition"))]


def table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    return Table([(term["lecture"], term["term"], term["chinese"], term["definition"]) for term in rows],
                 headers=("lecture", "term", "中文", "definition"), title=title)


def search(text: str) -> Table:
    """The matching terms as a table (empty with a title saying so when nothing matches)."""
    found = find(text)
    return table(found, title=f"{len(found)} term{'s' if len(found) != 1 else ''} matching {text!r}")


def search_box() -> Any:
    """A text box that filters the whole glossary as you type (in JupyterLab); reads as one line elsewhere."""
    import ipywidgets as widgets

    class GlossaryBox(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
            bundle = super()._repr_mimebundle_(**kwargs)
            if bundle is not None:  # plain-text renders: a line, not the widget tree with every term in it
                bundle["text/plain"] = f"Glossary search: {len(terms())} terms, filtered as you type in JupyterLab."
            return bundle

    box = widgets.Text(placeholder="a term, 中文, or any word of a definition")
    found = widgets.HTML()

    def show(change: Any = None) -> None:
        text = box.value.strip()
        shown = search(text) if text else table(terms(), f"all {len(terms())} terms")
        found.value = shown._repr_html_()

    box.observe(show, names="value")
    show()
    return GlossaryBox([box, found])
