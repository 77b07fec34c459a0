"""The benchmark of lesson 03.3: how long a process, a container and a virtual machine take to start, how much
memory each holds, how big each is on disk, and how that grows when N of them start at once.

Every rung of the ladder runs the same workload (``true``: start, do nothing, exit) and is timed the same way:
the wall time from launching it until it has exited, on the monotonic clock, in this process, with the rung
started by ``posix_spawn`` (no shell in between) and waited for. Warm-up runs come first and are not
counted, so caches are hot for every rung alike. Each rung reports min and median, and a 95th percentile
where it ran enough times for one. The timing itself is :mod:`helpers.timing`; process memory is
:mod:`helpers.procmem`; the VM is :mod:`helpers.guest` booted by :mod:`helpers.qemu`; the raw KVM rung runs
notebook 03.1's own ``kvm_hello.py`` (:mod:`helpers.kvm`).

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
import os
import platform
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
from helpers.procmem import MemoryRow, descendants, name, parent, pids_named, pss_kib, rss_kib, settle
from helpers.timing import BenchError, Progress, Timing, hyperfine, percentile, time_call, time_command
from helpers.workspace import Scratch

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "data" / "bench-results.json"
PUBLISHED = ROOT / "data" / "bench-published.json"
IMAGE = "cloudnotes/bench-busybox:03.3"
CONTAINER_PREFIX = "cloudnotes-bench-"
HYBRID_HINT = "/sys/fs/cgroup/unified"


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
    PROFILES = {"full": (50, 20, 4), "notebook": (40, 10, 3), "quick": (10, 5, 2)}

    def __init__(self, progress: bool = True, profile: str = "full"):
        if profile not in self.PROFILES:
            raise ValueError(f"profile must be one of {', '.join(self.PROFILES)}, not {profile!r}")
        self.progress_enabled, self.profile = progress, profile
        self.work: Scratch | None = None
        self.client: Any = None
        self.image: Any = None
        self.assets: Any = None
        self.unavailable: dict[str, str] = {}
        self.vm_retries = 0  # VM boots that hung and were started again, over every boot this bench made
        self.rootfs = self.bundle = self.kvm_script = Path()

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
        if env.probe("kvm-ioctl").ok:
            from helpers.kvm import SCRIPT_NAME, notebook_script

            self.kvm_script = self.work / SCRIPT_NAME
            self.kvm_script.write_text(notebook_script())
        if env.probe("qemu").ok:
            from helpers.guest import prepare_guest

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
        if self.kvm_script != Path():
            # 03.1's guest program is a Python script: its rung includes a Python start, so the rung just below
            # it starts the same interpreter and imports the same helper without creating a VM.
            python = [sys.executable, "-c", "import helpers.kvm"]
            rungs += [Rung("python", "Python start, no VM (baseline for the next rung)", python, runs_fast, 3,
                           compare=False),
                      Rung("kvm", "raw KVM guest, no OS (03.1's kvm_hello.py)", [sys.executable, str(self.kvm_script)],
                           runs_fast, 3, compare=False,
                           note="a Python process that creates a VM, runs 15 bytes of code, exits")]
        else:
            self.unavailable["kvm"] = "/dev/kvm does not answer KVM ioctls"
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
        if rung.key == "vm":
            from helpers.qemu import boot

            samples = []
            for index in range(rung.warmup + rung.runs):
                result = boot(self.assets)
                self.vm_retries += result.attempts - 1  # a hung boot retried: reported, not hidden
                if index >= rung.warmup:
                    samples.append(result.total_s * 1000)
                    on_run()
            return samples, shlex.join(result.argv)
        command = shlex.join(rung.argv)
        if rung.prefix:  # the same harness, run in a child inside the prefix's namespace
            done = subprocess.run([*rung.prefix, sys.executable, "-m", "helpers.timing", "--runs",
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

    def kvm_inside(self, runs: int | None = None) -> Timing | None:
        """03.1's guest timed from KVM_CREATE_VM to the halt by the script itself, in each of ``runs`` child
        processes: the VM alone, without the process start every rung of the ladder includes. Shown apart
        from the ladder, because it is not measured the same way."""
        if self.kvm_script == Path():
            return None
        from helpers.kvm import run_script

        runs = runs or self.PROFILES[self.profile][1]
        samples = [run_script(self.kvm_script).create_to_halt_s * 1000 for _ in range(runs)]
        return Timing("kvm-inside", "raw KVM guest, KVM_CREATE_VM to halt (inside the process)", samples, 0,
                      f"python {self.kvm_script.name}", "not comparable with the ladder: no process start")

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
            settle()
            if process.poll() is not None:
                raise BenchError(f"{shlex.join(argv)} exited early: {process.stderr.read().decode().strip()}")
            tree = descendants(process.pid)
            parents = {parent(pid) for pid in tree}
            workload = [pid for pid in tree if pid not in parents]
            beside = [pid for pid in tree if pid in parents]
            names = sorted({name(pid) for pid in beside})
            return MemoryRow(key, label, sum(map(rss_kib, workload)), sum(map(pss_kib, workload)),
                             sum(map(pss_kib, beside)), note=", ".join(names))
        finally:
            parents = {parent(pid) for pid in tree}
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
            from helpers.qemu import boot

            result = boot(self.assets)
            self.vm_retries += result.attempts - 1
            rows.append(MemoryRow("vm", f"Linux VM (QEMU, {result.memory_mb} MiB guest)", 0, 0,
                                  result.qemu_pss_kib or 0, note=f"QEMU; peak RSS {result.qemu_peak_rss_kib} KiB",
                                  guest_ram_kib=result.guest_ram_kib, guest_given_mib=result.memory_mb))
        return rows

    def docker_memory(self) -> MemoryRow:
        """A running Docker container: its processes, its containerd shim, and its cgroup's own counter."""
        container = self.client.containers.run(IMAGE, ["sleep", "30"], detach=True, network_mode="none",
                                               name=f"{CONTAINER_PREFIX}memory")
        try:
            settle()
            container.reload()
            pid = container.attrs["State"]["Pid"]
            shim = parent(pid)
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
                settle()
                pss = 0
                for name in names:
                    pid = self.client.containers.get(name).attrs["State"]["Pid"]
                    shim = parent(pid)
                    pss += sum(pss_kib(p) for p in descendants(shim))
            finally:
                for name in names:
                    with contextlib.suppress(Exception):
                        self.client.containers.get(name).remove(force=True)
            rows.append({"kind": "container", "n": n, "total_s": total_s, "total_pss_kib": pss})
        return rows

    def scale_vms(self, counts: Sequence[int] = (1, 2, 4)) -> list[dict[str, Any]]:
        """Boot N VMs at once: time until all have powered off; the sum of their QEMU processes' PSS."""
        from helpers.qemu import boot

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
        inside = self.kvm_inside()
        results["kvm_inside"] = inside.to_dict() if inside else None
        results["vm_retries"] = self.vm_retries
        results["unavailable"] = dict(self.unavailable)
        return results


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, kernel, virtualisation, tool versions."""
    from helpers.kvm import what_am_i
    from helpers.qemu import accelerator

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
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--quick", action="store_true", help="fewer runs per rung (a smoke test)")
    options = parser.parse_args(args)
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
