"""Lab 1: a small FastAPI app with Jinja2 templates and a JSON API, backed by two JSON files.

Run it from the repository root::

    uvicorn main:app --app-dir notebooks/labs/lab1 --host 127.0.0.1 --port 8000

then open http://127.0.0.1:8000/ (HTML pages) or http://127.0.0.1:8000/docs (the API, described by FastAPI).

Routes
    GET    /                     HTML: a greeting and the list of users
    GET    /users                HTML: a table of users
    GET    /movies               HTML: the movies in movie_data.json
    GET    /api/users            JSON: every user
    GET    /api/users/{user_id}  JSON: one user, or 404
    POST   /api/users            JSON: create a user (body: a full user, id included) -> 201, or 409 if the id is taken
    PUT    /api/users/{user_id}  JSON: replace a user (body: name, email, role; the id comes from the URL) -> 200
    DELETE /api/users/{user_id}  JSON: delete a user -> 204

The data lives in ``users.json`` (``{"users": [...]}``) and ``movie_data.json`` (``{"results": [...]}``), in the
folder named by the environment variable ``LAB1_DATA_DIR``, or else the repository's ``data/`` folder.

Design notes, the parts worth copying:

- ``create_app(data_dir)`` builds a fresh app for a given folder, so tests can point it at a temporary copy.
- Every request re-reads the file, so edits to the JSON show up without a restart (fine for a lab, slow at scale).
- A change is a read-modify-write of the whole file. It is done under a lock, or two concurrent requests could
  both read the old list and the second write would silently drop the first one's change. The endpoints are
  plain ``def`` functions, which FastAPI runs in a thread pool, so concurrent requests really are concurrent.
- A write goes to a temporary file in the same folder, which then replaces the old file with ``os.replace``
  (atomic on one file system): a reader sees the old file or the new one, never half of one, and a failed write
  leaves the old file as it was.
- A broken data file raises ``DataFileError``; one exception handler turns it into a clear HTTP 500 (an HTML page
  for the pages, ``{"detail": ...}`` for the API) instead of a traceback.

The lock only serializes requests within one process: with ``uvicorn --workers 4`` you would need a real
database (or at least a file lock).
"""

import json
import logging
import os
import re
import threading
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

# Paths are resolved from this file, not from the working directory, so the app works wherever uvicorn starts.
HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
# In the repository: lab1 -> labs -> notebooks -> repository root. Copied elsewhere (a container image, say),
# the folder may have fewer parents: then data/ beside the app, unless LAB1_DATA_DIR says otherwise.
REPO_DATA_DIR = HERE.parents[2] / "data" if len(HERE.parents) > 2 else HERE / "data"
DATA_DIR = Path(os.environ["LAB1_DATA_DIR"]) if os.environ.get("LAB1_DATA_DIR") else REPO_DATA_DIR

USERS_FILE = "users.json"  # {"users": [...]}
MOVIES_FILE = "movie_data.json"  # {"results": [...]}, the shape a movie API such as TMDB returns

templates = Jinja2Templates(directory=TEMPLATES_DIR)
log = logging.getLogger(__name__)


# --- Models: pydantic checks every request body (and every record read from disk) against these. ---------------

# Deliberately simple: something@something.something, no spaces. (Real validation: the email-validator package.)
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _looks_like_email(value: str) -> str:
    if not EMAIL_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} does not look like an email address (expected something like name@example.org)")
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]  # "  " is stripped, then too short
Email = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_looks_like_email)]
Role = Literal["student", "ta", "instructor"]


class UserFields(BaseModel):
    """The body of PUT /api/users/{user_id}: everything but the id, which the URL already gives."""

    model_config = ConfigDict(extra="forbid")  # an unknown field (a typo, or an "id") is a 422, not silently dropped

    name: Name
    email: Email
    role: Role


class User(BaseModel):
    """A user as stored in users.json, returned by the API, and sent to POST /api/users."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(gt=0)
    name: Name
    email: Email
    role: Role


class Movie(BaseModel):
    """One record of movie_data.json. A real movie API sends more fields; the ones not named here are ignored."""

    id: int
    title: str
    overview: str = ""
    release_date: date  # "YYYY-MM-DD" in the file
    popularity: float
    vote_average: float = Field(ge=0, le=10)


# --- Reading and writing the data files. ------------------------------------------------------------------------


class DataFileError(Exception):
    """A data file is missing, unreadable, not the JSON we expect, or could not be saved."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path.name} {problem}")
        self.path = path


def read_records(path: Path, key: str) -> list[Any]:
    """Return the list stored under the top-level ``key`` of the JSON file at ``path``.

    Raises DataFileError, whose message names the file and says what is wrong with it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileError(path, f"is missing (looked for {path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(path, f"could not be read: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(path, f"is not valid JSON: {exc.msg}: line {exc.lineno} column {exc.colno}") from exc
    expected = f'(it should look like {{"{key}": [...]}})'
    if not isinstance(data, dict) or key not in data:
        raise DataFileError(path, f'lacks the top-level key "{key}" {expected}')
    if not isinstance(data[key], list):
        raise DataFileError(path, f'has "{key}", but it is not a list {expected}')
    return data[key]


def read_typed(path: Path, key: str, model: type[BaseModel]) -> list[Any]:
    """Like read_records, but each record is validated and turned into ``model``."""
    records = read_records(path, key)
    try:
        return TypeAdapter(list[model]).validate_python(records)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = f"{key}[{first['loc'][0]}]" + "".join(f".{part}" for part in first["loc"][1:])
        raise DataFileError(path, f"has an invalid record: {where}: {first['msg']}") from exc


def write_records(path: Path, key: str, records: list[Any]) -> None:
    """Replace the file at ``path`` with ``{key: records}``, atomically.

    The new content goes to a temporary file in the same folder (``os.replace`` is only atomic within one file
    system), which then takes the old file's place in one step. If anything fails on the way, the old file is
    untouched and the temporary file is removed.
    """
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as handle:
            json.dump({key: records}, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the rename makes it the real file
        os.replace(temporary, path)
    except OSError as exc:
        raise DataFileError(path, f"could not be saved ({exc}); the previous version was kept") from exc
    finally:
        temporary.unlink(missing_ok=True)  # after a successful os.replace there is nothing left to remove


def read_users(path: Path) -> list[User]:
    return read_typed(path, "users", User)


def write_users(path: Path, users: list[User]) -> None:
    write_records(path, "users", [user.model_dump() for user in users])


def position_of(users: list[User], user_id: int) -> int:
    """Index of the user with ``user_id`` in ``users``; a 404 if there is none."""
    for index, user in enumerate(users):
        if user.id == user_id:
            return index
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no user with id {user_id}")


# --- The app. ---------------------------------------------------------------------------------------------------


def create_app(data_dir: Path) -> FastAPI:
    """Build the app around the data files in ``data_dir`` (tests pass a temporary copy)."""
    users_file = Path(data_dir) / USERS_FILE
    movies_file = Path(data_dir) / MOVIES_FILE
    write_lock = threading.Lock()  # one per app: held around every read-modify-write of users.json

    app = FastAPI(title="Lab 1: users and movies", description="HTML pages and a JSON API over two JSON files.")

    @app.exception_handler(DataFileError)
    def data_file_error(request: Request, exc: DataFileError) -> Response:
        """A broken data file is the server's problem: 500, with a message that says which file and why."""
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)
        context = {"title": "Data file problem", "message": str(exc)}
        return templates.TemplateResponse(request, "error.html", context, status_code=500)

    # HTML pages ----------------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, tags=["pages"])
    def index(request: Request) -> Response:
        """The home page: a greeting and the users."""
        context = {"message": "Hello World from FastAPI!", "users": read_users(users_file)}
        # Current Starlette wants the request as the first argument. The older form that older course material
        # shows, TemplateResponse("index.html", {"request": request, ...}), fails on Starlette 1.x: "index.html"
        # is taken as the request and the dict as the template name, and Jinja2 raises
        # "TypeError: unhashable type: 'dict'" while looking the template up, so the page is a 500.
        return templates.TemplateResponse(request, "index.html", context)

    @app.get("/users", response_class=HTMLResponse, tags=["pages"])
    def users_page(request: Request) -> Response:
        """A table of all users."""
        return templates.TemplateResponse(request, "users.html", {"users": read_users(users_file)})

    @app.get("/movies", response_class=HTMLResponse, tags=["pages"])
    def movies_page(request: Request) -> Response:
        """The movies in movie_data.json, most popular first."""
        movies = sorted(read_typed(movies_file, "results", Movie), key=lambda movie: movie.popularity, reverse=True)
        return templates.TemplateResponse(request, "movies.html", {"movies": movies})

    # JSON API ------------------------------------------------------------------------------------------------
    # Reads need no lock: os.replace means a reader always sees a complete file, old or new.

    @app.get("/api/users", tags=["users"])
    def list_users() -> list[User]:
        return read_users(users_file)

    @app.get("/api/users/{user_id}", tags=["users"])
    def get_user(user_id: int) -> User:
        users = read_users(users_file)
        return users[position_of(users, user_id)]

    @app.post("/api/users", status_code=status.HTTP_201_CREATED, tags=["users"])
    def create_user(user: User) -> User:
        """Add a user. The body is a full user, id included; an id that is already taken is a 409 Conflict."""
        with write_lock:
            users = read_users(users_file)
            if any(existing.id == user.id for existing in users):
                raise HTTPException(status.HTTP_409_CONFLICT, detail=f"a user with id {user.id} already exists")
            users.append(user)
            write_users(users_file, users)
        return user

    @app.put("/api/users/{user_id}", tags=["users"])
    def replace_user(user_id: int, fields: UserFields) -> User:
        """Replace a user's name, email and role. The body has no id: the URL names the user."""
        with write_lock:
            users = read_users(users_file)
            index = position_of(users, user_id)
            users[index] = User(id=user_id, **fields.model_dump())
            write_users(users_file, users)
        return users[index]

    @app.delete("/api/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["users"])
    def delete_user(user_id: int) -> Response:
        """Delete a user. 204 No Content: success, and no body (not even JSON null)."""
        with write_lock:
            users = read_users(users_file)
            del users[position_of(users, user_id)]
            write_users(users_file, users)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return app


app = create_app(DATA_DIR)
