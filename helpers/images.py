"""Container images made from local material, for machines that cannot reach an image registry.

Two bases, both built here rather than pulled:

* :func:`busybox_image`: ``FROM scratch`` plus a static busybox (about 2 MB), builds in well under a second.
* :func:`debian_base`: a Debian "minbase" root file system made by ``debootstrap`` from the distribution's
  package mirror, then ``docker import``-ed. debootstrap takes about half a minute, so its tarball is cached
  in ``~/.cache/cloudnotes/debian`` and later imports take a few seconds.

Where Docker Hub is reachable, :func:`pull_or_none` fetches an official image instead, and the notebooks
say which of the two they used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.containers import busybox_rootfs
from helpers.workspace import Scratch

# Every image the collection builds carries this label, and containers inherit their image's labels: the
# suite's leftover check (helpers.leftovers) looks only at objects with it, never at a user's own.
LABELS = {"cloudnotes": "course"}
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


class ImageError(RuntimeError):
    """An image could not be built or imported; the message says which step failed and why."""


def cache_dir() -> Path:
    """Where built material is kept between runs: $CLOUDNOTES_CACHE, else ~/.cache/cloudnotes."""
    return Path(os.environ.get("CLOUDNOTES_CACHE") or Path.home() / ".cache" / "cloudnotes")


def busybox_image(client: Any, tag: str, cmd: str = "sh") -> Any:
    """Build ``tag`` from ``FROM scratch`` with a busybox root file system; return the SDK's Image.

    The Dockerfile, in a scratch folder removed afterwards::

        FROM scratch
        COPY rootfs/ /
        CMD ["sh"]
    """
    with Scratch("image") as work:
        busybox_rootfs(work / "rootfs")
        (work / "Dockerfile").write_text(f'FROM scratch\nCOPY rootfs/ /\nCMD ["{cmd}"]\n')
        image, _ = client.images.build(path=str(work.path), tag=tag, rm=True, forcerm=True, labels=LABELS)
    return image


def debian_tarball(suite: str = DEBIAN_SUITE, include: tuple[str, ...] = (), mirror: str = DEBIAN_MIRROR) -> Path:
    """A tar of a Debian minbase root file system (plus ``include``d packages), made once by debootstrap (as
    root) and then cached."""
    name = "-".join([suite, "minbase", *sorted(include)])
    target = cache_dir() / "debian" / f"{name}.tar"
    if target.exists():
        return target
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed (Debian package debootstrap)")
    if os.geteuid() != 0:
        raise ImageError("debootstrap needs root to create device nodes and change file owners")
    target.parent.mkdir(parents=True, exist_ok=True)
    options = [f"--include={','.join(sorted(include))}"] if include else []
    with Scratch("debootstrap") as work:
        root = work / "root"
        done = subprocess.run(["debootstrap", "--variant=minbase", *options, suite, str(root), mirror],
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
            raise ImageError(f"debootstrap failed (exit status {done.returncode}):\n{tail}")
        shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        (root / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".tar.partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(root, arcname=".", recursive=True)
        partial.replace(target)  # complete or absent, never half written
    return target


def import_tarball(client: Any, tarball: Path, tag: str, cmd: str) -> Any:
    """``docker import TARBALL TAG`` with a default command; return the SDK's Image."""
    repository, _, version = tag.rpartition(":")
    changes = [f'CMD ["{cmd}"]', *(f'LABEL {key}="{value}"' for key, value in LABELS.items())]
    client.api.import_image_from_file(str(tarball), repository=repository, tag=version, changes=changes)
    return client.images.get(tag)


def debian_base(client: Any, tag: str = f"cloudnotes/debian:{DEBIAN_SUITE}-minbase") -> Any:
    """Import the cached minbase tarball as ``tag`` (``docker import``); return the SDK's Image."""
    return import_tarball(client, debian_tarball(), tag, "bash")


PYTHON_IMAGE = "python:3.11-slim"  # the lecture's parent image, on Docker Hub
PYTHON_LOCAL = "cloudnotes/python:3.11-bookworm"
PYTHON_PACKAGES = ("python3", "python3-venv", "python3-pip")


@dataclass(frozen=True)
class Base:
    """A parent image and where it came from, so that a notebook can say which one it used."""

    tag: str
    origin: str
    pulled: bool


def python_base(client: Any) -> Base:
    """``python:3.11-slim`` from Docker Hub where it answers, else Debian 12's Python 3.11 imported here.

    Both have Python 3.11 with ``venv`` and pip, so the same Dockerfile builds on either.
    """
    import docker

    if pull_or_none(client, PYTHON_IMAGE) is not None:
        return Base(PYTHON_IMAGE, "pulled from Docker Hub (the official python image)", True)
    try:
        client.images.get(PYTHON_LOCAL)  # made by an earlier run: importing again would leave that one untagged
    except docker.errors.ImageNotFound:
        import_tarball(client, debian_tarball(include=PYTHON_PACKAGES), PYTHON_LOCAL, "python3")
    return Base(PYTHON_LOCAL, "built here: Debian 12 minbase with python3 and pip, by debootstrap and docker import "
                "(no image registry answers)", False)


def wheels(requirements: Path, python_version: str = "3.11",
           platform: str | tuple[str, ...] = "manylinux2014_x86_64") -> Path:
    """A folder of wheels for ``requirements``, for CPython ``python_version`` on ``platform``: downloaded once
    from PyPI by the host's pip and cached, so that an image build installs them with no network.

    ``platform`` may name several tags: pip's ``--platform`` accepts exactly the tags given, so a musl 1.2
    system, which runs ``musllinux_1_1`` and ``musllinux_1_2`` wheels alike, needs both named.
    """
    text = Path(requirements).read_text()
    platforms = (platform,) if isinstance(platform, str) else tuple(platform)
    key = hashlib.sha256(f"{text}|{python_version}|{'+'.join(platforms)}".encode()).hexdigest()[:12]
    folder = cache_dir() / "wheels" / key
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                           "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
                           *(flag for tag in platforms for flag in ("--platform", tag)),
                           "--dest", str(folder), "--requirement", str(requirements)],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise ImageError(f"pip could not download the wheels: {(done.stderr.strip() or 'no output')[-400:]}")
    (folder / ".complete").write_text(text)
    return folder


@dataclass
class Build:
    """One ``docker build``: each step's instruction and state, the time it took, the image.

    A step's state is "cached" (the build cache answered it), "built" (it ran), or "parent" (``FROM``, which
    takes the parent image's layers as they are).
    """

    tag: str
    steps: list[tuple[str, str]]
    seconds: float
    image: Any = field(repr=False, default=None)

    @property
    def states(self) -> list[str]:
        return [state for _, state in self.steps]

    @property
    def cached(self) -> int:
        return self.states.count("cached")


def build(client: Any, folder: Path, tag: str, dockerfile: str = "Dockerfile") -> Build:
    """Build like ``docker build -t TAG -f DOCKERFILE FOLDER`` with the classic builder, reading the daemon's
    step-by-step log."""
    import docker

    steps: list[tuple[str, str]] = []
    start = time.perf_counter()
    for chunk in client.api.build(path=str(folder), tag=tag, dockerfile=dockerfile, rm=True, forcerm=True,
                                  labels=LABELS, decode=True):
        if "error" in chunk:
            raise docker.errors.BuildError(chunk["error"].strip(), [])
        line = chunk.get("stream", "").strip()
        if line.startswith("Step "):
            instruction = line.split(" : ", 1)[1]
            steps.append((instruction, "parent" if instruction.upper().startswith("FROM ") else "built"))
        elif line == "---> Using cache" and steps:
            steps[-1] = (steps[-1][0], "cached")
    return Build(tag, steps, time.perf_counter() - start, client.images.get(tag))


def pull_or_none(client: Any, reference: str) -> Any | None:
    """The official image when a registry answers (a student's laptop), else None (this course's CI)."""
    import docker

    try:
        return client.images.pull(reference)
    except (docker.errors.APIError, docker.errors.DockerException):
        return None
