"""The notebooks of the collection, read from their own files.

Each notebook's metadata holds ``summary`` (one line) and ``requires`` (the features from
:mod:`helpers.env` its live cells need). The start-here index and the test collection both read them
from here, so they cannot disagree with the notebooks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
_NAME = re.compile(r"^(?P<lecture>\d\d)(?:\.(?P<section>\d+))?-[a-z0-9-]+\.ipynb$")


@dataclass(frozen=True)
class Notebook:
    path: Path
    title: str
    summary: str
    requires: tuple[str, ...]

    @property
    def lecture(self) -> int:
        return int(self.path.name[:2])


def sources(path: Path | str, kind: str | None = None) -> list[str]:
    """The source of every cell of a notebook file (only of ``code`` or ``markdown`` cells, if ``kind``)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return ["".join(cell.get("source", [])) for cell in data.get("cells", [])
            if kind is None or cell.get("cell_type") == kind]


def read(path: Path | str) -> Notebook:
    """Title (the first Markdown heading), summary and needs of one notebook file."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    meta = data.get("metadata", {})
    title = path.stem
    for cell in data.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", []))
            heading = next((line for line in source.splitlines() if line.startswith("# ")), None)
            if heading:
                title = heading[2:].strip()
                break
    return Notebook(path, title, str(meta.get("summary", "")), tuple(meta.get("requires", [])))


def notebooks(folder: Path | None = None) -> list[Notebook]:
    """Every notebook in course order (their names sort that way)."""
    folder = folder or NOTEBOOKS
    return [read(p) for p in sorted(folder.glob("*.ipynb")) if _NAME.match(p.name)]


def badly_named(folder: Path | None = None) -> list[str]:
    """Notebook files whose names do not follow ``LL.S-topic.ipynb`` (or ``00-start-here.ipynb``)."""
    folder = folder or NOTEBOOKS
    return [p.name for p in sorted(folder.glob("*.ipynb")) if not _NAME.match(p.name)]
