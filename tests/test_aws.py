"""The AWS backends: requests stay on this machine, credentials are fake, and stop() restores everything."""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import sys
import threading
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError

from helpers import aws

REAL_LOOKING = {
    "AWS_ACCESS_KEY_ID": "AKIAZ7Q4EXAMPLE2B3C4",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLETOKEN",
    "AWS_PROFILE": "production",
    "AWS_DEFAULT_REGION": "eu-central-1",
}

_connections: list[tuple[str, object]] = []
_recording = False


def _audit(event: str, args: tuple) -> None:
    if _recording and event == "socket.connect":
        _connections.append((event, args[1]))


sys.addaudithook(_audit)


@pytest.fixture
def network_log():
    """Every socket.connect() made by this process while the test runs."""
    global _recording
    _connections.clear()
    _recording = True
    try:
        yield _connections
    finally:
        _recording = False


@pytest.fixture
def real_credentials(monkeypatch):
    for key, value in REAL_LOOKING.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(aws.BACKEND_VARIABLE, raising=False)
    yield
    aws.stop()


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        try:
            return ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            return address[0] == "localhost"
    return isinstance(address, str | bytes)  # a Unix socket path never leaves the machine


def _exercise_s3_and_sts() -> str:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="course-materials")
    s3.put_object(Bucket="course-materials", Key="lecture2/notes.txt", Body=b"buckets, objects, keys")
    body = s3.get_object(Bucket="course-materials", Key="lecture2/notes.txt")["Body"].read()
    assert body == b"buckets, objects, keys"
    return boto3.client("sts").get_caller_identity()["Account"]


def test_default_backend_is_moto_and_no_request_leaves_the_machine(real_credentials, network_log):
    backend = aws.start()
    assert backend.name == "moto"
    account = _exercise_s3_and_sts()
    assert account == "123456789012"  # moto's account: the call never reached the real STS
    # A client built with the real keys passed explicitly is intercepted all the same.
    explicit = boto3.client(
        "s3", aws_access_key_id=REAL_LOOKING["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=REAL_LOOKING["AWS_SECRET_ACCESS_KEY"], region_name="us-west-2",
    )
    assert [b["Name"] for b in explicit.list_buckets()["Buckets"]] == ["course-materials"]
    outside = [address for _, address in network_log if not _is_loopback(address)]
    assert outside == [], f"connections left the machine: {outside}"


def test_moto_modes_replace_real_credentials_region_and_profile(real_credentials):
    for name in ("moto", "moto-server"):
        backend = aws.start(name)
        credentials = boto3.session.Session().get_credentials().get_frozen_credentials()
        # moto's in-process mock sets its own fake keys while active; the server mode uses ours.
        assert credentials.access_key in {"testing", "FOOBARKEY"}, credentials.access_key
        assert credentials.secret_key not in REAL_LOOKING.values() and credentials.token is None
        assert boto3.session.Session().region_name == backend.region == aws.FAKE_REGION
        assert "AWS_PROFILE" not in os.environ
        aws.stop()


def test_a_request_moto_does_not_catch_is_stopped_on_loopback(real_credentials, network_log):
    aws.start("moto")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen("https://s3.amazonaws.com/", timeout=5)
    assert network_log, "the request should have tried the loopback proxy"
    assert all(_is_loopback(address) for _, address in network_log)


def test_after_stop_local_requests_work_again(real_credentials):
    """The guard's proxy settings must not outlive the backend (urllib caches its opener)."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        aws.start("moto")
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen("http://example.com/", timeout=5)
        aws.stop()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/", timeout=5) as reply:
            assert reply.status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_moto_server_answers_on_loopback_and_keeps_its_log_out_of_output(real_credentials, network_log, capfd):
    backend = aws.start("moto-server")
    assert backend.endpoint_url.startswith("http://127.0.0.1:")
    _exercise_s3_and_sts()
    assert network_log and all(_is_loopback(address) for _, address in network_log)
    assert any("PUT /course-materials" in line for line in backend.request_log())
    captured = capfd.readouterr()
    assert "PUT /course-materials" not in captured.out + captured.err


def test_stop_restores_the_environment_exactly(real_credentials):
    before = dict(os.environ)
    aws.start("moto-server")
    aws.stop()
    assert dict(os.environ) == before
    assert aws.current() is None


def test_data_does_not_survive_a_restart(real_credentials):
    aws.start("moto")
    boto3.client("s3").create_bucket(Bucket="ephemeral")
    aws.start("moto")  # starting again stops the first backend
    assert boto3.client("s3").list_buckets()["Buckets"] == []


def test_real_aws_needs_the_user_to_opt_in(real_credentials):
    with pytest.raises(aws.BackendError, match="CLOUDNOTES_BACKEND=aws"):
        aws.start("aws")


def test_unknown_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(aws.BACKEND_VARIABLE, "azure")
    with pytest.raises(aws.BackendError, match="not one of moto, moto-server, aws"):
        aws.chosen()


def test_use_stops_even_after_an_error(real_credentials):
    with pytest.raises(ClientError), aws.use("moto"):
        boto3.client("s3").get_object(Bucket="missing", Key="nothing")
    assert aws.current() is None
    assert os.environ["AWS_ACCESS_KEY_ID"] == REAL_LOOKING["AWS_ACCESS_KEY_ID"]


def test_iam_enforcement_denies_what_no_policy_allows_and_stop_turns_it_off(real_credentials):
    aws.start("moto")
    iam = boto3.client("iam")
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="list-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    boto3.client("s3").create_bucket(Bucket="enforced")
    reader = boto3.client("s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    aws.enforce_iam(True)
    assert [b["Name"] for b in reader.list_buckets()["Buckets"]] == ["enforced"]
    with pytest.raises(ClientError, match="AccessDenied"):
        reader.put_object(Bucket="enforced", Key="x", Body=b"x")
    aws.stop()
    from moto import settings
    assert settings.INITIAL_NO_AUTH_ACTION_COUNT == float("inf")
