"""A tiny Linux guest for QEMU: Debian's cloud kernel and an initramfs of busybox and one script.

:func:`prepare_guest` builds it once from Debian's packages and caches it; :func:`with_init` makes a
variant whose ``/init`` runs another script; :func:`initramfs` writes the cpio archive itself, so no
root is needed for device nodes. :mod:`helpers.qemu` boots it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

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


def initramfs(busybox: bytes, init: str = INIT_SCRIPT, applets: tuple[str, ...] = APPLETS) -> bytes:
    """A complete newc archive: /init, /bin/busybox with its applet links, /dev/console, /proc, /sys."""
    directory, regular, link, char = 0o040755, 0o100755, 0o120777, 0o020600
    members = [("dev", directory, b"", (0, 0)), ("dev/console", char, b"", (5, 1)),  # the console: c 5 1
               ("proc", directory, b"", (0, 0)), ("sys", directory, b"", (0, 0)),
               ("bin", directory, b"", (0, 0)), ("bin/busybox", regular, busybox, (0, 0)),
               ("init", regular, init.encode(), (0, 0))]
    members += [(f"bin/{applet}", link, b"busybox", (0, 0)) for applet in applets]
    entries = [newc_entry(name, mode, data, inode, rdev) for inode, (name, mode, data, rdev)
               in enumerate(members, start=1)]
    return b"".join(entries) + newc_entry("TRAILER!!!", 0)


def busybox() -> bytes:
    """The static busybox that becomes the guest's only program."""
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
    (folder / "initrd.cpio").write_bytes(initramfs(busybox()))
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




def with_init(assets: GuestAssets, init: str, folder: Path, name: str = "initrd-custom.cpio",
              applets: tuple[str, ...] = APPLETS) -> GuestAssets:
    """The same kernel with another ``/init`` script: a new initramfs written into ``folder``.

    Notebooks use it to run an experiment of their own inside the guest (a memory fill, a cgroup v2 limit).
    """
    initrd = Path(folder) / name
    initrd.write_bytes(initramfs(busybox(), init, applets))
    return replace(assets, initrd=initrd, initrd_bytes=initrd.stat().st_size)
