"""What the suite's nbval run printed, kept as executed copies of the notebooks.

nbval executes every notebook and compares each cell's output with the stored one, but keeps nothing. The
suite's plugin (:mod:`helpers.pytest_rules`) hands each cell's outputs to a :class:`Recorder`, which writes
``build/executed/NAME.ipynb`` (the notebook with this run's own outputs) once every cell of it has passed,
and ``build/executed/times.json`` (the seconds each notebook's cells took).

The browser test opens those copies for the notebooks that are slow to run: their cells are executed once
per suite, by nbval, and JupyterLab still opens and renders that very run's outputs and answers their
self-check live (see :mod:`helpers.browser`).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from helpers import catalog

# $CLOUDNOTES_EXECUTED moves it (a nested test run keeps its copies apart from the suite's own).
DIR = Path(os.environ.get("CLOUDNOTES_EXECUTED") or catalog.ROOT / "build" / "executed")
TIMES = DIR / "times.json"


class Recorder:
    """Collects one run's cell outputs per notebook and writes each complete notebook."""

    def __init__(self, folder: Path = DIR):
        self.folder = folder
        self.outputs: dict[Path, dict[int, list[Any]]] = {}
        self.failed: set[Path] = set()
        self.seconds: dict[str, float] = {}

    def cell(self, path: Path, number: int, outputs: list[Any] | None, seconds: float, passed: bool) -> None:
        """One code cell (``number`` counts code cells from 0) ran: keep what it printed."""
        self.outputs.setdefault(path, {})[number] = list(outputs or [])
        self.seconds[path.name] = round(self.seconds.get(path.name, 0.0) + seconds, 2)
        if not passed:
            self.failed.add(path)

    def finish(self, path: Path, notebook: Any) -> Path | None:
        """Write the executed copy of ``notebook`` (nbformat) if every code cell ran and passed; its path."""
        outputs = self.outputs.pop(path, {})
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / TIMES.name).write_text(json.dumps(self.seconds, indent=2) + "\n")
        target = self.folder / path.name
        target.unlink(missing_ok=True)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        if path in self.failed or len(outputs) != len(code):
            return None
        executed = copy.deepcopy(notebook)
        for number, cell in enumerate(cell for cell in executed.cells if cell.cell_type == "code"):
            cell.execution_count = number + 1
            cell.outputs = outputs[number]
            for output in cell.outputs:
                if output.get("output_type") == "execute_result":
                    output["execution_count"] = number + 1
        target.write_text(json.dumps(executed, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return target


def copy_of(name: str, folder: Path = DIR) -> Path | None:
    """The executed copy of notebook ``name`` from the last run, if it completed."""
    path = folder / name
    return path if path.exists() else None


def clear(folder: Path = DIR) -> None:
    """Forget an earlier run's copies (a suite starts with none, so that only its own run is ever opened)."""
    for path in [*folder.glob("*.ipynb"), folder / TIMES.name]:
        path.unlink(missing_ok=True)


def seconds(name: str, folder: Path = DIR) -> float | None:
    """How long the last run's cells of notebook ``name`` took, if it ran."""
    try:
        return json.loads((folder / TIMES.name).read_text()).get(name)
    except (OSError, ValueError):
        return None
