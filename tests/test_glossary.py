"""helpers.glossary: every term complete, unique and in both languages; search finds by any part."""

from __future__ import annotations

import re

import pytest

from helpers import glossary


def test_every_term_has_a_definition_a_chinese_name_and_a_lecture():
    terms = glossary.terms()
    assert len(terms) >= 80
    assert len({term["term"].casefold() for term in terms}) == len(terms)
    for term in terms:
        assert set(term) == {"term", "chinese", "definition", "lecture", "in_notes"}, term
        assert term["lecture"] in (1, 2, 3, 4)
        assert re.search(r"[\u4e00-\u9fff]", term["chinese"]), term["term"]  # written in Chinese characters
        assert term["definition"].endswith(".") and len(term["definition"]) < 200, term["term"]
    assert [term["lecture"] for term in terms] == sorted(term["lecture"] for term in terms)
    assert all(glossary.terms(n) for n in (1, 2, 3, 4))


def test_search_finds_english_chinese_and_definitions_in_any_case():
    assert any(term["term"] == "Hypervisor" for term in glossary.find("HYPERVISOR"))
    assert any("镜像" in term["chinese"] for term in glossary.find("镜像"))
    assert glossary.find("least privilege")  # a phrase from a definition or a term
    assert glossary.find("no such term anywhere") == []
    table = glossary.search("namespace")
    assert table.title.endswith("matching 'namespace'") and table.rows
    with pytest.raises(ValueError, match="search for some text"):
        glossary.find("  ")


def test_the_search_box_filters_as_you_type_and_reads_as_one_line():
    box = glossary.search_box()
    text, found = box.children
    assert found.value.count("<tr>") == len(glossary.terms()) + 1  # every term, plus the header row
    text.value = "etcd"
    assert "etcd" in found.value and found.value.count("<tr>") < 10
    assert box._repr_mimebundle_()["text/plain"].startswith("Glossary search:")
