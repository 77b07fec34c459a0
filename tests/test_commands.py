"""The two commands around the suite: `make lab` serves on loopback with a token; scripts/system.sh
passes its command's exit status through."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _system(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "scripts/system.sh", "--", *command], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=os.environ | {"SYSTEM": "0"})


def test_system_script_returns_the_command_status_and_explains_usage():
    assert _system("true").returncode == 0
    assert _system("sh", "-c", "exit 7").returncode == 7
    usage = subprocess.run(["bash", "scripts/system.sh"], cwd=ROOT, capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_make_lab_serves_jupyterlab_on_loopback_with_a_token():
    port = _free_port()
    lab = subprocess.Popen(
        ["make", "--no-print-directory", "lab",
         f"LAB_ARGS=--ServerApp.port={port} --ServerApp.port_retries=0 --no-browser"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=os.environ | {"SYSTEM": "0"},
    )
    try:
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = lab.stdout.readline()
            if not line:
                break
            found = re.search(rf"(http://127\.0\.0\.1:{port})/lab\S*\?token=(\w+)", line)
            if found:
                url = found
        assert url, "JupyterLab did not print its URL"
        base, token = url.group(1), url.group(2)
        assert len(token) >= 32
        while time.monotonic() < deadline:  # the URL is printed a moment before the port accepts
            try:
                _status(f"{base}/api")
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        assert _status(f"{base}/api/contents/notebooks") == 403  # no token, no access
        assert _status(f"{base}/api/contents/notebooks/00-start-here.ipynb?token={token}") == 200
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
