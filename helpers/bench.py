"""The benchmark of lesson 03.3: how long a process, a container and a virtual machine take to start, how much
memory each holds, how big each is on disk, and how that grows when N of them start at once.

Every rung of the ladder runs the same workload (``true``: start, do nothing, exit) and is timed the same way:
the wall time from launching it until it has exited, on the monotonic clock, in this process, with the rung
started by ``posix_spawn`` (no shell in between) and waited for. Warm-up runs come first and are not
counted, so caches are hot for every rung alike. Each rung reports min, median and 95th percentile.

    with Bench() as bench:                 # builds the root file system, OCI bundle, image, VM assets
        timings = bench.startup()          # {key: Timing}
        memory = bench.memory()            # [MemoryRow]
        cross = bench.cross_check(timings) # hyperfine's median for the same commands, in the same run

The same benchmark runs without a notebook and writes JSON::

    python -m helpers.bench --out results.json          # --force to overwrite, --quick for fewer runs

A run of it on the course's CI machine is kept in ``data/bench-results.json``; a student without Docker or
QEMU reads those recorded figures, clearly labelled, instead of live ones.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from helpers import env
from helpers.workspace import Scratch

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "data" / "bench-results.json"
PUBLISHED = ROOT / "data" / "bench-published.json"
IMAGE = "cloudnotes/bench-busybox:03.3"
CONTAINER_PREFIX = "cloudnotes-bench-"
HYBRID_HINT = "/sys/fs/cgroup/unified"


class BenchError(RuntimeError):
    """A rung's command failed; the message has the command and what it printed."""


# --- statistics ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between the two nearest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Timing:
    """One rung's start-up times in milliseconds (warm-up runs excluded) and what it ran."""

    key: str
    label: str
    samples_ms: list[float]
    warmup: int
    command: str = ""
    note: str = ""
    hyperfine_median_ms: float | None = None
    check_median_ms: float | None = None  # this harness's median in the rounds alternating with hyperfine

    @property
    def min(self) -> float:
        return min(self.samples_ms)

    @property
    def median(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)

    @property
    def ratio(self) -> float | None:
        """This harness's median over hyperfine's, timed in alternating rounds of the same run (1.0 = agree)."""
        if not (self.hyperfine_median_ms and self.check_median_ms):
            return None
        return self.check_median_ms / self.hyperfine_median_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "min_ms": self.min, "median_ms": self.median, "p95_ms": self.p95,
                "runs": len(self.samples_ms), "ratio": self.ratio}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        names = {"key", "label", "samples_ms", "warmup", "command", "note", "hyperfine_median_ms", "check_median_ms"}
        return cls(**{name: data[name] for name in names if name in data})


# --- progress ------------------------------------------------------------------------------------------


class Progress:
    """A progress bar: a widget in JupyterLab, a redrawn line on a terminal, one line per step in a log."""

    def __init__(self, total: int, enabled: bool = True, width: int = 30):
        self.total, self.done, self.width, self.label = max(total, 1), 0, width, ""
        self.widget = self.stream = None
        if not enabled:
            return
        if _in_notebook():
            import ipywidgets
            from IPython.display import display

            self.widget = ipywidgets.IntProgress(value=0, min=0, max=self.total, description="benchmark")
            self.text = ipywidgets.Label()
            display(ipywidgets.HBox([self.widget, self.text]))
        else:
            self.stream = sys.stderr

    def step(self, label: str, count: int = 1) -> None:
        self.done = min(self.done + count, self.total)
        changed, self.label = label != self.label, label
        if self.widget is not None:
            self.widget.value, self.text.value = self.done, f"{self.done}/{self.total} {label}"
        elif self.stream is not None and self.stream.isatty():
            filled = round(self.width * self.done / self.total)
            self.stream.write(f"\r[{'#' * filled}{' ' * (self.width - filled)}] {self.done}/{self.total} {label:<40}")
            self.stream.flush()
        elif self.stream is not None and (changed or self.done == self.total):
            self.stream.write(f"[bench] {self.done}/{self.total} {label}\n")

    def close(self) -> None:
        if self.stream is not None and self.stream.isatty():
            self.stream.write("\n")
        if self.widget is not None:
            self.widget.bar_style = "success"


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


# --- the timing harness ------------------------------------------------------------------------------


def _spawn_and_wait(path: str, argv: Sequence[str], environ: dict[str, str], timeout: float) -> int:
    """posix_spawn the command with stdout and stderr to /dev/null, wait for it; its wait status."""
    actions = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    pid = os.posix_spawn(path, list(argv), environ, file_actions=actions)
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
    return os.waitpid(pid, 0)[1]


def _check_once(argv: Sequence[str], timeout: float) -> None:
    """Run the command once with its output captured, so that a broken rung fails with its own message."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{shlex.join(argv)} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise BenchError(f"{shlex.join(argv)} could not start: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise BenchError(f"{shlex.join(argv)} failed with exit status {done.returncode}: {detail}")


def time_command(argv: Sequence[str], runs: int = 20, warmup: int = 3, timeout: float = 60,
                 on_run: Callable[[], None] | None = None) -> list[float]:
    """Wall time in ms of ``runs`` runs of ``argv`` after ``warmup`` uncounted ones (the first is checked)."""
    path = shutil.which(argv[0])
    if path is None:
        raise BenchError(f"{argv[0]} is not installed")
    environ = dict(os.environ)
    _check_once([path, *argv[1:]], timeout)
    samples = []
    for index in range(max(warmup - 1, 0) + runs):
        start = time.perf_counter_ns()
        status = _spawn_and_wait(path, argv, environ, timeout)
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        if status != 0:
            raise BenchError(f"{shlex.join(argv)} failed during the benchmark (wait status {status})")
        if index >= warmup - 1:
            samples.append(elapsed_ms)
            if on_run:
                on_run()
    return samples


def time_call(function: Callable[[], Any], runs: int = 20, warmup: int = 3,
              on_run: Callable[[], None] | None = None) -> list[float]:
    """Wall time in ms of ``runs`` calls of ``function`` after ``warmup`` uncounted ones."""
    samples = []
    for index in range(warmup + runs):
        start = time.perf_counter_ns()
        function()
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        if index >= warmup:
            samples.append(elapsed_ms)
            if on_run:
                on_run()
    return samples


def hyperfine(commands: Sequence[Sequence[str]], runs: int, warmup: int, folder: Path,
              prefix: Sequence[str] = ()) -> list[float]:
    """hyperfine's median in ms for each command (``--shell=none``: no shell, as in this harness)."""
    if shutil.which("hyperfine") is None:
        raise BenchError("hyperfine is not installed (Debian package hyperfine)")
    report = folder / f"hyperfine-{time.monotonic_ns()}.json"
    argv = [*prefix, "hyperfine", "--shell=none", "--style", "none", "--warmup", str(warmup), "--runs", str(runs),
            "--export-json", str(report), *[shlex.join(command) for command in commands]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"hyperfine failed: {(done.stderr.strip() or done.stdout.strip())[-300:]}")
    results = json.loads(report.read_text())["results"]
    report.unlink()
    return [result["median"] * 1000 for result in results]


# --- memory of running processes -----------------------------------------------------------------------


def proc_kib(pid: int, filename: str, key: str) -> int:
    """A ``kB`` value from /proc/PID/FILENAME ("status", "VmHWM"; "smaps_rollup", "Pss"); 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/{filename}").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    """Resident set size: every page of the process in RAM, shared ones counted in full."""
    return proc_kib(pid, "status", "VmRSS")


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes sharing them (sums to real use)."""
    return proc_kib(pid, "smaps_rollup", "Pss")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from the parent links in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            children.setdefault(_parent(int(entry.name)), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def pids_named(name: str) -> list[int]:
    """Processes whose command name (/proc/PID/comm) is ``name``: read only, to measure them."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if _comm(pid) == name]


@dataclass
class MemoryRow:
    """The memory one running rung holds, in KiB: its workload, the machinery around it, and the total."""

    key: str
    label: str
    workload_rss_kib: int
    workload_pss_kib: int
    runtime_pss_kib: int = 0  # the runtime process beside the workload (runc, crun, containerd shim, QEMU)
    cgroup_usage_kib: int | None = None  # the container's own memory counter, where there is one
    note: str = ""

    @property
    def total_pss_kib(self) -> int:
        return self.workload_pss_kib + self.runtime_pss_kib


def _settle(seconds: float = 0.3) -> None:
    time.sleep(seconds)  # let a just-started process finish loading before its memory is read


# --- the benchmark ----------------------------------------------------------------------------------


@dataclass
class Rung:
    key: str
    label: str
    argv: list[str] = field(default_factory=list)  # empty for rungs timed as a Python call
    runs: int = 20
    warmup: int = 3
    compare: bool = True  # cross-checked with hyperfine
    prefix: list[str] = field(default_factory=list)  # run harness and hyperfine inside this (crun, below)
    note: str = ""


def cgroup_hybrid() -> bool:
    """True on a 'hybrid' layout: v1 controllers plus a cgroup v2 mount at /sys/fs/cgroup/unified."""
    return env.cgroup_version() == "v1" and os.path.ismount(HYBRID_HINT)


def private_mounts_without_unified() -> list[str]:
    """A prefix that runs a command in a private mount namespace where the v2 'unified' mount is hidden.

    crun refuses the hybrid layout ("cgroups in hybrid mode not supported"). Unmounting the v2 hierarchy
    inside a mount namespace of its own shows crun a plain v1 machine; the host's mounts are untouched.
    """
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'umount {HYBRID_HINT} && exec "$0" "$@"']


class Bench:
    """Everything the rungs need, made once and removed by :meth:`close`; each measurement is a method."""

    # timed runs per rung: (fast rungs, Docker rungs, VM boots); warm-ups come on top
    PROFILES = {"full": (50, 20, 4), "notebook": (30, 10, 3), "quick": (10, 5, 2)}

    def __init__(self, progress: bool = True, profile: str = "full"):
        if profile not in self.PROFILES:
            raise ValueError(f"profile must be one of {', '.join(self.PROFILES)}, not {profile!r}")
        self.progress_enabled, self.profile = progress, profile
        self.work: Scratch | None = None
        self.client: Any = None
        self.image: Any = None
        self.assets: Any = None
        self.unavailable: dict[str, str] = {}
        self.rootfs = self.bundle = Path()

    # setup and teardown

    def __enter__(self) -> Bench:
        try:
            self.prepare()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self) -> None:
        from helpers.containers import busybox_rootfs

        self.work = Scratch("bench")
        if env.probe("busybox").ok:
            self.rootfs = busybox_rootfs(self.work / "bundle" / "rootfs")
            self.bundle = self.work / "bundle"
            self._write_oci_config(["/bin/true"])
        if env.probe("docker").ok:
            import docker

            from helpers.images import busybox_image

            self.client = docker.from_env()
            self.image = busybox_image(self.client, IMAGE)
        if env.probe("qemu").ok:
            from helpers.vm import prepare_guest

            self.assets = prepare_guest()

    def close(self) -> None:
        if self.client is not None:
            for container in self.client.containers.list(all=True, filters={"name": CONTAINER_PREFIX}):
                with contextlib.suppress(Exception):
                    container.remove(force=True)
            with contextlib.suppress(Exception):
                self.client.images.remove(IMAGE, force=True)
            self.client.close()
            self.client = None
        if self.work is not None:
            self.work.close()

    def _write_oci_config(self, args: list[str]) -> Path:
        """An OCI runtime bundle's config.json (``runc spec``'s defaults): the process, read-only root."""
        config = {
            "ociVersion": "1.0.2",
            "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args, "cwd": "/",
                        "env": ["PATH=/bin"], "noNewPrivileges": True,
                        "capabilities": {kind: ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
                                         for kind in ("bounding", "effective", "permitted")}},
            "root": {"path": "rootfs", "readonly": True},
            "hostname": "container",
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}],
            "linux": {"namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")],
                      "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
                      "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]},
        }
        path = self.bundle / "config.json"
        path.write_text(json.dumps(config, indent=1))
        return path

    # the ladder

    def rungs(self) -> list[Rung]:
        """The rungs this machine can run; the others are listed in ``self.unavailable`` with the reason."""
        runs_fast, runs_docker, runs_vm = self.PROFILES[self.profile]
        rungs = [Rung("process", "process (fork + exec of true)", ["/bin/true"], runs_fast, 5)]
        if self.rootfs != Path():
            if env.probe("namespaces").ok and env.probe("root").ok:
                rungs.append(Rung("namespaces", "namespace container (unshare + chroot)",
                                  ["unshare", "--pid", "--fork", "--net", "--mount", "--uts", "--ipc",
                                   "chroot", str(self.rootfs), "/bin/true"], runs_fast, 5))
            else:
                self.unavailable["namespaces"] = "needs root and namespaces"
            for runtime in ("runc", "crun"):
                if shutil.which(runtime) is None or not env.probe("root").ok:
                    self.unavailable[runtime] = f"{runtime} is not installed" if env.probe("root").ok else "needs root"
                    continue
                state = self.work / f"{runtime}-state"
                prefix = private_mounts_without_unified() if runtime == "crun" and cgroup_hybrid() else []
                note = "in a private mount namespace without the cgroup v2 mount (crun refuses hybrid cgroups)" \
                    if prefix else ""
                rungs.append(Rung(runtime, f"OCI runtime ({runtime} run)",
                                  [runtime, "--root", str(state), "run", "--bundle", str(self.bundle),
                                   f"cloudnotes-{runtime}"], max(runs_fast // 2, 5), 3, prefix=prefix, note=note))
        else:
            self.unavailable["namespaces"] = "needs a static busybox (Debian package busybox-static)"
        if self.client is not None:
            docker_cli = shutil.which("docker") or "docker"
            rungs += [
                Rung("docker", "Docker (docker run, no network)",
                     [docker_cli, "run", "--rm", "--network", "none", IMAGE, "/bin/true"], runs_docker, 2),
                Rung("docker-sdk", "Docker (Python SDK, no network)", [], runs_docker, 2, compare=False),
                Rung("docker-bridge", "Docker (docker run, bridge network)",
                     [docker_cli, "run", "--rm", IMAGE, "/bin/true"], runs_docker, 2, compare=False),
            ]
        else:
            self.unavailable["docker"] = "no Docker daemon answers"
        if env.probe("kvm-ioctl").ok:
            rungs.append(Rung("kvm-floor", "raw KVM guest, no OS (03.1)", [], runs_docker, 1, compare=False,
                              note="KVM_CREATE_VM to halt, timed inside a child process: no process start"))
        else:
            self.unavailable["kvm-floor"] = "/dev/kvm does not answer KVM ioctls"
        if self.assets is not None:
            rungs.append(Rung("vm", "Linux VM (QEMU boot to power-off)", [], runs_vm, 1, compare=False))
        else:
            self.unavailable["vm"] = "QEMU is not installed"
        return rungs

    def _samples(self, rung: Rung, on_run: Callable[[], None]) -> tuple[list[float], str]:
        """Time one rung; (samples in ms, the command as a CLI line)."""
        if rung.key == "docker-sdk":
            def run() -> None:
                self.client.containers.run(IMAGE, ["/bin/true"], remove=True, network_mode="none")
            return time_call(run, rung.runs, rung.warmup, on_run), \
                f'client.containers.run("{IMAGE}", ["/bin/true"], remove=True, network_mode="none")'
        if rung.key == "kvm-floor":
            from helpers.vm import kvm_hello_in_child

            samples = []
            for index in range(rung.warmup + rung.runs):
                result = kvm_hello_in_child()
                if index >= rung.warmup:
                    samples.append(result.create_to_halt_s * 1000)
                    on_run()
            return samples, "python -m helpers.vm kvm-hello"
        if rung.key == "vm":
            from helpers.vm import boot

            samples = []
            for index in range(rung.warmup + rung.runs):
                result = boot(self.assets)
                if index >= rung.warmup:
                    samples.append(result.total_s * 1000)
                    on_run()
            return samples, shlex.join(result.argv)
        command = shlex.join(rung.argv)
        if rung.prefix:  # the same harness, run in a child inside the prefix's namespace
            done = subprocess.run([*rung.prefix, sys.executable, "-m", "helpers.bench", "time", "--runs",
                                   str(rung.runs), "--warmup", str(rung.warmup), "--", *rung.argv],
                                  capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            if done.returncode != 0:
                raise BenchError(f"{command} failed: {(done.stderr.strip() or 'no output').splitlines()[-1]}")
            for _ in range(rung.runs):
                on_run()
            return json.loads(done.stdout), command
        return time_command(rung.argv, rung.runs, rung.warmup, on_run=on_run), command

    def startup(self, keys: Iterable[str] | None = None) -> dict[str, Timing]:
        """Time every rung (or those in ``keys``); a rung that fails is reported in ``self.unavailable``."""
        rungs = [rung for rung in self.rungs() if keys is None or rung.key in set(keys)]
        progress = Progress(sum(rung.runs for rung in rungs), self.progress_enabled)
        timings = {}
        try:
            for rung in rungs:
                try:
                    samples, command = self._samples(rung, lambda rung=rung: progress.step(rung.key))
                except BenchError as exc:
                    self.unavailable[rung.key] = str(exc)
                    continue
                timings[rung.key] = Timing(rung.key, rung.label, samples, rung.warmup, command, rung.note)
        finally:
            progress.close()
        return timings

    def cross_check(self, timings: dict[str, Timing], rounds: int = 3) -> dict[str, Timing]:
        """Time the comparable rungs again, this harness and hyperfine in alternating rounds, so that both see
        the machine in the same state; store the median of each one's round medians on each Timing (its
        ``ratio`` compares them)."""
        rungs = [rung for rung in self.rungs() if rung.compare and rung.key in timings]
        progress = Progress(2 * rounds * len(rungs), self.progress_enabled)
        try:
            for rung in rungs:
                runs = max(rung.runs // rounds, 3)
                mine: list[float] = []
                theirs: list[float] = []
                try:
                    for _ in range(rounds):
                        mine.append(percentile(self._samples(replace(rung, runs=runs), lambda: None)[0], 50))
                        progress.step(f"{rung.key}: harness")
                        theirs += hyperfine([rung.argv], runs, rung.warmup, self.work.path, rung.prefix)
                        progress.step(f"{rung.key}: hyperfine")
                except BenchError as exc:
                    timings[rung.key].note = (timings[rung.key].note + f"; hyperfine: {exc}").lstrip("; ")
                    continue
                timings[rung.key].check_median_ms = percentile(mine, 50)
                timings[rung.key].hyperfine_median_ms = percentile(theirs, 50)
        finally:
            progress.close()
        return timings

    # memory

    def _sleeper(self, argv: list[str], key: str, label: str, prefix: Sequence[str] = (),
                 cleanup: Sequence[str] = ()) -> MemoryRow:
        """Start ``argv`` (its workload is ``sleep``), read its process tree's memory, stop the whole tree.

        The workload is the leaf of the tree (``sleep``); the processes above it are the machinery that
        started it and stays beside it (``unshare``, ``runc``, ``crun``), measured apart. The workload is
        stopped first, so that a runtime sees its container end and removes the container's cgroup itself;
        ``cleanup`` (a runtime's ``delete --force``) then removes whatever a runtime that had to be killed left.
        """
        process = subprocess.Popen([*prefix, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True)
        tree = [process.pid]
        try:
            _settle()
            if process.poll() is not None:
                raise BenchError(f"{shlex.join(argv)} exited early: {process.stderr.read().decode().strip()}")
            tree = descendants(process.pid)
            parents = {_parent(pid) for pid in tree}
            workload = [pid for pid in tree if pid not in parents]
            beside = [pid for pid in tree if pid in parents]
            names = sorted({_comm(pid) for pid in beside})
            return MemoryRow(key, label, sum(map(rss_kib, workload)), sum(map(pss_kib, workload)),
                             sum(map(pss_kib, beside)), note=", ".join(names))
        finally:
            parents = {_parent(pid) for pid in tree}
            leaves = [pid for pid in tree if pid not in parents and pid != process.pid]
            for pid in leaves:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if leaves:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)  # a runtime whose container ended cleans up and exits
            for pid in reversed(tree):  # a runtime may put its container in a session of its own
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait()
            process.stderr.close()
            if cleanup:
                subprocess.run([*prefix, *cleanup], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)

    def memory(self) -> list[MemoryRow]:
        """Memory of each rung while it runs ``sleep``: workload, runtime beside it, container counter."""
        rows = [self._sleeper(["busybox", "sleep", "30"], "process", "process")]
        if "namespaces" not in self.unavailable:
            rows.append(self._sleeper(["unshare", "--pid", "--fork", "--net", "--mount", "--uts", "--ipc",
                                       "chroot", str(self.rootfs), "/bin/sleep", "30"], "namespaces",
                                      "namespace container"))
            self._write_oci_config(["/bin/sleep", "30"])
            try:
                for runtime in ("runc", "crun"):
                    if runtime in self.unavailable or shutil.which(runtime) is None:
                        continue
                    prefix = private_mounts_without_unified() if runtime == "crun" and cgroup_hybrid() else []
                    state, name = str(self.work / f"{runtime}-state"), f"cloudnotes-mem-{runtime}"
                    rows.append(self._sleeper([runtime, "--root", state, "run", "--bundle", str(self.bundle), name],
                                              runtime, f"OCI runtime ({runtime})", prefix,
                                              cleanup=[runtime, "--root", state, "delete", "--force", name]))
            finally:
                self._write_oci_config(["/bin/true"])
        if self.client is not None:
            rows.append(self.docker_memory())
        if self.assets is not None:
            from helpers.vm import boot

            result = boot(self.assets)
            rows.append(MemoryRow("vm", "Linux VM (QEMU, 256 MiB guest)", 0, 0, result.qemu_pss_kib or 0,
                                  note=f"QEMU; peak RSS {result.qemu_peak_rss_kib} KiB"))
        return rows

    def docker_memory(self) -> MemoryRow:
        """A running Docker container: its processes, its containerd shim, and its cgroup's own counter."""
        container = self.client.containers.run(IMAGE, ["sleep", "30"], detach=True, network_mode="none",
                                               name=f"{CONTAINER_PREFIX}memory")
        try:
            _settle()
            container.reload()
            pid = container.attrs["State"]["Pid"]
            shim = _parent(pid)
            usage = container.stats(stream=False)["memory_stats"].get("usage")
            return MemoryRow("docker", "Docker container", sum(rss_kib(p) for p in descendants(pid)),
                             sum(pss_kib(p) for p in descendants(pid)), pss_kib(shim),
                             usage // 1024 if usage else None, note="containerd-shim-runc-v2")
        finally:
            container.remove(force=True)

    def daemon_memory(self) -> dict[str, int]:
        """The fixed cost of the Docker engine, paid once however many containers run: PSS in KiB."""
        return {name: sum(pss_kib(pid) for pid in pids_named(name)) for name in ("dockerd", "containerd")}

    # size on disk

    def sizes(self) -> list[dict[str, Any]]:
        """Bytes on disk of each thing that is started: root file systems, images, the VM's kernel and initrd."""
        from helpers.containers import tree_size

        rows = []
        if self.rootfs != Path():
            rows.append({"key": "rootfs", "label": "busybox root file system (folder)",
                         "bytes": tree_size(self.rootfs)})
        if self.image is not None:
            rows.append({"key": "image-busybox", "label": "busybox image (FROM scratch)",
                         "bytes": self.image.attrs["Size"]})
            try:
                from helpers.images import debian_base

                debian = debian_base(self.client, "cloudnotes/bench-debian:03.3")
                rows.append({"key": "image-debian", "label": "Debian 12 minbase image (debootstrap)",
                             "bytes": debian.attrs["Size"]})
                self.client.images.remove("cloudnotes/bench-debian:03.3", force=True)
            except Exception as exc:  # noqa: BLE001 - the size table goes on without this row
                self.unavailable["image-debian"] = str(exc)
        if self.assets is not None:
            rows.append({"key": "vm-kernel", "label": "VM kernel (Debian cloud kernel)",
                         "bytes": self.assets.kernel.stat().st_size})
            rows.append({"key": "vm-initrd", "label": "VM initramfs (busybox + init)",
                         "bytes": self.assets.initrd.stat().st_size})
        return rows

    # growth with N

    def scale_containers(self, counts: Sequence[int] = (1, 2, 4, 8, 16)) -> list[dict[str, Any]]:
        """Start N containers at once: time until all have run ``true`` and exited; memory of N sleeping."""
        docker_cli = shutil.which("docker") or "docker"
        rows = []
        for n in counts:
            start = time.perf_counter()
            processes = [subprocess.Popen([docker_cli, "run", "--rm", "--network", "none", IMAGE, "/bin/true"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(n)]
            failed = [p.stderr.read().decode().strip() for p in processes if p.wait(120) != 0]
            total_s = time.perf_counter() - start
            for process in processes:
                process.stderr.close()
            if failed:
                raise BenchError(f"{len(failed)} of {n} containers failed: {failed[0]}")
            names = [f"{CONTAINER_PREFIX}scale-{i}" for i in range(n)]
            starters = [subprocess.Popen([docker_cli, "run", "-d", "--network", "none", "--name", name, IMAGE,
                                          "sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for name in names]
            for starter in starters:
                starter.wait(120)
            try:
                _settle()
                pss = 0
                for name in names:
                    pid = self.client.containers.get(name).attrs["State"]["Pid"]
                    shim = _parent(pid)
                    pss += sum(pss_kib(p) for p in descendants(shim))
            finally:
                for name in names:
                    with contextlib.suppress(Exception):
                        self.client.containers.get(name).remove(force=True)
            rows.append({"kind": "container", "n": n, "total_s": total_s, "total_pss_kib": pss})
        return rows

    def scale_vms(self, counts: Sequence[int] = (1, 2, 4)) -> list[dict[str, Any]]:
        """Boot N VMs at once: time until all have powered off; the sum of their QEMU processes' PSS."""
        from helpers.vm import boot

        rows = []
        for n in counts:
            results: list[Any] = [None] * n
            errors: list[BaseException] = []

            def one(index: int, results: list[Any] = results, errors: list[BaseException] = errors,
                    timeout: float = 30 + 15 * n) -> None:
                try:
                    results[index] = boot(self.assets, timeout=timeout)
                except BaseException as exc:  # noqa: BLE001 - reported below, after every thread ended
                    errors.append(exc)

            start = time.perf_counter()
            threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            total_s = time.perf_counter() - start
            if errors:
                raise BenchError(f"{len(errors)} of {n} VMs did not boot: {errors[0]}")
            rows.append({"kind": "vm", "n": n, "total_s": total_s,
                         "total_pss_kib": sum(r.qemu_pss_kib or 0 for r in results),
                         "retries": sum(r.attempts - 1 for r in results)})
        return rows

    # everything, for the command line and the recorded results

    def run_all(self) -> dict[str, Any]:
        timings = self.cross_check(self.startup())
        results = {
            "recorded": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "startup": [timing.to_dict() for timing in timings.values()],
            "memory": [{**asdict(row), "total_pss_kib": row.total_pss_kib} for row in self.memory()],
            "daemon_pss_kib": self.daemon_memory() if self.client is not None else {},
            "sizes": self.sizes(),
            "scale": (self.scale_containers() if self.client is not None else [])
            + (self.scale_vms() if self.assets is not None else []),
        }
        results["unavailable"] = dict(self.unavailable)
        return results


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, kernel, virtualisation, tool versions."""
    from helpers.vm import accelerator, what_am_i

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))

    def version(*argv: str) -> str | None:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
        except OSError:
            return None
        return out.strip().splitlines()[0] if out.strip() else None

    identity = what_am_i()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": memory_kib // 1024, "kernel": platform.release(),
            "virtualisation": identity.verdict,
            "accelerator": accelerator()[0], "cgroups": env.cgroup_version(),
            "docker": version("dockerd", "--version"), "qemu": version("qemu-system-x86_64", "--version"),
            "runc": version("runc", "--version"), "crun": version("crun", "--version"),
            "hyperfine": version("hyperfine", "--version"), "python": platform.python_version()}


def load_recorded(path: Path = RECORDED) -> dict[str, Any]:
    """The committed results of a run on the course's CI machine."""
    return json.loads(path.read_text())


def load_published(path: Path = PUBLISHED) -> list[dict[str, Any]]:
    """Published figures (Firecracker, LightVM, crun, docker run...), each with its source."""
    return json.loads(path.read_text())["figures"]


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    timer = sub.add_parser("time", help="time one command with this harness and print the samples (ms) as JSON")
    timer.add_argument("--runs", type=int, default=20)
    timer.add_argument("--warmup", type=int, default=3)
    timer.add_argument("argv", nargs=argparse.REMAINDER)
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--quick", action="store_true", help="fewer runs per rung (a smoke test)")
    options = parser.parse_args(args)
    if options.command == "time":
        argv = options.argv[1:] if options.argv[:1] == ["--"] else options.argv
        try:
            print(json.dumps(time_command(argv, options.runs, options.warmup)))
        except BenchError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    if options.out and options.out.exists() and not options.force:
        print(f"{options.out} exists: pass --force to overwrite it", file=sys.stderr)
        return 2
    with Bench(progress=True, profile="quick" if options.quick else "full") as bench:
        results = bench.run_all()
    text = json.dumps(results, indent=1) + "\n"
    if options.out:
        options.out.write_text(text)
        print(f"wrote {options.out}", file=sys.stderr)
    else:
        print(text)
    for timing in results["startup"]:
        ratio = f"  hyperfine ratio {timing['ratio']:.2f}" if timing["ratio"] else ""
        print(f"{timing['label']:<45} median {timing['median_ms']:>9.2f} ms{ratio}", file=sys.stderr)
    for key, reason in results["unavailable"].items():
        print(f"{key}: not measured ({reason})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
