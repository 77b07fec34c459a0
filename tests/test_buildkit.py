"""helpers.buildkit: finding a docker client that builds with BuildKit, and reading its plain progress."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import buildkit

# A fake `docker`: `build` succeeds or fails as a real client would, `buildx version` answers or not.
FAKE = """#!/bin/sh
case "$1" in
  build) cat >/dev/null; {build} ;;
  buildx) {buildx} ;;
  version) echo {version} ;;
esac
"""
MISSING = ('echo "ERROR: BuildKit is enabled but the buildx component is missing or broken." >&2; '
           'echo "       Install the buildx component to build images with BuildKit:" >&2; exit 1')


def _fake(folder: Path, build: str, buildx: str = "exit 1", version: str = "20.10.24") -> Path:
    folder.mkdir(parents=True)
    program = folder / "docker"
    program.write_text(FAKE.format(build=build, buildx=buildx, version=version))
    program.chmod(0o755)
    return program


def test_the_first_client_that_builds_wins_and_the_others_say_why_not(tmp_path):
    new = _fake(tmp_path / "local", MISSING, version="28.2.2")
    old = _fake(tmp_path / "usr", "exit 0")
    found = buildkit.find(os.pathsep.join([str(new.parent), str(old.parent)]))
    assert found is not None and found.path == str(old) and found.version == "20.10.24"
    assert "built into it" in found.how
    why = "ERROR: BuildKit is enabled but the buildx component is missing or broken."
    assert found.passed_over == ((str(new), why),)


def test_a_client_with_the_buildx_plugin_says_so(tmp_path):
    plugin = _fake(tmp_path / "desktop", "exit 0", buildx="echo github.com/docker/buildx v0.20.0")
    found = buildkit.find(str(plugin.parent))
    assert found.path == str(plugin) and found.how == "through the buildx plugin" and found.passed_over == ()


def test_no_client_that_builds_gives_none(tmp_path):
    broken = _fake(tmp_path / "a", MISSING)
    assert buildkit.find(str(broken.parent)) is None
    assert buildkit.find(str(tmp_path / "nowhere")) is None


def test_the_environment_asks_for_buildkit_and_puts_the_client_first(tmp_path):
    client = buildkit.Client(str(tmp_path / "bin" / "docker"), "20.10.24", "built in")
    assert client.env["DOCKER_BUILDKIT"] == "1"
    assert client.env["PATH"].split(os.pathsep)[0] == str(tmp_path / "bin")


def test_the_same_program_twice_on_the_path_is_one_candidate(tmp_path):
    program = _fake(tmp_path / "bin", "exit 0")
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "docker").symlink_to(program)
    assert buildkit.candidates(os.pathsep.join([str(program.parent), str(tmp_path / "link")])) == [str(program)]


# BuildKit starts independent steps in parallel: a step's lines need not follow each other.
PROGRESS = """#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 195B 0.0s done
#1 DONE 0.0s

#4 [1/3] COPY rootfs/ /
#4 CACHED

#6 [3/3] RUN mkdir -p /srv
#5 [2/3] COPY hello.sh /usr/local/bin/hello
#5 DONE 0.0s
#6 0.151 some output of the command
#6 DONE 0.2s

#7 [stage-1 1/1] COPY --from=0 /srv /srv
#7 ERROR: failed to compute cache key

#8 exporting to image
#8 DONE 0.1s
"""


def test_steps_are_read_in_dockerfile_order_with_their_state():
    found = buildkit.steps(PROGRESS)
    assert [(step.number, step.total, step.instruction, step.state) for step in found] == [
        (1, 3, "COPY rootfs/ /", "cached"),
        (1, 1, "COPY --from=0 /srv /srv", "error"),
        (2, 3, "COPY hello.sh /usr/local/bin/hello", "ran"),
        (3, 3, "RUN mkdir -p /srv", "ran"),
    ]


def test_a_step_without_a_state_line_is_unfinished():
    assert [step.state for step in buildkit.steps("#3 [1/1] RUN sleep 60\n#3 0.5 waiting\n")] == ["unfinished"]


@pytest.mark.needs("docker")
def test_a_client_on_this_path_builds_with_buildkit():
    import docker

    client = docker.from_env()
    before = {record["ID"] for record in client.df().get("BuildCache") or []}
    try:
        found = buildkit.find()
        assert found is not None, "no docker client on this PATH builds with BuildKit"
        assert buildkit.probe(found.path)[0] and found.version != "unknown"
    finally:  # the probes' build-cache entries (the context and the Dockerfile) go again
        for record in client.df().get("BuildCache") or []:
            if record["ID"] not in before:
                client.api.prune_builds(filters={"id": record["ID"]}, all=True)
        client.close()
