"""How much memory running processes hold, read through psutil (Linux).

- RSS (resident set size) counts every page of a process that is in RAM, shared pages in full;
- PSS (proportional set size) divides each shared page among the processes sharing it, so the PSS of
  several processes adds up to the memory they really use together;
- the peak RSS (``VmHWM``) is the most a process has held at any moment; psutil does not report it, so it
  is read from ``/proc/PID/status``.

Every function returns 0 (or an empty list) for a process that has already exited: memory is sampled from
processes that come and go, and a vanished one holds nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psutil

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, FileNotFoundError)


def rss_kib(pid: int) -> int:
    """Resident set size in KiB: every page of the process in RAM, shared ones counted in full."""
    try:
        return psutil.Process(pid).memory_info().rss // 1024
    except _GONE:
        return 0


def pss_kib(pid: int) -> int:
    """Proportional set size in KiB: shared pages divided among the processes sharing them."""
    try:
        return psutil.Process(pid).memory_full_info().pss // 1024
    except _GONE:
        return 0


def peak_rss_kib(pid: int) -> int:
    """The most the process has held in RAM so far (``VmHWM`` in /proc/PID/status), in KiB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM:")), 0)


def mapping_rss_kib(pid: int, size_bytes: int) -> int:
    """RSS in KiB of the process's anonymous mappings of exactly ``size_bytes``: for QEMU given ``-m N``,
    the guest's RAM, i.e. how much of it the guest has actually touched."""
    try:
        maps = psutil.Process(pid).memory_maps(grouped=False)
    except _GONE:
        return 0
    total = 0
    for mapping in maps:
        start, end = (int(part, 16) for part in mapping.addr.split("-"))
        if end - start == size_bytes and mapping.path in ("", "[anon]"):
            total += mapping.rss
    return total // 1024


def descendants(pid: int) -> list[int]:
    """``pid`` followed by every process below it (children, grandchildren, ...)."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except _GONE:
        return [pid]


def parent(pid: int) -> int:
    """The parent's process id; 0 once the process is gone."""
    try:
        return psutil.Process(pid).ppid()
    except _GONE:
        return 0


def name(pid: int) -> str:
    """The process's command name (what ``ps -o comm`` shows); '?' once it is gone."""
    try:
        return psutil.Process(pid).name()
    except _GONE:
        return "?"


def pids_named(command: str) -> list[int]:
    """Processes whose command name is ``command``: read only, to measure them."""
    return [process.pid for process in psutil.process_iter(["name"]) if process.info["name"] == command]


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
    guest_ram_kib: int | None = None  # for a VM: the part of QEMU's memory that is guest RAM the guest touched
    guest_given_mib: int | None = None  # for a VM: the memory it was given (-m), which it may come to touch

    @property
    def total_pss_kib(self) -> int:
        return self.workload_pss_kib + self.runtime_pss_kib


def settle(seconds: float = 0.3) -> None:
    """Let a just-started process finish loading before its memory is read."""
    time.sleep(seconds)
