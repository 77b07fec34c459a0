"""Local servers for the lessons: started on 127.0.0.1 at a free port, timed, and always stopped.

- :class:`Server` runs a command (uvicorn serving a lab app, say) as a child process, waits until its
  URL answers, and stops it by its own process id.
- :class:`DelayedServer` is a tiny HTTP server inside this process that waits a fixed time before each
  answer: the stand-in for a far-away server when the kernel cannot delay packets itself.
- :func:`netem_available` tells whether this machine can add real link delay (``tc netem``) inside a
  network namespace; :class:`DelayedLink` builds such a namespace with a server in it.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``port`` can be bound on ``host`` now (so that a lesson can use the port its text names)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_url(url: str, timeout: float = 20, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers (any HTTP status), or raise TimeoutError / RuntimeError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered, even if with an error status
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def time_request(url: str) -> float:
    """Seconds from opening a connection to reading the whole answer of one GET."""
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as reply:
        reply.read()
    return time.perf_counter() - start


class Server:
    """A command serving HTTP on 127.0.0.1, run as a child process and stopped by its PID.

    ``argv`` and the values of ``env`` may contain ``{port}``, replaced by a free port; a value of None
    removes that variable from the environment the child inherits. Its output goes to a log file, not to the
    notebook. Use it in a ``with`` block, or call ``stop()`` in the cleanup cell.
    """

    def __init__(self, argv: Sequence[str], ready_path: str = "/", cwd: str | os.PathLike | None = None,
                 env: dict[str, str | None] | None = None, log: str | os.PathLike | None = None,
                 timeout: float = 30):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [part.replace("{port}", str(self.port)) for part in argv]
        self.log_path = Path(log) if log else None
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            extra = {name: None if value is None else value.replace("{port}", str(self.port))
                     for name, value in (env or {}).items()}
            child_env = {name: value for name, value in {**os.environ, **extra}.items() if value is not None}
            self.process = subprocess.Popen(self.argv, cwd=cwd, env=child_env,
                                            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        finally:
            if self.log_path:
                output.close()
        try:
            wait_for_url(self.url + ready_path, timeout=timeout, process=self.process)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10) -> int | None:
        """Stop the server (SIGTERM to its process group, then SIGKILL) and return its exit status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Server({self.url}, pid {self.pid}, {'running' if self.running() else 'stopped'})"


class _DelayHandler(http.server.BaseHTTPRequestHandler):
    delay = 0.0
    body = b"hello from the server\n"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server expects
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:  # keep request lines out of the notebook
        pass


class DelayedServer:
    """An HTTP server on 127.0.0.1 that waits ``delay`` seconds before every answer."""

    def __init__(self, delay: float = 0.0):
        handler = type("Handler", (_DelayHandler,), {"delay": delay})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> DelayedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ip(*args: str, namespace: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, timeout=10)


class DelayedLink:
    """A network namespace joined to this one by a virtual cable whose two ends each delay packets.

    The namespace gets 10.200.0.2 and this side 10.200.0.1 (addresses that exist only on this cable);
    ``tc netem`` adds ``one_way_ms`` on each end, so a round trip costs twice that. A plain HTTP server
    runs inside the namespace. Needs root, iproute2 and a kernel with the netem queueing discipline.
    """

    HOST_SIDE, GUEST_SIDE = "10.200.0.1", "10.200.0.2"

    def __init__(self, one_way_ms: float, name: str = "cloudnotes-edge"):
        self.name = name
        self.url = f"http://{self.GUEST_SIDE}:8000/"
        self._server: subprocess.Popen | None = None
        self._created = False
        try:
            _ip("ip", "netns", "add", name)
            self._created = True
            _ip("ip", "link", "add", "cn-edge0", "type", "veth", "peer", "name", "cn-edge1")
            _ip("ip", "link", "set", "cn-edge1", "netns", name)
            _ip("ip", "addr", "add", f"{self.HOST_SIDE}/30", "dev", "cn-edge0")
            _ip("ip", "link", "set", "cn-edge0", "up")
            _ip("ip", "addr", "add", f"{self.GUEST_SIDE}/30", "dev", "cn-edge1", namespace=name)
            _ip("ip", "link", "set", "cn-edge1", "up", namespace=name)
            if one_way_ms > 0:
                _ip("tc", "qdisc", "add", "dev", "cn-edge0", "root", "netem", "delay", f"{one_way_ms}ms")
                _ip("tc", "qdisc", "add", "dev", "cn-edge1", "root", "netem", "delay", f"{one_way_ms}ms",
                    namespace=name)
            self._server = subprocess.Popen(
                ["ip", "netns", "exec", name, "python3", "-m", "http.server", "8000", "--bind", self.GUEST_SIDE],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            wait_for_url(self.url, timeout=10, process=self._server)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._server is not None and self._server.poll() is None:
            os.killpg(self._server.pid, signal.SIGTERM)
            self._server.wait(timeout=10)
        if self._created:
            subprocess.run(["ip", "link", "del", "cn-edge0"], capture_output=True, timeout=10)
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
            self._created = False

    def __enter__(self) -> DelayedLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def netem_available() -> tuple[bool, str]:
    """Whether ``tc netem`` can delay packets here, tried for real in a throwaway namespace."""
    if os.geteuid() != 0:
        return False, "adding link delay needs root"
    for tool in ("ip", "tc"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return False, f"the {tool} command (iproute2) is not installed"
    name = f"cloudnotes-probe-{os.getpid()}"
    try:
        _ip("ip", "netns", "add", name)
    except subprocess.CalledProcessError as error:
        return False, f"network namespaces cannot be created ({error.stderr.strip()})"
    try:
        _ip("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", namespace=name)
        return True, "tc netem works in a network namespace"
    except subprocess.CalledProcessError as error:
        return False, f"this kernel has no netem queueing discipline ({error.stderr.strip()})"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
