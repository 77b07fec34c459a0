"""What this machine offers the notebooks, and a friendly word when something is missing.

Each lesson that needs more than Python (a Docker engine, root, a hypervisor...) starts with
``need("docker", ...)``. When everything is there it returns True and says nothing. When something is
missing it explains what and how to get it on Linux, macOS and Windows, and returns False so the notebook
can go on and skip the live part. In strict mode (``CLOUDNOTES_STRICT=1``, set by CI) it raises instead,
so that a machine that should have everything cannot pass by skipping.

Every check really tries the thing (pings the daemon, enters namespaces, creates a cgroup) rather than
looking for a file that merely suggests it.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from helpers.display import Table, show_markdown

STRICT_VARIABLE = "CLOUDNOTES_STRICT"
REGISTRY_VARIABLE = "CLOUDNOTES_REGISTRY"
# Comma-separated features to treat as absent, to see (and test) how a notebook behaves without them.
WITHOUT_VARIABLE = "CLOUDNOTES_WITHOUT"


class MissingFeature(RuntimeError):
    """Raised by :func:`need` in strict mode when a notebook's needs are not met."""


@dataclass(frozen=True)
class Check:
    """The outcome of probing one feature."""

    name: str
    ok: bool
    detail: str


def strict() -> bool:
    """True when missing features must fail loudly (CI) rather than be skipped."""
    return os.environ.get(STRICT_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def _run(*argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str] | None:
    """Run a short command quietly; None when it cannot be started or times out."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


# --- the probes ---------------------------------------------------------------------------------


def _linux() -> Check:
    ok = sys.platform.startswith("linux")
    return Check("linux", ok, f"{platform.system()} {platform.release()}")


def _root() -> Check:
    euid = os.geteuid() if hasattr(os, "geteuid") else -1
    return Check("root", euid == 0, "running as root" if euid == 0 else f"running as user id {euid}")


def _docker() -> Check:
    try:
        import docker
        import requests

        client = docker.from_env(timeout=5)
        try:
            version = client.version()
        finally:
            client.close()
    except ImportError as exc:
        return Check("docker", False, f"the Python package is missing ({exc.name})")
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        return Check("docker", False, f"no Docker engine answers ({type(exc).__name__})")
    return Check("docker", True, f"Docker Engine {version.get('Version', '?')}, API {version.get('ApiVersion', '?')}")


def _namespaces() -> Check:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return Check("namespaces", False, "needs Linux and the unshare command (util-linux)")
    flags = ["--pid", "--fork", "--mount-proc", "--net", "--uts", "--ipc", "--mount"]
    done = _run("unshare", *flags, "true")
    if done is not None and done.returncode == 0:
        return Check("namespaces", True, "pid, net, mount, uts and ipc namespaces can be created")
    done = _run("unshare", "--user", "--map-root-user", *flags, "true")
    if done is not None and done.returncode == 0:
        return Check("namespaces", True, "only inside a user namespace (not root)")
    return Check("namespaces", False, "unshare was refused (no root and no user namespaces)")


def cgroup_version() -> str:
    """'v2', 'v1' (possibly with an empty v2 hierarchy beside it) or 'none', read from /proc/mounts."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "none"
    kinds = {line.split()[1]: line.split()[2] for line in mounts if len(line.split()) > 2}
    if kinds.get("/sys/fs/cgroup") == "cgroup2":
        return "v2"
    if any(kind == "cgroup" for kind in kinds.values()):
        return "v1"
    return "none"


def _cgroups() -> Check:
    version = cgroup_version()
    if version == "none":
        return Check("cgroups", False, "no cgroup file system is mounted")
    parent = Path("/sys/fs/cgroup/memory") if version == "v1" else Path("/sys/fs/cgroup")
    if version == "v2":
        controllers = (parent / "cgroup.controllers").read_text().split() if parent.exists() else []
        if "memory" not in controllers:
            return Check("cgroups", False, "cgroup v2 without the memory controller")
    probe = parent / f"cloudnotes-probe-{os.getpid()}"
    try:
        probe.mkdir()
        limit_file = probe / ("memory.limit_in_bytes" if version == "v1" else "memory.max")
        limit_file.write_text(str(64 * 1024 * 1024))
    except OSError as exc:
        return Check("cgroups", False, f"cgroup {version}, but limits cannot be set here ({exc.strerror})")
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass
    return Check("cgroups", True, f"cgroup {version}; a memory limit was set on a test group")


def _kvm() -> Check:
    """A hypervisor that can boot a Linux guest: /dev/kvm backed by the Intel or AMD module."""
    if not os.path.exists("/dev/kvm"):
        return Check("kvm", False, "no /dev/kvm: virtual machines run under software emulation")
    if Path("/sys/module/kvm_intel").exists() or Path("/sys/module/kvm_amd").exists():
        if os.access("/dev/kvm", os.R_OK | os.W_OK):
            return Check("kvm", True, "/dev/kvm with hardware virtualisation (kvm_intel or kvm_amd)")
        return Check("kvm", False, "/dev/kvm exists but this user may not open it (join the kvm group)")
    if Path("/sys/module/kvm_pvm").exists():
        return Check("kvm", False, "/dev/kvm is a nested paravirtual KVM (kvm_pvm) that cannot boot Linux")
    return Check("kvm", False, "/dev/kvm exists but no kvm_intel or kvm_amd module backs it")


def _kvm_ioctl() -> Check:
    """/dev/kvm answers the KVM API at all (enough for a few bytes of real-mode guest code)."""
    import fcntl

    kvm_get_api_version = 0xAE00
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return Check("kvm-ioctl", False, f"/dev/kvm cannot be opened ({exc.strerror})")
    try:
        api = fcntl.ioctl(fd, kvm_get_api_version)
    except OSError as exc:
        return Check("kvm-ioctl", False, f"/dev/kvm refused KVM_GET_API_VERSION ({exc.strerror})")
    finally:
        os.close(fd)
    return Check("kvm-ioctl", api == 12, f"KVM API version {api}")


def _qemu() -> Check:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        return Check("qemu", False, "qemu-system-x86_64 is not installed")
    done = _run(path, "--version")
    first = done.stdout.splitlines()[0] if done and done.stdout else "version unknown"
    return Check("qemu", True, first)


def is_static_elf(path: str) -> bool:
    """True for an ELF executable with no program interpreter (statically linked)."""
    pt_interp = 3
    try:
        with open(path, "rb") as binary:
            head = binary.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return False
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            binary.seek(phoff)
            table = binary.read(phentsize * phnum)
    except OSError:
        return False
    types = [struct.unpack_from("<I", table, i * phentsize)[0] for i in range(phnum)]
    return pt_interp not in types


def _busybox() -> Check:
    for candidate in ("/bin/busybox", shutil.which("busybox")):
        if candidate and os.path.exists(candidate) and is_static_elf(candidate):
            return Check("busybox", True, f"static busybox at {candidate}")
    return Check("busybox", False, "no statically linked busybox (Debian package busybox-static)")


def _debootstrap() -> Check:
    path = shutil.which("debootstrap")
    return Check("debootstrap", path is not None, path or "debootstrap is not installed")


def registry_answers(address: str, timeout: float = 2) -> bool:
    """True when an image registry answers the v2 API at host:port."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=timeout) as reply:
            return reply.status == 200
    except OSError:
        return False


def _kubectl() -> Check:
    path = shutil.which("kubectl")
    return Check("kubectl", path is not None, path or "kubectl is not installed")


def _registry() -> Check:
    address = os.environ.get(REGISTRY_VARIABLE, "").strip()
    if address and registry_answers(address):
        return Check("registry", True, f"an image registry answers at {address}")
    program = shutil.which("docker-registry") or shutil.which("registry")
    if program:
        return Check("registry", True, f"none running, but {program} can start one on 127.0.0.1")
    if address:
        return Check("registry", False, f"nothing answers at {address} and no registry program is installed")
    return Check("registry", False, "no registry running and no registry program (docker-registry) installed")


def _netem() -> Check:
    from helpers.net import netem_available

    ok, detail = netem_available()
    return Check("netem", ok, detail)


def _binfmt() -> Check:
    from helpers.registry import can_run_foreign

    ok, detail = can_run_foreign("arm64")
    return Check("binfmt", ok, detail)


def _chromium() -> Check:
    from helpers.browser import chromium_path

    path = chromium_path()
    return Check("chromium", path is not None, path or "no Chromium or Chrome on PATH")


PROBES: dict[str, Callable[[], Check]] = {
    "linux": _linux,
    "root": _root,
    "docker": _docker,
    "namespaces": _namespaces,
    "cgroups": _cgroups,
    "kvm": _kvm,
    "kvm-ioctl": _kvm_ioctl,
    "qemu": _qemu,
    "busybox": _busybox,
    "debootstrap": _debootstrap,
    "kubectl": _kubectl,
    "registry": _registry,
    "netem": _netem,
    "binfmt": _binfmt,
    "chromium": _chromium,
}

DESCRIPTIONS = {
    "linux": "a Linux kernel",
    "root": "root privileges",
    "docker": "a running Docker engine",
    "namespaces": "Linux namespaces (unshare)",
    "cgroups": "cgroup resource limits",
    "kvm": "a hypervisor that can boot Linux (KVM)",
    "kvm-ioctl": "the KVM API (/dev/kvm answers ioctls)",
    "qemu": "the QEMU emulator",
    "busybox": "a static busybox",
    "debootstrap": "debootstrap (makes a Debian root file system)",
    "kubectl": "kubectl, the Kubernetes command-line client",
    "registry": "a local image registry",
    "netem": "network delay (tc netem)",
    "binfmt": "arm64 programs through QEMU user-mode emulation (binfmt_misc)",
    "chromium": "Chromium (browser tests)",
}

HOW_TO_GET = {
    "linux": {
        "Linux": "You are on it.",
        "macOS": "Open the lesson inside a Linux VM (UTM, Lima, Multipass) or a GitHub Codespace.",
        "Windows": "Use WSL 2 (`wsl --install -d Debian`) and open the collection from there.",
    },
    "root": {
        "Linux": "Run `sudo make lab` (or `sudo make test`); the lessons run root-only steps in child processes.",
        "macOS": "Root on macOS does not help: the lesson needs a Linux kernel. Use a Linux VM.",
        "Windows": "Inside WSL 2, `sudo make lab`.",
    },
    "docker": {
        "Linux": "`sudo apt-get install docker.io` then start the daemon (`sudo systemctl start docker`, "
        "or `sudo make lab`, which starts `dockerd` when there is no systemd).",
        "macOS": "Install and start Docker Desktop (or Colima: `brew install colima docker && colima start`).",
        "Windows": "Install Docker Desktop with the WSL 2 back end and start it.",
    },
    "namespaces": {
        "Linux": "Install util-linux (`unshare`) and run as root, or enable unprivileged user namespaces.",
        "macOS": "Namespaces are a Linux kernel feature: use a Linux VM.",
        "Windows": "Use WSL 2.",
    },
    "cgroups": {
        "Linux": "Run as root on a machine whose cgroup file system is writable (not inside a locked-down container).",
        "macOS": "cgroups are a Linux kernel feature: use a Linux VM.",
        "Windows": "Use WSL 2 and run as root there.",
    },
    "kvm": {
        "Linux": "Enable VT-x/AMD-V in the firmware and load `kvm_intel` or `kvm_amd`; without it the VM "
        "lessons still run, more slowly, under QEMU's software emulation.",
        "macOS": "Not available; the VM lessons fall back to software emulation inside a Linux VM.",
        "Windows": "Enable nested virtualisation for WSL 2, or rely on software emulation.",
    },
    "kvm-ioctl": {
        "Linux": "Load the `kvm` module and make `/dev/kvm` readable and writable for your user.",
        "macOS": "Not available: the lesson shows its stored output instead.",
        "Windows": "Enable nested virtualisation for WSL 2.",
    },
    "qemu": {
        "Linux": "`sudo apt-get install qemu-system-x86` (make test does this as root).",
        "macOS": "`brew install qemu`, inside a Linux VM for the kernel-building steps.",
        "Windows": "Inside WSL 2: `sudo apt-get install qemu-system-x86`.",
    },
    "busybox": {
        "Linux": "`sudo apt-get install busybox-static`.",
        "macOS": "Use a Linux VM: the image is a Linux binary.",
        "Windows": "Inside WSL 2: `sudo apt-get install busybox-static`.",
    },
    "debootstrap": {
        "Linux": "`sudo apt-get install debootstrap`.",
        "macOS": "Use a Linux VM.",
        "Windows": "Inside WSL 2: `sudo apt-get install debootstrap`.",
    },
    "kubectl": {
        "Linux": "`sudo apt-get install kubernetes-client` (Debian; make test does this as root), or the "
        "packages from https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/.",
        "macOS": "`brew install kubectl`.",
        "Windows": "`winget install -e --id Kubernetes.kubectl`, or inside WSL 2 as on Linux.",
    },
    "registry": {
        "Linux": "`sudo apt-get install docker-registry` (make test starts one on 127.0.0.1 for you).",
        "macOS": "With Docker Desktop and Docker Hub reachable: `docker run -d -p 127.0.0.1:5000:5000 registry:2`, "
        "then set CLOUDNOTES_REGISTRY=127.0.0.1:5000.",
        "Windows": "As on macOS, from a WSL 2 shell.",
    },
    "netem": {
        "Linux": "Run as root with iproute2 installed on a kernel with the sch_netem module "
        "(`sudo modprobe sch_netem`); without it the lesson adds the delay in the server instead.",
        "macOS": "Not available: the lesson adds the delay in the server instead.",
        "Windows": "Inside WSL 2 as root, if its kernel has netem; otherwise the server adds the delay.",
    },
    "binfmt": {
        "Linux": "`sudo apt-get install qemu-user-static`, then run as root (registering a rule needs it).",
        "macOS": "Docker Desktop runs arm64 images itself; this lesson's rule needs a Linux kernel.",
        "Windows": "Inside WSL 2 as root, with qemu-user-static installed.",
    },
    "chromium": {
        "Linux": "`sudo apt-get install chromium`.",
        "macOS": "Install Chromium or Google Chrome.",
        "Windows": "Install Chromium or Google Chrome.",
    },
}


def hidden() -> set[str]:
    """Features that ``CLOUDNOTES_WITHOUT`` asks to treat as absent (``all`` hides every one)."""
    names = {n.strip() for n in os.environ.get(WITHOUT_VARIABLE, "").split(",") if n.strip()}
    return set(PROBES) if "all" in names else names


def probe(name: str) -> Check:
    """Probe one feature by name (see :data:`PROBES`)."""
    if name not in PROBES:
        raise ValueError(f"unknown feature {name!r}; known: {', '.join(PROBES)}")
    if name in hidden():
        return Check(name, False, f"treated as absent because {WITHOUT_VARIABLE} names it")
    return PROBES[name]()


def missing(names: list[str] | tuple[str, ...]) -> list[Check]:
    """The checks among ``names`` that failed, in the order given."""
    return [check for check in (probe(name) for name in names) if not check.ok]


def explain(checks: list[Check]) -> str:
    """Markdown that says what is missing and how to get it on each operating system."""
    lines = ["**This part of the notebook cannot run live here.** Missing:", ""]
    for check in checks:
        lines.append(f"- **{DESCRIPTIONS[check.name]}** (`{check.name}`): {check.detail}.")
        for system, advice in HOW_TO_GET[check.name].items():
            lines.append(f"  - {system}: {advice}")
    lines += ["", "The cells that need it will say so and skip their live part; the rest of the notebook runs."]
    return "\n".join(lines)


def need(*names: str) -> bool:
    """True when every named feature is available. Otherwise explain what is missing and return False;
    in strict mode raise :class:`MissingFeature`."""
    absent = missing(names)
    if not absent:
        return True
    if strict():
        summary = "; ".join(f"{check.name}: {check.detail}" for check in absent)
        raise MissingFeature(f"strict mode ({STRICT_VARIABLE}=1) and missing: {summary}")
    show_markdown(explain(absent))
    return False


def report(names: list[str] | None = None) -> Table:
    """A table of every feature: available or not, and what was found."""
    checks = [probe(name) for name in (names or list(PROBES))]
    rows = [(DESCRIPTIONS[c.name], c.name, "yes" if c.ok else "no", c.detail) for c in checks]
    return Table(rows, headers=("feature", "name", "available", "details"))
