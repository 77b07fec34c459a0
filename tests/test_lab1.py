"""Lab 1 (notebooks/labs/lab1/main.py): every page and API route, every error, atomic writes, concurrent writes.

Each test gets its own copy of the data files in ``tmp_path`` and an app built on it with ``create_app``, so the
repository's data/ folder is only ever read.
"""

from __future__ import annotations

import html
import importlib.util
import json
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
LAB1_MAIN = ROOT / "notebooks" / "labs" / "lab1" / "main.py"
REPO_DATA = ROOT / "data"
DATA_FILES = ("users.json", "movie_data.json")


def load_lab1(module_name: str = "lab1_main"):
    """Import main.py from its path (the lab is a plain folder, not a package)."""
    spec = importlib.util.spec_from_file_location(module_name, LAB1_MAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lab1 = load_lab1()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    for name in DATA_FILES:
        shutil.copy(REPO_DATA / name, tmp_path / name)
    return tmp_path


@pytest.fixture
def client(data_dir: Path):
    with TestClient(lab1.create_app(data_dir)) as test_client:
        yield test_client


def users_on_disk(data_dir: Path) -> list[dict]:
    return json.loads((data_dir / "users.json").read_text(encoding="utf-8"))["users"]


def movies_on_disk(data_dir: Path) -> list[dict]:
    return json.loads((data_dir / "movie_data.json").read_text(encoding="utf-8"))["results"]


def page_text(response: httpx.Response) -> str:
    """The HTML with entities decoded (Jinja2 escapes quotes and apostrophes)."""
    assert response.headers["content-type"].startswith("text/html")
    return html.unescape(response.text)


NEW_USER = {"id": 101, "name": "Grace Mbeki", "email": "grace.mbeki@example.edu", "role": "student"}


# --- The data files themselves. ---------------------------------------------------------------------------------


def test_repository_data_files_have_the_documented_shape():
    users = users_on_disk(REPO_DATA)
    assert len(users) >= 5
    assert all(set(user) == {"id", "name", "email", "role"} for user in users)
    assert {user["role"] for user in users} <= {"student", "ta", "instructor"}
    assert len({user["id"] for user in users}) == len(users)
    movies = movies_on_disk(REPO_DATA)
    assert len(movies) >= 5
    for movie in movies:
        assert {"id", "title", "overview", "release_date", "popularity", "vote_average"} <= set(movie)
        assert 0 <= movie["vote_average"] <= 10
        time.strptime(movie["release_date"], "%Y-%m-%d")


# --- HTML pages. ------------------------------------------------------------------------------------------------


def test_index_greets_and_lists_the_users(client, data_dir):
    response = client.get("/")
    assert response.status_code == 200
    text = page_text(response)
    assert "Hello World from FastAPI!" in text
    for user in users_on_disk(data_dir):
        assert user["name"] in text


def test_users_page_is_a_table_of_every_user(client, data_dir):
    response = client.get("/users")
    assert response.status_code == 200
    text = page_text(response)
    assert "<table>" in text
    for user in users_on_disk(data_dir):
        assert user["name"] in text and user["email"] in text


def test_movies_page_shows_title_release_date_rating_and_overview(client, data_dir):
    response = client.get("/movies")
    assert response.status_code == 200
    text = page_text(response)
    for movie in movies_on_disk(data_dir):
        assert movie["title"] in text
        assert movie["release_date"] in text
        assert f"{movie['vote_average']:.1f} / 10" in text
        assert movie["overview"] in text


def test_pages_show_edits_to_the_file_without_a_restart(client, data_dir):
    (data_dir / "users.json").write_text(json.dumps({"users": [NEW_USER]}), encoding="utf-8")
    assert NEW_USER["name"] in page_text(client.get("/users"))


def test_the_old_template_response_form_fails_on_this_starlette():
    # What the comment in main.py says: the template name lands in `request`, the dict in `name`.
    with pytest.raises(TypeError, match="unhashable type: 'dict'"):
        lab1.templates.TemplateResponse("index.html", {"request": None})


# --- JSON API: the happy paths. ---------------------------------------------------------------------------------


def test_list_and_get_return_what_the_file_holds(client, data_dir):
    users = users_on_disk(data_dir)
    assert client.get("/api/users").json() == users
    response = client.get(f"/api/users/{users[2]['id']}")
    assert response.status_code == 200
    assert response.json() == users[2]


def test_create_update_delete_round_trip_changes_the_file(client, data_dir):
    before = users_on_disk(data_dir)

    created = client.post("/api/users", json=NEW_USER)
    assert created.status_code == 201
    assert created.json() == NEW_USER
    assert users_on_disk(data_dir) == [*before, NEW_USER]
    assert client.get("/api/users/101").json() == NEW_USER

    changes = {"name": "Grace M. Mbeki", "email": "gmbeki@example.edu", "role": "ta"}
    updated = client.put("/api/users/101", json=changes)
    assert updated.status_code == 200
    assert updated.json() == {"id": 101, **changes}
    assert users_on_disk(data_dir) == [*before, {"id": 101, **changes}]

    deleted = client.delete("/api/users/101")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert users_on_disk(data_dir) == before
    assert client.get("/api/users/101").status_code == 404
    assert sorted(path.name for path in data_dir.iterdir()) == sorted(DATA_FILES)  # no temporary files left


def test_names_and_emails_are_stripped(client, data_dir):
    response = client.post("/api/users", json={**NEW_USER, "name": "  Grace Mbeki ", "email": " g@example.edu "})
    assert response.status_code == 201
    assert users_on_disk(data_dir)[-1] == {**NEW_USER, "email": "g@example.edu"}


# --- JSON API: errors. ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [("get", None), ("put", {"name": "Nobody", "email": "nobody@example.edu", "role": "student"}), ("delete", None)],
)
def test_unknown_id_is_a_404_naming_the_id(client, data_dir, method, body):
    before = (data_dir / "users.json").read_bytes()
    response = client.request(method.upper(), "/api/users/42", json=body)
    assert response.status_code == 404
    assert response.json() == {"detail": "no user with id 42"}
    assert (data_dir / "users.json").read_bytes() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "two words@example.edu"}, "email"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"role": "dean"}, "role"),
        ({"id": 0}, "id"),
        ({"id": "seven"}, "id"),
        ({"nickname": "G"}, "nickname"),  # unknown fields are refused, not silently dropped
    ],
)
def test_an_invalid_user_is_a_422_naming_the_field(client, data_dir, change, field):
    before = (data_dir / "users.json").read_bytes()
    response = client.post("/api/users", json={**NEW_USER, **change})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    assert (data_dir / "users.json").read_bytes() == before


def test_a_missing_field_is_a_422_naming_it(client):
    body = {key: value for key, value in NEW_USER.items() if key != "email"}
    response = client.post("/api/users", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "email"]
    assert response.json()["detail"][0]["type"] == "missing"


def test_put_takes_the_id_from_the_url_only(client, data_dir):
    before = (data_dir / "users.json").read_bytes()
    body = {"id": 1, "name": "Ada Okafor", "email": "ada@example.edu", "role": "instructor"}
    response = client.put("/api/users/1", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "id"]
    assert (data_dir / "users.json").read_bytes() == before


def test_put_validates_its_body_like_post(client, data_dir):
    before = (data_dir / "users.json").read_bytes()
    response = client.put("/api/users/1", json={"name": "Ada Okafor", "email": "ada at example", "role": "instructor"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "email"]
    assert "does not look like an email address" in response.json()["detail"][0]["msg"]
    assert (data_dir / "users.json").read_bytes() == before


def test_malformed_json_is_a_422_that_points_into_the_body(client, data_dir):
    before = (data_dir / "users.json").read_bytes()
    response = client.post("/api/users", content=b'{"id": 7, "name": ', headers={"content-type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid"
    assert error["loc"][0] == "body"  # followed by the character position where parsing failed
    assert "JSON decode error" in error["msg"]
    assert (data_dir / "users.json").read_bytes() == before


def test_a_duplicate_id_is_a_409_naming_the_id_and_the_file_is_unchanged(client, data_dir):
    before = (data_dir / "users.json").read_bytes()
    response = client.post("/api/users", json={**NEW_USER, "id": 3})
    assert response.status_code == 409
    assert response.json() == {"detail": "a user with id 3 already exists"}
    assert (data_dir / "users.json").read_bytes() == before


# --- Broken data files: a clear 500, an HTML page for pages, JSON for the API. ---------------------------------


def test_a_missing_users_file_is_a_500_page_and_a_500_json_naming_it(client, data_dir):
    (data_dir / "users.json").unlink()
    for path in ("/", "/users"):
        page = client.get(path)
        assert page.status_code == 500
        text = page_text(page)
        assert "users.json is missing" in text and "Traceback" not in text
    api = client.get("/api/users")
    assert api.status_code == 500
    assert api.json()["detail"] == f"users.json is missing (looked for {data_dir / 'users.json'})"


def test_a_corrupt_movie_file_is_a_500_page_naming_it_and_the_parse_error(client, data_dir):
    (data_dir / "movie_data.json").write_text('{"results": [\n  {"id": 1}\n  {"id": 2}\n]}', encoding="utf-8")
    response = client.get("/movies")
    assert response.status_code == 500
    assert "movie_data.json is not valid JSON: Expecting ',' delimiter: line 3 column 3" in page_text(response)


def test_a_corrupt_users_file_is_a_500_json_and_is_never_overwritten(client, data_dir):
    corrupt = b'{"users": [\n  {"id": 1,\n]}'
    (data_dir / "users.json").write_bytes(corrupt)
    for response in (client.get("/api/users"), client.post("/api/users", json=NEW_USER)):
        assert response.status_code == 500
        assert response.json()["detail"].startswith("users.json is not valid JSON: ")
    assert (data_dir / "users.json").read_bytes() == corrupt


@pytest.mark.parametrize(
    ("name", "content", "path", "message"),
    [
        ("users.json", {"people": []}, "/api/users", 'users.json lacks the top-level key "users"'),
        ("users.json", [], "/users", 'users.json lacks the top-level key "users"'),
        ("users.json", {"users": {"id": 1}}, "/api/users/1", 'users.json has "users", but it is not a list'),
        ("movie_data.json", {"movies": []}, "/movies", 'movie_data.json lacks the top-level key "results"'),
    ],
)
def test_a_wrong_top_level_shape_is_a_500_naming_the_file(client, data_dir, name, content, path, message):
    (data_dir / name).write_text(json.dumps(content), encoding="utf-8")
    response = client.get(path)
    assert response.status_code == 500
    text = response.json()["detail"] if path.startswith("/api/") else page_text(response)
    assert message in text


def test_an_invalid_record_in_the_file_is_a_500_naming_the_record_and_field(client, data_dir):
    users = users_on_disk(data_dir)
    users[1]["role"] = "dean"
    (data_dir / "users.json").write_text(json.dumps({"users": users}), encoding="utf-8")
    response = client.get("/api/users")
    assert response.status_code == 500
    assert response.json()["detail"].startswith("users.json has an invalid record: users[1].role: ")


# --- Failed writes keep the old file. ---------------------------------------------------------------------------


def _half_written_dump(data, handle, **kwargs):
    handle.write(json.dumps(data)[:20])
    raise OSError(28, "No space left on device")


def _refused_replace(source, destination):
    raise PermissionError(13, "Permission denied")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/users", NEW_USER),
        ("PUT", "/api/users/2", {"name": "Mateo L.", "email": "mateo@example.edu", "role": "ta"}),
        ("DELETE", "/api/users/2", None),
    ],
)
@pytest.mark.parametrize("failure", ["dump", "replace"])
def test_a_failed_write_is_a_clear_500_and_keeps_the_old_file(client, data_dir, monkeypatch, method, path, body,
                                                               failure):
    before = (data_dir / "users.json").read_bytes()
    if failure == "dump":
        monkeypatch.setattr(lab1.json, "dump", _half_written_dump)
    else:
        monkeypatch.setattr(lab1.os, "replace", _refused_replace)
    response = client.request(method, path, json=body)
    monkeypatch.undo()
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert detail.startswith("users.json could not be saved (")
    assert ("No space left on device" if failure == "dump" else "Permission denied") in detail
    assert (data_dir / "users.json").read_bytes() == before
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(DATA_FILES)  # the temporary file was removed


# --- Configuration. ---------------------------------------------------------------------------------------------


def test_the_module_level_app_reads_the_folder_named_by_LAB1_DATA_DIR(data_dir, monkeypatch):
    (data_dir / "users.json").write_text(json.dumps({"users": [NEW_USER]}), encoding="utf-8")
    monkeypatch.setenv("LAB1_DATA_DIR", str(data_dir))
    module = load_lab1("lab1_main_with_env")
    assert module.DATA_DIR == data_dir
    with TestClient(module.app) as test_client:
        assert test_client.get("/api/users").json() == [NEW_USER]


def test_without_LAB1_DATA_DIR_the_app_reads_the_repository_data_folder(monkeypatch):
    monkeypatch.delenv("LAB1_DATA_DIR", raising=False)
    assert load_lab1("lab1_main_default").DATA_DIR == REPO_DATA


# --- A real server: concurrent writes lose nothing. -------------------------------------------------------------


@pytest.fixture
def live_server(data_dir: Path):
    """The app served by uvicorn in a background thread, on 127.0.0.1 at a free port; stopped afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(lab1.create_app(data_dir), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="lab1-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive(), "uvicorn did not stop"


def test_forty_concurrent_creates_against_a_real_server_all_land_in_the_file(live_server, data_dir):
    before = users_on_disk(data_dir)
    new_users = [{**NEW_USER, "id": 1000 + n, "email": f"user{n}@example.edu"} for n in range(40)]
    with httpx.Client(base_url=live_server, trust_env=False, timeout=10) as http:  # trust_env: ignore any proxy
        with ThreadPoolExecutor(max_workers=40) as pool:
            statuses = list(pool.map(lambda user: http.post("/api/users", json=user).status_code, new_users))
        assert statuses == [201] * 40
        assert len(http.get("/api/users").json()) == len(before) + 40
    on_disk = users_on_disk(data_dir)
    assert on_disk[: len(before)] == before
    assert sorted(on_disk[len(before):], key=lambda user: user["id"]) == new_users
