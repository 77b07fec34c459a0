"""helpers.containers: limits the kernel really enforces, counters that show it, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from helpers import containers
from helpers.containers import Cgroup

MiB = 2**20

needs_cgroups = pytest.mark.needs("root", "cgroups")


def _gone(paths: list) -> bool:
    return not any(path.exists() for path in paths)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as status:
            return status.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_unknown_controllers_are_refused_before_anything_is_created():
    with pytest.raises(ValueError, match="controllers must be among"):
        Cgroup("unit", controllers=("memory", "cpuset"))


@needs_cgroups
def test_a_memory_limit_gets_a_greedy_child_killed_and_the_kernel_counts_it():
    with Cgroup("oom", controllers=("memory",)) as group:
        writes = group.limit_memory(32 * MiB)
        assert (group.paths["memory"] / ("memory.max" if group.version == "v2" else "memory.limit_in_bytes"),
                str(32 * MiB)) in writes
        done = group.run([sys.executable, "-c", "data = b'x' * (200 * 2**20); print('survived')"], timeout=30)
        assert done.signal == 9 and done.signal_name == "SIGKILL" and done.returncode == -9
        assert "survived" not in done.stdout and not done.timed_out
        counted = group.counters()
        summary = group.summary()
        if group.version == "v2":
            assert counted["memory.events oom_kill"] >= 1
        else:
            assert counted.get("memory.oom_control oom_kill", 0) >= 1 or summary["memory_limit_hits"] > 0
        assert summary["memory_peak_bytes"] <= 32 * MiB


@needs_cgroups
def test_a_pids_limit_stops_a_shell_fork_loop_and_close_kills_what_it_started():
    with Cgroup("pids", controllers=("pids",)) as group:
        group.limit_pids(20)
        script = "for i in $(seq 100); do sleep 5 >/dev/null 2>&1 & done; echo all started"
        done = group.run(["sh", "-c", script], timeout=10)
        # dash (and busybox sh) give up at the first refused fork rather than go on trying
        assert "all started" not in done.stdout and done.returncode != 0
        assert "fork" in done.stderr.lower()
        sleepers = group.procs()
        assert len(sleepers) == 19  # the shell itself was the twentieth
        assert group.counters()["pids.events max"] >= 1
        folders = list(group.paths.values())
    assert _gone(folders)
    assert not any(_alive(pid) for pid in sleepers)


@needs_cgroups
def test_a_pids_limit_refuses_every_fork_beyond_it():
    program = """if True:
        import os, time
        started = refused = 0
        for _ in range(100):
            try:
                pid = os.fork()
            except BlockingIOError:  # EAGAIN: "Resource temporarily unavailable"
                refused += 1
                continue
            if pid == 0:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.dup2(null, 2)
                time.sleep(5)
                os._exit(0)
            started += 1
        print(started, refused)
    """
    with Cgroup("pids", controllers=("pids",)) as group:
        group.limit_pids(20)
        done = group.run([sys.executable, "-c", program], timeout=10)
        assert done.returncode == 0, done.stderr
        started, refused = map(int, done.stdout.split())
        assert (started, refused) == (19, 81)
        assert group.summary()["forks_refused"] == 81


@needs_cgroups
def test_a_cpu_quota_of_a_fifth_holds_a_busy_loop_to_a_fifth_of_a_cpu():
    busy = "import time\nstart = time.monotonic()\nwhile time.monotonic() - start < 1: pass"
    with Cgroup("cpu", controllers=("cpu",)) as group:
        writes = group.limit_cpu(0.2)
        expected = {"cpu.max": "20000 100000"} if group.version == "v2" else {
            "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "20000"}
        assert {path.name: value for path, value in writes} == expected
        done = group.run([sys.executable, "-c", busy], timeout=30)
        assert done.returncode == 0, done.stderr
        summary = group.summary()
        fraction = summary["cpu_s"] / done.wall_s
        assert 0.1 <= fraction <= 0.35, (fraction, group.counters())
        assert summary["throttled_periods"] > 0


@needs_cgroups
def test_close_kills_everything_and_removes_every_directory_even_after_an_error():
    with pytest.raises(RuntimeError, match="boom"), Cgroup("close") as group:
        group.limit_pids(10)
        group.run(["sh", "-c", "sleep 30 >/dev/null 2>&1 & sleep 30 >/dev/null 2>&1 &"], timeout=10)
        left = group.procs()
        folders = list(group.paths.values())
        assert len(left) == 2 and all(folder.is_dir() for folder in folders)
        raise RuntimeError("boom")
    assert group.closed and _gone(folders)
    assert not any(_alive(pid) for pid in left)
    group.close()  # twice is harmless
    with pytest.raises(containers.CgroupError, match="closed"):
        group.run(["true"])


@needs_cgroups
def test_a_command_that_overstays_its_timeout_is_killed_with_its_children():
    with Cgroup("timeout", controllers=("pids",)) as group:
        done = group.run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
        assert done.timed_out and done.signal == 9 and done.wall_s < 5
        assert group.procs() == []


@needs_cgroups
def test_the_notebook_itself_never_joins_the_group():
    own = open("/proc/self/cgroup").read()
    with Cgroup("self") as group:
        done = group.run(["cat", "/proc/self/cgroup"])
        assert group.name in done.stdout
    assert open("/proc/self/cgroup").read() == own and group.name not in own


@needs_cgroups
def test_exit_closes_groups_left_open():
    group = Cgroup("atexit", controllers=("pids",))
    folders = list(group.paths.values())
    containers._close_all()
    assert group.closed and _gone(folders)


@pytest.mark.needs("busybox")
def test_busybox_rootfs_is_small_quick_and_complete(tmp_path):
    start = time.monotonic()
    root = containers.busybox_rootfs(tmp_path / "root")
    assert time.monotonic() - start < 0.5
    for name in ("sh", "ls", "ps", "hostname", "cat", "mount", "ip", "id", "echo", "sleep"):
        assert os.readlink(root / "bin" / name) == "busybox"
    for folder in ("proc", "sys", "dev", "tmp"):
        assert (root / folder).is_dir()
    assert (root / "etc" / "passwd").read_text().startswith("root:x:0:0:")
    busybox = (root / "bin" / "busybox").stat().st_size
    assert busybox <= containers.tree_size(root) < busybox + 64 * 1024
    with pytest.raises(FileExistsError):
        containers.busybox_rootfs(root)


@pytest.mark.needs("root", "busybox")  # chroot needs root
def test_a_shell_runs_in_the_busybox_root(tmp_path):
    root = containers.busybox_rootfs(tmp_path / "root")
    done = subprocess.run(["chroot", str(root), "/bin/sh", "-c", "echo hi; hostname; cat /etc/hostname; ls /"],
                          capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[0] == "hi" and "container" in lines and {"bin", "proc", "etc"} <= set(lines)


# --- cgroup v2, played on ordinary files: the layout and the values, checked on any machine ------------


@pytest.fixture
def fake_v2(tmp_path, monkeypatch):
    """A stand-in for /sys/fs/cgroup on v2: the root's two files and, once created, a group's counters."""
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(containers, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(containers, "cgroup_version", lambda: "v2")
    return tmp_path


def test_on_v2_one_directory_at_the_root_gets_every_controller_enabled_for_it(fake_v2):
    group = Cgroup("fake")
    folder = fake_v2 / group.name
    assert group.version == "v2" and set(group.paths.values()) == {folder} and folder.is_dir()
    assert group.written == [(fake_v2 / "cgroup.subtree_control", "+memory +pids +cpu")]
    for name in ("memory.max", "memory.swap.max", "pids.max", "cpu.max"):
        (folder / name).write_text("")
    assert [(p.name, v) for p, v in group.limit_memory(32 * MiB)] == [("memory.max", str(32 * MiB)),
                                                                       ("memory.swap.max", "0")]
    assert [(p.name, v) for p, v in group.limit_pids(20)] == [("pids.max", "20")]
    assert [(p.name, v) for p, v in group.limit_cpu(0.2)] == [("cpu.max", "20000 100000")]
    assert (folder / "cpu.max").read_text() == "20000 100000"
    (folder / "memory.peak").write_text("33554432\n")
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 412\noom 1\noom_kill 1\noom_group_kill 0\n")
    (folder / "pids.current").write_text("19\n")
    (folder / "pids.events").write_text("max 81\n")
    (folder / "cpu.stat").write_text("usage_usec 201000\nuser_usec 200000\nsystem_usec 1000\n"
                                     "nr_periods 11\nnr_throttled 10\nthrottled_usec 790000\n")
    assert group.counters() == {
        "memory.peak": 33554432, "memory.events max": 412, "memory.events oom": 1, "memory.events oom_kill": 1,
        "pids.current": 19, "pids.events max": 81,
        "cpu.stat usage_usec": 201000, "cpu.stat nr_periods": 11, "cpu.stat nr_throttled": 10,
        "cpu.stat throttled_usec": 790000,
    }
    assert group.summary() == {"oom_kills": 1, "memory_limit_hits": 412, "memory_peak_bytes": 33554432,
                               "forks_refused": 81, "cpu_s": 0.201, "throttled_periods": 10}
    for name in os.listdir(folder):  # a real cgroup's files vanish with its directory; these must go first
        (folder / name).unlink()
    group.close()
    assert not folder.exists() and group.closed


def test_on_v2_controllers_already_enabled_are_left_alone_and_missing_ones_refused(fake_v2):
    (fake_v2 / "cgroup.subtree_control").write_text("cpu memory pids\n")
    with Cgroup("fake") as group:
        assert group.written == []
    (fake_v2 / "cgroup.controllers").write_text("cpu io\n")
    with pytest.raises(containers.CgroupError, match="does not offer memory, pids"):
        Cgroup("fake")
    assert [p.name for p in fake_v2.iterdir() if p.is_dir()] == []


def test_a_child_that_cannot_join_the_group_never_runs_the_command(fake_v2, tmp_path):
    marker = tmp_path / "ran"
    with Cgroup("fake") as group:  # a plain directory: it has no cgroup.procs to write to
        with pytest.raises(containers.CgroupError, match="did not run"):
            group.run(["touch", str(marker)])
    assert not marker.exists()


@needs_cgroups
def test_group_parent_is_where_cgroup_puts_its_groups_and_a_group_made_by_hand_works_there():
    parent = containers.group_parent("memory")
    with Cgroup("parent", controllers=("memory",)) as group:
        assert group.paths["memory"].parent == parent
    by_hand = parent / f"cloudnotes-by-hand-test-{os.getpid()}"
    by_hand.mkdir()
    try:
        assert (by_hand / "cgroup.procs").exists()
        assert (by_hand / "cgroup.procs").read_text() == ""
    finally:
        by_hand.rmdir()
    assert not by_hand.exists()
