"""Notebooks that touch shared machine state give the same compared outputs whether or not that state existed
before they ran, and leave it as they found it.

The suite's main pass runs every notebook from the state the machine is in (on CI: a fresh one). Here the two
notebooks that touch machine-wide state run once more under full nbval, with that state already there: 04.1
beside a swarm the user made (with a service of their own), 03.5 beside an arm64 emulation rule registered
the way Debian's binfmt-support registers it. Their stored outputs must still match, and the user's swarm,
service and rule must be there afterwards, unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import catalog, images, swarm
from helpers.registry import BINFMT

NOTEBOOKS = catalog.NOTEBOOKS


def _nbval(notebook: str, executed: Path) -> subprocess.CompletedProcess[str]:
    """The notebook under full nbval, with the suite's rules (skips, strict mode, the leftover check); its
    executed copy goes to ``executed``, apart from the suite's own."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(catalog.ROOT / "tests" / "nbval-sanitize.cfg"), "-q", "-rfE",
         str(NOTEBOOKS / notebook)],
        cwd=catalog.ROOT, capture_output=True, text=True, timeout=900, check=False,
        env=os.environ | {"CLOUDNOTES_EXECUTED": str(executed)})


@pytest.fixture
def client():
    import docker

    client = docker.from_env()
    yield client
    client.close()


@pytest.mark.needs("docker", "busybox")
def test_04_1_beside_a_swarm_the_user_made_matches_its_outputs_and_leaves_swarm_and_service_alone(client, tmp_path):
    users_swarm = swarm.Swarm(client)  # the user's own (made here unless one is active; left at the end if so)
    image = images.busybox_image(client, "cloudnotes-test/users-own:1")
    theirs = client.services.create(image.id, ["sleep", "3600"], name="users-own-service")
    try:
        done = _nbval("04.1-orchestration.ipynb", tmp_path)
        assert done.returncode == 0, done.stdout[-4000:]
        assert client.info()["Swarm"]["LocalNodeState"] == "active", "the user's swarm was left"
        still = client.services.get(theirs.id)
        assert still.attrs["Version"] == theirs.attrs["Version"], "the user's service was changed"
    finally:
        theirs.remove()
        swarm.wait_for(lambda: not swarm.service_containers(client, "users-own-service"), "the service gone")
        users_swarm.close()
        client.images.remove(image.id, force=True)


@pytest.fixture
def arm64_rule():
    """An enabled qemu-aarch64 rule, registered as binfmt-support does, removed (and unmounted) afterwards."""
    pattern = Path("/usr/share/binfmts/qemu-aarch64")
    interpreter = Path(shutil.which("qemu-aarch64-static") or "/usr/bin/qemu-aarch64-static")
    mounted = False
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
        mounted = True
    rule = BINFMT / "qemu-aarch64"
    made = not rule.exists()
    if made:
        fields = dict(line.split(" ", 1) for line in pattern.read_text().splitlines() if " " in line)
        (BINFMT / "register").write_text(f":qemu-aarch64:M::{fields['magic']}:{fields['mask']}:{interpreter}:F")
    try:
        yield rule
    finally:
        if made and rule.exists():
            rule.write_text("-1")
        if mounted:
            subprocess.run(["umount", str(BINFMT)], check=False)


@pytest.mark.needs("docker", "root", "busybox", "registry", "binfmt")
def test_03_5_beside_an_emulation_rule_the_user_had_matches_its_outputs_and_keeps_the_rule(arm64_rule, tmp_path):
    before = arm64_rule.read_text()
    assert before.startswith("enabled")
    done = _nbval("03.5-registries-and-multiplatform.ipynb", tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    assert arm64_rule.exists() and arm64_rule.read_text() == before, "the user's rule was changed or removed"

