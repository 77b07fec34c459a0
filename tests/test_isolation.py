"""helpers.isolation: capability masks named as the kernel names them, and the reports of lesson 03.2 read back."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import isolation
from helpers.isolation import (
    CAPABILITIES,
    DOCKER_DEFAULT_CAPABILITIES,
    container_report,
    decode_capabilities,
    encode_capabilities,
    keyed_lines,
    proc_mounts,
)

# What `docker run` of a busybox image printed for the facts command on Docker Engine 20.10.24 (cgroup v1 host).
DOCKER_OUTPUT = """CapEff:\t00000000a80425fb
Seccomp:\t2
Seccomp_filters:\t1
uid_map:          0          0 4294967295
user namespace: user:[4026531837]
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
proc /proc/bus proc ro,nosuid,nodev,noexec,relatime 0 0
proc /proc/sys proc ro,nosuid,nodev,noexec,relatime 0 0
tmpfs /proc/acpi tmpfs ro,relatime 0 0
tmpfs /proc/keys tmpfs rw,nosuid,size=65536k,mode=755 0 0
mount tmpfs: refused
"""
HEADER = Path("/usr/include/linux/capability.h")


def test_the_table_has_every_capability_up_to_checkpoint_restore_in_bit_order():
    assert len(CAPABILITIES) == 41 and len(set(CAPABILITIES)) == 41
    assert CAPABILITIES[0] == "CAP_CHOWN" and CAPABILITIES[21] == "CAP_SYS_ADMIN"
    assert CAPABILITIES[24] == "CAP_SYS_RESOURCE" and CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"


@pytest.mark.skipif(not HEADER.exists(), reason="no kernel headers (Debian: linux-libc-dev)")
def test_the_table_agrees_with_the_installed_kernel_header():
    defined = {name: int(number) for name, number in
               re.findall(r"^#define\s+(CAP_[A-Z_]+)\s+(\d+)\s*$", HEADER.read_text(), re.MULTILINE)}
    assert defined, "no capability numbers found in the header"
    for name, number in defined.items():
        assert CAPABILITIES[number] == name, (name, number)


@pytest.mark.skipif(shutil.which("capsh") is None, reason="capsh is not installed (Debian: libcap2-bin)")
def test_the_decoder_agrees_with_capsh():
    mask = "a80425fb"
    done = subprocess.run(["capsh", f"--decode={mask}"], capture_output=True, text=True, check=True)
    names = done.stdout.split("=", 1)[1].strip().split(",")
    assert [name.upper() for name in names] == decode_capabilities(mask)


def test_dockers_default_mask_decodes_to_its_fourteen_capabilities_and_back():
    names = decode_capabilities("00000000a80425fb")
    assert len(names) == 14 and set(names) == DOCKER_DEFAULT_CAPABILITIES
    assert encode_capabilities(DOCKER_DEFAULT_CAPABILITIES) == 0xA80425FB
    assert "CAP_SYS_ADMIN" not in names


def test_edge_masks_are_named_not_dropped():
    assert decode_capabilities(0) == [] and decode_capabilities("0") == []
    assert decode_capabilities(1 << 41 | 1) == ["CAP_CHOWN", "CAP_41"]
    assert decode_capabilities("000001ffffffffff") == list(CAPABILITIES)
    with pytest.raises(ValueError):
        decode_capabilities(-1)
    with pytest.raises(ValueError):
        decode_capabilities("not hex")


def test_this_process_has_no_capability_the_table_does_not_know():
    status = keyed_lines(Path("/proc/self/status").read_text())
    assert not [name for name in decode_capabilities(status["CapBnd"]) if name.removeprefix("CAP_").isdigit()]


def test_keyed_lines_and_proc_mounts_read_the_kernel_formats():
    fields = keyed_lines("Name:\tsh\nCapEff:\t0000000000000000\nSeccomp:\t0\nnot a field\n")
    assert fields == {"Name": "sh", "CapEff": "0000000000000000", "Seccomp": "0"}
    mounts = proc_mounts(DOCKER_OUTPUT + "sysfs /sys sysfs ro 0 0\nproc /process proc rw 0 0\n")
    assert [m.path for m in mounts] == ["/proc", "/proc/bus", "/proc/sys", "/proc/acpi", "/proc/keys"]
    assert [m.masked for m in mounts] == [False, False, False, True, True]
    assert [m.read_only for m in mounts] == [False, True, True, True, False]


def test_a_container_report_is_read_back_and_its_paths_are_on_dockers_lists():
    report = container_report(DOCKER_OUTPUT)
    assert report.seccomp == 2 and report.seccomp_mode == "filter"
    assert set(report.capabilities) == DOCKER_DEFAULT_CAPABILITIES
    assert report.uid_map == "0 0 4294967295" and report.user_namespace == "user:[4026531837]"
    assert report.mount_tmpfs == "refused"
    hidden = {m.path for m in report.proc if m.masked or m.read_only}
    assert hidden <= set(isolation.DOCKER_MASKED_PATHS + isolation.DOCKER_READONLY_PATHS)
    with pytest.raises(ValueError, match="lacks"):
        container_report("Seccomp:\t0\n")


def test_keyed_lines_skip_kernel_messages_and_keep_the_last_value():
    console = ("[    0.43] PCI: Fatal: No config space\nKilled\nmemory exit status: 137\n"
               "memory.events: low 0 oom_kill 1 \r\nmemory exit status: 0\n")
    assert keyed_lines(console) == {"memory exit status": "0", "memory.events": "low 0 oom_kill 1"}


def test_key_values_reads_cgroup_counter_files_in_either_layout():
    assert isolation.key_values("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n") == {
        "oom_kill_disable": 0, "under_oom": 0, "oom_kill": 1}
    assert isolation.key_values("low 0 high 0 max 35 oom 1 oom_kill 1 ") == {
        "low": 0, "high": 0, "max": 35, "oom": 1, "oom_kill": 1}
    with pytest.raises(ValueError):
        isolation.key_values("max 1 oom")
