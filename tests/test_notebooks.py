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


def _machine_specific() -> dict[str, re.Pattern]:
    """What a stored output must not contain: this machine's identity, in the forms a cell could print it."""
    import os
    import platform
    import socket
    import tempfile

    here = [re.escape(text) for text in (platform.python_version(), os.uname().release, str(catalog.ROOT),
                                         tempfile.gettempdir() + "/", str(Path.home()) + "/")]
    host = socket.gethostname()
    if len(host) >= 6:  # a short name ("vm", "box") is an ordinary word in a lesson
        here.append(rf"\b{re.escape(host)}\b")
    return {
        "this machine's identity (Python, kernel, host name, paths)": re.compile("|".join(here)),
        "a Python version": re.compile(r"\bPython \d\.\d+\.\d+|\bPython 3\.\d+\b(?! with)"),
        "a kernel release": re.compile(r"\b\d+\.\d+\.\d+-\d+(-cloud)?-(amd64|arm64)\b|\b\d+\.\d+\.\d+-\w+-generic\b"),
        "a hypervisor": re.compile(r"kvm_pvm|kvm_intel|kvm_amd|\btcg\b|\bKVM guest\b|inside a \w+ container"),
        "a cgroup version": re.compile(r"\bcgroup v[12]\b|\bcgroup2\b|memory\.limit_in_bytes|memory\.max\b|"
                                       r"cpu\.cfs_quota_us|cpu\.max\b"),
        "an absolute scratch path": re.compile(r"(/var)?/tmp/[\w.-]+|/home/\w+|/root/"),
    }


def _output_text(output: dict) -> str:
    if "text" in output:
        return "".join(output["text"])
    data = output.get("data", {})
    return "".join("".join(value) if isinstance(value, list) else str(value)
                   for kind, value in data.items() if kind.startswith("text/"))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_compared_outputs_name_nothing_of_the_machine_that_recorded_them(path):
    """A compared output is what every machine prints: no versions, kernels, hypervisors, cgroup versions or
    scratch paths (those go in nbval-ignore-output cells, followed by a cell that checks the invariant).
    Question-bank text is exempt: it is the same everywhere."""
    patterns = _machine_specific()
    found = []
    for index, cell in enumerate(_load(path)["cells"]):
        source = "".join(cell.get("source", []))
        if cell["cell_type"] != "code" or "nbval-ignore-output" in cell["metadata"].get("tags", []):
            continue
        if "quiz." in source:
            continue
        for output in cell.get("outputs", []):
            text = _output_text(output)
            for what, pattern in patterns.items():
                match = pattern.search(text)
                if match:
                    found.append(f"cell {index}: {what}: {match.group(0)!r}")
    assert not found, f"{path.name}: compared outputs that differ from machine to machine: " + "; ".join(found)


def test_every_image_a_notebook_builds_carries_the_collection_label():
    """The leftover check sees only labelled Docker objects: a build without the label would escape it."""
    from helpers.images import LABELS

    label = ", ".join(f'"{key}": "{value}"' for key, value in LABELS.items())
    for path in PATHS:
        for index, cell in enumerate(_code_cells(path)):
            source = "".join(cell["source"])
            for call in re.findall(r"client\.images\.build\((?:[^()]|\([^()]*\))*\)", source):
                assert "labels=" in call, f"{path.name} code cell {index}: images.build without labels= ({label})"


COMMAND_CAPTION = re.compile(r"""["'`]\$ (docker|kubectl)\b""")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_a_cell_that_prints_a_docker_or_kubectl_command_ran_that_command(path):
    """`$ docker ...` in a cell's output means the command ran: the cell must start that program itself
    (a cell driving the Python SDK says "the SDK call behind `docker ...`" instead)."""
    wrong = []
    for index, cell in enumerate(_code_cells(path)):
        source = "".join(cell["source"])
        for program in set(COMMAND_CAPTION.findall(source)):
            runs_it = re.search(rf"""(subprocess\.\w+|run|Popen)\(\s*\[\s*["']{program}["']""", source)
            if not runs_it:
                wrong.append((index, program))
    assert not wrong, f"code cells print `$ docker|kubectl ...` without running it: {wrong}"
