"""helpers.kvm, helpers.guest and helpers.qemu: what this machine is, 03.1's raw KVM guest in a child process,
a cached guest, a QEMU boot and its memory."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import guest as vmguest
from helpers import kvm, qemu
from helpers.workspace import Scratch

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
    identity = kvm.what_am_i()
    assert "virtual machine" in identity.verdict or "bare metal" in identity.verdict
    assert identity.virtual == identity.verdict.startswith("a virtual machine")
    assert {"cpuinfo hypervisor flag", "DMI sys_vendor", "systemd-detect-virt --vm"} <= set(identity.evidence)
    assert all(identity.evidence.values())


def test_kvm_structs_and_ioctl_numbers_match_the_kernel_headers():
    assert ctypes.sizeof(kvm.KvmUserspaceMemoryRegion) == 32
    assert ctypes.sizeof(kvm.KvmRegs) == 144 and kvm.KvmRegs.rip.offset == 128
    assert ctypes.sizeof(kvm.KvmSegment) == 24 and ctypes.sizeof(kvm.KvmSregs) == 312
    assert (kvm.KVM_GET_API_VERSION, kvm.KVM_CREATE_VM, kvm.KVM_GET_VCPU_MMAP_SIZE) == (0xAE00, 0xAE01, 0xAE04)
    assert (kvm.KVM_CREATE_VCPU, kvm.KVM_RUN, kvm.KVM_SET_USER_MEMORY_REGION) == (0xAE41, 0xAE80, 0x4020AE46)
    assert (kvm.KVM_GET_SREGS, kvm.KVM_SET_SREGS, kvm.KVM_SET_REGS) == (0x8138AE83, 0x4138AE84, 0x4090AE82)


def test_guest_code_is_fifteen_bytes_of_code_then_the_message():
    code = kvm.guest_code()
    assert code[:15] == bytes.fromhex("baf803be0f10ac84c07403eeebf8f4")
    assert code[15:] == kvm.MESSAGE.encode() + b"\0"
    assert code[11 + 3] == 0xF4  # jz +3 lands on hlt
    assert code[14 - 8] == 0xAC  # jmp -8 lands on lodsb
    assert len(kvm.guest_program()) == 9


def test_notebook_script_is_03_1s_kvm_hello():
    script = kvm.notebook_script()
    assert "KVM_CREATE_VM" in script and "KVM_RUN" in script and not script.startswith("%%")
    compile(script, kvm.SCRIPT_NAME, "exec")


@needs_kvm
def test_03_1s_kvm_hello_in_a_child_process_prints_the_message_and_halts(tmp_path):
    script = tmp_path / kvm.SCRIPT_NAME
    script.write_text(kvm.notebook_script())
    result = kvm.run_script(script)
    assert result.output == kvm.MESSAGE
    assert result.exit_reason == "KVM_EXIT_HLT"
    assert 0 < result.create_to_halt_s < 1
    assert result.exits == len(kvm.MESSAGE) + 1  # one exit per byte written, one for the halt
    assert result.halted_at == kvm.GUEST_ADDRESS + 15
    assert result.api_version == 12


def test_a_failing_kvm_script_is_a_clear_error(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("raise SystemExit('no VM today')")
    with pytest.raises(kvm.KvmError, match="child process failed .*no VM today"):
        kvm.run_script(script)
    script.write_text("print('not json')")
    with pytest.raises(kvm.KvmError, match="printed something unexpected"):
        kvm.run_script(script)


def test_kvm_result_reads_the_scripts_json_line():
    line = ('{"output": "hi\\n", "exit_reason": "KVM_EXIT_HLT", "exits": 4, "halted_at": 4111, "api_version": 12,'
            ' "create_to_halt_s": 0.001}')
    assert kvm.KvmResult.from_json(line) == kvm.KvmResult("hi\n", "KVM_EXIT_HLT", 4, 4111, 12, 0.001)


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio is not installed")
def test_initramfs_is_a_newc_archive_with_a_console_device():
    archive = vmguest.initramfs(b"not really busybox")
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
        (folder / "initrd.cpio").write_bytes(vmguest.initramfs(b""))
        (folder / "guest.json").write_text(json.dumps({"kernel": "vmlinuz-test", "initrd": "initrd.cpio",
                                                       "kernel_package": "linux-image-test"}))

    monkeypatch.setattr(vmguest, "_build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        vmguest.prepare_guest(tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(vmguest, "_build", complete)
    assets = vmguest.prepare_guest(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["guest"] and assets.kernel_bytes == 6
    monkeypatch.setattr(vmguest, "_build", interrupted)  # a finished guest is never rebuilt
    assert vmguest.prepare_guest(tmp_path) == assets


@pytest.fixture(scope="module")
def guest() -> vmguest.GuestAssets:
    return vmguest.prepare_guest()


@needs_guest
def test_prepare_guest_gives_a_bzimage_and_a_newc_initramfs(guest):
    assert guest.kernel.parent == vmguest.default_cache_dir() / "guest"
    assert guest.kernel.read_bytes()[0x202:0x206] == b"HdrS"
    head = guest.initrd.read_bytes()[:6]
    assert head == b"070701" or head[:2] == b"\x1f\x8b"
    assert (guest.kernel_bytes, guest.initrd_bytes) == (guest.kernel.stat().st_size, guest.initrd.stat().st_size)
    assert guest.kernel.name == f"vmlinuz-{guest.kernel_release}"


@needs_guest
def test_prepare_guest_second_call_is_instant_and_changes_nothing(guest):
    mtimes = (guest.kernel.stat().st_mtime_ns, guest.initrd.stat().st_mtime_ns)
    start = time.perf_counter()
    again = vmguest.prepare_guest()
    assert time.perf_counter() - start < 0.5
    assert again == guest
    assert (again.kernel.stat().st_mtime_ns, again.initrd.stat().st_mtime_ns) == mtimes


def test_accelerator_is_kvm_only_with_hardware_virtualisation():
    accel, why = qemu.accelerator()
    assert accel in {"kvm", "tcg"} and why
    hardware = Path("/sys/module/kvm_intel").exists() or Path("/sys/module/kvm_amd").exists()
    if not hardware:
        assert accel == "tcg"


@needs_qemu
def test_boot_reaches_the_marker_and_leaves_no_qemu_behind(guest):
    result = qemu.boot(guest)
    assert vmguest.MARKER in result.console and guest.kernel_release in result.console
    assert "cpus: 1" in result.console and "MemTotal" in result.console
    assert result.accel == qemu.accelerator()[0] and f"-accel {result.accel}" in " ".join(result.argv)
    assert 0 < result.boot_to_marker_s <= result.total_s < 30 and 1 <= result.attempts <= 3
    assert result.qemu_peak_rss_kib > 50 * 1024
    assert result.qemu_pss_kib is None or result.qemu_pss_kib > 50 * 1024
    assert "qemu" not in _alive(result.qemu_pid)
    assert _processes_using(guest.initrd) == []


@needs_qemu
def test_boot_that_times_out_is_a_clear_error_and_kills_qemu(guest):
    with pytest.raises(qemu.BootError, match=r"did not boot in 2 attempts \(no marker within 0.3 s"):
        qemu.boot(guest, timeout=0.3, retries=2)
    assert _processes_using(guest.initrd) == []


@needs_qemu
def test_with_init_runs_another_script_and_memory_splits_into_guest_ram_and_qemu(guest):
    with Scratch("vm-test") as work:
        init = f"#!/bin/sh\nmount -t devtmpfs dev /dev\ndd if=/dev/zero of=/fill bs=1M count=128 2>/dev/null\n" \
               f"echo {vmguest.MARKER}\npoweroff -f\n"
        filler = vmguest.with_init(guest, init, work.path, applets=(*vmguest.APPLETS, "dd"))
        assert filler.kernel == guest.kernel and filler.initrd.parent == work.path
        idle, filled = qemu.boot(guest, memory_mb=512), qemu.boot(filler, memory_mb=512)
    assert 0 < idle.guest_ram_kib < idle.qemu_rss_kib and idle.qemu_own_kib > 0
    assert filled.guest_ram_kib - idle.guest_ram_kib > 64 * 1024  # most of the 128 MiB written shows up
    assert idle.guest_ram_kib < 512 * 1024 / 2  # given is not touched
