"""helpers.imds: the instance metadata stand-in answers as IMDSv2 does, and boto3's own chain uses it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from helpers.imds import CREDENTIALS_PATH, TOKEN_PATH, MetadataService

CREDENTIALS = {"AccessKeyId": "ASIAEXAMPLEEXAMPLE00", "SecretAccessKey": "secret" * 6, "SessionToken": "token",
               "Expiration": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}


def _request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_imdsv2_needs_a_token_then_serves_the_role_and_its_credentials():
    with MetadataService("lab2-app", CREDENTIALS) as imds:
        base = imds.url.rstrip("/")
        assert _request(base + CREDENTIALS_PATH)[0] == 401
        assert _request(base + TOKEN_PATH, "PUT")[0] == 400  # no TTL header
        status, token = _request(base + TOKEN_PATH, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        assert status == 200 and token
        auth = {"X-aws-ec2-metadata-token": token}
        assert _request(base + CREDENTIALS_PATH, headers=auth) == (200, "lab2-app")
        status, body = _request(base + CREDENTIALS_PATH + "lab2-app", headers=auth)
        document = json.loads(body)
        assert status == 200 and document["Code"] == "Success" and document["Token"] == "token"
        assert document["Expiration"] == "2030-01-01T00:00:00Z"
        assert _request(base + CREDENTIALS_PATH + "other-role", headers=auth)[0] == 404


def test_boto3_with_no_keys_finds_the_role_credentials_through_the_metadata_service():
    hidden = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_EC2_METADATA_DISABLED",
              "AWS_PROFILE")
    env = {name: value for name, value in os.environ.items() if name not in hidden}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, NO_PROXY="127.0.0.1")
    probe = "import boto3; c = boto3.session.Session().get_credentials(); print(c.method, c.access_key)"
    with MetadataService("lab2-app", CREDENTIALS) as imds:
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.url
        found = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert found.stdout.split() == ["iam-role", CREDENTIALS["AccessKeyId"]], found.stderr
    assert imds.requests[0] == f"PUT {TOKEN_PATH}"


def test_with_the_metadata_service_disabled_boto3_does_not_ask_it():
    env = {name: value for name, value in os.environ.items()
           if name not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    probe = "import boto3; print(boto3.session.Session().get_credentials())"
    with MetadataService("lab2-app", CREDENTIALS) as imds:
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.url
        found = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == "None" and imds.requests == []
