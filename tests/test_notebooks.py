"""The notebook conventions: names, declared needs, committed outputs, and honest nbval tags.

nbval runs the notebooks themselves (``pytest --nbval notebooks``); these tests check the files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import catalog, env

PATHS = sorted(catalog.NOTEBOOKS.glob("*.ipynb"))
ALLOWED_TAGS = {"nbval-ignore-output", "raises-exception"}
MAX_IGNORED_SHARE = 0.4


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(path: Path) -> list[dict]:
    return [cell for cell in _load(path)["cells"] if cell["cell_type"] == "code"]


def test_start_here_exists_and_names_sort_in_course_order():
    assert (catalog.NOTEBOOKS / "00-start-here.ipynb").exists()
    assert catalog.badly_named() == []


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_metadata_declares_summary_and_known_needs(path):
    notebook = catalog.read(path)
    assert notebook.summary, "metadata.summary: one line for the index"
    unknown = set(notebook.requires) - set(env.PROBES)
    assert not unknown, f"metadata.requires names unknown features {unknown}"
    assert _load(path)["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_opens_with_title_goals_and_needs(path):
    first = "".join(_load(path)["cells"][0]["source"])
    assert first.startswith("# "), "the first cell is the title"
    assert "You will" in first and "Needs" in first


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_outputs_come_from_a_real_run(path):
    cells = _code_cells(path)
    assert cells, "a notebook here has live cells"
    unrun = [i for i, c in enumerate(cells) if c["execution_count"] is None and "".join(c["source"]).strip()]
    assert not unrun, f"code cells {unrun} were never executed: run `make execute` and commit the result"
    counts = [c["execution_count"] for c in cells if c["execution_count"] is not None]
    assert counts == list(range(1, len(counts) + 1)), "cells were run out of order: run `make execute`"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_nbval_tags_are_cell_tags_and_used_sparingly(path):
    cells = _code_cells(path)
    for i, cell in enumerate(cells):
        tags = set(cell["metadata"].get("tags", []))
        assert tags <= ALLOWED_TAGS, f"cell {i} has unknown tags {tags - ALLOWED_TAGS}"
        assert "NBVAL_" not in "".join(cell["source"]), f"cell {i}: use cell tags, not # NBVAL_ comments"
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        if errors:
            assert "raises-exception" in tags, f"cell {i} shows an error but is not tagged raises-exception"
    ignored = sum("nbval-ignore-output" in c["metadata"].get("tags", []) for c in cells)
    assert ignored <= MAX_IGNORED_SHARE * len(cells), f"{ignored}/{len(cells)} cells ignore their output"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_links_between_notebooks_resolve(path):
    text = "".join("".join(c["source"]) for c in _load(path)["cells"] if c["cell_type"] == "markdown")
    for target in re.findall(r"\]\(([^)#\s]+\.ipynb)", text):
        assert (path.parent / target).exists(), f"broken link to {target}"
