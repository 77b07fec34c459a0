"""Small display helpers: tables and Markdown that read well in JupyterLab and as plain text.

Every object here renders twice: as HTML in JupyterLab and as plain text everywhere else (a terminal,
nbval, a static render), so a notebook's stored output stays readable without a browser.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from html.parser import HTMLParser
from typing import Any


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


class Table:
    """A small table of rows under named columns.

    ``Table([("S3", "PaaS")], headers=("service", "model"))`` shows as an HTML table in JupyterLab and as
    aligned text in ``print()`` or ``repr()``. Numbers right-align; floats get three significant digits.
    """

    def __init__(self, rows: Iterable[Sequence[Any]], headers: Sequence[str], title: str | None = None):
        self.headers = [str(h) for h in headers]
        self.rows = [list(row) for row in rows]
        self.title = title
        for row in self.rows:
            if len(row) != len(self.headers):
                raise ValueError(f"row {row!r} has {len(row)} cells, expected {len(self.headers)}")

    def column(self, name: str) -> list[Any]:
        """The values of one column, by header name."""
        index = self.headers.index(name)
        return [row[index] for row in self.rows]

    def _numeric(self, index: int) -> bool:
        values = [row[index] for row in self.rows]
        return bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)

    def __repr__(self) -> str:
        cells = [self.headers] + [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(self.headers))]
        right = [self._numeric(i) for i in range(len(self.headers))]

        def fmt(line: list[str]) -> str:
            parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(line, widths, right, strict=True)]
            return "  ".join(parts).rstrip()

        out = [self.title] if self.title else []
        out += [fmt(cells[0]), "  ".join("-" * w for w in widths)] + [fmt(line) for line in cells[1:]]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        def row_html(values: Sequence[Any], tag: str) -> str:
            tds = []
            for i, v in enumerate(values):
                align = ' style="text-align:right"' if tag == "td" and self._numeric(i) else ""
                tds.append(f"<{tag}{align}>{html.escape(_cell(v))}</{tag}>")
            return "<tr>" + "".join(tds) + "</tr>"

        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        body = "".join(row_html(row, "td") for row in self.rows)
        return f"<table>{caption}<thead>{row_html(self.headers, 'th')}</thead><tbody>{body}</tbody></table>"


class Markdown:
    """Markdown text that renders in JupyterLab and prints as itself elsewhere."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return self.text


def show_markdown(text: str) -> None:
    """Display Markdown in a notebook, or print it as text outside one."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))


class _VisibleText(HTMLParser):
    """Collects the text a browser would show (no scripts, styles or tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in {"script", "style", "head"}:
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "head"}:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.parts.append(" ".join(data.split()))


class Page:
    """A whole HTML page shown inside a notebook: in a sandboxed frame in JupyterLab (so its styles cannot
    leak into the notebook), and as its visible text in plain renders."""

    def __init__(self, page: str, height: int = 320):
        self.page = page
        self.height = height

    def text(self) -> str:
        parser = _VisibleText()
        parser.feed(self.page)
        return " | ".join(parser.parts)

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.page, quote=True)}" sandbox="" '
                f'style="width:100%;height:{self.height}px;border:1px solid #ddd;border-radius:4px"></iframe>')
