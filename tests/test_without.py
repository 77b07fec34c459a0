"""Notebooks that consult the machine run to the end where none of their needs is met, saying what is missing."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import catalog, env


def _consults_the_machine(notebook: catalog.Notebook) -> bool:
    """Declares needs, or asks helpers.env what is there: the notebooks whose run can differ without them."""
    return bool(notebook.requires) or "env." in notebook.path.read_text(encoding="utf-8")


SLOW_S = 60  # a run without features takes seconds; a slower one says where its time went

NOTEBOOKS = [notebook for notebook in catalog.notebooks() if _consults_the_machine(notebook)]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.path.name)
def test_runs_to_the_end_with_every_feature_absent(notebook, monkeypatch):
    monkeypatch.delenv(env.STRICT_VARIABLE, raising=False)
    monkeypatch.setenv(env.WITHOUT_VARIABLE, "all")
    nb = nbformat.read(notebook.path, as_version=4)
    marks = [("start", time.monotonic())]  # where the time goes, reported below when a run is slow

    def mark(name: str) -> Callable[..., None]:
        return lambda **info: marks.append((f"{name} {info.get('cell_index', '')}".strip(), time.monotonic()))

    # Without its features every cell takes seconds. The timeout is also how long the client waits for a reply
    # it was not woken for: in CI that happened, about one run in two, after 01.1's `interact` cell, and the
    # reply was then read when the wait timed out (300 s with the old setting). 60 s bounds that cost.
    client = NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.path.parent)}},
                            on_notebook_start=mark("kernel ready"), on_cell_start=mark("cell"),
                            on_cell_executed=mark("cell done"), on_notebook_complete=mark("complete"))
    client.execute()  # raises CellExecutionError on any error outside a raises-exception cell
    gaps = sorted(((later[1] - earlier[1], f"{earlier[0]} -> {later[0]}")
                   for earlier, later in zip(marks, marks[1:], strict=False)), reverse=True)
    gaps = [f"{seconds:.1f} s from {where}" for seconds, where in gaps]
    if marks[-1][1] - marks[0][1] > SLOW_S:
        warnings.warn(f"{notebook.path.name} took {marks[-1][1] - marks[0][1]:.0f} s; longest waits: {gaps[:3]}",
                      stacklevel=1)
    shown = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/markdown", ""))
        for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs
    )
    if notebook.requires:
        assert "cannot run live here" in shown
