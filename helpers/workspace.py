"""A scratch folder per lesson that always cleans up after itself.

``with scratch("namespaces") as folder:`` gives a fresh folder under the system's temporary directory
and removes it, contents and all, when the block ends, even on an error. A notebook that cannot use a
``with`` block (its folder lives across many cells) calls ``Scratch("name")`` and ``.close()`` in its
cleanup cell; anything still open is removed when the Python process exits.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import weakref
from pathlib import Path

PREFIX = "cloudnotes-"
_open: weakref.WeakSet[Scratch] = weakref.WeakSet()


class Scratch:
    """A temporary folder, removed by ``close()``, at the end of a ``with`` block, or at exit."""

    def __init__(self, name: str = "scratch"):
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{name}-"))
        _open.add(self)

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def closed(self) -> bool:
        return not self.path.exists()

    def close(self) -> None:
        """Remove the folder and everything in it (safe to call twice)."""
        shutil.rmtree(self.path, ignore_errors=True)
        _open.discard(self)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Scratch({self.path.name!r}, {'closed' if self.closed else 'open'})"


def scratch(name: str = "scratch") -> Scratch:
    """A new scratch folder; use it in a ``with`` block."""
    return Scratch(name)


@atexit.register
def _close_all() -> None:
    for folder in list(_open):
        folder.close()
