"""helpers.registry: a private registry with a login, its API and storage, a manifest list, foreign CPUs."""

from __future__ import annotations

import os

import pytest

from helpers import env, images, registry
from helpers.containers import busybox_rootfs

needs_registry = pytest.mark.needs("docker", "busybox", "registry")
needs_emulation = pytest.mark.needs("binfmt")


@pytest.fixture
def client():
    import docker

    client = docker.from_env()
    before = {image.id for image in client.images.list(all=True)}
    yield client
    added = [image for image in client.images.list(all=True) if image.id not in before]
    for image in sorted(added, key=lambda image: image.attrs["Created"], reverse=True):
        if any(image.id == left.id for left in client.images.list(all=True)):
            client.images.remove(image.id, force=True)
    client.close()


@needs_registry
def test_a_registry_with_a_login_refuses_anonymous_pushes_and_stores_blobs_once(client, tmp_path):
    with registry.Registry(tmp_path, users={"student": "pw"}) as reg:
        assert reg.address.startswith("127.0.0.1:") and reg.catalog() == []
        image = images.busybox_image(client, f"{reg.address}/test/one:1")
        pushed = client.images.push(f"{reg.address}/test/one", "1", stream=True, decode=True)
        assert any("no basic auth credentials" in line.get("error", "") for line in pushed)
        client.login(username="student", password="pw", registry=reg.address)
        client.images.push(f"{reg.address}/test/one", "1")
        client.images.push(f"{reg.address}/test/one", "1")  # again: nothing new stored
        assert reg.catalog() == ["test/one"] and reg.tags("test/one") == ["1"]
        one = registry.manifest(reg, "test/one", "1")
        assert one.media_type == registry.DOCKER_MANIFEST and len(one.layers) == 1
        assert one.digest.startswith("sha256:") and one.size > 0
        assert len(registry.blob_files(reg)) == 3  # layer, configuration, manifest
        image.tag(f"{reg.address}/test/two", "1")
        client.images.push(f"{reg.address}/test/two", "1")
        assert len(registry.blob_files(reg)) == 3  # the same image under another name: no new blob
        with pytest.raises(registry.RegistryError, match="HTTP 404"):
            registry.manifest(reg, "test/one", "no-such-tag")
        pid = reg.pid
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


@needs_registry
def test_a_manifest_list_points_each_platform_at_its_own_manifest(client, tmp_path):
    with registry.Registry(tmp_path / "registry") as reg:
        variants = {}
        for arch in ("amd64", "arm64"):
            folder = tmp_path / arch
            busybox_rootfs(folder / "rootfs")  # the same busybox: only the recorded platform differs
            (folder / "rootfs" / "arch").write_text(arch)  # ...and this file, so the cache cannot merge them
            (folder / "Dockerfile").write_text("FROM scratch\nCOPY rootfs/ /\n")
            client.images.build(path=str(folder), tag=f"{reg.address}/test/multi:{arch}", platform=f"linux/{arch}")
            client.images.push(f"{reg.address}/test/multi", arch)
            variants[f"linux/{arch}"] = registry.manifest(reg, "test/multi", arch)
        index = registry.put_manifest_list(reg, "test/multi", "1", variants)
        assert index.media_type == registry.DOCKER_MANIFEST_LIST
        listed = {entry["platform"]["architecture"]: entry["digest"] for entry in index.content["manifests"]}
        assert listed == {"amd64": variants["linux/amd64"].digest, "arm64": variants["linux/arm64"].digest}
        pulled = client.images.pull(f"{reg.address}/test/multi", tag="1", platform="linux/arm64")
        assert pulled.attrs["Architecture"] == "arm64"


def test_registry_without_a_program_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(registry.shutil, "which", lambda name: None)
    with pytest.raises(registry.RegistryError, match="docker-registry"):
        registry.Registry(tmp_path)


def test_the_host_architecture_uses_its_own_busybox():
    assert registry.host_arch() in registry.UNAME
    assert str(registry.busybox_for(registry.host_arch())) == "/bin/busybox"
    assert registry.can_run_foreign(registry.host_arch())[0]


@needs_emulation
def test_emulation_runs_an_arm64_program_and_leaves_the_kernel_as_it_was(tmp_path):
    import subprocess

    def state():
        mounted = os.path.exists(registry.BINFMT / "register")
        return mounted, sorted(os.listdir(registry.BINFMT)) if mounted else []

    before = state()
    busybox = registry.busybox_for("arm64")
    assert env.is_static_elf(str(busybox))
    with registry.ForeignBinaries("arm64") as emulation:
        assert emulation.rule is not None and emulation.rule.read_text().startswith("enabled")
        done = subprocess.run([str(busybox), "uname", "-m"], capture_output=True, text=True, check=True)
        assert done.stdout.strip() == "aarch64"
    assert state() == before

