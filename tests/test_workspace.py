"""helpers.workspace: scratch folders disappear, whatever happens."""

from __future__ import annotations

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


def test_close_twice_is_harmless_and_exit_closes_what_is_open():
    folder = workspace.Scratch("unit")
    folder.close()
    folder.close()
    other = workspace.Scratch("unit")
    workspace._close_all()
    assert other.closed
