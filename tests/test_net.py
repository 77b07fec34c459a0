"""helpers.net: servers start on loopback and stop by PID; delays are real; namespaces are removed."""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys

import pytest

from helpers import net


def test_server_answers_on_loopback_and_stops_by_pid(tmp_path):
    (tmp_path / "index.html").write_text("hello")
    with net.Server([sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"], cwd=tmp_path) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.running()
        assert net.time_request(server.url + "/index.html") < 5
    assert not server.running()
    with pytest.raises(OSError):
        net.time_request(server.url)


def test_server_passes_its_port_through_the_environment_too(tmp_path):
    (tmp_path / "index.html").write_text("hello")
    script = ("import os, sys; os.execv(sys.executable, "
              "[sys.executable, '-m', 'http.server', os.environ['PORT'], '--bind', '127.0.0.1'])")
    with net.Server([sys.executable, "-c", script], cwd=tmp_path, env={"PORT": "{port}"}) as server:
        assert net.time_request(server.url + "/index.html") < 5


def test_server_that_dies_at_once_is_a_clear_error():
    with pytest.raises(RuntimeError, match="exited with status 3 before answering"):
        net.Server([sys.executable, "-c", "raise SystemExit(3)"], timeout=10)


def test_delayed_server_adds_its_delay_to_every_request():
    with net.DelayedServer(0) as near, net.DelayedServer(0.05) as far:
        fast = statistics.median(net.time_request(near.url) for _ in range(5))
        slow = statistics.median(net.time_request(far.url) for _ in range(5))
    assert slow - fast >= 0.045


def _links_and_namespaces() -> str:
    links = subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return links + spaces


needs_root = pytest.mark.needs("linux", "root")  # network namespaces need root


@needs_root
def test_delayed_link_serves_from_a_namespace_and_removes_it():
    with net.DelayedLink(one_way_ms=0) as link:
        assert link.url.startswith(f"http://{net.DelayedLink.GUEST_SIDE}:")
        assert net.time_request(link.url) < 5
    assert "cn-edge" not in _links_and_namespaces() and "cloudnotes-edge" not in _links_and_namespaces()


@needs_root
def test_link_delay_is_real_where_netem_exists_and_cleaned_up_where_it_does_not():
    available, why = net.netem_available()
    if available:
        with net.DelayedLink(one_way_ms=20) as link:
            assert statistics.median(net.time_request(link.url) for _ in range(5)) >= 0.04
    else:
        assert "netem" in why
        with pytest.raises(subprocess.CalledProcessError):
            net.DelayedLink(one_way_ms=20)
    assert "cn-edge" not in _links_and_namespaces() and "cloudnotes" not in _links_and_namespaces()


def test_port_is_free_tells_a_taken_port_from_a_free_one():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        assert not net.port_is_free(taken)
    assert net.port_is_free(net.free_port())
