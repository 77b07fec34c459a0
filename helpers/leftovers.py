"""What a notebook might leave behind, recorded before and after it runs, and judged on the notebook alone.

A notebook here must clean up after itself and leave the machine as it found it. ``snapshot()`` records what
a notebook can change; ``new_since(before)`` lists what appeared since (and, for shared machine state, what
went away). Only what the notebook could have done is looked at, so that other work on the machine cannot
fail a notebook:

* processes: the descendants of this process (the test run, and so the notebook's kernel and whatever it
  started). With :func:`adopt_orphans` (Linux) this process is a *child subreaper*: a server that the kernel
  started and that outlived it is adopted by the test run instead of by init, so it is still seen here, while
  runtime shims of the container engine and other users' processes never are;
* Docker objects that carry the collection's label (:data:`helpers.images.LABELS`; every image the
  collection builds has it, and containers inherit their image's labels), the swarm's state, and the images
  and services that existed before (none may go away: a user's own are left alone);
* the collection's scratch folders (in the temporary folder of this process, which the test suite makes
  its own), cgroups and named network namespaces, mounts (but the container engine's own), and
  ``binfmt_misc`` entries (added or removed).

The test suite checks every notebook this way; a notebook's cleanup cell can do the same.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.images import LABELS
from helpers.workspace import PREFIX

# The machine's own state, which a notebook must leave as it found it: a change either way counts.
SHARED = ("docker swarm", "binfmt entries")
# What a user may already have: only its going away counts (a notebook may pull an image, say).
KEPT = ("docker images (any)", "docker services (any)")
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Snapshot:
    """Things that outlive a process if nobody removes them, each as a set of readable names."""

    things: dict[str, frozenset[str]] = field(default_factory=dict)


def adopt_orphans() -> bool:
    """Make this process a child subreaper (Linux ``prctl``), so that orphaned descendants stay its
    descendants instead of moving to init. True if it worked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_adopted(keep: frozenset[int] = frozenset()) -> None:
    """Collect the exit status of adopted children that have ended (zombies), except the pids in ``keep``
    (children whose own parent object will wait for them)."""
    import psutil

    for child in psutil.Process().children():
        if child.pid in keep:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            continue


def _descendants() -> set[str]:
    """This process's live descendants, as 'pid N (name: command line)'."""
    import psutil

    found = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(process.cmdline())[:80]
            found.add(f"pid {process.pid} ({process.name()}: {command})")
        except psutil.Error:
            continue
    return found


def _scratch_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{PREFIX}*")}


# The container engine's own mounts (a container's root file system, its network namespace) come and go
# with containers, which are judged by their label instead.
ENGINE_MOUNTS = ("/var/lib/docker/", "/run/docker/", "/var/lib/containerd/", "/run/containerd/")


def _mounts() -> set[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return set()
    return {" ".join(line.split()[:3]) for line in lines
            if len(line.split()) > 1 and not line.split()[1].startswith(ENGINE_MOUNTS)}


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


def _binfmt_entries() -> set[str]:
    """The kernel's binfmt_misc rules (where binfmt_misc is mounted)."""
    folder = Path("/proc/sys/fs/binfmt_misc")
    try:
        return {p.name for p in folder.iterdir() if p.name not in ("register", "status")}
    except OSError:
        return set()


def _docker() -> dict[str, set[str]]:
    try:
        import docker
        import requests
    except ImportError:
        return {}
    try:
        client = docker.from_env(timeout=10)
        try:
            client.ping()
            own = {"label": [f"{key}={value}" for key, value in LABELS.items()]}
            swarm = client.info().get("Swarm", {}).get("LocalNodeState", "inactive")
            services = {s.name for s in client.services.list()} if swarm == "active" else set()
            return {
                "docker containers": {c.name for c in client.containers.list(all=True, filters=own)},
                "docker images": {", ".join(i.tags) or i.short_id for i in client.images.list(all=True, filters=own)},
                "docker volumes": {v.name for v in client.volumes.list(filters=own)},
                "docker networks": {n.name for n in client.networks.list(filters=own)},
                # BuildKit's cache has no labels: every entry counts, so a run that leaves one is caught
                "docker build cache": {record["ID"] for record in client.df().get("BuildCache") or []},
                "docker swarm": {f"swarm {swarm}"},
                "docker images (any)": {", ".join(i.tags) or i.short_id for i in client.images.list()},
                "docker services (any)": services,
            }
        finally:
            client.close()
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return {}


def snapshot() -> Snapshot:
    """Record what exists now."""
    things = {
        "processes": _descendants(),
        "scratch folders": _scratch_folders(),
        "mounts": _mounts(),
        "cgroups": _cgroups(),
        "network namespaces": _network_namespaces(),
        "binfmt entries": _binfmt_entries(),
        **_docker(),
    }
    return Snapshot({kind: frozenset(names) for kind, names in things.items()})


# Kinds that only a notebook declaring the need can change: without Docker a notebook makes no Docker
# objects, and without root no mounts, cgroups, network namespaces or binfmt rules.
NEEDED_FOR = {"docker": ("docker ",), "root": ("mounts", "cgroups", "network namespaces", "binfmt entries")}


def judged_on(before: Snapshot, requires: list[str] | tuple[str, ...]) -> Snapshot:
    """``before`` without the kinds a notebook with these needs cannot change, so that what other work does to
    them meanwhile (another run of the suite, say) is not held against it. Kinds left out of ``before`` are not
    compared afterwards."""
    dropped = tuple(prefix for need, prefixes in NEEDED_FOR.items() if need not in requires for prefix in prefixes)
    return Snapshot({kind: names for kind, names in before.things.items() if not kind.startswith(dropped)})


def _changed(before: Snapshot, after: Snapshot) -> dict[str, list[str]]:
    changed = {}
    for kind, names in after.things.items():
        was = before.things.get(kind)
        if was is None:
            continue  # not observable before (Docker started meanwhile, say): nothing to compare with
        extra = sorted(names - was) if kind not in KEPT else []
        gone = sorted(was - names) if kind in KEPT or kind in SHARED else []
        if extra or gone:
            changed[kind] = extra + [f"{name} (gone)" for name in gone]
    return changed


def new_since(before: Snapshot, after: Snapshot | None = None, settle: float = 0.0) -> dict[str, list[str]]:
    """What changed since ``before`` (or between ``before`` and ``after``), by kind; empty when clean.

    New things count, except for :data:`KEPT` kinds; for :data:`SHARED` and :data:`KEPT` kinds, things that
    went away count too. With ``settle`` seconds, things on their way out are given that long to go.
    """
    if after is not None:
        return _changed(before, after)
    deadline = time.monotonic() + settle
    while True:
        changed = _changed(before, snapshot())
        if not changed or time.monotonic() >= deadline:
            return changed
        time.sleep(0.2)


def recording_blockers() -> list[str]:
    """What this machine holds that would make a notebook's recorded outputs differ from a fresh machine's,
    each with the command that removes it. Empty when outputs may be recorded here."""
    found = []
    things = snapshot().things
    swarm = things.get("docker swarm", frozenset())
    if swarm and swarm != {"swarm inactive"}:
        found.append(f"Docker is in a swarm ({', '.join(sorted(swarm))}): `docker swarm leave --force`")
    for kind in ("docker containers", "docker images", "docker volumes", "docker networks"):
        names = sorted(things.get(kind, ()))
        if names:
            found.append(f"{kind} from an earlier run, labelled {LABELS}: {', '.join(names[:5])}"
                         f"{' ...' if len(names) > 5 else ''}: remove them (`docker system prune -af --filter "
                         f"label=cloudnotes`, or `docker rm -f` / `docker rmi`)")
    unlabelled = sorted(name for name in things.get("docker images (any)", ()) if "cloudnotes/" in name)
    if unlabelled:
        found.append(f"images named cloudnotes/* from an earlier run: {', '.join(unlabelled[:5])}: `docker rmi` them")
    rules = sorted(name for name in things.get("binfmt entries", ()) if name.startswith("cloudnotes-"))
    if rules:
        found.append(f"binfmt_misc rules an earlier run left: {', '.join(rules)}: "
                     f"`echo -1 > /proc/sys/fs/binfmt_misc/NAME`")
    folders = sorted(name for name in things.get("scratch folders", ()) if not name.startswith(f"{PREFIX}system."))
    if folders:
        found.append(f"scratch folders an earlier run left in {tempfile.gettempdir()}: {', '.join(folders[:5])}")
    return found


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.leftovers``: exit 1, naming what was found, where recording now would be wrong."""
    import argparse

    parser = argparse.ArgumentParser(description="Check that this machine is in the state a fresh one is in, "
                                                 "so that outputs recorded now are what a fresh machine prints.")
    parser.parse_args(argv)
    found = recording_blockers()
    if not found:
        print("this machine holds nothing that would change the recorded outputs")
        return 0
    print("refusing to record notebook outputs: this machine holds state a fresh machine does not have, which "
          "would change what the notebooks print:", file=sys.stderr)
    for line in found:
        print(f"  - {line}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
