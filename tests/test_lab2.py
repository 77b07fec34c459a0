"""Lab 2 (notebooks/labs/lab2/main.py): every route, every S3 fault, and /data/{name} path traversal.

Every test runs inside ``aws.use("moto")`` (or ``"moto-server"``): fake credentials, a fixed region, and no request
can reach AWS. The repository's data/ files are only ever read, then uploaded to a fresh moto bucket.
"""

import html
import importlib.util
import json
import os
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import boto3
import botocore.loaders
import botocore.session
import httpx
import pytest
import uvicorn
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from fastapi.testclient import TestClient

from helpers import aws

ROOT = Path(__file__).resolve().parent.parent
LAB2_MAIN = ROOT / "notebooks" / "labs" / "lab2" / "main.py"
REPO_DATA = ROOT / "data"
DATA_FILES = ("users.json", "movie_data.json")
BUCKET = "course-data"
PREFIX = "lab2/"
SECRET_MARKER = "do-not-serve-this-0c1f"
SECRET = json.dumps({"secret": SECRET_MARKER}).encode()
CLOSED_ENDPOINT = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused at once


def load_lab2(module_name: str = "lab2_main"):
    """Import main.py from its path (the lab is a plain folder, not a package)."""
    spec = importlib.util.spec_from_file_location(module_name, LAB2_MAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Imported with LAB2_BUCKET unset, whatever the environment says, so importing makes no boto3 client.
with mock.patch.dict(os.environ):
    os.environ.pop("LAB2_BUCKET", None)
    lab2 = load_lab2()


def repo_json(name: str) -> dict:
    return json.loads((REPO_DATA / name).read_text(encoding="utf-8"))


def upload_course_data(s3) -> None:
    s3.create_bucket(Bucket=BUCKET)
    for name in DATA_FILES:
        s3.put_object(Bucket=BUCKET, Key=PREFIX + name, Body=(REPO_DATA / name).read_bytes())
    s3.put_object(Bucket=BUCKET, Key="secret.json", Body=SECRET)  # outside the prefix: must never be served


# Speed only: aws.use() drops boto3's default session, so each test's first client would parse the S3 service
# model (a few MB of JSON) again, about 0.1 s a client. Fresh sessions share one loader (a cache of those files);
# credentials, region and endpoint are still read anew from the environment aws.use() set up.
_MODELS = botocore.loaders.create_loader()


def use_warm_default_session() -> None:
    core = botocore.session.get_session()
    core.register_component("data_loader", _MODELS)
    boto3.DEFAULT_SESSION = boto3.session.Session(botocore_session=core)  # aws.stop() sets it back to None


class RecordingS3:
    """Wraps a client and records every get_object call, to prove which keys the app asked S3 for."""

    def __init__(self, real) -> None:
        self.real = real
        self.calls: list[dict] = []

    def get_object(self, **kwargs):
        self.calls.append(kwargs)
        return self.real.get_object(**kwargs)


@pytest.fixture
def s3():
    """A moto bucket holding the course data under lab2/, and secret.json at the root."""
    with aws.use("moto"):
        use_warm_default_session()
        client = boto3.client("s3")
        upload_course_data(client)
        yield client


@pytest.fixture
def client(s3):
    """The app as students run it: create_app makes its own boto3 client (intercepted by moto)."""
    with TestClient(lab2.create_app(BUCKET)) as test_client:
        yield test_client


@pytest.fixture
def recorded(s3):
    """The app on a client that records its get_object calls."""
    recorder = RecordingS3(s3)
    with TestClient(lab2.create_app(BUCKET, s3=recorder)) as test_client:
        yield SimpleNamespace(client=test_client, calls=recorder.calls)


def page_text(response) -> str:
    assert response.headers["content-type"].startswith("text/html")
    return html.unescape(response.text)


def text_of(response) -> str:
    """The error message: the JSON detail for /api and /data, the page's text for the HTML pages."""
    if response.headers["content-type"].startswith("application/json"):
        return response.json()["detail"]
    return page_text(response)


PAGES = ("/", "/users", "/movies")
USER_ROUTES = ("/", "/users", "/api/users", "/api/users/1")
ALL_DATA_ROUTES = (*PAGES, "/api/users", "/api/users/1", "/api/movies")


# --- Every route, on good data. ---------------------------------------------------------------------------------


def test_index_greets_and_lists_the_users_and_names_the_source(client):
    response = client.get("/")
    assert response.status_code == 200
    text = page_text(response)
    assert "Hello World from FastAPI and S3!" in text
    assert "s3://course-data/lab2/users.json" in text
    for user in repo_json("users.json")["users"]:
        assert user["name"] in text


def test_users_page_is_a_table_of_every_user(client):
    text = page_text(client.get("/users"))
    assert "<table>" in text and "s3://course-data/lab2/" in text
    for user in repo_json("users.json")["users"]:
        assert user["name"] in text and user["email"] in text


def test_movies_page_shows_every_movie_most_popular_first(client):
    text = page_text(client.get("/movies"))
    movies = sorted(repo_json("movie_data.json")["results"], key=lambda movie: movie["popularity"], reverse=True)
    positions = [text.index(movie["title"]) for movie in movies]
    assert positions == sorted(positions)
    for movie in movies:
        assert movie["release_date"] in text and f"{movie['vote_average']:.1f} / 10" in text
        assert movie["overview"] in text


def test_api_users_and_one_user(client):
    users = repo_json("users.json")["users"]
    assert client.get("/api/users").json() == users
    response = client.get(f"/api/users/{users[2]['id']}")
    assert response.status_code == 200
    assert response.json() == users[2]


def test_an_unknown_user_is_a_404_naming_the_id(client):
    response = client.get("/api/users/42")
    assert response.status_code == 404
    assert response.json() == {"detail": "no user with id 42"}


def test_api_movies(client):
    movies = repo_json("movie_data.json")["results"]
    answer = client.get("/api/movies").json()
    assert [movie["title"] for movie in answer] == [movie["title"] for movie in movies]
    assert answer[0]["release_date"] == movies[0]["release_date"]


@pytest.mark.parametrize("name", DATA_FILES)
def test_data_returns_the_stored_document_byte_for_byte(recorded, name):
    response = recorded.client.get(f"/data/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == (REPO_DATA / name).read_bytes()
    assert recorded.calls == [{"Bucket": BUCKET, "Key": PREFIX + name}]


def test_data_reads_nested_names_under_the_prefix(s3, recorded):
    s3.put_object(Bucket=BUCKET, Key="lab2/archive/2024-users.v1.json", Body=b'{"users": []}')
    response = recorded.client.get("/data/archive/2024-users.v1.json")
    assert response.status_code == 200 and response.json() == {"users": []}


def test_an_upload_shows_up_without_a_restart(s3, client):
    user = {"id": 101, "name": "Grace Mbeki", "email": "grace.mbeki@example.edu", "role": "student"}
    s3.put_object(Bucket=BUCKET, Key="lab2/users.json", Body=json.dumps({"users": [user]}).encode())
    assert client.get("/api/users").json() == [user]


# --- Faults: each a clear message with the right status, never a traceback. ------------------------------------


@pytest.mark.parametrize("path", USER_ROUTES)
def test_a_missing_object_is_a_404_naming_the_key_and_bucket(s3, client, path):
    s3.delete_object(Bucket=BUCKET, Key="lab2/users.json")
    response = client.get(path)
    assert response.status_code == 404
    assert "no object lab2/users.json in bucket course-data" in text_of(response)
    assert "Traceback" not in response.text


def test_a_missing_object_under_data_is_a_404(client):
    response = client.get("/data/nothing-here.json")
    assert response.status_code == 404
    assert response.json() == {"detail": "no object lab2/nothing-here.json in bucket course-data"}


def test_a_missing_bucket_is_a_503_naming_it(s3):
    with TestClient(lab2.create_app("no-such-bucket")) as test_client:
        for path in (*ALL_DATA_ROUTES, "/data/users.json"):
            response = test_client.get(path)
            assert response.status_code == 503, path
            assert "bucket no-such-bucket does not exist" in text_of(response), path


@pytest.mark.parametrize("path", ["/api/users", "/users", "/data/users.json"])
def test_an_object_that_is_not_json_is_a_502_saying_where_and_why(s3, client, path):
    s3.put_object(Bucket=BUCKET, Key="lab2/users.json", Body=b'{"users": [\n  {"id": 1,\n]}')
    response = client.get(path)
    assert response.status_code == 502
    text = text_of(response)
    assert "the upstream store returned bad data: lab2/users.json in bucket course-data is not valid JSON" in text
    assert "line 3 column 1" in text


def test_an_object_that_is_not_utf8_is_a_502(s3, client):
    s3.put_object(Bucket=BUCKET, Key="lab2/movie_data.json", Body=b'{"results": ["\xff"]}')
    response = client.get("/api/movies")
    assert response.status_code == 502
    assert "lab2/movie_data.json in bucket course-data is not UTF-8 text" in response.json()["detail"]


WHERE = "lab2/users.json in bucket course-data"


@pytest.mark.parametrize(
    ("name", "content", "path", "message"),
    [
        ("users.json", {"people": []}, "/api/users", f'{WHERE} lacks the top-level key "users"'),
        ("users.json", [], "/", f'{WHERE} lacks the top-level key "users"'),
        ("users.json", {"users": {"id": 1}}, "/api/users/1", f'{WHERE} has "users", but it is not a list'),
        ("movie_data.json", {"movies": []}, "/movies",
         'lab2/movie_data.json in bucket course-data lacks the top-level key "results"'),
    ],
)
def test_a_wrong_top_level_shape_is_a_502(s3, client, name, content, path, message):
    s3.put_object(Bucket=BUCKET, Key=PREFIX + name, Body=json.dumps(content).encode())
    response = client.get(path)
    assert response.status_code == 502
    text = text_of(response)
    assert text.startswith("the upstream store returned bad data") or "Bad data from S3" in text
    assert message in text


def test_an_invalid_record_is_a_502_naming_the_record_and_field(s3, client):
    users = repo_json("users.json")["users"]
    users[1]["role"] = "dean"
    s3.put_object(Bucket=BUCKET, Key="lab2/users.json", Body=json.dumps({"users": users}).encode())
    response = client.get("/api/users")
    assert response.status_code == 502
    assert response.json()["detail"].startswith(
        "the upstream store returned bad data: lab2/users.json in bucket course-data has an invalid record: "
        "users[1].role: "
    )


def test_unreachable_s3_is_a_fast_503(s3):
    unreachable = boto3.client(
        "s3", endpoint_url=CLOSED_ENDPOINT, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing", config=lab2.S3_CONFIG,
    )
    started = time.monotonic()
    with TestClient(lab2.create_app(BUCKET, s3=unreachable)) as test_client:
        api = test_client.get("/api/users")
        page = test_client.get("/movies")
    assert time.monotonic() - started < 10
    assert api.status_code == 503 and page.status_code == 503
    assert api.json()["detail"].startswith("S3 is unreachable, so lab2/users.json could not be read from bucket "
                                           "course-data (Could not connect to the endpoint URL")
    assert "S3 is unreachable, so lab2/movie_data.json" in page_text(page)


def test_the_default_client_takes_its_endpoint_from_AWS_ENDPOINT_URL(s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", CLOSED_ENDPOINT)
    started = time.monotonic()
    with TestClient(lab2.create_app(BUCKET)) as test_client:
        response = test_client.get("/api/users")
    assert time.monotonic() - started < 10
    assert response.status_code == 503
    assert CLOSED_ENDPOINT in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/users", "/", "/data/users.json"])
def test_access_denied_is_a_502_saying_s3_refused(s3, path):
    stubbed = boto3.client("s3")
    with Stubber(stubbed) as stubber:
        stubber.add_client_error(
            "get_object", service_error_code="AccessDenied", service_message="Access Denied", http_status_code=403,
            expected_params={"Bucket": BUCKET, "Key": "lab2/users.json"},
        )
        with TestClient(lab2.create_app(BUCKET, s3=stubbed)) as test_client:
            response = test_client.get(path)
        stubber.assert_no_pending_responses()
    assert response.status_code == 502
    text = text_of(response)
    assert "S3 refused access to lab2/users.json in bucket course-data (AccessDenied: Access Denied)" in text
    assert "the app's credentials lack permission" in text


def test_any_403_counts_as_refused_access(s3):
    stubbed = boto3.client("s3")
    with Stubber(stubbed) as stubber:
        stubber.add_client_error("get_object", service_error_code="InvalidAccessKeyId", http_status_code=403)
        with TestClient(lab2.create_app(BUCKET, s3=stubbed)) as test_client:
            response = test_client.get("/api/movies")
    assert response.status_code == 502
    assert response.json()["detail"].startswith("S3 refused access to lab2/movie_data.json")


# --- /data/{name}: names that would leave the prefix. -----------------------------------------------------------


TRAVERSALS = [  # (URL as the test client sends it, the status it gets)
    ("/data/..%2Fsecret.json", 400),  # %2F is decoded after routing: the name is ../secret.json
    ("/data/%2e%2e/secret.json", 400),  # encoded dots are decoded too late for any normalisation
    ("/data/%2e%2e%2fsecret.json", 400),
    ("/data/.%2e/secret.json", 400),
    ("/data/a%2F..%2F..%2Fsecret.json", 400),
    ("/data/%2Fsecret.json", 400),  # a leading / (the key would be lab2//secret.json)
    ("/data//secret.json", 400),
    ("/data/..\\secret.json", 400),  # backslashes, raw and encoded
    ("/data/..%5Csecret.json", 400),
    ("/data/", 400),  # empty name
    ("/data/%00", 400),  # NUL
    ("/data/users.json%00", 400),
    ("/data/%252e%252e/secret.json", 400),  # double-encoded (TestClient even decodes it twice: ../secret.json)
    ("/data/.hidden.json", 400),
    ("/data/a/../../secret.json", 404),  # the HTTP client removes ../ before sending: /secret.json, no route
    ("/data/../secret.json", 404),
]


def test_a_name_that_would_leave_the_prefix_never_reaches_s3(recorded):
    for url, expected_status in TRAVERSALS:
        response = recorded.client.get(url)
        assert response.status_code == expected_status, (url, response.text)
        assert SECRET_MARKER not in response.text, url
        assert recorded.calls == [], url  # refused before get_object: S3 never heard of it
        if expected_status == 400:
            assert response.json()["detail"].startswith(("refused object name", "no object name given")), url
    assert recorded.client.get("/data/users.json").status_code == 200  # and the check is not refusing everything
    assert recorded.calls == [{"Bucket": BUCKET, "Key": "lab2/users.json"}]


def test_an_overlong_name_is_refused(recorded):
    response = recorded.client.get("/data/" + "a" * 300)
    assert response.status_code == 400
    assert response.json()["detail"] == "object name too long (300 characters, at most 200)"
    assert recorded.calls == []


@pytest.mark.parametrize(
    "name", ["../secret.json", "/secret.json", "a/../b.json", "./users.json", "a//b.json", "a\\b.json", "", "\x00",
             "users.json\n", "users json", "%2e%2e/secret.json"],
)
def test_checked_name_refuses_what_could_escape(name):
    with pytest.raises(lab2.HTTPException) as refused:
        lab2.checked_name(name)
    assert refused.value.status_code == 400


@pytest.mark.parametrize("name", ["users.json", "movie_data.json", "a/b/c.json", "2024-01.v2_final.json", "a..b"])
def test_checked_name_accepts_plain_names(name):
    assert lab2.checked_name(name) == name


# --- Settings and the module-level app. -------------------------------------------------------------------------


def test_settings_come_from_the_environment():
    assert lab2.Settings.from_env({}) == lab2.Settings(bucket=None, prefix="lab2/")
    assert lab2.Settings.from_env({"LAB2_BUCKET": " b ", "LAB2_PREFIX": "x/"}) == lab2.Settings("b", "x/")


def test_a_prefix_without_a_slash_is_a_folder(s3):
    with TestClient(lab2.create_app(BUCKET, prefix="lab2")) as test_client:
        assert test_client.get("/api/users").status_code == 200


@pytest.mark.parametrize("path", [*ALL_DATA_ROUTES, "/data/users.json", "/docs", "/anything"])
def test_without_LAB2_BUCKET_every_route_is_a_503_naming_the_variable(monkeypatch, path):
    monkeypatch.delenv("LAB2_BUCKET", raising=False)
    module = load_lab2("lab2_main_unset")
    with TestClient(module.app) as test_client:
        response = test_client.get(path)
    assert response.status_code == 503
    assert "LAB2_BUCKET is not set" in (response.json()["detail"] if path.startswith(("/api/", "/data/"))
                                        else page_text(response))


def test_the_module_level_app_reads_LAB2_BUCKET_and_LAB2_PREFIX(s3, monkeypatch):
    s3.put_object(Bucket=BUCKET, Key="other/users.json", Body=b'{"users": []}')
    monkeypatch.setenv("LAB2_BUCKET", BUCKET)
    monkeypatch.setenv("LAB2_PREFIX", "other/")
    module = load_lab2("lab2_main_configured")
    assert module.settings == module.Settings(BUCKET, "other/")
    with TestClient(module.app) as test_client:
        assert test_client.get("/api/users").json() == []


# --- End to end: moto's HTTP server, the app under uvicorn, real HTTP in between. -------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _raw_get(port: int, target: str) -> tuple[int, str]:
    """A GET sent byte for byte (HTTP clients remove ../ from URLs; an attacker's client need not)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, body = reply.decode("utf-8", "replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_end_to_end_over_http_with_moto_server():
    with aws.use("moto-server") as backend:
        use_warm_default_session()
        upload_course_data(boto3.client("s3"))  # reaches moto's server through AWS_ENDPOINT_URL
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(lab2.create_app(BUCKET), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, name="lab2-uvicorn", daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, f"uvicorn did not start on port {port}"
                time.sleep(0.01)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10) as http:
                home = http.get("/")
                users = http.get("/api/users")
            for target in ("/data/../secret.json", "/data/%2e%2e/secret.json", "/data/%252e%252e/secret.json"):
                code, body = _raw_get(port, target)
                assert code == 400 and SECRET_MARKER not in body, (target, code, body)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"
        log = backend.request_log()
    assert home.status_code == 200
    for user in repo_json("users.json")["users"]:
        assert user["name"] in html.unescape(home.text)
    assert users.json() == repo_json("users.json")["users"]
    assert "GET /course-data/lab2/users.json -> 200" in log
    assert not any("secret.json" in line and line.startswith("GET") for line in log)


def _user_with_policy(iam, name: str, statements: list[dict]):
    iam.create_user(UserName=name)
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.client("s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


def test_with_iam_enforced_a_read_only_identity_serves_everything_and_a_powerless_one_gets_502(s3):
    iam = boto3.client("iam")
    reader = _user_with_policy(iam, "lab2-app", [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/{PREFIX}*"}])
    nobody = _user_with_policy(iam, "nobody", [])
    aws.enforce_iam(True)
    with TestClient(lab2.create_app(BUCKET, s3=reader)) as app:
        assert [app.get(route).status_code for route in ALL_DATA_ROUTES] == [200] * len(ALL_DATA_ROUTES)
    with pytest.raises(ClientError, match="AccessDenied"):
        reader.put_object(Bucket=BUCKET, Key=PREFIX + "users.json", Body=b"{}")
    with TestClient(lab2.create_app(BUCKET, s3=nobody)) as app:
        refused = app.get("/api/users")
    assert refused.status_code == 502 and "S3 refused access to lab2/users.json" in refused.json()["detail"]
