"""Lab 2: the Lab 1 app, read-only, with its data in S3 instead of on disk, read through boto3.

Run it from the repository root, against moto's server or real AWS (the code is the same for both)::

    LAB2_BUCKET=course-data AWS_ENDPOINT_URL=http://127.0.0.1:PORT \\
        uvicorn main:app --app-dir notebooks/labs/lab2 --host 127.0.0.1 --port 8001

then open http://127.0.0.1:8001/ (HTML pages) or http://127.0.0.1:8001/docs (the API, described by FastAPI).

Routes (all read-only)                                                          success  errors
    GET /                     HTML: a greeting and the users                    200      404 502 503
    GET /users                HTML: a table of users                            200      404 502 503
    GET /movies               HTML: the movies, most popular first              200      404 502 503
    GET /api/users            JSON: every user                                  200      404 502 503
    GET /api/users/{user_id}  JSON: one user (404 "no user with id 42")         200      404 422 502 503
    GET /api/movies           JSON: every movie                                 200      404 502 503
    GET /data/{name}          JSON: the document at prefix + name, as stored    200      400 404 502 503

Where the data is, from environment variables read once at import (``Settings.from_env``):

``LAB2_BUCKET``
    the bucket (required; without it the module-level ``app`` still starts, and answers every request with a 503
    that says so).
``LAB2_PREFIX``
    the "folder" in the bucket, ``lab2/`` by default: the app reads ``lab2/users.json`` (``{"users": [...]}``) and
    ``lab2/movie_data.json`` (``{"results": [...]}``). A trailing ``/`` is added if missing.

Which S3 to talk to is not the app's business: ``boto3.client("s3")`` takes the endpoint (``AWS_ENDPOINT_URL``),
the region (``AWS_DEFAULT_REGION``) and the credentials (the usual chain: environment, profile, instance role)
from boto3's own standard configuration, so the same code runs on moto or on real AWS unchanged.

What each fault becomes (never a 500 with a traceback; an HTML page for the pages, ``{"detail": ...}`` for
``/api`` and ``/data``):

=====================================================  ======  ===============================================
fault                                                  status  why that status
=====================================================  ======  ===============================================
the object is missing (``NoSuchKey``)                  404     what was asked for does not exist
the bucket is missing (``NoSuchBucket``)               503     the app is misconfigured: nothing will work
S3 cannot be reached (connection refused, timeouts)    503     temporarily unavailable; try again later
no credentials found                                   503     the app is misconfigured
S3 refuses access (``AccessDenied``, any HTTP 403)     502     the upstream said no: the app's identity lacks
                                                               permission (IAM policy, bucket policy)
the object is not JSON, lacks its top-level key, or    502     Bad Gateway: the upstream store returned bad
holds an invalid record                                        data
a name for ``/data/{name}`` that could leave the       400     the client's request is wrong; S3 is never
prefix                                                         called for it
LAB2_BUCKET not set                                    503     the app is not configured
=====================================================  ======  ===============================================

Design notes, the parts worth copying:

- ``create_app(bucket, prefix, s3)`` builds a fresh app; tests pass their own ``s3`` client (moto, a stub, one
  that records calls). Without one, the app makes ``boto3.client("s3", config=S3_CONFIG)``: short timeouts and
  two attempts, so an unreachable endpoint fails in seconds instead of hanging a request for minutes.
- One client per app, made once: boto3 clients are thread-safe, and the endpoints are plain ``def`` functions
  that FastAPI runs in a thread pool (boto3 blocks).
- Every request calls ``get_object`` again, so a new upload shows up without a restart (and every page view is a
  billed S3 request: a real app would cache).
- ``/data/{name}`` puts part of the URL into an S3 key, so the name is checked against a strict pattern first.
  S3 keys are plain strings (``lab2/../secret.json`` is a key of its own, not a path), but the HTTP layers
  between the app and the bucket (SDKs, proxies, S3-compatible servers) may normalise ``..`` in the request path,
  and an allow-list is easier to reason about than a list of tricks to refuse. IAM should also allow the app to
  read ``lab2/*`` only: two fences, so that one mistake is not a leak.
- On real AWS, a principal allowed ``s3:GetObject`` but not ``s3:ListBucket`` gets ``AccessDenied`` (403) for a
  key that does not exist, not ``NoSuchKey``: S3 will not tell it which keys exist. So with the lab's read-only
  policy a missing object shows up as the 502 "S3 refused access" message, and the message says so.
"""

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

# Paths are resolved from this file, not from the working directory, so the app works wherever uvicorn starts.
HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"

BUCKET_VARIABLE = "LAB2_BUCKET"
PREFIX_VARIABLE = "LAB2_PREFIX"
DEFAULT_PREFIX = "lab2/"
USERS_OBJECT = "users.json"  # {"users": [...]}
MOVIES_OBJECT = "movie_data.json"  # {"results": [...]}, the shape a movie API such as TMDB returns

# Fail fast: 2 s to connect, 5 s to wait for an answer, 2 attempts in all (the first try and one retry).
S3_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})

templates = Jinja2Templates(directory=TEMPLATES_DIR)
log = logging.getLogger(__name__)


# --- Settings. --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Where the data is. ``bucket`` is None when LAB2_BUCKET is not set."""

    bucket: str | None
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        bucket = environ.get(BUCKET_VARIABLE, "").strip() or None
        prefix = environ.get(PREFIX_VARIABLE, DEFAULT_PREFIX).strip()
        return cls(bucket=bucket, prefix=prefix)


def as_folder(prefix: str) -> str:
    """``lab2`` -> ``lab2/``: the prefix is a folder, so names cannot extend it (``lab2`` + ``-x`` = ``lab2-x``)."""
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


# --- Models: the same as Lab 1; pydantic checks every record read from S3 against them. -------------------------

EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _looks_like_email(value: str) -> str:
    if not EMAIL_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} does not look like an email address (expected something like name@example.org)")
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Email = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_looks_like_email)]
Role = Literal["student", "ta", "instructor"]


class User(BaseModel):
    """A user as stored in users.json and returned by the API."""

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
    release_date: date  # "YYYY-MM-DD" in the object
    popularity: float
    vote_average: float = Field(ge=0, le=10)


# --- What can go wrong when reading from S3: one exception class per answer. -----------------------------------


class S3DataError(Exception):
    """Reading the data from S3 failed. ``status_code`` is the HTTP answer; the message says what to do."""

    status_code = status.HTTP_502_BAD_GATEWAY
    title = "Problem reading the data from S3"


class ObjectMissing(S3DataError):
    status_code = status.HTTP_404_NOT_FOUND
    title = "Object not found"


class BucketMissing(S3DataError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "Bucket not found"


class S3Unavailable(S3DataError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "S3 is unavailable"


class AccessRefused(S3DataError):
    status_code = status.HTTP_502_BAD_GATEWAY
    title = "S3 refused access"


class BadData(S3DataError):
    status_code = status.HTTP_502_BAD_GATEWAY
    title = "Bad data from S3"

    def __init__(self, bucket: str, key: str, problem: str) -> None:
        super().__init__(f"the upstream store returned bad data: {key} in bucket {bucket} {problem}")


# The network failed before S3 could answer: refused, timed out, or cut off in the middle of an answer.
UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError,
               ResponseStreamingError)


def _client_error(exc: ClientError, bucket: str, key: str) -> S3DataError:
    """Turn S3's error answer into the exception (and so the HTTP status) that explains it."""
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    http_status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    said = f"{code}: {error.get('Message', '')}".rstrip(": ")
    if code == "NoSuchBucket":
        return BucketMissing(f"bucket {bucket} does not exist (check {BUCKET_VARIABLE} and the S3 endpoint and "
                             f"account the app uses)")
    if code == "NoSuchKey" or http_status == 404:
        return ObjectMissing(f"no object {key} in bucket {bucket}")
    if code == "AccessDenied" or http_status == 403:
        return AccessRefused(f"S3 refused access to {key} in bucket {bucket} ({said}): the app's credentials lack "
                             f"permission to read it (without s3:ListBucket, S3 also answers this way for a key "
                             f"that does not exist)")
    if (http_status is not None and http_status >= 500) or code in ("SlowDown", "ServiceUnavailable"):
        return S3Unavailable(f"S3 could not serve {key} from bucket {bucket} ({said}); try again later")
    return S3DataError(f"S3 answered an error for {key} in bucket {bucket} ({said})")


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    """The bytes stored at ``key`` in ``bucket``. Raises an S3DataError saying what went wrong."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
        return response["Body"].read()
    except ClientError as exc:  # S3 answered, with an error
        raise _client_error(exc, bucket, key) from exc
    except UNREACHABLE as exc:  # S3 did not answer
        raise S3Unavailable(f"S3 is unreachable, so {key} could not be read from bucket {bucket} ({exc}); check "
                            f"the endpoint (AWS_ENDPOINT_URL) and the network, or try again later") from exc
    except NoCredentialsError as exc:
        raise S3Unavailable(f"no AWS credentials found to read {key} from bucket {bucket}: set AWS_ACCESS_KEY_ID "
                            f"and AWS_SECRET_ACCESS_KEY, a profile, or run with an IAM role") from exc
    except BotoCoreError as exc:  # anything else the SDK raises: still a clear message, not a traceback
        raise S3DataError(f"reading {key} from bucket {bucket} failed: {exc}") from exc


def parse_json(body: bytes, bucket: str, key: str) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise BadData(bucket, key, f"is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise BadData(bucket, key, f"is not valid JSON: {exc.msg}: line {exc.lineno} column {exc.colno}") from exc


def read_records(s3: Any, bucket: str, key: str, top: str) -> list[Any]:
    """The list stored under the top-level key ``top`` of the JSON object at ``key``."""
    data = parse_json(read_object(s3, bucket, key), bucket, key)
    expected = f'(it should look like {{"{top}": [...]}})'
    if not isinstance(data, dict) or top not in data:
        raise BadData(bucket, key, f'lacks the top-level key "{top}" {expected}')
    if not isinstance(data[top], list):
        raise BadData(bucket, key, f'has "{top}", but it is not a list {expected}')
    return data[top]


def read_typed(s3: Any, bucket: str, key: str, top: str, model: type[BaseModel]) -> list[Any]:
    """Like read_records, but each record is validated and turned into ``model``."""
    records = read_records(s3, bucket, key, top)
    try:
        return TypeAdapter(list[model]).validate_python(records)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = f"{top}[{first['loc'][0]}]" + "".join(f".{part}" for part in first["loc"][1:])
        raise BadData(bucket, key, f"has an invalid record: {where}: {first['msg']}") from exc


# --- Names for /data/{name}: an allow-list, checked before any S3 call. ----------------------------------------

# Parts of letters, digits, '.', '_' and '-', each starting with a letter or digit, joined by single '/'.
# So no leading '/', no '//', no '.' or '..' part, no backslash, no NUL, no spaces, no empty name.
DATA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
MAX_NAME_LENGTH = 200


def checked_name(name: str) -> str:
    """``name`` if it is safe to append to the prefix; otherwise a 400 (and S3 is never asked)."""
    rule = ("names are parts of letters, digits, '.', '_' and '-', each starting with a letter or digit, "
            "joined by '/', e.g. users.json")
    if not name:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"no object name given: {rule}")
    if len(name) > MAX_NAME_LENGTH:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            detail=f"object name too long ({len(name)} characters, at most {MAX_NAME_LENGTH})")
    if not DATA_NAME.fullmatch(name) or ".." in name.split("/"):  # the second test is implied; kept as a fence
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"refused object name {name!r}: {rule}")
    return name


# --- The app. ---------------------------------------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/data/"))


def _error_response(request: Request, status_code: int, title: str, message: str, source: str | None) -> Response:
    """``{"detail": message}`` for /api and /data, the error page for the HTML pages."""
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status_code)
    context = {"title": title, "message": message, "source": source}
    return templates.TemplateResponse(request, "error.html", context, status_code=status_code)


def create_app(bucket: str, prefix: str = DEFAULT_PREFIX, s3: Any = None) -> FastAPI:
    """Build the app around the objects under ``prefix`` in ``bucket`` (tests pass their own ``s3`` client)."""
    if not bucket:
        raise ValueError(f"create_app needs a bucket name (the module-level app takes it from {BUCKET_VARIABLE})")
    prefix = as_folder(prefix)
    if s3 is None:
        # Endpoint, region and credentials come from boto3's standard configuration (AWS_ENDPOINT_URL, ...).
        s3 = boto3.client("s3", config=S3_CONFIG)
    source = f"s3://{bucket}/{prefix}"
    users_key = prefix + USERS_OBJECT
    movies_key = prefix + MOVIES_OBJECT

    app = FastAPI(title="Lab 2: users and movies from S3", description=f"Read-only pages and API over {source}.")

    @app.exception_handler(S3DataError)
    def s3_data_error(request: Request, exc: S3DataError) -> Response:
        log.warning("%s %s failed (%s): %s", request.method, request.url.path, exc.status_code, exc)
        return _error_response(request, exc.status_code, exc.title, str(exc), source)

    def read_users() -> list[User]:
        return read_typed(s3, bucket, users_key, "users", User)

    def read_movies() -> list[Movie]:
        return read_typed(s3, bucket, movies_key, "results", Movie)

    def page(request: Request, name: str, context: dict[str, Any]) -> Response:
        return templates.TemplateResponse(request, name, {"source": source, **context})

    # HTML pages ----------------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, tags=["pages"])
    def index(request: Request) -> Response:
        """The home page: a greeting and the users."""
        return page(request, "index.html", {"message": "Hello World from FastAPI and S3!", "users": read_users()})

    @app.get("/users", response_class=HTMLResponse, tags=["pages"])
    def users_page(request: Request) -> Response:
        """A table of all users."""
        return page(request, "users.html", {"users": read_users()})

    @app.get("/movies", response_class=HTMLResponse, tags=["pages"])
    def movies_page(request: Request) -> Response:
        """The movies, most popular first."""
        movies = sorted(read_movies(), key=lambda movie: movie.popularity, reverse=True)
        return page(request, "movies.html", {"movies": movies})

    # JSON API ------------------------------------------------------------------------------------------------

    @app.get("/api/users", tags=["users"])
    def list_users() -> list[User]:
        return read_users()

    @app.get("/api/users/{user_id}", tags=["users"])
    def get_user(user_id: int) -> User:
        for user in read_users():
            if user.id == user_id:
                return user
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no user with id {user_id}")

    @app.get("/api/movies", tags=["movies"])
    def list_movies() -> list[Movie]:
        return read_movies()

    @app.get("/data/{name:path}", tags=["data"])
    def raw_object(name: str) -> Response:
        """The JSON document stored at prefix + name, byte for byte (after checking that it is JSON)."""
        key = prefix + checked_name(name)  # a 400 here means get_object is never called
        body = read_object(s3, bucket, key)
        parse_json(body, bucket, key)  # not JSON: a 502, as for the other routes
        return Response(body, media_type="application/json")

    return app


def create_unconfigured_app(problem: str) -> FastAPI:
    """An app that answers every request with a 503 explaining ``problem`` (for a missing LAB2_BUCKET)."""
    app = FastAPI(title="Lab 2 (not configured)", description=problem, docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.api_route("/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                   include_in_schema=False)
    def not_configured(request: Request, path: str) -> Response:
        return _error_response(request, status.HTTP_503_SERVICE_UNAVAILABLE, "Lab 2 is not configured", problem,
                               None)

    return app


settings = Settings.from_env()
if settings.bucket:
    app = create_app(settings.bucket, settings.prefix)
else:
    app = create_unconfigured_app(
        f"{BUCKET_VARIABLE} is not set: start the app with {BUCKET_VARIABLE}=<bucket> (and optionally "
        f"{PREFIX_VARIABLE}, default {DEFAULT_PREFIX}) in its environment, e.g. {BUCKET_VARIABLE}=course-data "
        f"uvicorn main:app --app-dir notebooks/labs/lab2"
    )
