"""data/facts.json: every claim about a provider has a source, a read date, and text that relies on it.

Each fact names the files that use it and a marker string that must appear in each of them (for a notebook:
in a markdown or code cell's source, not in an output), so a fact and the text that states it cannot drift
apart unnoticed: remove the text and the fact fails, and a fact nobody uses is caught too.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from helpers import catalog

ROOT = Path(__file__).resolve().parent.parent
FACTS = ROOT / "data" / "facts.json"
PRICE_FILES = [ROOT / "data" / "cloud-prices.json", ROOT / "data" / "s3-prices.json"]
URL = re.compile(r"https?://[^\s,;)'\"]+")


def _facts() -> dict[str, dict]:
    return json.loads(FACTS.read_text(encoding="utf-8"))["facts"]


def _urls(source: str | list[str]) -> list[str]:
    sources = [source] if isinstance(source, str) else source
    return [url for text in sources for url in URL.findall(text)]


def _is_http_url(url: str) -> bool:
    parts = urlparse(url)
    return parts.scheme in ("http", "https") and "." in parts.netloc


def _read_date(text: str) -> datetime.date:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", text), f"read date {text!r} is not ISO (YYYY-MM-DD)"
    return datetime.date.fromisoformat(text)


def _text_of(path: Path) -> str:
    """What a reader sees as the file's own text: a notebook's cell sources (not its outputs), else the file."""
    if path.suffix == ".ipynb":
        return "\n".join(catalog.sources(path))
    return path.read_text(encoding="utf-8")


def test_the_file_says_what_it_is_and_holds_facts():
    data = json.loads(FACTS.read_text(encoding="utf-8"))
    assert set(data) == {"about", "facts"}
    assert data["about"].strip() and data["facts"]


@pytest.mark.parametrize("key", sorted(_facts()))
def test_every_fact_has_a_claim_a_source_and_a_read_date(key):
    fact = _facts()[key]
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", key), f"{key}: keys are lower-case words joined by hyphens"
    assert set(fact) == {"claim", "source", "read", "marker", "used_in"}, key
    assert fact["claim"].strip().endswith("."), f"{key}: the claim is a full sentence"
    urls = _urls(fact["source"])
    assert urls and all(_is_http_url(url) for url in urls), f"{key}: every source is an http(s) URL"
    assert isinstance(fact["source"], str) or len(urls) == len(fact["source"]), f"{key}: one URL per listed source"
    assert _read_date(fact["read"]) <= datetime.date.today(), f"{key}: read in the future"


@pytest.mark.parametrize("key", sorted(_facts()))
def test_every_fact_is_used_where_it_says_and_its_marker_is_there(key):
    fact = _facts()[key]
    assert fact["marker"].strip() and fact["used_in"], key
    for name in fact["used_in"]:
        path = ROOT / name
        assert path.is_file(), f"{key}: {name} does not exist"
        assert fact["marker"] in _text_of(path), f"{key}: {name} does not contain the marker {fact['marker']!r}"


@pytest.mark.parametrize("path", PRICE_FILES, ids=lambda path: path.name)
def test_every_price_keeps_a_source_and_a_read_date(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = data["prices"].values() if "prices" in data else [data]  # s3-prices.json: one source for the file
    for entry in entries:
        assert _urls(entry["source"]) and all(_is_http_url(url) for url in _urls(entry["source"])), entry
        assert _read_date(entry["read"]) <= datetime.date.today(), entry


def test_the_checks_catch_a_missing_marker_and_a_future_date(tmp_path):
    """The test above can fail: a marker a file does not contain, or a date after today, are both refused."""
    notebook = tmp_path / "n.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["AWS (March 2024)\n"],
                                               "outputs": []}]}))
    assert "AWS (March 2024)" in _text_of(notebook)
    assert "Google Cloud (January 2024)" not in _text_of(notebook)
    tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    assert _read_date(tomorrow) > datetime.date.today()
    with pytest.raises(AssertionError, match="not ISO"):
        _read_date("30/11/2026")
    assert not _is_http_url("aws.amazon.com/lambda/pricing") and _urls("see the page") == []
