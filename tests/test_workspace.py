"""helpers.workspace: scratch folders disappear, whatever happens."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import workspace


def test_scratch_is_removed_at_the_end_of_the_block():
    with workspace.scratch("unit") as folder:
        (folder / "a" ).mkdir()
        (folder / "a" / "file.txt").write_text("data")
        path = folder.path
        assert path.name.startswith("cloudnotes-unit-")
    assert not path.exists() and folder.closed


def test_scratch_is_removed_after_an_error():
    with pytest.raises(RuntimeError), workspace.scratch("unit") as folder:
        path = folder.path
        raise RuntimeError("boom")
    assert not path.exists()


def test_close_twice_is_harmless():
    folder = workspace.Scratch("unit")
    folder.close()
    folder.close()
    assert folder.closed


def test_a_dropped_scratch_folder_is_removed():
    folder = workspace.Scratch("unit")
    (folder / "file.txt").write_text("data")
    path = folder.path
    del folder
    gc.collect()
    assert not path.exists()


def test_a_folder_left_open_is_removed_when_python_exits(tmp_path):
    code = ("import sys; from helpers import workspace; keep = workspace.Scratch('unit'); "
            "print(keep.path); sys.stdout.flush()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() and not Path(done.stdout.strip()).exists()
