"""helpers.images: builds read step by step, cached bases and wheels, clear errors."""

from __future__ import annotations

import subprocess

import pytest

from helpers import images
from helpers.containers import busybox_rootfs

needs_docker = pytest.mark.needs("docker", "busybox")


@pytest.fixture
def client():
    import docker

    client = docker.from_env()
    yield client
    client.close()


def _remove(client, image_ids):
    for image_id in reversed(image_ids):
        if any(image.id == image_id for image in client.images.list(all=True)):
            client.images.remove(image_id, force=True)


@needs_docker
def test_build_reports_each_step_as_parent_built_or_cached(client, tmp_path):
    busybox_rootfs(tmp_path / "rootfs")
    (tmp_path / "note.txt").write_text("one\n")
    (tmp_path / "Dockerfile").write_text('FROM scratch\nCOPY rootfs/ /\nCOPY note.txt /note.txt\n'
                                         'CMD ["cat", "/note.txt"]\n')
    tag = "cloudnotes/test-images:build"
    made = []
    try:
        first = images.build(client, tmp_path, tag)
        made.append(first.image.id)
        # the last step is the collection's label, added like `docker build --label cloudnotes=course`
        assert first.states == ["parent", "built", "built", "built", "built"] and first.cached == 0
        assert [step for step, _ in first.steps][1] == "COPY rootfs/ /"
        assert first.steps[-1][0] == "LABEL cloudnotes=course" and first.image.labels == images.LABELS
        again = images.build(client, tmp_path, tag)
        assert again.states == ["parent"] + ["cached"] * 4 and again.image.id == first.image.id
        (tmp_path / "note.txt").write_text("two\n")
        edited = images.build(client, tmp_path, tag)
        made.append(edited.image.id)
        assert edited.states == ["parent", "cached", "built", "built", "built"]
        assert client.containers.run(tag, remove=True, network_mode="none") == b"two\n"
    finally:
        _remove(client, made)
    assert not client.images.list(name=tag)


@needs_docker
def test_a_failing_step_is_a_build_error_that_names_it(client, tmp_path):
    import docker

    busybox_rootfs(tmp_path / "rootfs")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY rootfs/ /\nRUN exit 3\n")
    before = {image.id for image in client.images.list(all=True)}
    with pytest.raises(docker.errors.BuildError, match="returned a non-zero code: 3"):
        images.build(client, tmp_path, "cloudnotes/test-images:broken")
    _remove(client, [image.id for image in client.images.list(all=True) if image.id not in before])


@needs_docker
def test_busybox_image_is_its_root_file_system(client):
    image = images.busybox_image(client, "cloudnotes/test-images:busybox")
    try:
        assert image.attrs["Size"] < 3_000_000 and len(image.attrs["RootFS"]["Layers"]) == 1
        assert client.containers.run(image.id, ["echo", "hi"], remove=True, network_mode="none") == b"hi\n"
    finally:
        client.images.remove(image.id, force=True)


def test_wheels_come_from_the_cache_without_running_pip(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDNOTES_CACHE", str(tmp_path / "cache"))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("fastapi>=0.110\n")

    def no_pip(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "ERROR: no network in this test")

    monkeypatch.setattr(images.subprocess, "run", no_pip)
    with pytest.raises(images.ImageError, match="no network in this test"):
        images.wheels(requirements)
    folder = next((tmp_path / "cache" / "wheels").iterdir())
    assert not (folder / ".complete").exists()  # a failed download is not taken for a cached one
    (folder / ".complete").write_text(requirements.read_text())
    assert images.wheels(requirements) == folder
    requirements.write_text("fastapi>=0.110\njinja2\n")  # another list, another folder
    with pytest.raises(images.ImageError):
        images.wheels(requirements)


def test_debian_tarball_names_its_packages_and_explains_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDNOTES_CACHE", str(tmp_path))
    cached = tmp_path / "debian" / "bookworm-minbase-python3-python3-venv.tar"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert images.debian_tarball(include=("python3-venv", "python3")) == cached
    monkeypatch.setattr(images.shutil, "which", lambda name: None)
    with pytest.raises(images.ImageError, match="debootstrap is not installed"):
        images.debian_tarball()


@needs_docker
def test_pull_or_none_is_none_for_an_image_no_registry_has(client):
    assert images.pull_or_none(client, "127.0.0.1:9/cloudnotes/nothing-here:1") is None


def test_the_recorded_parent_images_and_wheels_have_sources_and_match_the_lock():
    """data/parent-images.json: every image with its C library and source; every wheel row for a version
    this collection locks, so that a new lock flags the recorded wheel list as out of date."""
    import datetime as dt
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    data = json.loads((root / "data" / "parent-images.json").read_text(encoding="utf-8"))
    assert dt.date.fromisoformat(data["read"]) <= dt.date.today()
    assert {image["libc"] for image in data["images"]} == {"glibc", "musl", "none"}
    assert all(image["source"].startswith("https://") for image in data["images"])
    for image in data["images"]:
        sized = image["amd64"]
        if image["image"] == "scratch":
            assert sized["compressed_bytes"] == sized["on_disk_mb"] == sized["layers"] == 0
            continue
        assert 0 < sized["compressed_bytes"] / 1e6 < sized["on_disk_mb"], image["image"]
        assert sized["layers"] >= 1 and sized["image_id"].startswith("sha256:")
        assert dt.date.fromisoformat(sized["built"]) <= dt.date.fromisoformat(data["read"])
        for source in (sized["remote"], sized["local"]):  # pinned to a commit, not a moving branch
            assert re.fullmatch(r"https://github\.com/docker-library/repo-info/blob/[0-9a-f]{40}/repos/\S+\.md", source)
        assert "/remote/" in sized["remote"] and "/local/" in sized["local"]
        assert ("musl" in sized["libc_package"]) == (image["libc"] == "musl")
    lock = (root / "requirements-lock.txt").read_text(encoding="utf-8")
    for row in data["wheels"]["packages"]:
        locked = re.findall(rf"^{re.escape(row['name'])}==([^\s;]+)", lock, flags=re.MULTILINE | re.IGNORECASE)
        assert row["version"] in locked, f"{row['name']} {row['version']} is not a locked version {locked}"
        assert row["pure_python_wheel"] or row["manylinux_x86_64"] or row["musllinux_x86_64"] or row["sdist"]
    lab1 = (root / "notebooks" / "labs" / "lab1" / "requirements.txt").read_text(encoding="utf-8")
    direct = {line.split(">=")[0].strip() for line in lab1.splitlines() if line and not line.startswith("#")}
    assert direct <= {row["name"] for row in data["wheels"]["packages"] if row["in"] == "Lab 1"}


@pytest.mark.needs("docker", "debootstrap")
def test_python_base_made_twice_is_one_image_and_leaves_nothing_untagged(client):
    if images.pull_or_none(client, images.PYTHON_IMAGE) is not None:
        pytest.skip("Docker Hub answers: the official image is used, nothing is imported")
    had = any(images.PYTHON_LOCAL in image.tags for image in client.images.list())
    try:
        first = images.python_base(client)
        first_id = client.images.get(first.tag).id
        second = images.python_base(client)
        assert client.images.get(second.tag).id == first_id
        labelled = client.images.list(all=True, filters={"label": "cloudnotes=course", "dangling": True})
        assert labelled == [], "an import left an untagged copy of the parent image"
    finally:
        if not had:
            client.images.remove(images.PYTHON_LOCAL, force=True)
