"""The plumbing of lesson 03.5: a private image registry on 127.0.0.1, its HTTP API, and foreign CPUs.

* :class:`Registry` runs the distribution's registry server (Debian package ``docker-registry``, the same
  program as Docker Hub's open-source ``registry`` image) with its storage in a scratch folder, stopped by
  its PID. Docker treats registries on 127.0.0.0/8 as trusted without TLS, so push and pull just work.
* :func:`manifest` and :func:`blob_files` read what a registry stores: a manifest over the same HTTP API
  that ``docker push`` and ``docker pull`` use, and the blob files in its storage folder.
* :func:`busybox_for` fetches a static busybox built for another CPU (arm64) from Debian's archive, and
  :class:`ForeignBinaries` lets this x86 kernel run such programs through QEMU user-mode emulation.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.images import cache_dir
from helpers.net import Server
from helpers.workspace import Scratch

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join([DOCKER_MANIFEST_LIST, OCI_INDEX, DOCKER_MANIFEST, OCI_MANIFEST])

CONFIG = """version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: STORAGE}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:5000
"""
BCRYPT_COST = 4  # the lowest bcrypt accepts: the registry checks it on every request (see Registry)
AUTH = """auth:
  htpasswd: {realm: cloudnotes, path: HTPASSWD}
"""


class RegistryError(RuntimeError):
    """The registry could not start, or refused a request; the message has its answer."""


class Registry:
    """A registry server on 127.0.0.1 at a free port, storing into ``folder/storage``; ``stop()`` ends it.

    With ``users`` (``{"student": "password"}``) it asks for a login, like Docker Hub does before a push:
    their passwords go into an htpasswd file as bcrypt hashes, the only kind the registry accepts. The
    registry checks the hash on every request (basic authentication sends the password each time), and a
    push makes a dozen requests: the hashes use bcrypt's lowest cost, 4 (about 1 ms a check here, against
    about 0.2 s at the library's default 12), which is enough for a lab password on 127.0.0.1 and too
    little for a real server.
    """

    def __init__(self, folder: Path, users: dict[str, str] | None = None, program: str | None = None):
        program = program or shutil.which("docker-registry") or shutil.which("registry")
        if program is None:
            raise RegistryError("no registry program is installed (Debian package docker-registry)")
        folder = Path(folder)
        self.storage = folder / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.users = dict(users or {})
        text = CONFIG.replace("STORAGE", str(self.storage))
        if self.users:
            import bcrypt

            htpasswd = folder / "htpasswd"
            salt = bcrypt.gensalt(rounds=BCRYPT_COST)
            htpasswd.write_text("".join(f"{name}:{bcrypt.hashpw(secret.encode(), salt).decode()}\n"
                                        for name, secret in self.users.items()))
            text += AUTH.replace("HTPASSWD", str(htpasswd))
        config = folder / "registry.yml"
        config.write_text(text)
        # The port is chosen by Server and handed over in the environment, which overrides the file.
        self.server = Server([program, "serve", str(config)], ready_path="/v2/",
                             env={"REGISTRY_HTTP_ADDR": "127.0.0.1:{port}"}, log=folder / "registry.log")
        self.address = f"127.0.0.1:{self.server.port}"
        self.url = self.server.url

    @property
    def pid(self) -> int:
        return self.server.pid

    def stop(self) -> int | None:
        return self.server.stop()

    def get(self, path: str, accept: str = ACCEPT, method: str = "GET") -> tuple[dict[str, str], bytes]:
        """One request to the registry's API: (headers, body)."""
        request = urllib.request.Request(self.url + path, headers={"Accept": accept, **self.auth()}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return dict(reply.headers), reply.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise RegistryError(f"{method} {path}: HTTP {exc.code} {detail}") from exc

    def auth(self) -> dict[str, str]:
        """The Authorization header of the first user, for the API calls this module makes."""
        if not self.users:
            return {}
        name, secret = next(iter(self.users.items()))
        return {"Authorization": "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()}

    def catalog(self) -> list[str]:
        return json.loads(self.get("/v2/_catalog", "application/json")[1])["repositories"]

    def tags(self, name: str) -> list[str]:
        return sorted(json.loads(self.get(f"/v2/{name}/tags/list", "application/json")[1])["tags"] or [])

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Registry({self.address}, pid {self.pid})"


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry stores it: its media type, digest, size in bytes and parsed content."""

    media_type: str
    digest: str
    size: int
    content: dict[str, Any]

    @property
    def layers(self) -> list[str]:
        return [layer["digest"] for layer in self.content.get("layers", [])]


def manifest(registry: Registry, name: str, reference: str) -> Manifest:
    """``GET /v2/NAME/manifests/REFERENCE`` (a tag or a digest), as ``docker manifest inspect`` shows it."""
    headers, body = registry.get(f"/v2/{name}/manifests/{reference}")
    lowered = {key.lower(): value for key, value in headers.items()}
    return Manifest(lowered.get("content-type", ""), lowered.get("docker-content-digest", ""), len(body),
                    json.loads(body))


def blob_files(registry: Registry) -> dict[str, int]:
    """Every blob the registry keeps on disk (layers, image configurations, manifests): digest -> bytes.

    The filesystem driver stores each blob once, under its digest, whatever the number of images using it.
    """
    root = registry.storage / "docker" / "registry" / "v2" / "blobs"
    return {f"{data.parent.parent.parent.name}:{data.parent.name}": data.stat().st_size
            for data in root.glob("*/*/*/data")}


# --- another CPU architecture ----------------------------------------------------------------------

# Debian's names for CPU architectures, and what `uname -m` says on each
UNAME = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l", "riscv64": "riscv64", "s390x": "s390x"}
QEMU_NAMES = {"arm64": "aarch64", "armhf": "arm", "riscv64": "riscv64", "s390x": "s390x", "amd64": "x86_64"}
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def host_arch() -> str:
    """This machine's CPU in Debian's (and Docker's) words: amd64, arm64..."""
    machine = platform.machine()
    return next((arch for arch, name in UNAME.items() if name == machine), machine)


def busybox_for(arch: str) -> Path:
    """A static busybox for ``arch``: this machine's own for its architecture, else Debian's package for that
    architecture, downloaded once (with package lists of its own, leaving the system's apt untouched)."""
    if arch == host_arch():
        return Path("/bin/busybox")
    target = cache_dir() / "busybox" / arch / "busybox"
    if target.exists():
        return target
    if shutil.which("apt-get") is None:
        raise RegistryError("apt-get is needed to download Debian's busybox-static for another architecture")
    with Scratch("apt") as work:
        lists, cache = work / "lists", work / "cache"
        (lists / "partial").mkdir(parents=True)
        (cache / "archives" / "partial").mkdir(parents=True)
        options = ["-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={cache}", "-o", f"APT::Architecture={arch}",
                   "-o", f"APT::Architectures={arch}", "-o", "APT::Sandbox::User=root"]
        for argv in (["apt-get", "-qq", *options, "update"], ["apt-get", "-qq", *options, "download",
                                                             f"busybox-static:{arch}"]):
            done = subprocess.run(argv, cwd=work.path, capture_output=True, text=True, timeout=300, check=False)
            if done.returncode != 0:
                raise RegistryError(f"{' '.join(argv[:2])} {argv[-1]} failed: {done.stderr.strip()[-300:]}")
        package = next(work.path.glob("busybox-static_*.deb"))
        extract = work / "extract"
        extract.mkdir()
        listing = subprocess.run(["dpkg-deb", "-x", str(package), str(extract)], capture_output=True, text=True,
                                 check=False)
        if listing.returncode != 0:
            raise RegistryError(f"dpkg-deb could not unpack {package.name}: {listing.stderr.strip()}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(extract / "bin" / "busybox", target)
    return target


class ForeignBinaries:
    """Let this kernel run programs built for ``arch`` through QEMU user-mode emulation (binfmt_misc).

    The kernel's binfmt_misc table maps a pattern in a program's first bytes (an arm64 ELF header) to an
    interpreter (``qemu-aarch64-static``). With the F flag the kernel opens the interpreter once, at
    registration, so it also works inside containers, whose file systems do not contain QEMU. What this
    object added (the mount of binfmt_misc, the rule) is removed by :meth:`close`; a rule that was already
    there (Docker Desktop, binfmt-support) is used and left alone.
    """

    def __init__(self, arch: str = "arm64"):
        self.arch, self.name = arch, f"cloudnotes-{QEMU_NAMES.get(arch, arch)}"
        self.mounted = self.registered = False
        self.rule: Path | None = None
        qemu = QEMU_NAMES.get(arch, arch)
        self.interpreter = shutil.which(f"qemu-{qemu}-static") or f"/usr/bin/qemu-{qemu}-static"
        self.pattern = Path("/usr/share/binfmts") / f"qemu-{qemu}"

    def existing_rule(self) -> Path | None:
        qemu = QEMU_NAMES.get(self.arch, self.arch)
        for name in (f"qemu-{qemu}", self.name):
            rule = BINFMT / name
            if rule.exists() and rule.read_text().startswith("enabled"):
                return rule
        return None

    def open(self) -> ForeignBinaries:
        if not os.path.exists(self.interpreter):
            raise RegistryError(f"{self.interpreter} is not installed (Debian package qemu-user-static)")
        if not (BINFMT / "register").exists():
            done = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                raise RegistryError(f"cannot mount binfmt_misc: {done.stderr.strip()}")
            self.mounted = True
        self.rule = self.existing_rule()
        if self.rule is None:
            fields = dict(line.split(" ", 1) for line in self.pattern.read_text().splitlines() if " " in line)
            # The kernel parses the \xNN escapes itself: write them as text, never as raw bytes.
            line = f":{self.name}:M::{fields['magic']}:{fields['mask']}:{self.interpreter}:F"
            (BINFMT / "register").write_text(line)
            self.registered, self.rule = True, BINFMT / self.name
        return self

    def close(self) -> None:
        if self.registered and self.rule is not None and self.rule.exists():
            self.rule.write_text("-1")  # removes the rule
            self.registered = False
        if self.mounted:
            subprocess.run(["umount", str(BINFMT)], capture_output=True, check=False)
            self.mounted = False

    def __enter__(self) -> ForeignBinaries:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def emulation_suspended(arch: str = "arm64") -> Iterator[list[Path]]:
    """For the ``with`` block, switch off every enabled binfmt_misc rule that runs ``arch`` programs (writing
    ``0`` to it), and switch each back on (``1``) afterwards, even on an error.

    On a machine where emulation is already set up (Docker Desktop, Debian's binfmt-support) a foreign
    program would simply run; suspending the rule shows what a machine without it does, and leaves the
    machine's own rule as it was. Yields the rules suspended (none where there were none)."""
    qemu = QEMU_NAMES.get(arch, arch)
    suspended = []
    try:
        for name in (f"qemu-{qemu}", f"cloudnotes-{qemu}"):
            rule = BINFMT / name
            if rule.exists() and rule.read_text().startswith("enabled"):
                rule.write_text("0")
                suspended.append(rule)
        yield suspended
    finally:
        for rule in suspended:
            rule.write_text("1")


def can_run_foreign(arch: str = "arm64") -> tuple[bool, str]:
    """Whether this machine could run ``arch`` programs (QEMU user mode installed, root for binfmt_misc)."""
    qemu = QEMU_NAMES.get(arch, arch)
    if arch == host_arch():
        return True, "the machine's own architecture"
    if not shutil.which(f"qemu-{qemu}-static"):
        return False, f"qemu-{qemu}-static is not installed (Debian package qemu-user-static)"
    if os.geteuid() != 0:
        return False, "registering an interpreter with binfmt_misc needs root"
    if not Path("/usr/share/binfmts", f"qemu-{qemu}").exists():
        return False, f"no binfmt pattern for {arch} in /usr/share/binfmts"
    return True, f"qemu-{qemu}-static through binfmt_misc"
