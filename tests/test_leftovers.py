"""helpers.leftovers: a snapshot taken before and after notices what was left behind, and only that."""

from __future__ import annotations

import subprocess

from helpers import leftovers, workspace
from helpers.leftovers import Snapshot


def _snapshot(**things: set[str]) -> Snapshot:
    return Snapshot({kind.replace("_", " "): frozenset(names) for kind, names in things.items()})


def test_a_new_scratch_folder_and_a_child_process_are_noticed_then_gone():
    before = leftovers.snapshot()
    folder = workspace.Scratch("leftover-test")
    child = subprocess.Popen(["sleep", "30"])
    try:
        left = leftovers.new_since(before)
        assert left["scratch folders"] == [folder.path.name]
        assert left["processes"] == [f"pid {child.pid} (sleep: sleep 30)"]
    finally:
        folder.close()
        child.kill()
        child.wait()
    assert leftovers.new_since(before) == {}


def test_snapshot_always_covers_the_local_kinds():
    kinds = {"processes", "scratch folders", "mounts", "cgroups", "network namespaces", "binfmt entries"}
    assert kinds <= set(leftovers.snapshot().things)


def test_shared_machine_state_counts_both_ways():
    made = leftovers.new_since(_snapshot(**{"docker swarm": {"swarm inactive"}}),
                               _snapshot(**{"docker swarm": {"swarm active"}}))
    assert made == {"docker swarm": ["swarm active", "swarm inactive (gone)"]}
    rules_before = _snapshot(**{"binfmt entries": {"qemu-aarch64"}})
    left = leftovers.new_since(rules_before, _snapshot(**{"binfmt entries": set()}))
    assert left == {"binfmt entries": ["qemu-aarch64 (gone)"]}


def test_a_users_images_may_not_go_but_new_unlabelled_ones_are_not_the_notebooks():
    before = _snapshot(**{"docker images (any)": {"python:3.11-slim", "busybox:latest"}})
    pulled = _snapshot(**{"docker images (any)": {"python:3.11-slim", "busybox:latest", "alpine:3"}})
    removed = _snapshot(**{"docker images (any)": {"busybox:latest"}})
    assert leftovers.new_since(before, pulled) == {}
    assert leftovers.new_since(before, removed) == {"docker images (any)": ["python:3.11-slim (gone)"]}


def test_a_kind_not_observable_before_is_not_compared():
    assert leftovers.new_since(_snapshot(), _snapshot(**{"docker containers": {"x (abc)"}})) == {}


def test_recording_is_refused_on_a_machine_holding_a_swarm_or_an_earlier_runs_images(monkeypatch, capsys):
    held = _snapshot(**{"docker swarm": {"swarm active"}, "docker images": {"cloudnotes/web:1"}})
    monkeypatch.setattr(leftovers, "snapshot", lambda: held)
    found = leftovers.recording_blockers()
    assert any("swarm" in line and "docker swarm leave --force" in line for line in found), found
    assert any("cloudnotes/web:1" in line for line in found), found
    assert leftovers.main([]) == 1
    assert "refusing to record notebook outputs" in capsys.readouterr().err
    monkeypatch.setattr(leftovers, "snapshot", lambda: _snapshot(**{"docker swarm": {"swarm inactive"}}))
    assert leftovers.recording_blockers() == []
    assert leftovers.main([]) == 0


def test_a_notebook_is_judged_only_on_what_its_needs_let_it_change():
    before = _snapshot(**{"docker containers": set(), "binfmt entries": {"qemu-aarch64"}, "processes": set()})
    after = _snapshot(**{"docker containers": {"other-run"}, "binfmt entries": set(), "processes": {"pid 9 (x)"}})
    assert leftovers.new_since(leftovers.judged_on(before, []), after) == {"processes": ["pid 9 (x)"]}
    judged = leftovers.new_since(leftovers.judged_on(before, ["docker", "root"]), after)
    assert judged == {"docker containers": ["other-run"], "binfmt entries": ["qemu-aarch64 (gone)"],
                      "processes": ["pid 9 (x)"]}
