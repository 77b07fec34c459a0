"""helpers.overlay: GraphDriver folders, whiteouts, a layer's contents, history paired with layers."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from helpers import containers, overlay


def test_folders_reads_graph_driver_top_first():
    attrs = {"GraphDriver": {"Name": "overlay2", "Data": {
        "LowerDir": "/d/a-init/diff:/d/b/diff:/d/c/diff", "UpperDir": "/d/a/diff", "MergedDir": "/d/a/merged",
        "WorkDir": "/d/a/work"}}}
    found = overlay.folders(attrs)
    assert found.driver == "overlay2" and found.upper == Path("/d/a/diff") and found.merged == Path("/d/a/merged")
    assert found.lower == (Path("/d/a-init/diff"), Path("/d/b/diff"), Path("/d/c/diff"))
    assert found.layers[0] == found.upper and len(found.layers) == 4


def test_an_image_of_one_layer_has_no_lower_folders():
    found = overlay.folders({"GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": "/d/x/diff"}}})
    assert found.lower == () and found.layers == (Path("/d/x/diff"),) and found.merged is None
    assert overlay.folders({}).driver == "" and overlay.folders({}).layers == ()


@pytest.mark.needs("root")
def test_a_whiteout_is_a_character_device_zero_zero(tmp_path):
    os.mknod(tmp_path / "group", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(tmp_path / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "note.txt").write_text("changed\n")
    assert overlay.is_whiteout(tmp_path / "group") and not overlay.is_whiteout(tmp_path / "null")
    assert not overlay.is_whiteout(tmp_path / "srv") and not overlay.is_whiteout(tmp_path / "absent")
    assert overlay.contents(tmp_path) == [("/group", "whiteout", None), ("/null", "other", None),
                                          ("/srv", "folder", None), ("/srv/note.txt", "file", 8)]


def test_a_layer_folder_is_measured_by_the_files_in_it(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 5)
    (tmp_path / "link").symlink_to("a")
    assert containers.tree_size(tmp_path) == 15 + len("a")  # the files, and the link itself (never followed)


def _tar(members: dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return data.getvalue()


class _SavedImage:
    """What the SDK's Image.save() yields: chunks of a `docker save` archive."""

    def __init__(self, archive: bytes):
        self.archive = archive

    def save(self):
        yield self.archive[:100]
        yield self.archive[100:]


def test_history_entries_take_the_layers_in_turn():
    config = {"rootfs": {"diff_ids": ["sha256:one", "sha256:two"]}, "history": [
        {"created_by": "COPY rootfs/ / # buildkit"},
        {"created_by": "ENV A=1", "empty_layer": True},
        {"created_by": "WORKDIR /app"},
        {"created_by": 'CMD ["hello"]', "empty_layer": True}]}
    manifest = [{"Config": "c.json", "Layers": ["1/layer.tar", "2/layer.tar"]}]
    saved = _tar({"manifest.json": json.dumps(manifest).encode(),
                  "c.json": json.dumps(config).encode(),
                  "1/layer.tar": _tar({"bin/": None, "bin/busybox": b"elf"}),
                  "2/layer.tar": _tar({"app/": None})})
    entries = overlay.history_with_layers(_SavedImage(saved))
    assert [(entry.created_by, entry.layer, entry.files) for entry in entries] == [
        ("COPY rootfs/ / # buildkit", "sha256:one", ("/bin", "/bin/busybox")),
        ("ENV A=1", None, ()),
        ("WORKDIR /app", "sha256:two", ("/app",)),
        ('CMD ["hello"]', None, ())]
