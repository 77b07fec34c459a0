"""A stand-in for the EC2 instance metadata service, so that a program finds a role's credentials the way
it does on an EC2 instance with an instance profile: with no keys configured anywhere.

On EC2, the SDKs' default credential chain ends at the instance metadata service (IMDS), an HTTP service at
169.254.169.254 that only the instance can reach. With IMDSv2 a client first asks for a session token
(``PUT /latest/api/token``), then reads the name of the instance's role and that role's temporary
credentials, which EC2 rotates before they expire. moto does not connect such a service to its instances,
so this module serves the same three answers on 127.0.0.1; boto3 is pointed at it with
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (a setting the SDK has for exactly this) and does the rest itself::

    with MetadataService("lab2-app", credentials) as imds:     # credentials: what STS AssumeRole returned
        env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, ...}
        ...
        imds.requests                                           # what the program asked for
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_PATH = "/latest/api/token"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


class MetadataService:
    """IMDSv2 on 127.0.0.1 for one role: a token, the role's name, the role's temporary credentials."""

    def __init__(self, role_name: str, credentials: dict[str, Any]):
        self.role_name = role_name
        self.credentials = credentials
        self.tokens: set[str] = set()
        self.requests: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: str, content_type: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:  # noqa: N802 - the name http.server expects
                service.requests.append(f"PUT {self.path}")
                if self.path != TOKEN_PATH or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._answer(400, "a token request needs X-aws-ec2-metadata-token-ttl-seconds")
                    return
                token = secrets.token_urlsafe(32)
                service.tokens.add(token)
                self._answer(200, token)

            def do_GET(self) -> None:  # noqa: N802
                service.requests.append(f"GET {self.path}")
                if self.headers.get("X-aws-ec2-metadata-token") not in service.tokens:
                    self._answer(401, "IMDSv2: ask for a session token first")
                elif self.path == CREDENTIALS_PATH:
                    self._answer(200, service.role_name)
                elif self.path == CREDENTIALS_PATH + service.role_name:
                    self._answer(200, json.dumps(service.document()), "application/json")
                else:
                    self._answer(404, "not found")

            def log_message(self, format: str, *args: object) -> None:  # keep request lines out of notebooks
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def document(self) -> dict[str, Any]:
        """The credentials document, in the fields and format EC2 serves."""
        expiration = self.credentials["Expiration"]
        if isinstance(expiration, dt.datetime):
            expiration = expiration.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"Code": "Success", "LastUpdated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Type": "AWS-HMAC", "AccessKeyId": self.credentials["AccessKeyId"],
                "SecretAccessKey": self.credentials["SecretAccessKey"], "Token": self.credentials["SessionToken"],
                "Expiration": expiration}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetadataService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
