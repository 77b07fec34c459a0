"""Booting the guest of :mod:`helpers.guest` under QEMU: time it, read its console, measure its memory.

:func:`accelerator` says whether QEMU can use hardware virtualisation (KVM) here or must emulate (TCG);
:func:`boot` starts a minimal ``microvm`` machine, times it to the guest's marker line, reads QEMU's memory
there (split into guest RAM the guest touched and QEMU's own), waits for the guest to power off, and
retries a boot that hangs.

    python -m helpers.qemu      # boot once and print the result as JSON
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from helpers.guest import MARKER, GuestAssets, GuestBuildError, prepare_guest
from helpers.kvm import cpu_flags
from helpers.procmem import mapping_rss_kib, peak_rss_kib, pss_kib, rss_kib

QEMU = "qemu-system-x86_64"


class BootError(RuntimeError):
    """QEMU did not bring the guest to its marker line, after every retry."""


@dataclass(frozen=True)
class BootResult:
    """One guest boot: its console, how it ran, how long it took and how much memory QEMU used."""

    console: str
    accel: str
    boot_to_marker_s: float  # from starting QEMU to the guest's marker line
    total_s: float  # from starting QEMU to its exit after the guest powered off
    qemu_peak_rss_kib: int  # VmHWM: QEMU's peak resident memory
    qemu_pss_kib: int | None  # proportional set size just after the marker (shared pages split)
    attempts: int  # 1 when the first boot reached the marker; each retry (a hung boot) adds one
    qemu_pid: int = 0  # the last attempt's process id (gone by the time this is returned)
    argv: list[str] = field(default_factory=list)
    memory_mb: int = 256  # the guest RAM QEMU was given (-m)
    qemu_rss_kib: int = 0  # QEMU's resident memory just after the marker
    guest_ram_kib: int = 0  # ...of which guest RAM that the guest has touched so far

    @property
    def qemu_own_kib(self) -> int:
        """QEMU's resident memory that is not guest RAM: its code, devices and (under TCG) translated code."""
        return max(self.qemu_rss_kib - self.guest_ram_kib, 0)


def accelerator() -> tuple[str, str]:
    """('kvm', why) when QEMU can use hardware virtualisation here, else ('tcg', why): software emulation."""
    from helpers.env import probe

    check = probe("kvm")
    return ("kvm" if check.ok else "tcg"), check.detail


def host_tsc_khz() -> int | None:
    """The host's time-stamp counter frequency in kHz, when /proc/cpuinfo states it reliably.

    Under software emulation the guest's ``rdtsc`` reads the host's counter, so this is the guest's too.
    "cpu MHz" is the TSC rate only where the kernel knows it (flag ``tsc_known_freq``); elsewhere it may be
    the current, changing clock speed, and None is safer.
    """
    flags, mhz = cpu_flags(), None
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            mhz = float(line.split(":", 1)[1])
            break
    if mhz and {"tsc_known_freq", "constant_tsc"} <= flags:
        return round(mhz * 1000)
    return None


def kernel_command_line(accel: str) -> str:
    """The guest kernel's command line: console on the serial port, quiet, power off on a panic.

    Under software emulation the kernel measures its clock against the emulated timer chip (PIT), and
    on a busy host that measurement sometimes fails; the kernel then finds no other clock on a microvm
    and hangs early in boot. Telling it the TSC frequency (``tsc_early_khz``) removes most of those hangs.
    """
    line = "console=ttyS0 quiet panic=-1"
    khz = host_tsc_khz() if accel == "tcg" else None
    return f"{line} tsc_early_khz={khz}" if khz else line


def qemu_argv(assets: GuestAssets, accel: str, memory_mb: int = 256, cpus: int = 1) -> list[str]:
    """The QEMU command line: a minimal 'microvm' machine, no devices but a serial console on stdout."""
    argv = [QEMU, "-M", "microvm", "-accel", accel, "-m", str(memory_mb), "-smp", str(cpus),
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", str(assets.kernel), "-initrd", str(assets.initrd),
            "-append", kernel_command_line(accel)]
    if accel == "kvm":
        argv[5:5] = ["-cpu", "host"]
    return argv


def _stop(process: subprocess.Popen) -> None:
    """Kill QEMU's process group (its own session) and reap it; safe to call on an exited process."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()


def _boot_once(argv: list[str], accel: str, timeout: float, marker: str,
               memory_mb: int) -> tuple[BootResult | None, str, str]:
    """One boot: (the result or None, why it failed, the console so far). QEMU is gone when this returns."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)  # its own process group, killed as a whole
    console, errors = bytearray(), bytearray()
    marker_s = pss = None
    peak, failure, rss, guest_ram = 0, "", 0, 0
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, console)
            selector.register(process.stderr, selectors.EVENT_READ, errors)
            while selector.get_map() and not failure:  # until QEMU closes both pipes (it exited)
                left = start + timeout - time.perf_counter()
                for key, _ in selector.select(max(min(left, 0.05), 0)):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        key.data.extend(chunk)
                    else:  # end of file: QEMU closed this pipe
                        selector.unregister(key.fileobj)
                peak = max(peak, peak_rss_kib(process.pid))  # sampled while QEMU lives
                if marker_s is None and f"{marker}\n".encode() in console.replace(b"\r", b""):
                    marker_s = time.perf_counter() - start
                    pss = pss_kib(process.pid) or None
                    rss, guest_ram = rss_kib(process.pid), mapping_rss_kib(process.pid, memory_mb * 2**20)
                if left <= 0:
                    failure = f"{'no marker' if marker_s is None else 'no power-off'} within {timeout:g} s"
        if not failure:
            process.wait(max(start + timeout - time.perf_counter(), 0.1))
        total_s = time.perf_counter() - start
    except subprocess.TimeoutExpired:
        failure = f"QEMU did not exit within {timeout:g} s"
    finally:
        _stop(process)
    text = console.decode(errors="replace").replace("\r\n", "\n")
    if not failure and marker_s is None:
        failure = f"QEMU exited with status {process.returncode} before the marker: {errors.decode().strip()[-300:]}"
    if failure:
        return None, failure, text
    return BootResult(text, accel, marker_s, total_s, peak, pss, 1, process.pid, argv, memory_mb, rss,
                      guest_ram), "", text


def boot(assets: GuestAssets, accel: str | None = None, memory_mb: int = 256, timeout: float = 30,
         retries: int = 3, cpus: int = 1, marker: str = MARKER) -> BootResult:
    """Boot the guest under QEMU until it powers itself off; retry a boot that hangs (a few in a hundred do).

    ``accel`` is 'kvm' or 'tcg'; by default :func:`accelerator` chooses. Memory is read when the guest
    prints ``marker`` on a line of its own. QEMU never outlives this call; ``attempts`` in the result says
    how many boots it took.
    """
    accel = accel or accelerator()[0]
    if shutil.which(QEMU) is None:
        raise BootError(f"{QEMU} is not installed (Debian package qemu-system-x86)")
    argv = qemu_argv(assets, accel, memory_mb, cpus)
    failures, console = [], ""
    for attempt in range(1, retries + 1):
        result, failure, console = _boot_once(argv, accel, timeout, marker, memory_mb)
        if result is not None:
            return replace(result, attempts=attempt)
        failures.append(failure)
    last = "\n".join(console.strip().splitlines()[-15:]) or "(nothing)"
    raise BootError(f"the guest did not boot in {retries} attempts ({'; '.join(failures)}); "
                    f"last console output:\n{last}")


def main(args: list[str] | None = None) -> int:
    """``python -m helpers.qemu``: boot the cached guest once and print the result as JSON."""
    if args if args is not None else sys.argv[1:]:
        print("usage: python -m helpers.qemu", file=sys.stderr)
        return 2
    try:
        result = boot(prepare_guest())
    except (GuestBuildError, BootError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({**asdict(result), "qemu_own_kib": result.qemu_own_kib}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
