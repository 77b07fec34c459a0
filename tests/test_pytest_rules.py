"""The suite's rules, run in a pytest of their own: unmet needs skip (in strict mode they fail), and a notebook
that leaves something behind is an error."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from helpers import env


def _write(path, source, requires=(), stdout=""):
    notebook = new_notebook(metadata={"requires": list(requires), "summary": path.stem,
                                      "kernelspec": {"name": "python3", "display_name": "Python 3"}})
    cell = new_code_cell(source, execution_count=1)
    cell.outputs = [new_output("stream", name="stdout", text=stdout)] if stdout else []
    notebook.cells = [cell]
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def docker_notebook(tmp_path):
    return _write(tmp_path / "01.1-needs-docker.ipynb", 'print("hello")', requires=["docker"], stdout="hello\n")


def _pytest(path, **variables):
    environment = {k: v for k, v in os.environ.items() if k != env.STRICT_VARIABLE} | variables
    environment["CLOUDNOTES_EXECUTED"] = str(path.parent / "executed")  # not among the suite's own copies
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "helpers.pytest_rules", "-p", "no:cacheprovider", "--nbval",
         "--nbval-current-env", "-rs", str(path)],
        cwd=path.parent, env=environment, capture_output=True, text=True, timeout=120,
    )


def test_a_notebook_whose_needs_are_absent_is_skipped_with_the_reason(docker_notebook):
    done = _pytest(docker_notebook, CLOUDNOTES_WITHOUT="docker")
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
    assert "01.1-needs-docker.ipynb needs what this machine lacks: docker" in done.stdout


def test_strict_mode_turns_the_skip_into_a_failure(docker_notebook):
    done = _pytest(docker_notebook, CLOUDNOTES_WITHOUT="docker", CLOUDNOTES_STRICT="1")
    assert done.returncode == 1, done.stdout
    assert "1 failed" in done.stdout or "1 error" in done.stdout  # a setup-time failure counts as an error
    assert "strict mode (CLOUDNOTES_STRICT=1) allows no skips" in done.stdout


@pytest.mark.needs("docker")
def test_with_its_needs_met_the_notebook_runs_and_its_output_is_compared(docker_notebook):
    done = _pytest(docker_notebook, CLOUDNOTES_WITHOUT="", CLOUDNOTES_STRICT="0")
    assert done.returncode == 0, done.stdout
    assert "1 passed" in done.stdout


def test_a_notebook_that_leaves_a_folder_and_a_process_behind_is_an_error(tmp_path):
    pid_file = tmp_path / "pid"
    source = (
        "import subprocess, tempfile\n"
        "tempfile.mkdtemp(prefix='cloudnotes-forgotten-')\n"
        "server = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(server.pid))"
    )
    path = _write(tmp_path / "01.2-leaky.ipynb", source)
    try:
        done = _pytest(path, CLOUDNOTES_WITHOUT="")
        assert done.returncode == 1, done.stdout
        assert "01.2-leaky.ipynb left things behind after its kernel stopped" in done.stdout
        assert "scratch folders: cloudnotes-forgotten-" in done.stdout
        assert f"processes: pid {pid_file.read_text()} (sleep: sleep 60)" in done.stdout
    finally:
        for folder in Path(tempfile.gettempdir()).glob("cloudnotes-forgotten-*"):
            folder.rmdir()
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_processes_the_notebook_did_not_start_are_not_its_leftovers(tmp_path):
    """Other work on the machine (here: a process this test starts while the notebook runs, as a container
    runtime starts its shims) is outside the notebook's process tree, so it cannot fail the notebook."""
    path = _write(tmp_path / "01.3-quiet.ipynb", "import time\ntime.sleep(3)")
    inner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "helpers.pytest_rules", "-p", "no:cacheprovider", "--nbval",
         "--nbval-current-env", str(path)], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != env.STRICT_VARIABLE}
        | {"CLOUDNOTES_WITHOUT": "", "CLOUDNOTES_EXECUTED": str(tmp_path / "executed")})
    bystander = None
    try:
        time.sleep(1.5)  # the notebook's kernel is running now
        bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
        out, _ = inner.communicate(timeout=120)
        assert inner.returncode == 0, out
    finally:
        inner.kill()
        if bystander is not None:
            bystander.kill()
            bystander.wait()


@pytest.mark.needs("docker", "busybox")
def test_a_docker_notebook_that_leaves_a_labelled_container_is_an_error(tmp_path):
    source = (
        "import docker\n"
        "from helpers import images\n"
        "client = docker.from_env()\n"
        "images.busybox_image(client, 'cloudnotes/leak-test:1')\n"
        "client.containers.run('cloudnotes/leak-test:1', ['sleep', '60'], detach=True, name='cloudnotes-leak-test')"
    )
    path = _write(tmp_path / "01.4-leaves-a-container.ipynb", source, requires=["docker", "busybox"])
    import docker

    client = docker.from_env()
    try:
        done = _pytest(path, CLOUDNOTES_WITHOUT="")
        assert done.returncode == 1, done.stdout
        assert "docker containers: cloudnotes-leak-test" in done.stdout, done.stdout
        assert "docker images: cloudnotes/leak-test:1" in done.stdout, done.stdout
    finally:
        for container in client.containers.list(all=True, filters={"name": "cloudnotes-leak-test"}):
            container.remove(force=True)
        if client.images.list(name="cloudnotes/leak-test"):
            client.images.remove("cloudnotes/leak-test:1", force=True)
        client.close()
