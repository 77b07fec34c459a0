"""A scratch folder per lesson that always cleans up after itself.

``with scratch("namespaces") as folder:`` gives a fresh folder under the system's temporary directory
and removes it, contents and all, when the block ends, even on an error. A notebook that cannot use a
``with`` block (its folder lives across many cells) calls ``Scratch("name")`` and ``.close()`` in its
cleanup cell. A folder dropped without ``close()`` is removed when the object is garbage-collected,
and anything still open when the Python process exits.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

PREFIX = "cloudnotes-"


class Scratch:
    """A temporary folder, removed by ``close()``, at the end of a ``with`` block, or at exit."""

    def __init__(self, name: str = "scratch"):
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{name}-"))
        # Runs once: on close(), when the object is collected, or at interpreter exit, whichever comes first.
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def closed(self) -> bool:
        return not self.path.exists()

    def close(self) -> None:
        """Remove the folder and everything in it (safe to call twice)."""
        self._remove()

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Scratch({self.path.name!r}, {'closed' if self.closed else 'open'})"


def scratch(name: str = "scratch") -> Scratch:
    """A new scratch folder; use it in a ``with`` block."""
    return Scratch(name)

