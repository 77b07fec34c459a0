"""Notebooks that consult the machine run to the end where none of their needs is met, saying what is missing."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import catalog, env


def _consults_the_machine(notebook: catalog.Notebook) -> bool:
    """Declares needs, or asks helpers.env what is there: the notebooks whose run can differ without them."""
    return bool(notebook.requires) or "env." in notebook.path.read_text(encoding="utf-8")


NOTEBOOKS = [notebook for notebook in catalog.notebooks() if _consults_the_machine(notebook)]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.path.name)
def test_runs_to_the_end_with_every_feature_absent(notebook, monkeypatch):
    monkeypatch.delenv(env.STRICT_VARIABLE, raising=False)
    monkeypatch.setenv(env.WITHOUT_VARIABLE, "all")
    nb = nbformat.read(notebook.path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.path.parent)}})
    client.execute()  # raises CellExecutionError on any error outside a raises-exception cell
    shown = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/markdown", ""))
        for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs
    )
    if notebook.requires:
        assert "cannot run live here" in shown
