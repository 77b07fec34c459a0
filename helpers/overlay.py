"""Where Docker keeps layers on disk with the ``overlay2`` storage driver, and what is in them.

An image's layers and a container's writable layer are folders under ``/var/lib/docker/overlay2``. A running
container's root file system is an overlay mount of them: the image's folders as read-only lower layers, the
container's own folder as the writable upper layer. ``docker inspect`` names the folders in ``GraphDriver``.
Reading them needs root. A deleted lower file is recorded in the upper folder as a *whiteout*: a character
device with device number 0:0, under the deleted file's name.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Folders:
    """The ``GraphDriver`` of an image or container: the driver's name and its folders (lower: top first)."""

    driver: str
    lower: tuple[Path, ...]
    upper: Path | None
    merged: Path | None

    @property
    def layers(self) -> tuple[Path, ...]:
        """Every layer folder, top first: the upper one (if any), then the lower ones."""
        return ((self.upper,) if self.upper else ()) + self.lower


def folders(attrs: dict[str, Any]) -> Folders:
    """Read ``docker inspect``'s ``GraphDriver`` (``attrs`` of an SDK Image or Container)."""
    graph = attrs.get("GraphDriver") or {}
    data = graph.get("Data") or {}
    lower = tuple(Path(part) for part in (data.get("LowerDir") or "").split(":") if part)
    upper = Path(data["UpperDir"]) if data.get("UpperDir") else None
    merged = Path(data["MergedDir"]) if data.get("MergedDir") else None
    return Folders(graph.get("Name", ""), lower, upper, merged)


def is_whiteout(path: Path) -> bool:
    """True for an overlayfs whiteout: a character device numbered 0:0."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISCHR(info.st_mode) and os.major(info.st_rdev) == 0 and os.minor(info.st_rdev) == 0


def kind(path: Path) -> str:
    """"whiteout", "folder", "file", "link" or "other", for a path inside a layer folder."""
    info = os.lstat(path)
    if is_whiteout(path):
        return "whiteout"
    if stat.S_ISDIR(info.st_mode):
        return "folder"
    if stat.S_ISREG(info.st_mode):
        return "file"
    if stat.S_ISLNK(info.st_mode):
        return "link"
    return "other"


def contents(folder: Path) -> list[tuple[str, str, int | None]]:
    """Everything in a layer folder, sorted: (path as the container sees it, kind, size in bytes of a regular
    file, None for anything else: a folder's own size depends on the file system)."""
    found = []
    for root, folder_names, file_names in os.walk(folder):
        for name in folder_names + file_names:
            path = Path(root) / name
            what = kind(path)
            size = os.lstat(path).st_size if what == "file" else None
            found.append(("/" + str(path.relative_to(folder)), what, size))
    return sorted(found)


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of an image's history (one Dockerfile instruction) and the layer it made, if any."""

    created_by: str
    layer: str | None
    files: tuple[str, ...]


def history_with_layers(image: Any) -> list[HistoryEntry]:
    """Pair each history entry of ``image`` (an SDK Image) with the layer it added, oldest first.

    ``docker save`` writes the image's configuration, whose history marks every instruction that added no
    layer with ``empty_layer``, and one tar per layer, in the order of ``RootFS.Layers``: the entries without
    the mark take the layers in turn. Meant for small images: the whole save is read into memory.
    """
    saved = io.BytesIO(b"".join(image.save()))
    with tarfile.open(fileobj=saved) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))[0]
        config = json.load(archive.extractfile(manifest["Config"]))
        layer_files = []
        for member in manifest["Layers"]:
            with tarfile.open(fileobj=archive.extractfile(member)) as layer:
                layer_files.append(tuple(sorted("/" + name.rstrip("/") for name in layer.getnames())))
    diff_ids = config["rootfs"]["diff_ids"]
    entries, next_layer = [], 0
    for entry in config.get("history", []):
        if entry.get("empty_layer"):
            entries.append(HistoryEntry(entry.get("created_by", ""), None, ()))
        else:
            entries.append(HistoryEntry(entry.get("created_by", ""), diff_ids[next_layer], layer_files[next_layer]))
            next_layer += 1
    return entries
