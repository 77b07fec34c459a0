"""What a notebook might leave behind, recorded before and after it runs.

A notebook here must clean up after itself: no containers, images, volumes, networks or swarm; no
servers still listening; no mounts, cgroups or network namespaces; no scratch folders; no orphaned
processes. ``snapshot()`` records
all of those; ``new_since(before)`` lists what appeared since. The test suite checks every notebook
this way, and a notebook's cleanup cell can do the same.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.workspace import PREFIX


@dataclass(frozen=True)
class Snapshot:
    """Things that outlive a process if nobody removes them, each as a set of readable names."""

    things: dict[str, frozenset[str]] = field(default_factory=dict)


def _scratch_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{PREFIX}*")}


def _mounts() -> set[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return set()
    return {" ".join(line.split()[:3]) for line in lines}


def _cgroups() -> set[str]:
    """The collection's own cgroups (named cloudnotes-*), in every hierarchy, v1 or v2."""
    root = Path("/sys/fs/cgroup")
    if not root.is_dir():
        return set()
    found = set()
    for pattern in ("cloudnotes-*", "*/cloudnotes-*", "*/*/cloudnotes-*", "*/*/*/cloudnotes-*"):
        found |= {str(p.relative_to(root)) for p in root.glob(pattern) if p.is_dir()}
    return found


def _network_namespaces() -> set[str]:
    """Named network namespaces (ip netns add NAME creates /run/netns/NAME)."""
    folder = Path("/run/netns")
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _listening_ports() -> set[str]:
    """TCP ports in the LISTEN state (from /proc/net/tcp and tcp6)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == "0A":  # 0A = LISTEN
                ports.add(f"tcp port {int(fields[1].rsplit(':', 1)[1], 16)}")
    return ports


def _orphans() -> set[str]:
    """Processes adopted by init (parent 1): what a server started in the background becomes."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        parent = int(text[text.rindex(")") + 2:].split()[1])
        if parent == 1:
            found.add(f"pid {stat.parent.name} ({name})")
    return found


def _docker() -> dict[str, set[str]]:
    try:
        import docker
        import requests

        client = docker.from_env(timeout=10)
        try:
            client.ping()
            swarm = client.info().get("Swarm", {}).get("LocalNodeState", "inactive")
            return {
                "docker containers": {c.name for c in client.containers.list(all=True)},
                "docker images": {i.short_id for i in client.images.list(all=True)},
                "docker volumes": {v.name for v in client.volumes.list()},
                "docker networks": {n.name for n in client.networks.list()},
                "docker swarm": {f"swarm {swarm}"} if swarm != "inactive" else set(),
            }
        finally:
            client.close()
    except (ImportError, docker.errors.DockerException, requests.exceptions.RequestException):
        return {}


def snapshot() -> Snapshot:
    """Record what exists now."""
    things = {
        "scratch folders": _scratch_folders(),
        "mounts": _mounts(),
        "listening ports": _listening_ports(),
        "cgroups": _cgroups(),
        "network namespaces": _network_namespaces(),
        "orphaned processes": _orphans() if os.path.isdir("/proc/1") else set(),
        **_docker(),
    }
    return Snapshot({kind: frozenset(names) for kind, names in things.items()})


def _added(before: Snapshot, after: Snapshot) -> dict[str, list[str]]:
    added = {}
    for kind, names in after.things.items():
        extra = sorted(names - before.things.get(kind, frozenset()))
        if extra:
            added[kind] = extra
    return added


def new_since(before: Snapshot, after: Snapshot | None = None, settle: float = 0.0) -> dict[str, list[str]]:
    """What exists now (or in ``after``) that did not exist in ``before``, by kind; empty when clean.

    With ``settle`` seconds, things that are only on their way out are given that long to go: a container's
    shim process or a killed child that its new parent has not reaped yet is not a leftover.
    """
    if after is not None:
        return _added(before, after)
    deadline = time.monotonic() + settle
    while True:
        added = _added(before, snapshot())
        if not added or time.monotonic() >= deadline:
            return added
        time.sleep(0.2)
