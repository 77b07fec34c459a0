"""Virtual machines from the bottom up: what this machine is, a raw KVM guest, and a QEMU boot.

- :func:`what_am_i` gathers the evidence a Linux system leaves about whether it is itself a virtual
  machine (or a container) and sums it up in one line.
- :func:`kvm_hello` is a whole virtual machine in about a hundred lines of ``ioctl`` calls on ``/dev/kvm``:
  one page of memory, one virtual CPU, fifteen bytes of real-mode x86 code that write a message to a
  serial port and halt. Every ``out`` instruction is a VM exit that lands back here. Run it in a child
  process with :func:`kvm_hello_in_child` (``python -m helpers.vm kvm-hello``), never inside the notebook.
- :func:`prepare_guest` builds a tiny Linux guest (Debian's cloud kernel and a busybox initramfs) once and
  caches it; :func:`boot` boots it under QEMU, times it to a marker line and measures QEMU's memory.
- :func:`accelerator` says whether QEMU can use hardware virtualisation (KVM) here or must emulate (TCG).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import mmap
import os
import re
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from helpers.bench import proc_kib

# --- what is this machine? ----------------------------------------------------------------------

# DMI vendor or product strings that firmware of well-known hypervisors reports.
_DMI_HYPERVISORS = {
    "qemu": "QEMU", "kvm": "KVM", "vmware": "VMware", "virtualbox": "VirtualBox", "innotek": "VirtualBox",
    "xen": "Xen", "amazon ec2": "Amazon EC2 (Nitro/KVM)", "google compute engine": "Google Compute Engine",
    "virtual machine": "Hyper-V", "parallels": "Parallels", "bhyve": "bhyve", "openstack": "OpenStack",
}
# systemd-detect-virt's short names for hypervisors, spelled the way people say them.
_DETECT_VIRT_NAMES = {
    "kvm": "KVM", "qemu": "QEMU", "vmware": "VMware", "microsoft": "Hyper-V", "oracle": "VirtualBox", "xen": "Xen",
    "amazon": "Amazon EC2", "google": "Google Compute Engine", "parallels": "Parallels", "bochs": "Bochs",
}


@dataclass(frozen=True)
class Identity:
    """What this machine says about itself: a one-line verdict and the evidence behind it."""

    verdict: str
    evidence: dict[str, str]
    virtual: bool  # a hypervisor runs under this system
    container: str | None  # the container technology around this process, if any


def _read(path: str) -> str | None:
    """A small file's stripped text, or None when it is absent or unreadable (DMI files often need root)."""
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return None


def _cpu_flags() -> set[str]:
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _detect_virt(option: str) -> str | None:
    """``systemd-detect-virt --vm`` or ``--container``: 'kvm', 'docker', 'none'...; None if not installed."""
    program = shutil.which("systemd-detect-virt")
    if program is None:
        return None
    try:
        done = subprocess.run([program, option], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or "none"


def what_am_i() -> Identity:
    """Is this machine a virtual machine, bare metal, or a container, and on what evidence? Read-only."""
    flags = _cpu_flags()
    evidence = {
        "/sys/hypervisor/type": _read("/sys/hypervisor/type") or "absent",
        "cpuinfo hypervisor flag": "set" if "hypervisor" in flags else "not set",
        "cpuinfo vmx/svm (can host VMs)": ", ".join(sorted(flags & {"vmx", "svm"})) or "neither",
        "DMI sys_vendor": _read("/sys/class/dmi/id/sys_vendor") or "absent or unreadable",
        "DMI product_name": _read("/sys/class/dmi/id/product_name") or "absent or unreadable",
    }
    vm_kind, container = _detect_virt("--vm"), _detect_virt("--container")
    evidence["systemd-detect-virt --vm"] = vm_kind or "not installed"
    evidence["systemd-detect-virt --container"] = container or "not installed"

    dmi = f"{evidence['DMI sys_vendor']} {evidence['DMI product_name']}".lower()
    dmi_name = next((name for key, name in _DMI_HYPERVISORS.items() if key in dmi), None)
    xen = _read("/sys/hypervisor/type")
    if vm_kind and vm_kind != "none":
        name: str | None = _DETECT_VIRT_NAMES.get(vm_kind, vm_kind)
    else:
        name = dmi_name or (xen.capitalize() if xen else None)
    virtual = bool(name) or "hypervisor" in flags
    if virtual:
        verdict = f"a virtual machine ({name} guest)" if name else "a virtual machine (hypervisor flag set)"
    elif vm_kind == "none":
        verdict = "bare metal (no hypervisor flag, systemd-detect-virt finds none)"
    else:
        verdict = "bare metal (no hypervisor flag)"
    container = container if container and container != "none" else None
    if container:
        verdict += f", inside a {container} container"
    return Identity(verdict, evidence, virtual, container)


# --- a virtual machine made of ioctl calls ---------------------------------------------------------
#
# Linux's ioctl numbers pack four things into 32 bits (include/uapi/asm-generic/ioctl.h):
#   bits 31-30 direction (0 none, 1 write to the kernel, 2 read from it), bits 29-16 the size of the
#   argument struct, bits 15-8 a "type" (0xAE for KVM), bits 7-0 the command number.
# The KVM numbers and structs below come from include/uapi/linux/kvm.h and, for the register structs,
# arch/x86/include/uapi/asm/kvm.h (x86-64 layout).

_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2
KVMIO = 0xAE


def _ioc(direction: int, number: int, size: int = 0) -> int:
    return (direction << 30) | (size << 16) | (KVMIO << 8) | number


class KvmUserspaceMemoryRegion(ctypes.Structure):
    """struct kvm_userspace_memory_region (32 bytes): 'guest physical address X is my memory at Y'."""

    _fields_ = [
        ("slot", ctypes.c_uint32),  # which of the VM's memory slots to fill
        ("flags", ctypes.c_uint32),  # 0, or KVM_MEM_READONLY / KVM_MEM_LOG_DIRTY_PAGES
        ("guest_phys_addr", ctypes.c_uint64),  # where the guest sees it
        ("memory_size", ctypes.c_uint64),  # bytes, a multiple of the page size
        ("userspace_addr", ctypes.c_uint64),  # where it lives in this (the host) process
    ]


class KvmRegs(ctypes.Structure):
    """struct kvm_regs (144 bytes): the general-purpose registers, instruction pointer and flags."""

    _fields_ = [(name, ctypes.c_uint64) for name in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]


class KvmSegment(ctypes.Structure):
    """struct kvm_segment (24 bytes): one segment register with its hidden base, limit and attributes."""

    _fields_ = [("base", ctypes.c_uint64), ("limit", ctypes.c_uint32), ("selector", ctypes.c_uint16)] + [
        (name, ctypes.c_uint8) for name in ("type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable",
                                            "padding")]


class KvmDtable(ctypes.Structure):
    """struct kvm_dtable (16 bytes): a descriptor table register (GDTR or IDTR)."""

    _fields_ = [("base", ctypes.c_uint64), ("limit", ctypes.c_uint16), ("padding", ctypes.c_uint16 * 3)]


class KvmSregs(ctypes.Structure):
    """struct kvm_sregs (312 bytes): segment, descriptor-table and control registers."""

    _fields_ = [(name, KvmSegment) for name in ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")] + [
        ("gdt", KvmDtable), ("idt", KvmDtable)] + [
        (name, ctypes.c_uint64) for name in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base")] + [
        ("interrupt_bitmap", ctypes.c_uint64 * 4)]  # (256 interrupt lines + 63) // 64 words


# ioctls on the /dev/kvm file descriptor
KVM_GET_API_VERSION = _ioc(_IOC_NONE, 0x00)  # 0xAE00: always 12 since Linux 2.6.22
KVM_CREATE_VM = _ioc(_IOC_NONE, 0x01)  # 0xAE01: returns a new file descriptor for the VM
KVM_GET_VCPU_MMAP_SIZE = _ioc(_IOC_NONE, 0x04)  # 0xAE04: size of the shared kvm_run area
# ioctls on the VM's file descriptor
KVM_CREATE_VCPU = _ioc(_IOC_NONE, 0x41)  # 0xAE41: returns a file descriptor for the virtual CPU
KVM_SET_USER_MEMORY_REGION = _ioc(_IOC_WRITE, 0x46, ctypes.sizeof(KvmUserspaceMemoryRegion))  # 0x4020AE46
# ioctls on the virtual CPU's file descriptor
KVM_RUN = _ioc(_IOC_NONE, 0x80)  # 0xAE80: run the guest until it needs us (a "VM exit")
KVM_GET_REGS = _ioc(_IOC_READ, 0x81, ctypes.sizeof(KvmRegs))  # 0x8090AE81
KVM_SET_REGS = _ioc(_IOC_WRITE, 0x82, ctypes.sizeof(KvmRegs))  # 0x4090AE82
KVM_GET_SREGS = _ioc(_IOC_READ, 0x83, ctypes.sizeof(KvmSregs))  # 0x8138AE83
KVM_SET_SREGS = _ioc(_IOC_WRITE, 0x84, ctypes.sizeof(KvmSregs))  # 0x4138AE84

# struct kvm_run, the page shared between the kernel and us, read at fixed offsets:
#   0  u8 request_interrupt_window, u8 immediate_exit, u8 padding[6]
#   8  u32 exit_reason            <- why KVM_RUN returned
#  12  u8 ready_for_interrupt_injection, u8 if_flag, u16 flags
#  16  u64 cr8, 24 u64 apic_base
#  32  a union that depends on exit_reason; for KVM_EXIT_IO it is struct { u8 direction (0 in, 1 out);
#      u8 size (1, 2 or 4 bytes); u16 port; u32 count; u64 data_offset (from the start of kvm_run) }
RUN_EXIT_REASON = 8
RUN_IO = 32
KVM_EXIT_IO_OUT = 1
EXIT_REASONS = {
    0: "KVM_EXIT_UNKNOWN", 1: "KVM_EXIT_EXCEPTION", 2: "KVM_EXIT_IO", 3: "KVM_EXIT_HYPERCALL", 4: "KVM_EXIT_DEBUG",
    5: "KVM_EXIT_HLT", 6: "KVM_EXIT_MMIO", 7: "KVM_EXIT_IRQ_WINDOW_OPEN", 8: "KVM_EXIT_SHUTDOWN",
    9: "KVM_EXIT_FAIL_ENTRY", 10: "KVM_EXIT_INTR", 17: "KVM_EXIT_INTERNAL_ERROR",
}
KVM_EXIT_IO, KVM_EXIT_HLT = 2, 5
IOCTL_NAMES = {number: name for name, number in [
    ("KVM_GET_API_VERSION", KVM_GET_API_VERSION), ("KVM_CREATE_VM", KVM_CREATE_VM),
    ("KVM_GET_VCPU_MMAP_SIZE", KVM_GET_VCPU_MMAP_SIZE), ("KVM_CREATE_VCPU", KVM_CREATE_VCPU),
    ("KVM_SET_USER_MEMORY_REGION", KVM_SET_USER_MEMORY_REGION), ("KVM_RUN", KVM_RUN), ("KVM_GET_REGS", KVM_GET_REGS),
    ("KVM_SET_REGS", KVM_SET_REGS), ("KVM_GET_SREGS", KVM_GET_SREGS), ("KVM_SET_SREGS", KVM_SET_SREGS)]}

GUEST_ADDRESS = 0x1000  # guest physical address of our one page, and where the code starts
SERIAL_PORT = 0x3F8  # COM1: the I/O port a PC's first serial port answers on
MESSAGE = "Hello from a VM\n"
MAX_EXITS = 10_000  # a guest that never halts is a bug, not a reason to spin forever


class KvmError(RuntimeError):
    """The raw KVM guest could not be created or did something unexpected."""


def guest_program(message: str = MESSAGE) -> list[tuple[bytes, str]]:
    """The guest's 16-bit real-mode machine code, instruction by instruction, with its assembly.

    It walks a zero-terminated string stored right after the code and writes each byte to the serial port,
    then halts. Offsets of the two jumps are relative to the next instruction.
    """
    code_length = 15
    text = message.encode("ascii") + b"\0"
    address = GUEST_ADDRESS + code_length
    program = [
        (b"\xba" + struct.pack("<H", SERIAL_PORT), f"mov dx, {SERIAL_PORT:#x}", "the serial port"),
        (b"\xbe" + struct.pack("<H", address), f"mov si, {address:#x}", "the message, just after the code"),
        (b"\xac", "next: lodsb", "al = [ds:si], si += 1"),
        (b"\x84\xc0", "test al, al", "the zero byte at the end?"),
        (b"\x74\x03", "jz done", "then stop (jump 3 bytes ahead)"),
        (b"\xee", "out dx, al", "write one byte: a VM exit (KVM_EXIT_IO)"),
        (b"\xeb\xf8", "jmp next", "back 8 bytes"),
        (b"\xf4", "done: hlt", "halt: a VM exit (KVM_EXIT_HLT)"),
        (text, f"db {message!r}, 0", "the data"),
    ]
    return [(chunk, f"{instruction:<16} ; {comment}") for chunk, instruction, comment in program]


def guest_code(message: str = MESSAGE) -> bytes:
    """The bytes copied into guest memory at :data:`GUEST_ADDRESS`: code, then the message."""
    return b"".join(chunk for chunk, _ in guest_program(message))


@dataclass(frozen=True)
class KvmResult:
    """What the raw KVM guest wrote, why it stopped, and how long it took from KVM_CREATE_VM to halt."""

    output: str
    exit_reason: str
    create_to_halt_s: float
    guest_code: bytes
    exits: int = 0  # how many times KVM_RUN returned to us (one per byte written, plus the halt)
    halted_at: int = 0  # the guest's instruction pointer after HLT: just past the hlt instruction
    api_version: int = 12

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "guest_code": self.guest_code.hex()})

    @classmethod
    def from_json(cls, text: str) -> KvmResult:
        data = json.loads(text)
        return cls(**{**data, "guest_code": bytes.fromhex(data["guest_code"])})


def _ioctl(fd: int, request: int, argument: int | ctypes.Structure = 0) -> int:
    """One ioctl; a KvmError naming the request when the kernel refuses it."""
    try:
        return fcntl.ioctl(fd, request, argument)
    except OSError as exc:
        raise KvmError(f"{IOCTL_NAMES.get(request, hex(request))} failed: {exc.strerror}") from exc


def kvm_hello(message: str = MESSAGE) -> KvmResult:
    """Create a one-page, one-CPU virtual machine with /dev/kvm, run :func:`guest_code`, collect its output."""
    code = guest_code(message)
    with contextlib.ExitStack() as stack:
        try:
            kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise KvmError(f"cannot open /dev/kvm: {exc.strerror}") from exc
        stack.callback(os.close, kvm)
        api_version = _ioctl(kvm, KVM_GET_API_VERSION)
        if api_version != 12:
            raise KvmError(f"unexpected KVM API version {api_version} (expected 12)")
        run_size = _ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE)

        # Guest memory is ordinary memory of this process. The exit stack closes things in reverse order,
        # so this mapping goes after the VM and virtual CPU that use it.
        memory = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE)
        stack.callback(memory.close)
        memory[: len(code)] = code
        view = (ctypes.c_char * mmap.PAGESIZE).from_buffer(memory)
        host_address = ctypes.addressof(view)
        del view  # let mmap.close() succeed later; the address stays valid while the mapping exists

        start = time.perf_counter()
        vm = _ioctl(kvm, KVM_CREATE_VM, 0)  # 0: the default machine type
        stack.callback(os.close, vm)
        region = KvmUserspaceMemoryRegion(slot=0, flags=0, guest_phys_addr=GUEST_ADDRESS,
                                          memory_size=mmap.PAGESIZE, userspace_addr=host_address)
        _ioctl(vm, KVM_SET_USER_MEMORY_REGION, region)
        vcpu = _ioctl(vm, KVM_CREATE_VCPU, 0)  # 0: the virtual CPU's id
        stack.callback(os.close, vcpu)
        run = mmap.mmap(vcpu, run_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        stack.callback(run.close)

        # A new x86 CPU starts in 16-bit real mode at the reset vector, 16 bytes below 4 GiB (code segment
        # base 0xFFFF0000, IP 0xFFF0), where firmware would be. Set the code and data segments' base to 0 so
        # that addresses are plain physical addresses, and start at our page.
        sregs = KvmSregs()
        _ioctl(vcpu, KVM_GET_SREGS, sregs)
        for segment in (sregs.cs, sregs.ds):
            segment.base, segment.selector = 0, 0
        _ioctl(vcpu, KVM_SET_SREGS, sregs)
        regs = KvmRegs(rip=GUEST_ADDRESS, rflags=0x2)  # bit 1 of RFLAGS is reserved and must be 1
        _ioctl(vcpu, KVM_SET_REGS, regs)

        output, exits = bytearray(), 0
        while True:
            try:
                _ioctl(vcpu, KVM_RUN)
            except KvmError as exc:
                if isinstance(exc.__cause__, InterruptedError):
                    continue  # a signal arrived; just run again
                raise
            exits += 1
            reason = struct.unpack_from("<I", run, RUN_EXIT_REASON)[0]
            if reason == KVM_EXIT_HLT:
                elapsed = time.perf_counter() - start
                _ioctl(vcpu, KVM_GET_REGS, regs)
                break
            if reason != KVM_EXIT_IO:
                raise KvmError(f"unexpected VM exit {EXIT_REASONS.get(reason, reason)} after {exits} exits")
            direction, size, port, count, data_offset = struct.unpack_from("<BBHIQ", run, RUN_IO)
            if direction != KVM_EXIT_IO_OUT or port != SERIAL_PORT:
                raise KvmError(f"unexpected I/O: {'out' if direction else 'in'} on port {port:#x}")
            output += run[data_offset: data_offset + size * count]
            if exits > MAX_EXITS:
                raise KvmError(f"the guest did not halt after {MAX_EXITS} exits")
    return KvmResult(output.decode("ascii", errors="replace"), EXIT_REASONS[reason], elapsed, code, exits,
                     regs.rip, api_version)


def _project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def kvm_hello_in_child(timeout: float = 20) -> KvmResult:
    """Run :func:`kvm_hello` in a fresh Python process (``python -m helpers.vm kvm-hello``) and read its JSON.

    A child process keeps the notebook's own kernel away from /dev/kvm: a mistake there costs one process.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_project_root()),
                                                                     os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "helpers.vm", "kvm-hello"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KvmError(f"the KVM child process did not finish within {timeout:g} s") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise KvmError(f"the KVM child process failed (exit status {done.returncode}): {detail}")
    try:
        return KvmResult.from_json(done.stdout)
    except (ValueError, TypeError, KeyError) as exc:
        raise KvmError(f"the KVM child process printed something unexpected: {done.stdout[:200]!r}") from exc


# --- a Linux guest: kernel and initramfs -----------------------------------------------------------

KERNEL_METAPACKAGE = "linux-image-cloud-amd64"  # Debian's small kernel for virtual machines
MARKER = "CLOUDNOTES-GUEST-UP"
BUSYBOX = "/bin/busybox"
# busybox applets the init script calls by name (each a symlink to busybox in the initramfs)
APPLETS = ("sh", "mount", "uname", "cat", "head", "nproc", "poweroff")
INIT_SCRIPT = f"""#!/bin/sh
# PID 1 of the guest: say hello with a few facts, then switch the machine off.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo {MARKER}
echo "kernel: $(uname -r)"
echo "memory: $(cat /proc/meminfo | head -n 1)"
echo "cpus: $(nproc)"
poweroff -f
"""


class GuestBuildError(RuntimeError):
    """The guest kernel or initramfs could not be prepared."""


@dataclass(frozen=True)
class GuestAssets:
    """A bootable guest: a compressed kernel image (bzImage) and an initramfs (newc cpio)."""

    kernel: Path
    initrd: Path
    kernel_package: str
    kernel_bytes: int
    initrd_bytes: int
    deb_bytes: int = 0  # size of the Debian package the kernel came from

    @property
    def kernel_release(self) -> str:
        """What ``uname -r`` prints in the guest, e.g. '6.1.0-56-cloud-amd64'."""
        return self.kernel_package.removeprefix("linux-image-")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cloudnotes/vm``, by default ``~/.cache/cloudnotes/vm``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cloudnotes" / "vm"


def _apt(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GuestBuildError(f"{' '.join(argv)} could not run: {exc}") from exc


def _update_package_lists() -> None:
    if os.geteuid() != 0:
        raise GuestBuildError("apt's package lists are missing or stale; run `sudo apt-get update` and retry")
    done = _apt("apt-get", "update", "-qq")
    if done.returncode != 0:
        raise GuestBuildError(f"apt-get update failed: {done.stderr.strip()[-300:]}")


def _kernel_package() -> str:
    """The versioned kernel package the metapackage points at, e.g. linux-image-6.1.0-56-cloud-amd64."""
    if shutil.which("apt-cache") is None:
        raise GuestBuildError("apt-cache not found: the guest kernel comes from Debian's archive")
    for attempt in range(2):
        done = _apt("apt-cache", "depends", KERNEL_METAPACKAGE)
        found = re.findall(r"Depends:\s*(linux-image-\S+-cloud-amd64)", done.stdout)
        if found:
            return found[0]
        if attempt == 0:
            _update_package_lists()
    raise GuestBuildError(f"apt knows no {KERNEL_METAPACKAGE}: {done.stderr.strip()[-300:]}")


def _download(package: str, folder: Path) -> Path:
    """``apt-get download`` the package into ``folder`` (updating the package lists once if needed)."""
    for attempt in range(2):
        done = _apt("apt-get", "download", "-q", package, cwd=folder)
        debs = sorted(folder.glob(f"{package}_*.deb"))
        if done.returncode == 0 and debs:
            return debs[0]
        if attempt == 0:
            _update_package_lists()
    raise GuestBuildError(f"apt-get download {package} failed: {done.stderr.strip()[-300:]}")


def _extract_kernel(deb: Path, folder: Path) -> Path:
    """Stream the package's file-system tar (``dpkg-deb --fsys-tarfile``) and keep only boot/vmlinuz-*."""
    try:
        unpack = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
    except OSError as exc:
        raise GuestBuildError(f"dpkg-deb could not run: {exc}") from exc
    with unpack:
        try:
            with tarfile.open(fileobj=unpack.stdout, mode="r|") as archive:
                for member in archive:
                    name = Path(member.name)
                    if member.isfile() and name.parent.name == "boot" and name.name.startswith("vmlinuz-"):
                        target = folder / name.name
                        with archive.extractfile(member) as source, open(target, "wb") as sink:
                            shutil.copyfileobj(source, sink)
                        return target
        finally:
            unpack.stdout.close()  # stop reading the rest (the modules); dpkg-deb ends on a broken pipe
            unpack.wait()
    raise GuestBuildError(f"no boot/vmlinuz-* in {deb.name}")


def newc_entry(name: str, mode: int, data: bytes = b"", inode: int = 0, rdev: tuple[int, int] = (0, 0)) -> bytes:
    """One member of a cpio archive in the 'newc' format the kernel unpacks as an initramfs.

    A 110-byte ASCII header ("070701" and thirteen 8-digit hex fields), the name with a NUL, padding to
    4 bytes, the data, padding to 4 bytes. Writing it ourselves means no root is needed for device nodes.
    """
    encoded = name.encode() + b"\0"
    fields = (inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    header = b"070701" + b"".join(b"%08X" % value for value in fields)
    pad = b"\0" * (-(len(header) + len(encoded)) % 4)
    return header + encoded + pad + data + b"\0" * (-len(data) % 4)


def initramfs(busybox: bytes, init: str = INIT_SCRIPT) -> bytes:
    """A complete newc archive: /init, /bin/busybox with its applet links, /dev/console, /proc, /sys."""
    directory, regular, link, char = 0o040755, 0o100755, 0o120777, 0o020600
    members = [("dev", directory, b"", (0, 0)), ("dev/console", char, b"", (5, 1)),  # the console: c 5 1
               ("proc", directory, b"", (0, 0)), ("sys", directory, b"", (0, 0)),
               ("bin", directory, b"", (0, 0)), ("bin/busybox", regular, busybox, (0, 0)),
               ("init", regular, init.encode(), (0, 0))]
    members += [(f"bin/{applet}", link, b"busybox", (0, 0)) for applet in APPLETS]
    entries = [newc_entry(name, mode, data, inode, rdev) for inode, (name, mode, data, rdev)
               in enumerate(members, start=1)]
    return b"".join(entries) + newc_entry("TRAILER!!!", 0)


def _busybox() -> bytes:
    from helpers.env import is_static_elf

    if not is_static_elf(BUSYBOX):
        raise GuestBuildError(f"{BUSYBOX} is not a static busybox: install busybox-static")
    return Path(BUSYBOX).read_bytes()


def _build(folder: Path) -> None:
    """Fill ``folder`` with the kernel, the initramfs and guest.json describing them."""
    package = _kernel_package()
    deb = _download(package, folder)
    deb_bytes = deb.stat().st_size
    try:
        kernel = _extract_kernel(deb, folder)
    finally:
        deb.unlink()
    (folder / "initrd.cpio").write_bytes(initramfs(_busybox()))
    manifest = {"kernel": kernel.name, "initrd": "initrd.cpio", "kernel_package": package, "deb_bytes": deb_bytes}
    (folder / "guest.json").write_text(json.dumps(manifest, indent=1))


def _load(folder: Path) -> GuestAssets:
    manifest = json.loads((folder / "guest.json").read_text())
    kernel, initrd = folder / manifest["kernel"], folder / manifest["initrd"]
    return GuestAssets(kernel, initrd, manifest["kernel_package"], kernel.stat().st_size, initrd.stat().st_size,
                       manifest.get("deb_bytes", 0))


def prepare_guest(cache_dir: Path | None = None) -> GuestAssets:
    """The guest's kernel and initramfs, built once into the cache and reused afterwards.

    The build happens in a temporary folder inside the cache that is renamed into place only when complete,
    so an interrupted build leaves nothing that a later call would mistake for a finished guest.
    """
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = base / "guest"
    if (final / "guest.json").exists():
        return _load(final)
    base.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".build-", dir=base))
    building.chmod(0o755)
    try:
        _build(building)
        try:
            building.rename(final)
        except OSError:
            if not (final / "guest.json").exists():  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return _load(final)


# --- booting it under QEMU -----------------------------------------------------------------------

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
    attempts: int
    qemu_pid: int = 0  # the last attempt's process id (gone by the time this is returned)
    argv: list[str] = field(default_factory=list)


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
    flags, mhz = _cpu_flags(), None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
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


def _boot_once(argv: list[str], accel: str, timeout: float) -> tuple[BootResult | None, str, str]:
    """One boot: (the result or None, why it failed, the console so far). QEMU is gone when this returns."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)  # its own process group, killed as a whole
    console, errors = bytearray(), bytearray()
    marker_s = pss = None
    peak, failure = 0, ""
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
                peak = max(peak, proc_kib(process.pid, "status", "VmHWM"))  # sampled while QEMU lives
                if marker_s is None and f"{MARKER}\n".encode() in console.replace(b"\r", b""):
                    marker_s = time.perf_counter() - start
                    pss = proc_kib(process.pid, "smaps_rollup", "Pss") or None
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
    return BootResult(text, accel, marker_s, total_s, peak, pss, 1, process.pid, argv), "", text


def boot(assets: GuestAssets, accel: str | None = None, memory_mb: int = 256, timeout: float = 30,
         retries: int = 3, cpus: int = 1) -> BootResult:
    """Boot the guest under QEMU until it powers itself off; retry a boot that hangs (a few in a hundred do).

    ``accel`` is 'kvm' or 'tcg'; by default :func:`accelerator` chooses. QEMU never outlives this call.
    """
    accel = accel or accelerator()[0]
    if shutil.which(QEMU) is None:
        raise BootError(f"{QEMU} is not installed (Debian package qemu-system-x86)")
    argv = qemu_argv(assets, accel, memory_mb, cpus)
    failures, console = [], ""
    for attempt in range(1, retries + 1):
        result, failure, console = _boot_once(argv, accel, timeout)
        if result is not None:
            return replace(result, attempts=attempt)
        failures.append(failure)
    last = "\n".join(console.strip().splitlines()[-15:]) or "(nothing)"
    raise BootError(f"the guest did not boot in {retries} attempts ({'; '.join(failures)}); "
                    f"last console output:\n{last}")


# --- command line, so that the raw KVM guest can run in a child process ------------------------------


def main(args: list[str] | None = None) -> int:
    """``python -m helpers.vm kvm-hello | what-am-i | boot``: print the result as JSON."""
    command = (args if args is not None else sys.argv[1:]) or ["help"]
    try:
        if command[0] == "kvm-hello":
            print(kvm_hello().to_json())
        elif command[0] == "what-am-i":
            print(json.dumps(asdict(what_am_i()), indent=1))
        elif command[0] == "boot":
            result = boot(prepare_guest())
            print(json.dumps(asdict(result), indent=1))
        else:
            print("usage: python -m helpers.vm kvm-hello | what-am-i | boot", file=sys.stderr)
            return 2
    except (KvmError, GuestBuildError, BootError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
