"""Which ``docker`` client builds with BuildKit on this machine, and what BuildKit's plain progress says.

Since Docker 23 the ``docker`` client builds with BuildKit through the ``buildx`` plugin (Docker Desktop and
docker-ce ship it), and ``DOCKER_BUILDKIT=1`` without the plugin fails with "the buildx component is missing".
Clients before 23 (Debian 12's ``docker.io`` 20.10, say) carry a BuildKit client of their own and build with
``DOCKER_BUILDKIT=1`` and no plugin. A machine can have both kinds on its PATH, so :func:`find` asks each
``docker`` found there to build a one-line Dockerfile with BuildKit, keeping nothing (the result goes to
``/dev/null``), and returns the first that can.

:func:`steps` reads the ``--progress=plain`` output of a build: which Dockerfile steps BuildKit took from its
cache (``#7 CACHED``) and which it ran (``#7 DONE 0.4s``).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROBE_DOCKERFILE = "FROM scratch\n"


@dataclass(frozen=True)
class Client:
    """A docker client that builds with BuildKit: where it is, its version, how it does it, and why the
    clients before it on the PATH were passed over."""

    path: str
    version: str
    how: str
    passed_over: tuple[tuple[str, str], ...] = ()

    @property
    def env(self) -> dict[str, str]:
        """The environment for ``docker build``: BuildKit asked for, and this client's folder first on the
        PATH, so that the program called ``docker`` is this one."""
        folder = str(Path(self.path).parent)
        return {**os.environ, "DOCKER_BUILDKIT": "1", "PATH": os.pathsep.join([folder, os.environ.get("PATH", "")])}


@dataclass(frozen=True)
class Step:
    """One Dockerfile step of a BuildKit build: ``[number/total] instruction`` and whether it was taken from
    the build cache ("cached"), ran ("ran"), or failed ("error")."""

    number: int
    total: int
    instruction: str
    state: str


def candidates(path: str | None = None) -> list[str]:
    """Every ``docker`` program on ``path`` (default: $PATH), in PATH order, each real file once."""
    found: list[str] = []
    seen: set[str] = set()
    for folder in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep):
        program = Path(folder or ".") / "docker"
        if program.is_file() and os.access(program, os.X_OK):
            real = os.path.realpath(program)
            if real not in seen:
                seen.add(real)
                found.append(str(program))
    return found


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:  # the line that names the cause, when there is one
        if "buildx" in line.lower() or "buildkit" in line.lower():
            return line
    return lines[-1] if lines else "no output"


def probe(program: str, timeout: float = 60) -> tuple[bool, str]:
    """Ask ``program`` to build ``FROM scratch`` with BuildKit into /dev/null: (True, how) or (False, why not)."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    try:
        done = subprocess.run([program, "build", "--progress=plain", "--output", "type=tar,dest=/dev/null", "-"],
                              input=PROBE_DOCKERFILE, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return False, f"could not run it: {error}"
    if done.returncode != 0:
        return False, _last_line(done.stderr or done.stdout)
    try:
        plugin = subprocess.run([program, "buildx", "version"], capture_output=True, text=True, timeout=timeout,
                                check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        plugin = False
    return True, "through the buildx plugin" if plugin else "with the BuildKit client built into it (Docker before 23)"


def version(program: str) -> str:
    """The client's own version, as ``docker version --format '{{.Client.Version}}'`` prints it."""
    try:
        done = subprocess.run([program, "version", "--format", "{{.Client.Version}}"], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def find(path: str | None = None) -> Client | None:
    """The first ``docker`` on the PATH that builds with BuildKit, or None when none can."""
    passed_over: list[tuple[str, str]] = []
    for program in candidates(path):
        works, how = probe(program)
        if works:
            return Client(program, version(program), how, tuple(passed_over))
        passed_over.append((program, how))
    return None


STEP = re.compile(r"^#(\d+) \[(?:[^\]\s]+ )?(\d+)/(\d+)\] (.+)$")
STATE = re.compile(r"^#(\d+) (CACHED|DONE|ERROR)\b")


def steps(progress: str) -> list[Step]:
    """The Dockerfile steps of a ``docker build --progress=plain`` output, in Dockerfile order.

    BuildKit numbers its vertices (``#5``) in the order it starts them and runs independent ones in parallel,
    so a step's lines need not be next to each other: the step line ``#5 [2/4] COPY ...`` names the vertex,
    and a later ``#5 CACHED``, ``#5 DONE 0.1s`` or ``#5 ERROR`` says what happened to it.
    """
    found: dict[int, tuple[int, int, str]] = {}
    states: dict[int, str] = {}
    for line in progress.splitlines():
        line = line.rstrip()
        if match := STEP.match(line):
            found.setdefault(int(match[1]), (int(match[2]), int(match[3]), match[4].strip()))
        elif match := STATE.match(line):
            vertex, word = int(match[1]), match[2]
            if word == "ERROR" or states.get(vertex) != "cached":
                states[vertex] = {"CACHED": "cached", "DONE": "ran", "ERROR": "error"}[word]
    return sorted((Step(number, total, instruction, states.get(vertex, "unfinished"))
                   for vertex, (number, total, instruction) in found.items()), key=lambda step: step.number)
