"""helpers.registry: a private registry with a login, its API and storage, a manifest list, foreign CPUs."""

from __future__ import annotations

import contextlib
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
    yield client
    client.close()


@pytest.fixture
def made(client):
    """The image names a test creates (all under its own registry's address), removed by name afterwards:
    other work on the same engine keeps its images."""
    import docker

    names: list[str] = []
    yield names
    for name in reversed(names):
        with contextlib.suppress(docker.errors.NotFound):
            client.images.remove(name, force=True)


@needs_registry
def test_a_registry_with_a_login_refuses_anonymous_pushes_and_stores_blobs_once(client, made, tmp_path):
    with registry.Registry(tmp_path, users={"student": "pw"}) as reg:
        assert reg.address.startswith("127.0.0.1:") and reg.catalog() == []
        made += [f"{reg.address}/test/one:1", f"{reg.address}/test/two:1"]
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


def _docker_cli(config, *args, stdin=None):
    """The docker command line with its own config folder (never the user's ~/.docker)."""
    import subprocess

    done = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DOCKER_CONFIG": str(config)}, check=False)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


@needs_registry
def test_a_manifest_list_points_each_platform_at_its_own_manifest(client, made, tmp_path):
    import shutil

    if shutil.which("docker") is None:
        pytest.skip("no docker command line program")
    config = tmp_path / "docker-config"
    with registry.Registry(tmp_path / "registry", users={"student": "pw"}) as reg:
        _docker_cli(config, "login", "--username", "student", "--password-stdin", reg.address, stdin="pw")
        assert (config / "config.json").exists() and reg.address in (config / "config.json").read_text()
        variants = {}
        for arch in ("amd64", "arm64"):
            folder = tmp_path / arch
            busybox_rootfs(folder / "rootfs")  # the same busybox: only the recorded platform differs
            (folder / "rootfs" / "arch").write_text(arch)  # ...and this file, so the cache cannot merge them
            (folder / "Dockerfile").write_text("FROM scratch\nCOPY rootfs/ /\n")
            made.append(f"{reg.address}/test/multi:{arch}")
            client.images.build(path=str(folder), tag=f"{reg.address}/test/multi:{arch}", platform=f"linux/{arch}",
                                labels=images.LABELS, rm=True, forcerm=True)  # no intermediate containers left
            _docker_cli(config, "push", f"{reg.address}/test/multi:{arch}")
            variants[arch] = registry.manifest(reg, "test/multi", arch)
        listed = f"{reg.address}/test/multi:1"
        made.append(listed)
        _docker_cli(config, "manifest", "create", "--insecure", listed,
                    *(f"{reg.address}/test/multi:{arch}" for arch in variants))
        pushed = _docker_cli(config, "manifest", "push", "--insecure", "--purge", listed).strip()
        index = registry.manifest(reg, "test/multi", "1")
        assert index.media_type == registry.DOCKER_MANIFEST_LIST and index.digest == pushed
        platforms = {entry["platform"]["architecture"]: entry["digest"] for entry in index.content["manifests"]}
        assert platforms == {arch: variant.digest for arch, variant in variants.items()}
        _docker_cli(config, "pull", "--platform", "linux/arm64", listed)
        assert client.images.get(listed).attrs["Architecture"] == "arm64"


@needs_registry
def test_the_password_hashes_are_cheap_to_check(tmp_path):
    with registry.Registry(tmp_path, users={"student": "pw"}) as reg:
        line = (tmp_path / "htpasswd").read_text().strip()
        assert line.startswith(f"student:$2b${registry.BCRYPT_COST:02d}$")
        assert reg.get("/v2/")[0] is not None


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

