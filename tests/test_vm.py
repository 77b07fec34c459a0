"""helpers.vm: what this machine is, a raw KVM guest in a child process, a cached guest, a QEMU boot."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import vm

needs_kvm = pytest.mark.needs("linux", "kvm-ioctl")  # /dev/kvm that this user may open and that answers
needs_guest = pytest.mark.needs("linux", "busybox")  # the guest's initramfs is a static busybox
needs_qemu = pytest.mark.needs("linux", "busybox", "qemu")


def _processes_using(path: Path) -> list[int]:
    """Process ids whose command line mentions ``path`` (a QEMU left behind would)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _alive(pid: int) -> str:
    """What ``ps`` says about the process id: its command name, or '' when there is no such process."""
    if shutil.which("ps"):
        return subprocess.run(["ps", "-p", str(pid), "-o", "comm="], capture_output=True, text=True).stdout.strip()
    return Path(f"/proc/{pid}/comm").read_text().strip() if Path(f"/proc/{pid}").exists() else ""


def test_what_am_i_gives_a_verdict_and_its_evidence():
    identity = vm.what_am_i()
    assert "virtual machine" in identity.verdict or "bare metal" in identity.verdict
    assert identity.virtual == identity.verdict.startswith("a virtual machine")
    assert {"cpuinfo hypervisor flag", "DMI sys_vendor", "systemd-detect-virt --vm"} <= set(identity.evidence)
    assert all(identity.evidence.values())


def test_kvm_structs_and_ioctl_numbers_match_the_kernel_headers():
    assert ctypes.sizeof(vm.KvmUserspaceMemoryRegion) == 32
    assert ctypes.sizeof(vm.KvmRegs) == 144 and vm.KvmRegs.rip.offset == 128
    assert ctypes.sizeof(vm.KvmSegment) == 24 and ctypes.sizeof(vm.KvmSregs) == 312
    assert (vm.KVM_GET_API_VERSION, vm.KVM_CREATE_VM, vm.KVM_GET_VCPU_MMAP_SIZE) == (0xAE00, 0xAE01, 0xAE04)
    assert (vm.KVM_CREATE_VCPU, vm.KVM_RUN, vm.KVM_SET_USER_MEMORY_REGION) == (0xAE41, 0xAE80, 0x4020AE46)
    assert (vm.KVM_GET_SREGS, vm.KVM_SET_SREGS, vm.KVM_SET_REGS) == (0x8138AE83, 0x4138AE84, 0x4090AE82)


def test_guest_code_is_fifteen_bytes_of_code_then_the_message():
    code = vm.guest_code()
    assert code[:15] == bytes.fromhex("baf803be0f10ac84c07403eeebf8f4")
    assert code[15:] == vm.MESSAGE.encode() + b"\0"
    assert code[11 + 3] == 0xF4  # jz +3 lands on hlt
    assert code[14 - 8] == 0xAC  # jmp -8 lands on lodsb
    assert len(vm.guest_program()) == 9


@needs_kvm
def test_kvm_hello_in_a_child_process_prints_the_message_and_halts():
    result = vm.kvm_hello_in_child()
    assert result.output == vm.MESSAGE
    assert result.exit_reason == "KVM_EXIT_HLT"
    assert 0 < result.create_to_halt_s < 1
    assert result.guest_code == vm.guest_code()
    assert result.exits == len(vm.MESSAGE) + 1  # one exit per byte written, one for the halt
    assert result.halted_at == vm.GUEST_ADDRESS + 15


def test_kvm_hello_child_failure_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(vm.KvmError, match="child process failed"):
        vm.kvm_hello_in_child()


def test_kvm_result_round_trips_through_json():
    result = vm.KvmResult("hi\n", "KVM_EXIT_HLT", 0.001, b"\xf4", 2, 0x1001)
    assert vm.KvmResult.from_json(result.to_json()) == result
    assert json.loads(result.to_json())["guest_code"] == "f4"


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio is not installed")
def test_initramfs_is_a_newc_archive_with_a_console_device():
    archive = vm.initramfs(b"not really busybox")
    assert archive[:6] == b"070701" and len(archive) % 4 == 0
    listing = subprocess.run(["cpio", "-itv"], input=archive, capture_output=True, check=True).stdout.decode()
    entries = {line.split(" -> ")[0].split()[-1]: line for line in listing.splitlines()}
    assert {"init", "bin/busybox", "bin/sh", "bin/poweroff", "dev/console", "proc", "sys"} <= set(entries)
    assert entries["dev/console"].startswith("crw") and " 5,   1 " in entries["dev/console"]
    assert entries["bin/sh"].startswith("l") and entries["bin/sh"].endswith("-> busybox")


def test_interrupted_build_leaves_no_half_guest(tmp_path, monkeypatch):
    def interrupted(folder: Path) -> None:
        (folder / "vmlinuz-test").write_bytes(b"half")
        raise KeyboardInterrupt

    def complete(folder: Path) -> None:
        (folder / "vmlinuz-test").write_bytes(b"kernel")
        (folder / "initrd.cpio").write_bytes(vm.initramfs(b""))
        (folder / "guest.json").write_text(json.dumps({"kernel": "vmlinuz-test", "initrd": "initrd.cpio",
                                                       "kernel_package": "linux-image-test"}))

    monkeypatch.setattr(vm, "_build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        vm.prepare_guest(tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(vm, "_build", complete)
    assets = vm.prepare_guest(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["guest"] and assets.kernel_bytes == 6
    monkeypatch.setattr(vm, "_build", interrupted)  # a finished guest is never rebuilt
    assert vm.prepare_guest(tmp_path) == assets


@pytest.fixture(scope="module")
def guest() -> vm.GuestAssets:
    return vm.prepare_guest()


@needs_guest
def test_prepare_guest_gives_a_bzimage_and_a_newc_initramfs(guest):
    assert guest.kernel.parent == vm.default_cache_dir() / "guest"
    assert guest.kernel.read_bytes()[0x202:0x206] == b"HdrS"
    head = guest.initrd.read_bytes()[:6]
    assert head == b"070701" or head[:2] == b"\x1f\x8b"
    assert (guest.kernel_bytes, guest.initrd_bytes) == (guest.kernel.stat().st_size, guest.initrd.stat().st_size)
    assert guest.kernel.name == f"vmlinuz-{guest.kernel_release}"


@needs_guest
def test_prepare_guest_second_call_is_instant_and_changes_nothing(guest):
    mtimes = (guest.kernel.stat().st_mtime_ns, guest.initrd.stat().st_mtime_ns)
    start = time.perf_counter()
    again = vm.prepare_guest()
    assert time.perf_counter() - start < 0.5
    assert again == guest
    assert (again.kernel.stat().st_mtime_ns, again.initrd.stat().st_mtime_ns) == mtimes


def test_accelerator_is_kvm_only_with_hardware_virtualisation():
    accel, why = vm.accelerator()
    assert accel in {"kvm", "tcg"} and why
    hardware = Path("/sys/module/kvm_intel").exists() or Path("/sys/module/kvm_amd").exists()
    if not hardware:
        assert accel == "tcg"


@needs_qemu
def test_boot_reaches_the_marker_and_leaves_no_qemu_behind(guest):
    result = vm.boot(guest)
    assert vm.MARKER in result.console and guest.kernel_release in result.console
    assert "cpus: 1" in result.console and "MemTotal" in result.console
    assert result.accel == vm.accelerator()[0] and f"-accel {result.accel}" in " ".join(result.argv)
    assert 0 < result.boot_to_marker_s <= result.total_s < 30 and 1 <= result.attempts <= 3
    assert result.qemu_peak_rss_kib > 50 * 1024
    assert result.qemu_pss_kib is None or result.qemu_pss_kib > 50 * 1024
    assert "qemu" not in _alive(result.qemu_pid)
    assert _processes_using(guest.initrd) == []


@needs_qemu
def test_boot_that_times_out_is_a_clear_error_and_kills_qemu(guest):
    with pytest.raises(vm.BootError, match=r"did not boot in 2 attempts \(no marker within 0.3 s"):
        vm.boot(guest, timeout=0.3, retries=2)
    assert _processes_using(guest.initrd) == []
