"""KVM, the hypervisor in the Linux kernel, and what kind of machine this is.

- :func:`what_am_i` gathers the evidence a Linux system leaves about whether it is itself a virtual
  machine (or a container) and sums it up in one line.
- The rest is plumbing for a virtual machine driven by hand through ``ioctl`` calls on ``/dev/kvm``: the
  request numbers and register structs of the KVM API, a checked :func:`ioctl`, the decoding of the shared
  ``kvm_run`` page after a VM exit, and the guest's fifteen bytes of code. The sequence of calls itself is
  written out in notebook 03.1 (its ``kvm_hello.py``); :func:`notebook_script` reads it from there, and
  :func:`run_script` runs it in a child process and reads what it reports.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import mmap
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "03.1-vms-and-hypervisors.ipynb"
SCRIPT_NAME = "kvm_hello.py"

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


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them in /proc/cpuinfo."""
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
    flags = cpu_flags()
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
IOCTL_NAMES = {number: name for name, number in [
    ("KVM_GET_API_VERSION", KVM_GET_API_VERSION), ("KVM_CREATE_VM", KVM_CREATE_VM),
    ("KVM_GET_VCPU_MMAP_SIZE", KVM_GET_VCPU_MMAP_SIZE), ("KVM_CREATE_VCPU", KVM_CREATE_VCPU),
    ("KVM_SET_USER_MEMORY_REGION", KVM_SET_USER_MEMORY_REGION), ("KVM_RUN", KVM_RUN), ("KVM_GET_REGS", KVM_GET_REGS),
    ("KVM_SET_REGS", KVM_SET_REGS), ("KVM_GET_SREGS", KVM_GET_SREGS), ("KVM_SET_SREGS", KVM_SET_SREGS)]}

GUEST_ADDRESS = 0x1000  # guest physical address of our one page, and where the code starts
SERIAL_PORT = 0x3F8  # COM1: the I/O port a PC's first serial port answers on
MESSAGE = "Hello from a VM\n"
MAX_EXITS = 10_000  # a guest that never halts is a bug, not a reason to spin forever



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


class KvmError(RuntimeError):
    """The raw KVM guest could not be created or did something unexpected."""


def ioctl(fd: int, request: int, argument: int | ctypes.Structure = 0) -> int:
    """One ioctl on a KVM file descriptor; a KvmError naming the request when the kernel refuses it.

    ``KVM_RUN`` returns early when a signal arrives (EINTR); it is simply called again.
    """
    while True:
        try:
            return fcntl.ioctl(fd, request, argument)
        except InterruptedError:
            continue
        except OSError as exc:
            raise KvmError(f"{IOCTL_NAMES.get(request, hex(request))} failed: {exc.strerror}") from exc


def address_of(memory: mmap.mmap) -> int:
    """The address of a mapping in this process, which KVM_SET_USER_MEMORY_REGION takes as userspace_addr."""
    return ctypes.addressof((ctypes.c_char * len(memory)).from_buffer(memory))


def exit_reason(run: mmap.mmap) -> str:
    """Why KVM_RUN returned, read from the shared kvm_run page: 'KVM_EXIT_IO', 'KVM_EXIT_HLT', ..."""
    reason = struct.unpack_from("<I", run, RUN_EXIT_REASON)[0]
    return EXIT_REASONS.get(reason, f"exit reason {reason}")


def io_out(run: mmap.mmap) -> tuple[int, bytes]:
    """After KVM_EXIT_IO: the port the guest wrote to and the bytes it wrote (a KvmError for a read)."""
    direction, size, port, count, data_offset = struct.unpack_from("<BBHIQ", run, RUN_IO)
    if direction != KVM_EXIT_IO_OUT:
        raise KvmError(f"the guest read from port {port:#x}; this VM has no device to answer")
    return port, bytes(run[data_offset: data_offset + size * count])


@dataclass(frozen=True)
class KvmResult:
    """What the raw KVM guest reported: its output, why it stopped, and how long it took."""

    output: str
    exit_reason: str
    exits: int  # how many times KVM_RUN returned (one per byte written, plus the halt)
    halted_at: int  # the guest's instruction pointer after HLT: just past the hlt instruction
    api_version: int
    create_to_halt_s: float  # KVM_CREATE_VM to the halt, inside the child process

    @classmethod
    def from_json(cls, text: str) -> KvmResult:
        data = json.loads(text)
        return cls(**{field.name: data[field.name] for field in fields(cls)})


def notebook_script(notebook: Path = NOTEBOOK) -> str:
    """The text of ``kvm_hello.py`` as notebook 03.1 writes it (its ``%%writefile`` cell), so that the
    benchmark and the tests run exactly the program students read."""
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        source = "".join(cell["source"])
        first, _, body = source.partition("\n")
        if cell["cell_type"] == "code" and first.startswith("%%writefile") and first.rstrip("}").endswith(
                f"'{SCRIPT_NAME}'"):
            return body
    raise KvmError(f"{notebook.name} has no %%writefile cell for {SCRIPT_NAME}")


def child_environment() -> dict[str, str]:
    """This environment with the project on PYTHONPATH, so a child process can import ``helpers``."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def run_script(script: Path, timeout: float = 20) -> KvmResult:
    """Run a KVM guest program in a fresh Python process and read the JSON line it prints.

    A child process keeps the notebook's own kernel away from /dev/kvm: a mistake there costs one process.
    """
    argv = [sys.executable, str(script)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=child_environment(),
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise KvmError(f"the KVM child process did not finish within {timeout:g} s") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise KvmError(f"the KVM child process failed (exit status {done.returncode}): {detail}")
    try:
        return KvmResult.from_json(done.stdout)
    except (ValueError, TypeError, KeyError) as exc:
        raise KvmError(f"the KVM child process printed something unexpected: {done.stdout[:200]!r}") from exc
