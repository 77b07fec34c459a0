"""helpers.display and helpers.plots: tables render as text and HTML; the chart style applies."""

from __future__ import annotations

import matplotlib as mpl
import pytest

from helpers import display, plots


def test_table_text_aligns_columns_and_right_aligns_numbers():
    table = display.Table([("S3", 0.023), ("Glacier Deep Archive", 0.00099)], headers=("class", "USD/GB"))
    lines = repr(table).splitlines()
    assert lines[0].startswith("class") and lines[1].startswith("-----")
    assert lines[2] == "S3                      0.023"
    assert lines[3].endswith("0.00099")
    assert len({len(line) for line in lines[2:]}) == 1


def test_table_html_escapes_and_aligns():
    html = display.Table([("<b>", 3)], headers=("tag", "n"), title="T")._repr_html_()
    assert "&lt;b&gt;" in html and "<caption>T</caption>" in html and 'text-align:right' in html


def test_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="has 1 cells, expected 2"):
        display.Table([("only one",)], headers=("a", "b"))


def test_show_markdown_prints_outside_a_notebook(capsys):
    display.show_markdown("**hello**")
    assert capsys.readouterr().out == "**hello**\n"


def test_apply_style_sets_the_palette():
    plots.apply_style()
    assert mpl.rcParams["axes.prop_cycle"].by_key()["color"][0] == plots.PALETTE[0]
    assert mpl.rcParams["axes.spines.top"] is False


def test_page_shows_visible_text_and_frames_the_html():
    page = display.Page("<html><head><style>body{color:red}</style><title>T</title></head>"
                        "<body><h1>Users</h1><p>Ada &amp; Alan</p><script>x()</script></body></html>")
    assert repr(page) == "Users | Ada & Alan"
    framed = page._repr_html_()
    assert framed.startswith("<iframe srcdoc=") and "&lt;h1&gt;Users" in framed and 'sandbox=""' in framed
