"""Limits and defaults that protect the server: body sizes (in constant memory), malformed bodies, failed-login
rates, the secret key, and the security headers on every kind of response."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select, update

from app.auth import service as auth
from app.auth.deps import SESSION_COOKIE
from app.auth.service import create_api_token, start_session
from app.config import DEV_SECRET, Settings
from app.db import Database
from app.kit.errors import TooManyRequests
from app.main import create_app
from app.models import AuthSession, Item, LoginFailure, Project, User, utcnow
from app.web.middleware import SECURITY_HEADERS
from tests.conftest import csrf_from, login
from tests.factories import make_project, make_user

MB = 1024 * 1024


@pytest.fixture
def admin(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        root = make_user(s, "root", role="admin")
        make_project(s, "a", k=2, members=[root])
        _, token = create_api_token(s, user=root, scope="api", settings=settings)
        cookie = start_session(s, user=root, settings=settings)
        csrf = s.scalar(select(AuthSession.csrf_token))
    return {"id": root.id, "token": token, "cookie": cookie, "csrf": csrf}


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _assert_security_headers(headers: Any, what: str) -> None:
    for key, value in SECURITY_HEADERS.items():
        assert headers.get(key) == value, f"{what}: {key} is {headers.get(key)!r}"


# --- body sizes ----------------------------------------------------------------------------------------------


def test_a_50_mb_form_post_is_refused(client: TestClient, admin: dict[str, Any], db: Database) -> None:
    # Fifty fields of 1 MB: each is under Starlette's per-field limit, so without a form limit all of it would be
    # parsed into memory before any route could say no.
    fields = [("csrf_token", admin["csrf"]), *((f"f{i}", "x" * (MB - 100)) for i in range(50))]
    body = urlencode(fields).encode()
    assert len(body) > 49 * MB
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for path, cookie in (("/login", None), ("/admin/users", admin["cookie"])):
        client.cookies.clear()
        if cookie:
            client.cookies.set(SESSION_COOKIE, cookie)
        r = client.post(path, content=body, headers=form)  # with a Content-Length
        assert r.status_code == 413, (path, r.status_code)
        assert "too large" in r.json()["detail"]
        _assert_security_headers(r.headers, "413")
        chunks = (body[i : i + MB] for i in range(0, len(body), MB))
        chunked = client.post(path, content=chunks, headers=form)  # none: refused while streaming
        assert chunked.status_code == 413, (path, chunked.status_code)
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(User)) == 1


def test_one_oversized_form_field_is_a_413(client: TestClient, admin: dict[str, Any]) -> None:
    """A single field over the per-field limit (1 MB), below the form limit: refused as too large, not as a
    malformed body — url-encoded and multipart alike."""
    client.cookies.set(SESSION_COOKIE, admin["cookie"])
    big = "x" * (5 * MB)
    encoded = client.post(
        "/admin/users",
        content=urlencode({"csrf_token": admin["csrf"], "username": big}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    multipart = client.post(
        "/admin/users",
        data={"csrf_token": admin["csrf"]},
        files={"username": (None, big)},
        headers={"Accept": "application/json"},
    )
    for r in (encoded, multipart):
        assert r.status_code == 413, r.text[:200]
        assert "too large" in r.json()["detail"]
        _assert_security_headers(r.headers, "413")


def test_the_form_limit_still_takes_the_longest_real_form(
    client: TestClient, admin: dict[str, Any], db: Database
) -> None:
    """Control: a project's guidelines at their maximum (100,000 characters, CJK: 900 KB url-encoded) pass."""
    client.cookies.set(SESSION_COOKIE, admin["cookie"])
    guidelines = "界" * 100_000
    form = {
        "csrf_token": admin["csrf"],
        "name": "A",
        "guidelines": guidelines,
        "dimension-0-key": "helpful",
        "dimension-0-label": "Helpful",
        "dimension-0-description": "Answers the request fully.",
        "k": "2",
        "overlap": "3",
        "lease_minutes": "30",
    }
    r = client.post("/projects/a/edit", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    with db.session(write=False) as s:
        assert s.scalar(select(Project.guidelines).where(Project.slug == "a")) == guidelines


class _Upload:
    """Drive the ASGI app with a request body made lazily, chunk by chunk; record what it read and the RSS."""

    def __init__(self, app: FastAPI, *, path: str, headers: dict[str, str], chunks: Iterator[bytes], cap: int) -> None:
        self.app, self.path, self.chunks, self.cap = app, path, chunks, cap
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.consumed = 0
        self.status = 0
        self.response_headers: dict[str, str] = {}
        self.body = b""
        self.rss_before = self.rss_peak = 0

    async def _receive(self) -> dict[str, Any]:
        if self.consumed >= self.cap:  # a server that keeps reading: stop feeding it (the test then fails)
            return {"type": "http.disconnect"}
        chunk = next(self.chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.consumed += len(chunk)
        self.rss_peak = max(self.rss_peak, _rss_bytes())
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def run(self) -> _Upload:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), *self.headers],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.rss_before = self.rss_peak = _rss_bytes()
        asyncio.run(self.app(scope, self._receive, self._send))  # type: ignore[arg-type]
        self.rss_peak = max(self.rss_peak, _rss_bytes())
        return self


def _jsonl_chunks(total: int, *, first: bytes = b"") -> Iterator[bytes]:
    """``total`` bytes of JSONL in 1 MB chunks; the same chunk object every time, so the test itself holds ~1 MB."""
    line = b'{"prompt": "' + b"p" * 1000 + b'"}\n'
    chunk = line * (MB // len(line))
    if first:
        yield first
    for _ in range(total // len(chunk)):
        yield chunk


@pytest.mark.parametrize("route", ["api-jsonl", "page-multipart", "api-json"])
def test_a_2_gb_import_is_refused_in_constant_memory(
    app: FastAPI, admin: dict[str, Any], settings: Settings, db: Database, route: str
) -> None:
    limit = settings.max_upload_mb * MB
    two_gb = 2 * 1024 * MB
    if route == "api-jsonl":
        path, first = "/api/v1/projects/a/import", b""
        headers = {"Authorization": f"Bearer {admin['token']}", "Content-Type": "application/x-ndjson"}
    elif route == "api-json":  # not an upload: FastAPI reads it whole, so the far smaller limit applies
        path, first, limit = "/api/v1/projects", b'{"name": "', settings.max_body_mb * MB
        headers = {"Authorization": f"Bearer {admin['token']}", "Content-Type": "application/json"}
    else:
        path = "/projects/a/import"
        first = (
            b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
            b"Content-Type: application/x-ndjson\r\n\r\n"
        )
        headers = {
            "Cookie": f"{SESSION_COOKIE}={admin['cookie']}",
            "X-CSRF-Token": admin["csrf"],
            "Content-Type": "multipart/form-data; boundary=BOUNDARY",
        }
    # Streamed without a Content-Length (chunked): the limit must hold while reading.
    upload = _Upload(app, path=path, headers=headers, chunks=_jsonl_chunks(two_gb, first=first), cap=limit + 64 * MB)
    upload.run()
    assert upload.status == 413, upload.body[:300]
    assert "too large" in json.loads(upload.body)["detail"]
    assert upload.consumed <= limit + MB + len(first), "the server read on past the limit"
    growth = upload.rss_peak - upload.rss_before
    assert growth < 64 * MB, f"memory grew by {growth / MB:.0f} MB while reading {upload.consumed / MB:.0f} MB"
    # Declared up front: refused before a byte of the body is read.
    declared = _Upload(
        app,
        path=path,
        headers={**headers, "Content-Length": str(two_gb)},
        chunks=_jsonl_chunks(two_gb, first=first),
        cap=64 * MB,
    ).run()
    assert declared.status == 413 and declared.consumed == 0
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 0
        assert s.scalar(select(func.count()).select_from(Project)) == 1


# --- malformed bodies ----------------------------------------------------------------------------------------


def test_malformed_json_bodies_get_a_json_4xx_on_every_api_route(
    app: FastAPI, client: TestClient, admin: dict[str, Any]
) -> None:
    h = {"Authorization": f"Bearer {admin['token']}", "Content-Type": "application/json"}
    operations = [
        (method.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        for method, op in ops.items()
        if "application/json" in (op.get("requestBody") or {}).get("content", {})
    ]
    assert len(operations) >= 15
    wrong = []
    for method, template in operations:
        path = template.replace("{project}", "a")
        path = "/".join("1" if part.endswith("_id}") else part for part in path.split("/"))
        for body in (b'{"name": "unfinished', b"\xff\xfe not utf-8", b"[1, 2, 3]", b"", b"null"):
            r = client.request(method, path, content=body, headers=h)
            ok = 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/json")
            if not ok or "detail" not in r.json():
                wrong.append(f"{method} {template} {body[:12]!r}: {r.status_code} {r.text[:100]}")
    assert not wrong, "\n".join(wrong)


def test_malformed_jsonl_and_csv_imports_name_their_lines(
    client: TestClient, admin: dict[str, Any], db: Database
) -> None:
    """(tests/items covers the importer's rules; this is the raw-body API and lines that are not text.)"""
    h = {"Authorization": f"Bearer {admin['token']}"}
    jsonl = b'{"prompt": "fine"}\n\xff\xfe\x00garbage\n{"prompt": "fine too"}\n{"prompt": \n'
    r = client.post("/api/v1/projects/a/import", content=jsonl, headers={**h, "Content-Type": "application/x-ndjson"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
    errors = r.json()["detail"]["errors"]
    assert [e["line"] for e in errors] == [2, 4]
    assert "UTF-8" in errors[0]["message"] and "bad JSON" in errors[1]["message"]
    csv_body = b'id,prompt,meta\n1,fine,\n2,"broken meta","{not json"\n3,fine again,\n4,"nul \x00 here",\n'
    r = client.post("/api/v1/projects/a/import", content=csv_body, headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
    lines = {e["line"]: e["message"] for e in r.json()["detail"]["errors"]}
    assert 3 in lines and "JSON" in lines[3]
    assert 5 in lines or 4 in lines  # the NUL: csv reports it at the line it stopped on
    assert r.json()["detail"]["message"].endswith("nothing was imported")
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 0


# --- failed logins -------------------------------------------------------------------------------------------


def test_the_account_limit_holds_across_ip_addresses(db: Database, settings: Settings) -> None:
    """(tests/auth covers one client's IP; an attacker who rotates addresses is still stopped per account.)"""
    with db.session() as s:
        make_user(s, "ann")
    for i in range(settings.login_max_failures_per_account):
        with db.session() as s:
            assert (
                auth.authenticate(s, username="ann", password="wrong-guess", ip=f"10.0.0.{i}", settings=settings)
                is None
            )
    with db.session() as s, pytest.raises(TooManyRequests):
        auth.authenticate(s, username="ann", password="password123", ip="10.9.9.9", settings=settings)


def test_failures_older_than_the_window_no_longer_count(client: TestClient, db: Database, settings: Settings) -> None:
    with db.session() as s:
        make_user(s, "ann")
    for _ in range(settings.login_max_failures_per_account):
        page = client.get("/login")
        client.post("/login", data={"username": "ann", "password": "nope-nope", "csrf_token": csrf_from(page.text)})
    page = client.get("/login")
    form = {"username": "ann", "password": "password123", "csrf_token": csrf_from(page.text)}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 429
    with db.session() as s:
        s.execute(
            update(LoginFailure).values(
                created_at=utcnow() - timedelta(minutes=settings.login_failure_window_minutes, seconds=1)
            )
        )
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303


# --- the secret key ------------------------------------------------------------------------------------------

WEAK = [None, "", DEV_SECRET, "short-but-random-Qx81", "x" * 40, "ab" * 20]


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("secret", WEAK)
def test_no_weak_or_default_secret_outside_dev_and_demo(
    monkeypatch: pytest.MonkeyPatch, environment: str, secret: str | None
) -> None:
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", environment)
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", "sqlite:///:memory:")
    if secret is None:
        monkeypatch.delenv("PREFSTUDIO_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", secret)
    with pytest.raises(ValidationError, match="PREFSTUDIO_SECRET_KEY"):
        Settings(_env_file=None)  # type: ignore[call-arg]  # what `prefstudio serve` and create_app() read


def test_dev_and_demo_start_without_a_secret_and_a_strong_one_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFSTUDIO_SECRET_KEY", raising=False)
    for environment in ("dev", "demo"):
        monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", environment)
        assert Settings(_env_file=None).secret_key == DEV_SECRET  # type: ignore[call-arg]
    strong = "N4u7-vQk2_R9sLx0bYc3WmZp8TfE1hJd"
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "production")
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", strong)
    assert Settings(_env_file=None).secret_key == strong  # type: ignore[call-arg]


def test_the_app_refuses_to_start_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.config import get_settings

    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "production")
    monkeypatch.delenv("PREFSTUDIO_SECRET_KEY", raising=False)
    monkeypatch.chdir("/")  # no .env file to read a key from
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError, match="PREFSTUDIO_SECRET_KEY is required"):
            create_app()
    finally:
        get_settings.cache_clear()


# --- security headers ----------------------------------------------------------------------------------------


def test_security_headers_on_html_json_static_and_error_responses(
    client: TestClient, admin: dict[str, Any], db: Database
) -> None:
    with db.session() as s:
        make_user(s, "ann")
    responses = {
        "HTML page": client.get("/login"),
        "JSON": client.get("/healthz"),
        "JSON API": client.get("/api/v1/projects", headers={"Authorization": f"Bearer {admin['token']}"}),
        "JSON 401": client.get("/api/v1/projects"),
        "static CSS": client.get("/static/css/app.css"),
        "static JS": client.get("/static/js/app.js"),
        "static 404": client.get("/static/nothing-here.js"),
        "HTML 404": client.get("/no-such-page"),
        "redirect": client.get("/", follow_redirects=False),
        "OpenAPI": client.get("/openapi.json"),
    }
    login(client, "ann")
    responses["logged-in HTML"] = client.get("/projects")
    responses["HTML 403"] = client.get("/admin/users")
    for what, r in responses.items():
        assert r.status_code < 500, what
        _assert_security_headers(r.headers, what)
    assert responses["HTML page"].headers["content-type"].startswith("text/html")
    assert responses["static CSS"].headers["content-type"].startswith("text/css")
    assert responses["JSON"].headers["content-type"].startswith("application/json")
    # Pages and API answers are never cached; static files may be.
    assert responses["logged-in HTML"].headers["cache-control"] == "no-store"
    assert responses["JSON API"].headers["cache-control"] == "no-store"
    assert responses["static CSS"].headers.get("cache-control") != "no-store"
    # HSTS only where the request came over https (the scheme a TLS-terminating proxy reports).
    assert "strict-transport-security" not in responses["JSON"].headers
    secure = TestClient(client.app, base_url="https://testserver").get("/healthz")
    assert secure.headers["strict-transport-security"] == "max-age=31536000"
    _assert_security_headers(secure.headers, "https")


def test_an_unhandled_error_is_a_500_with_the_security_headers(app: FastAPI) -> None:
    """Starlette answers unhandled errors outside every middleware; the 500 still carries the headers, as JSON for
    the API and as a page for a browser, and says nothing of the error."""

    def broken() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/api/v1/broken", broken)
    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        api, page = c.get("/api/v1/broken"), c.get("/broken", headers={"Accept": "text/html"})
    assert api.status_code == page.status_code == 500
    assert api.json() == {"detail": "Something went wrong on the server; please try again."}
    assert page.headers["content-type"].startswith("text/html") and "try again" in page.text
    for what, r in (("API 500", api), ("page 500", page)):
        _assert_security_headers(r.headers, what)
        assert r.headers["cache-control"] == "no-store"
        assert "secret internals" not in r.text


def test_text_with_a_nul_character_is_a_422(client: TestClient, admin: dict[str, Any]) -> None:
    """PostgreSQL text cannot hold NUL (found by the schema fuzzer): the input is refused, not a 500."""
    auth = {"Authorization": f"Bearer {admin['token']}"}
    created = client.post("/api/v1/projects", json={"name": "Nul", "slug": "nul"}, headers=auth)
    assert created.status_code == 201, created.text
    r = client.patch("/api/v1/projects/nul", json={"guidelines": "a\x00b"}, headers=auth)
    stored = client.get("/api/v1/projects/nul", headers=auth).json()
    if client.app.state.db.is_postgres:  # type: ignore[attr-defined]
        assert r.status_code == 422, r.text
        assert "NUL" in r.json()["detail"][0]["msg"]
        assert stored["guidelines"] == ""  # nothing half-stored
    else:  # SQLite stores it as it is
        assert r.status_code == 200 and stored["guidelines"] == "a\x00b"
