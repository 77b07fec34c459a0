"""Reading what isolates a process, from the files the kernel shows it: lesson 03.2's comparison of the forty-line
container with ``docker run``, and the cgroup v2 report of the guest booted under QEMU.

Every fact comes from text a process can print about itself with busybox alone (``/proc/self/status``,
``/proc/self/uid_map``, ``/proc/self/mounts``), so the same parser reads a container's report, the host's and a
guest's console:

    report = container_report(output_of_the_command)      # capabilities, seccomp mode, user namespace, /proc mounts
    decode_capabilities(report.cap_eff)                   # ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', ...]

Docker's defaults are written down beside the capability numbers, each from a pinned source, so a cell can
compare what it measured with what the engine's source says it sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The capability numbers of include/uapi/linux/capability.h, in bit order (CAP_CHOWN is bit 0), as of
# https://github.com/torvalds/linux/blob/v6.12/include/uapi/linux/capability.h (CAP_LAST_CAP is
# CAP_CHECKPOINT_RESTORE, 40, since Linux 5.9). A kernel with fewer capabilities leaves the high bits at 0.
KERNEL_TAG = "v6.12"
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",  # 0-5
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",  # 6-10
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",  # 11-15
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",  # 16-20
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",  # 21-25
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",  # 26-30
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",  # 31-35
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",  # 36-40
)

# The Seccomp: line of /proc/PID/status (proc(5)): 0 no filter, 1 strict mode, 2 a BPF filter on system calls.
SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}

# Docker Engine 20.10.24 (the engine Debian 12 ships as docker.io), moby at tag v20.10.24:
# oci/caps/defaults.go, DefaultCapabilities(): the 14 capabilities a container keeps by default.
DOCKER_SOURCE_TAG = "v20.10.24"
DOCKER_DEFAULT_CAPABILITIES = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
})
# oci/defaults.go, DefaultLinuxSpec(): paths hidden from a container (an empty read-only tmpfs over a folder,
# /dev/null over a file) and paths made read-only. The runtime skips a path this kernel does not have.
DOCKER_MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                       "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
DOCKER_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def decode_capabilities(mask: str | int) -> list[str]:
    """The names of the capabilities set in a mask such as CapEff's ``000001ffffffffff`` (hex), in bit order.

    A bit beyond :data:`CAPABILITIES` (a capability newer than the table) is named ``CAP_<bit>``, not dropped.
    """
    value = int(mask, 16) if isinstance(mask, str) else int(mask)
    if value < 0:
        raise ValueError("a capability mask is not negative")
    return [CAPABILITIES[bit] if bit < len(CAPABILITIES) else f"CAP_{bit}"
            for bit in range(value.bit_length()) if value >> bit & 1]


def encode_capabilities(names: list[str] | set[str] | frozenset[str]) -> int:
    """The mask of the named capabilities: the inverse of :func:`decode_capabilities`."""
    return sum(1 << CAPABILITIES.index(name) for name in names)


@dataclass(frozen=True)
class ProcMount:
    """One mount on /proc or below it, as /proc/self/mounts lists it."""

    path: str
    fstype: str
    options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options

    @property
    def masked(self) -> bool:
        """Something other than procfs mounted over a /proc path: an empty tmpfs, or /dev/null bound on a file."""
        return self.path != "/proc" and self.fstype != "proc"


def proc_mounts(text: str) -> list[ProcMount]:
    """The mounts at /proc and below in /proc/self/mounts text (``source path type options 0 0`` lines)."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and (parts[1] == "/proc" or parts[1].startswith("/proc/")):
            found.append(ProcMount(parts[1], parts[2], tuple(parts[3].split(","))))
    return found


@dataclass(frozen=True)
class ContainerReport:
    """What a process inside a container printed about its own isolation (see :func:`container_report`)."""

    cap_eff: int
    seccomp: int
    uid_map: str
    user_namespace: str
    proc: list[ProcMount] = field(default_factory=list)
    mount_tmpfs: str = ""

    @property
    def capabilities(self) -> list[str]:
        return decode_capabilities(self.cap_eff)

    @property
    def seccomp_mode(self) -> str:
        return SECCOMP_MODES.get(self.seccomp, f"unknown ({self.seccomp})")


def keyed_lines(text: str) -> dict[str, str]:
    """Lines ``some key: value`` (a lower-case or capitalised key of words, dots and underscores) as a dict;
    the last one wins. Kernel messages on a console (``[    1.23] ...``) and other lines are skipped."""
    found = {}
    for line in text.replace("\r", "").splitlines():
        match = re.fullmatch(r"([A-Za-z][\w.]*(?: [\w.]+)*):\s?(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def container_report(text: str) -> ContainerReport:
    """Parse the output of the facts command of lesson 03.2, run inside a container::

        grep -E 'CapEff|Seccomp' /proc/self/status
        echo "uid_map: $(cat /proc/self/uid_map)"
        echo "user namespace: $(readlink /proc/self/ns/user)"
        grep ' /proc' /proc/self/mounts
        mount -t tmpfs none /tmp && echo 'mount tmpfs: done' || echo 'mount tmpfs: refused'
    """
    fields = keyed_lines(text)
    missing = [key for key in ("CapEff", "Seccomp", "uid_map", "user namespace") if key not in fields]
    if missing:
        raise ValueError(f"the report lacks {', '.join(missing)}: {text[:300]!r}")
    return ContainerReport(int(fields["CapEff"], 16), int(fields["Seccomp"]), " ".join(fields["uid_map"].split()),
                           fields["user namespace"], proc_mounts(text), fields.get("mount tmpfs", ""))


def key_values(text: str) -> dict[str, int]:
    """``name number name number ...`` (memory.events, cpu.stat or memory.oom_control, lines or one line) as a
    dict: ``key_values("oom 1 oom_kill 1")`` is ``{'oom': 1, 'oom_kill': 1}``."""
    words = text.split()
    if len(words) % 2:
        raise ValueError(f"not name/number pairs: {text!r}")
    return {name: int(value) for name, value in zip(words[::2], words[1::2], strict=True)}
