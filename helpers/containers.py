"""The plumbing of lesson 03.2 (namespaces and cgroups): a cgroup per demonstration and a tiny root file system.

A container is an ordinary process that the kernel keeps in namespaces (what it can see) and cgroups (what it
may use). The notebook shows the namespace half with the ``unshare`` command in its own cells; this module does
the cgroup half, on either kernel interface, so that a cell can say::

    with Cgroup("oom") as group:
        group.limit_memory(32 * 2**20)          # returns the (file, value) pairs written, to print them
        done = group.run([sys.executable, "-c", "b'x' * 200 * 2**20"])
        done.signal, group.counters()           # 9 (SIGKILL), the kernel's own OOM counters

Two kernel interfaces exist. cgroup v1 (this course's CI machine, older distributions) mounts one hierarchy
per controller, ``/sys/fs/cgroup/memory``, ``/sys/fs/cgroup/pids``, ...; a group is one directory in each.
cgroup v2 (most laptops and current distributions) has a single hierarchy at ``/sys/fs/cgroup`` where one
directory carries every controller. :class:`Cgroup` hides the difference but keeps the file names visible,
because the files are the lesson.

Nothing here changes the calling process: the notebook's kernel never joins a cgroup or a namespace. Commands
run in a child that joins the group between ``fork`` and ``exec``, so it is limited from its first instruction.
Every group is removed, its processes killed first, by ``close()``, at the end of a ``with`` block, or at exit.
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers.env import cgroup_version, is_static_elf

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "cloudnotes-"
CONTROLLERS = ("memory", "pids", "cpu")
# The scheduler's accounting window for a CPU quota: 100 ms is the kernel's default period.
CPU_PERIOD_US = 100_000
# The kernel refuses a quota below 1 ms per period.
CPU_MIN_QUOTA_US = 1_000

Write = tuple[Path, str]
_open: set[Cgroup] = set()


class CgroupError(RuntimeError):
    """A cgroup could not be created, limited, joined or removed; the message says which file and why."""


@dataclass(frozen=True)
class CompletedRun:
    """How a command run inside a cgroup ended.

    ``signal`` is the number of the signal that killed it (9 for the OOM killer's SIGKILL), None when it
    exited on its own with ``returncode``; ``returncode`` is then negative, as in :mod:`subprocess`.
    """

    returncode: int
    signal: int | None
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool = False

    @property
    def signal_name(self) -> str | None:
        """'SIGKILL' rather than 9, for printing."""
        return signal.Signals(self.signal).name if self.signal else None


# --- small file helpers -------------------------------------------------------------------------


def _write(path: Path, value: str) -> Write:
    """Write one value to a cgroup file in a single write(2), the way ``echo value > file`` does."""
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise CgroupError(f"writing {value!r} to {path} failed: {exc.strerror}") from exc
    return path, value


def _read_int(path: Path) -> int | None:
    """A file holding one number; None when the kernel does not offer it. 'max' (no limit) reads as -1."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return -1 if text == "max" else int(text)


def _read_keyed(path: Path) -> dict[str, int]:
    """A 'key value' per line file (memory.events, cpu.stat, memory.oom_control...); empty when absent."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split() for line in lines)
    return {fields[0]: int(fields[1]) for fields in pairs if len(fields) == 2 and fields[1].lstrip("-").isdigit()}


def _swap_configured() -> bool:
    """True when the machine has swap space (a line besides the header in /proc/swaps)."""
    try:
        return len(Path("/proc/swaps").read_text().splitlines()) > 1
    except OSError:
        return False


# --- where groups go ----------------------------------------------------------------------------


def _v1_mounts() -> dict[str, tuple[Path, str]]:
    """For each v1 controller, its hierarchy's mount point and the hierarchy path mounted there.

    Read from /proc/self/mountinfo, because a controller may share a hierarchy with another
    (``/sys/fs/cgroup/cpu,cpuacct``) and a container may mount only a subtree of it.
    """
    mounts: dict[str, tuple[Path, str]] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(tail) < 3 or tail[0] != "cgroup":
            continue
        for option in tail[2].split(","):
            mounts.setdefault(option, (Path(fields[4]), fields[3]))
    return mounts


def _v1_own_paths() -> dict[str, str]:
    """The calling process's own group in each v1 hierarchy, from /proc/self/cgroup."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            if name:
                own[name] = path
    return own


def _v1_parent(controller: str, mounts: dict[str, tuple[Path, str]], own: dict[str, str]) -> Path:
    """Where a v1 group for ``controller`` goes: inside the notebook's own group in that hierarchy.

    Nesting keeps the demonstration inside whatever limits and accounting already apply to the notebook
    (a lab session's memory cap, a CI sandbox); v1 lets a group hold processes and child groups at once.
    On most machines the notebook sits at the top, so this is simply /sys/fs/cgroup/<controller>.
    """
    if controller not in mounts:
        raise CgroupError(f"cgroup v1 without a mounted {controller} hierarchy under {CGROUP_ROOT}")
    mountpoint, mounted = mounts[controller]
    mine = own.get(controller, "/")
    if mine == mounted or mine.startswith(mounted.rstrip("/") + "/"):
        parent = mountpoint / mine[len(mounted) :].lstrip("/")
        if parent.is_dir():
            return parent
    return mountpoint


def group_parent(controller: str = "memory") -> Path:
    """The folder in which a new group for ``controller`` goes, the way :class:`Cgroup` places its own: on v1
    inside the calling process's group of that hierarchy (``/sys/fs/cgroup/memory`` on most machines), on v2
    the root ``/sys/fs/cgroup``. For a cell that makes a group by hand with mkdir, write and rmdir."""
    version = cgroup_version()
    if version == "v1":
        return _v1_parent(controller, _v1_mounts(), _v1_own_paths())
    if version == "v2":
        return CGROUP_ROOT
    raise CgroupError("no cgroup file system is mounted (see helpers.env.need('cgroups'))")


# --- the cgroup ---------------------------------------------------------------------------------


class Cgroup:
    """A cgroup for one demonstration, on cgroup v1 or v2, removed with every process in it by ``close()``.

    ``Cgroup("oom")`` creates ``cloudnotes-oom-<pid>`` for each controller asked for (memory, pids, cpu).
    ``paths`` maps each controller to its directory: one per hierarchy on v1 (asking for cpu also brings
    cpuacct, which holds the CPU time used when it is mounted apart), the same directory for all on v2.
    ``written`` lists every (file, value) this object wrote, in order, setup included.
    """

    def __init__(self, name: str, controllers: Sequence[str] = CONTROLLERS):
        unknown = [c for c in controllers if c not in CONTROLLERS]
        if unknown or not controllers:
            raise ValueError(f"controllers must be among {CONTROLLERS}, got {tuple(controllers)}")
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"a group name is one plain word, not {name!r}")
        self.version = cgroup_version()
        self.name = f"{PREFIX}{name}-{os.getpid()}"
        self.controllers = tuple(controllers)
        self.paths: dict[str, Path] = {}
        self.written: list[Write] = []
        self._created: list[Path] = []
        self.closed = False
        _open.add(self)
        try:
            if self.version == "v1":
                self._create_v1()
            elif self.version == "v2":
                self._create_v2()
            else:
                raise CgroupError("no cgroup file system is mounted (see helpers.env.need('cgroups'))")
        except BaseException:
            self.close()
            raise

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir()
        except OSError as exc:
            raise CgroupError(f"cannot create {path}: {exc.strerror}") from exc
        self._created.append(path)

    def _create_v1(self) -> None:
        mounts, own = _v1_mounts(), _v1_own_paths()
        wanted = list(self.controllers)
        if "cpu" in wanted and "cpuacct" in mounts:
            wanted.append("cpuacct")  # cpu limits, cpuacct counts: two hierarchies unless mounted together
        for controller in wanted:
            path = _v1_parent(controller, mounts, own) / self.name
            if path not in self._created:  # co-mounted controllers (cpu,cpuacct) share one directory
                self._mkdir(path)
            self.paths[controller] = path

    def _create_v2(self) -> None:
        # A v2 group goes at the top of the hierarchy, not inside the notebook's own group: v2 forbids a
        # group that holds processes (the notebook's does) from handing controllers to children, and the
        # root is the one group exempt from that rule.
        parent = CGROUP_ROOT
        available = (parent / "cgroup.controllers").read_text().split()
        missing = [c for c in self.controllers if c not in available]
        if missing:
            raise CgroupError(f"cgroup v2 here does not offer {', '.join(missing)} (see {parent}/cgroup.controllers)")
        # In v2 a child only gets memory.max, pids.max, cpu.max... for the controllers its parent lists in
        # cgroup.subtree_control. systemd usually enables all three at the root; when it has not, do it (and
        # leave them on at close: turning a controller off would strip it from every other group too).
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        needed = [c for c in self.controllers if c not in enabled]
        if needed:
            self.written.append(_write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in needed)))
        path = parent / self.name
        self._mkdir(path)
        self.paths = {controller: path for controller in self.controllers}

    # --- limits -------------------------------------------------------------------------------------

    def _dir(self, controller: str) -> Path:
        if self.closed:
            raise CgroupError(f"{self.name} is closed")
        if controller not in self.paths:
            raise CgroupError(f"{self.name} was created without the {controller} controller")
        return self.paths[controller]

    def _log(self, writes: list[Write]) -> list[Write]:
        self.written.extend(writes)
        return writes

    def limit_memory(self, limit_bytes: int) -> list[Write]:
        """Cap the group's memory at ``limit_bytes`` and keep it out of swap, so that going over the limit
        means an OOM kill right away rather than slow paging. Returns the (file, value) pairs written."""
        folder, value = self._dir("memory"), str(int(limit_bytes))
        if self.version == "v2":
            writes = [_write(folder / "memory.max", value)]
            if (folder / "memory.swap.max").exists():
                writes.append(_write(folder / "memory.swap.max", "0"))
            return self._log(writes)
        limit, memsw = folder / "memory.limit_in_bytes", folder / "memory.memsw.limit_in_bytes"
        writes: list[Write] = []
        if memsw.exists() and _swap_configured():
            # memsw is memory + swap: set to the same value, it leaves no room for swap. The kernel insists on
            # memsw >= memory at every moment, so a limit that goes down is written to memory first, one that
            # goes up to memsw first. Only with swap to rule out: since Linux 6.12 the memsw counter keeps no
            # failcnt and, charged first, it takes every refusal, so memory.failcnt would stay at 0.
            order = [limit, memsw] if int(value) <= (_read_int(limit) or 0) else [memsw, limit]
            writes += [_write(file, value) for file in order]
        else:
            writes.append(_write(limit, value))
        try:
            writes.append(_write(folder / "memory.swappiness", "0"))  # and never pick this group's pages to swap
        except CgroupError:
            pass  # older kernels refuse swappiness inside a hierarchy
        return self._log(writes)

    def limit_pids(self, count: int) -> list[Write]:
        """Allow at most ``count`` processes and threads in the group at once: fork() fails beyond that."""
        return self._log([_write(self._dir("pids") / "pids.max", str(int(count)))])

    def limit_cpu(self, fraction: float, period_us: int = CPU_PERIOD_US) -> list[Write]:
        """Let the group use ``fraction`` of one CPU (0.2 = 20 ms in every 100 ms; 2.0 = two CPUs): once the
        quota of a period is spent, its threads wait (are throttled) until the next period starts."""
        folder = self._dir("cpu")
        quota = max(CPU_MIN_QUOTA_US, round(fraction * period_us))
        if self.version == "v2":
            return self._log([_write(folder / "cpu.max", f"{quota} {period_us}")])
        return self._log([_write(folder / "cpu.cfs_period_us", str(period_us)),
                          _write(folder / "cpu.cfs_quota_us", str(quota))])

    # --- running and watching -----------------------------------------------------------------------

    def _directories(self) -> list[Path]:
        """Each distinct directory of the group (several on v1, one on v2)."""
        return list(dict.fromkeys(self.paths.values()))

    def run(self, argv: Sequence[str], timeout: float = 30.0, *, cwd: str | Path | None = None,
            env: dict[str, str] | None = None) -> CompletedRun:
        """Run ``argv`` inside the group and wait for it (at most ``timeout`` seconds, then kill the group's
        processes). Processes it leaves running in the background stay in the group until ``close()``.

        The child joins the group after fork() and before exec(): it writes its own pid to cgroup.procs of
        each directory, so the command is limited from its first instruction and the notebook is never in
        the group. That step is a ``preexec_fn``, which Python warns can deadlock in a threaded program (a
        Jupyter kernel has threads) if it needs a lock another thread held at fork time; this one only calls
        os.getpid/open/write/close on paths prepared beforehand, and takes no lock. If joining fails the
        command is not run at all.
        """
        if self.closed:
            raise CgroupError(f"{self.name} is closed")
        targets = [os.fsencode(folder / "cgroup.procs") for folder in self._directories()]

        def join_group() -> None:
            me = str(os.getpid()).encode()
            for target in targets:
                fd = os.open(target, os.O_WRONLY)
                try:
                    os.write(fd, me)
                finally:
                    os.close(fd)

        start = time.monotonic()
        try:
            child = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd, env=env, preexec_fn=join_group)
        except subprocess.SubprocessError as exc:
            raise CgroupError(f"the child could not join {self.name} ({exc}); the command did not run") from exc
        timed_out = False
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            child.kill()
            self.kill_all()
            out, err = child.communicate()
        wall = time.monotonic() - start
        code = child.returncode
        return CompletedRun(code, -code if code < 0 else None, out.decode(errors="replace"),
                            err.decode(errors="replace"), wall, timed_out)

    def procs(self) -> list[int]:
        """The processes in the group now (the union over its directories), from cgroup.procs."""
        found: set[int] = set()
        for folder in self._directories():
            try:
                found.update(int(pid) for pid in (folder / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return sorted(found)

    def kill_all(self, timeout: float = 5.0) -> list[int]:
        """SIGKILL every process in the group until it is empty; returns the pids killed.

        On v2 with cgroup.kill the kernel does it in one step. Otherwise the pids listed in cgroup.procs are
        killed one by one, and read-then-kill repeats because a process may fork in between (pids.max, or the
        timeout, bounds the rounds). A pid is only ever taken from the group's own list a moment before, so
        the chance of hitting a reused pid is negligible. The dead leave the group at once, even while they
        wait for a parent to reap them, so they do not keep it busy.
        """
        killed: list[int] = []
        deadline = time.monotonic() + timeout
        for folder in self._directories():
            if self.version == "v2" and (folder / "cgroup.kill").exists() and (pids := self.procs()):
                _write(folder / "cgroup.kill", "1")  # Linux 5.14+: the kernel kills the whole group at once
                killed += pids
        while pids := self.procs():
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise CgroupError(f"{self.name} still holds processes {self.procs()} after {timeout} s")
            time.sleep(0.01)
        return sorted(set(killed))

    def counters(self) -> dict[str, int]:
        """The kernel's own counters for the group, named after the file (and the line) they come from:
        memory used at the peak, limit hits and OOM kills; processes now and forks refused; CPU time used
        and how often the quota throttled the group. Which files exist depends on the version."""
        found: dict[str, int | None] = {}
        memory, pids, cpu = (self.paths.get(c) for c in ("memory", "pids", "cpu"))
        if memory and self.version == "v1":
            found["memory.max_usage_in_bytes"] = _read_int(memory / "memory.max_usage_in_bytes")
            found["memory.failcnt"] = _read_int(memory / "memory.failcnt")
            # With memsw set equal to the limit, the memory+swap counter is charged first and refuses first,
            # so limit hits show up here rather than in memory.failcnt.
            found["memory.memsw.failcnt"] = _read_int(memory / "memory.memsw.failcnt")
            found["memory.oom_control oom_kill"] = _read_keyed(memory / "memory.oom_control").get("oom_kill")
        elif memory:
            found["memory.peak"] = _read_int(memory / "memory.peak")
            events = _read_keyed(memory / "memory.events")
            for key in ("max", "oom", "oom_kill"):
                found[f"memory.events {key}"] = events.get(key)
        if pids:
            found["pids.current"] = _read_int(pids / "pids.current")
            found["pids.peak"] = _read_int(pids / "pids.peak")
            found["pids.events max"] = _read_keyed(pids / "pids.events").get("max")
        if cpu and self.version == "v1":
            found["cpuacct.usage"] = _read_int(self.paths.get("cpuacct", cpu) / "cpuacct.usage")
            stats = _read_keyed(cpu / "cpu.stat")
            for key in ("nr_periods", "nr_throttled", "throttled_time"):
                found[f"cpu.stat {key}"] = stats.get(key)
        elif cpu:
            stats = _read_keyed(cpu / "cpu.stat")
            for key in ("usage_usec", "nr_periods", "nr_throttled", "throttled_usec"):
                found[f"cpu.stat {key}"] = stats.get(key)
        return {key: value for key, value in found.items() if value is not None}

    def summary(self) -> dict[str, float]:
        """The same counters under version-neutral names, so one notebook cell reads both kernels:
        oom_kills, memory_limit_hits (charges refused), memory_peak_bytes, forks_refused, cpu_s (CPU seconds
        used), throttled_periods. Only the controllers the group has, and only what this kernel counts."""
        raw, v1 = self.counters(), self.version == "v1"
        picks: dict[str, float | None] = {}
        if "memory" in self.paths:
            picks["oom_kills"] = raw.get("memory.oom_control oom_kill" if v1 else "memory.events oom_kill")
            hits = ("memory.failcnt", "memory.memsw.failcnt") if v1 else ("memory.events max",)
            picks["memory_limit_hits"] = sum(raw.get(key, 0) for key in hits)
            picks["memory_peak_bytes"] = raw.get("memory.max_usage_in_bytes" if v1 else "memory.peak")
        if "pids" in self.paths:
            picks["forks_refused"] = raw.get("pids.events max")
        if "cpu" in self.paths:
            used = raw.get("cpuacct.usage") if v1 else raw.get("cpu.stat usage_usec")
            picks["cpu_s"] = None if used is None else used / (1e9 if v1 else 1e6)  # ns on v1, µs on v2
            picks["throttled_periods"] = raw.get("cpu.stat nr_throttled")
        return {key: value for key, value in picks.items() if value is not None}

    # --- cleaning up --------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process left in the group, then remove its directories. Safe to call twice. When
        something cannot be removed it raises and the group stays registered, so that exit tries again."""
        if self.closed:
            return
        problems = []
        try:
            self.kill_all()
        except CgroupError as exc:
            problems.append(str(exc))
        for folder in reversed(self._created):
            try:
                _remove_group(folder)
            except CgroupError as exc:
                problems.append(str(exc))
        self._created = [folder for folder in self._created if folder.exists()]
        if problems or self._created:
            raise CgroupError("; ".join(problems) or f"{self.name} could not be removed")
        self.closed = True
        _open.discard(self)

    def __enter__(self) -> Cgroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cgroup({self.name!r}, {self.version}, {'closed' if self.closed else 'open'})"


def _remove_group(folder: Path, attempts: int = 50) -> None:
    """rmdir a group and any group a notebook cell made inside it, deepest first (a cgroup directory's
    files go with it). EBUSY right after a kill means a process is still exiting: wait a moment."""
    if not folder.exists():
        return
    for root, _, _ in sorted(os.walk(folder), key=lambda entry: -len(Path(entry[0]).parts)):
        for attempt in range(attempts):
            try:
                os.rmdir(root)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == attempts - 1:
                    raise CgroupError(f"cannot remove {root}: {exc.strerror}") from exc
                time.sleep(0.02)


@atexit.register
def _close_all() -> None:
    for group in list(_open):
        try:
            group.close()
        except CgroupError:
            pass


# --- a root file system to chroot into ----------------------------------------------------------

BUSYBOX = "/bin/busybox"
# Applets linked when `busybox --list` cannot be asked (the list normally has a few hundred).
APPLETS = ("sh", "ls", "ps", "hostname", "cat", "mount", "umount", "ip", "id", "echo", "sleep", "mkdir",
           "rm", "cp", "mv", "uname", "env", "top", "free", "kill", "grep", "head", "wc", "whoami", "touch")


def busybox_rootfs(dest: Path, busybox: str | Path = BUSYBOX, hostname: str = "container") -> Path:
    """Make a minimal root file system in ``dest`` (new or empty) and return it.

    One statically linked program does everything: /bin/busybox, with /bin/sh, /bin/ls, /bin/ps... as
    symbolic links to it (busybox looks at the name it was called by). Around it, the directories a
    container expects to mount things on (/proc, /sys, /dev, /tmp), /etc/passwd and /etc/group that know
    root, /etc/hostname, and the /dev/null, /dev/zero, /dev/urandom device nodes when running as root. It
    must be static: in an empty root there is no C library to load. ``tree_size(dest)`` gives its size:
    about 2 MB, nearly all of it the one binary (1,982,256 bytes for Debian 12's busybox-static).
    """
    dest = Path(dest)
    if not is_static_elf(str(busybox)):
        raise FileNotFoundError(f"{busybox} is not a statically linked busybox (Debian: busybox-static)")
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    for folder, mode in (("bin", 0o755), ("etc", 0o755), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755),
                         ("tmp", 0o1777), ("root", 0o700)):
        (dest / folder).mkdir()
        (dest / folder).chmod(mode)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    for applet in _applets(str(busybox)):
        if applet != "busybox":
            (dest / "bin" / applet).symlink_to("busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\n")
    (dest / "etc" / "hostname").write_text(f"{hostname}\n")
    for node, (major, minor) in (("null", (1, 3)), ("zero", (1, 5)), ("urandom", (1, 9))):
        try:
            os.mknod(dest / "dev" / node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            (dest / "dev" / node).chmod(0o666)
        except OSError:
            pass  # not root, or a file system mounted nodev: the lesson can mount devtmpfs instead
    return dest


def _applets(busybox: str) -> list[str]:
    """The commands this busybox provides, as it lists them itself."""
    try:
        listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return list(APPLETS)
    names = [name for name in listed.stdout.split() if name and "/" not in name]
    return names or list(APPLETS)


def tree_size(path: Path) -> int:
    """Bytes in a directory tree as it sits on disk: regular files plus the symbolic links themselves
    (a link's size is the length of its target), never following a link, directories not counted."""
    total = 0
    for root, folders, files in os.walk(path):
        for name in folders + files:  # a link to a directory is listed among the folders, not followed
            info = os.lstat(os.path.join(root, name))
            if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
                total += info.st_size
    return total


def limits_of(pid: int) -> dict[str, str]:
    """The memory and process-count limits the kernel applies to ``pid``, read from its cgroup's own files.

    How a cell checks that ``docker run --memory 32m --pids-limit 10`` really wrote the limits: find the
    process's group in /proc/PID/cgroup, then read ``memory.limit_in_bytes`` and ``pids.max`` (v1) or
    ``memory.max`` and ``pids.max`` (v2) there. Keys are the file paths, values their contents.
    """
    found: dict[str, str] = {}
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    if cgroup_version() == "v2":
        path = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
        folder = CGROUP_ROOT / path.lstrip("/")
        wanted = [folder / "memory.max", folder / "pids.max"]
    else:
        mounts = _v1_mounts()
        wanted = []
        for line in lines:
            _, names, path = line.split(":", 2)
            for controller, filename in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max")):
                if controller in names.split(",") and controller in mounts:
                    mountpoint, mounted = mounts[controller]
                    relative = path[len(mounted):] if path.startswith(mounted) and mounted != "/" else path
                    wanted.append(mountpoint / relative.lstrip("/") / filename)
    for file in wanted:
        try:
            found[str(file)] = file.read_text().strip()
        except OSError:
            pass
    return found
