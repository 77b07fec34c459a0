"""Where boto3 talks to: one switch for the whole collection.

Three backends, chosen by ``start(name)`` or by the environment variable ``CLOUDNOTES_BACKEND``:

``moto`` (the default)
    moto's in-process stand-in for AWS: boto3 calls never open a socket; every bucket and user lives in
    the notebook's own memory and vanishes at ``stop()``.
``moto-server``
    the same stand-in behind a real HTTP endpoint on 127.0.0.1 at a free port, for lessons that need a
    URL (a static website fetched over HTTP, a lab app in another process). Its request log is kept in
    memory (``Backend.request_log()``), out of the notebook's output.
``aws``
    real AWS with the user's own credentials. Only when ``CLOUDNOTES_BACKEND=aws`` is set explicitly:
    passing ``"aws"`` to ``start()`` without it is refused, so no notebook can spend money by accident.

In both moto modes the process environment is made safe for the lesson: fake credentials and a fixed
region replace whatever the user had (profiles, session tokens and config files are hidden), and every
HTTP(S) request to a host other than loopback is sent to a closed port on 127.0.0.1, so that even a call
moto does not intercept cannot reach AWS with anything. ``stop()`` puts the environment back as it was.

The boto3 calls themselves stay in the notebooks: after ``start()``, a plain ``boto3.client("s3")`` works
unchanged on all three backends (the endpoint comes from ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import logging
import os
import re
import urllib.request
from dataclasses import dataclass, field
from typing import Any

BACKEND_VARIABLE = "CLOUDNOTES_BACKEND"
BACKENDS = ("moto", "moto-server", "aws")
FAKE_REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# A closed port on loopback (the "discard" service, never listening here): requests sent to it fail at once.
BLACKHOLE_PROXY = "http://127.0.0.1:9"
LOOPBACK = "127.0.0.1,localhost,::1"

# Variables that could point boto3 at real credentials, a real profile or a real endpoint.
_HIDDEN = (
    "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CREDENTIAL_EXPIRATION",
    "AWS_ENDPOINT_URL", "AWS_REGION",
)
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


class BackendError(RuntimeError):
    """A backend cannot be started as asked."""


class _MemoryLog(logging.Handler):
    """Keeps the moto server's requests as ``METHOD PATH -> STATUS`` lines instead of printing them."""

    _REQUEST = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = self._REQUEST.search(record.getMessage())
        if found:
            self.lines.append(f"{found['method']} {found['path']} -> {found['status']}")


@dataclass
class Backend:
    """The backend in use: its name, region and, for a server, its endpoint URL."""

    name: str
    region: str
    endpoint_url: str | None = None
    _saved_env: dict[str, str | None] = field(default_factory=dict, repr=False)
    _mock: Any = field(default=None, repr=False)
    _server: Any = field(default=None, repr=False)
    _log: _MemoryLog | None = field(default=None, repr=False)

    def __str__(self) -> str:
        where = {
            "moto": "moto, in-process (nothing leaves this Python process)",
            "moto-server": f"moto server at {self.endpoint_url}",
            "aws": "real AWS with your own credentials (costs may apply)",
        }[self.name]
        return f"{where}; region {self.region}"

    def request_log(self) -> list[str]:
        """The HTTP request lines the moto server has answered (moto-server only)."""
        return list(self._log.lines) if self._log else []


_current: Backend | None = None


def chosen() -> str:
    """The backend name asked for by ``CLOUDNOTES_BACKEND`` (``moto`` when unset)."""
    name = os.environ.get(BACKEND_VARIABLE, "").strip() or "moto"
    if name not in BACKENDS:
        raise BackendError(f"{BACKEND_VARIABLE}={name!r} is not one of {', '.join(BACKENDS)}")
    return name


def current() -> Backend | None:
    """The running backend, or None before ``start()`` and after ``stop()``."""
    return _current


def _set_env(updates: dict[str, str | None]) -> dict[str, str | None]:
    """Apply updates (None removes a variable); return what to put back."""
    saved = {key: os.environ.get(key) for key in updates}
    for key, value in updates.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    # urllib builds its default opener once, with the proxies of that moment: make it read them again.
    urllib.request.install_opener(None)
    return saved


def _safe_environment(endpoint_url: str | None) -> dict[str, str | None]:
    updates: dict[str, str | None] = {key: None for key in _HIDDEN}
    updates.update(FAKE_CREDENTIALS)
    updates.update({
        "AWS_DEFAULT_REGION": FAKE_REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": LOOPBACK,
        "no_proxy": LOOPBACK,
    })
    updates.update({key: BLACKHOLE_PROXY for key in _PROXIES})
    if endpoint_url:
        updates["AWS_ENDPOINT_URL"] = endpoint_url
    return _set_env(updates)


def _forget_default_session() -> None:
    """boto3 caches a default session with the credentials it first saw: drop it."""
    import boto3

    boto3.DEFAULT_SESSION = None


def start(name: str | None = None) -> Backend:
    """Start a backend (``CLOUDNOTES_BACKEND``, default ``moto``, when no name is given) and return it.

    Starting again first stops the running backend, so a notebook cell can be re-run safely.
    """
    global _current
    name = name or chosen()
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if _current is not None:
        stop()

    if name == "aws":
        if os.environ.get(BACKEND_VARIABLE) != "aws":
            raise BackendError(f"real AWS is used only when you set {BACKEND_VARIABLE}=aws yourself")
        import boto3

        session = boto3.session.Session()
        if session.get_credentials() is None:
            raise BackendError("no AWS credentials found: configure a profile or set AWS_ACCESS_KEY_ID")
        _current = Backend("aws", session.region_name or FAKE_REGION)
        return _current

    if name == "moto":
        from moto import mock_aws

        saved = _safe_environment(None)
        mock = mock_aws()
        mock.start()
        _current = Backend("moto", FAKE_REGION, _saved_env=saved, _mock=mock)
    else:
        from moto.server import ThreadedMotoServer

        log = _MemoryLog()
        werkzeug = logging.getLogger("werkzeug")
        werkzeug.addHandler(log)
        werkzeug.setLevel(logging.INFO)
        werkzeug.propagate = False
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        saved = _safe_environment(endpoint)
        _current = Backend("moto-server", FAKE_REGION, endpoint, _saved_env=saved, _server=server, _log=log)
    _forget_default_session()
    return _current


def enforce_iam(on: bool = True) -> None:
    """Make moto check every request against IAM, as AWS does (or stop checking).

    With enforcement on, a request must be signed with the keys of an IAM user (or the temporary
    credentials of an assumed role) that moto knows, and it succeeds only if that identity's policies
    allow it; otherwise it fails with AccessDenied. Create at least one administrator user and its access
    keys *before* turning it on: the default fake credentials belong to nobody. Real AWS always enforces,
    so on the ``aws`` backend this does nothing. ``stop()`` turns enforcement off again.
    """
    if _current is None:
        raise BackendError("start a backend first")
    if _current.name == "aws":
        return
    from moto import settings

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if on else float("inf")


def stop() -> None:
    """Stop the running backend (its data is gone) and restore the environment it changed."""
    global _current
    backend, _current = _current, None
    if backend is None:
        return
    if backend.name != "aws":
        from moto import settings

        settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")  # enforcement is process-wide in moto
    if backend._mock is not None:
        backend._mock.stop()
    if backend._server is not None:
        backend._server.stop()
    if backend._log is not None:
        werkzeug = logging.getLogger("werkzeug")
        werkzeug.removeHandler(backend._log)
        werkzeug.propagate = True
    _set_env(backend._saved_env)
    _forget_default_session()


class use:  # noqa: N801 - reads as a verb: ``with aws.use("moto-server") as backend:``
    """Context manager: ``with use("moto") as backend: ...`` starts a backend and always stops it."""

    def __init__(self, name: str | None = None):
        self.name = name

    def __enter__(self) -> Backend:
        return start(self.name)

    def __exit__(self, *exc: object) -> None:
        stop()
