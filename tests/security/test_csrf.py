"""CSRF on every state-changing route, found by walking ``app.routes``, and no state change on any GET.

A browser logged in by cookie must send the session's CSRF token with every POST/PUT/PATCH/DELETE, and a
request that says it comes from another site is refused even with the token. API callers with a bearer token
are not cookie-authenticated, so they need no CSRF token.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.auth.deps import SESSION_COOKIE
from app.auth.router import LOGIN_CSRF_COOKIE
from app.auth.service import create_api_token, start_session
from app.config import Settings
from app.db import Database
from app.jobs import service as jobs
from app.models import AuthSession, Base, RegisteredModel, TrainingRun, User, Webhook
from app.web.deps import UNSAFE_METHODS
from tests.annotation.helpers import prefer_first
from tests.factories import make_items, make_project, make_user
from tests.training.conftest import ROWS, write_snapshot

FOREIGN = "https://evil.example"
SAME = "http://testserver"
LOGIN_FORM_TOKEN = "login-form-double-submit-token"
CSRF_REFUSAL = re.compile(r"CSRF token missing or invalid|Cross-origin request refused|login form expired")
# Bookkeeping that reading may write (throttled "last seen/used" stamps): not state a GET may change otherwise.
BOOKKEEPING = {"auth_session": {"last_seen_at"}, "api_token": {"last_used_at"}}


def _routes(app: FastAPI, methods: set[str]) -> list[tuple[str, str]]:
    found = set()
    for route in iter_route_contexts(app.routes):
        for method in (route.methods or set()) & methods:
            assert route.path is not None
            found.add((method, route.path))
    return sorted(found, key=lambda r: (r[1], r[0]))


@pytest.fixture
def world(db: Database, settings: Settings) -> dict[str, Any]:
    """One of every kind of object a route's path can name, in project "a"."""
    with db.session() as s:
        root, alice, victim = make_user(s, "root", role="admin"), make_user(s, "alice"), make_user(s, "victim")
        a = make_project(s, "a", k=2, overlap=2, members=[alice, victim])
        items = make_items(s, a, 3)
        task = assign_next_item(s, project=a, annotator=alice)
        assert task is not None
        judgment, _ = submit_judgment(
            s,
            project=a,
            annotator=alice,
            assignment_id=task.assignment.id,
            submit_key="csrf-00001",
            data=prefer_first(task, a),
        )
        lease = assign_next_item(s, project=a, annotator=alice)
        assert lease is not None
        job = jobs.enqueue(s, kind="generate", project_id=a.id, params={}, created_by_id=root.id)
        token, _ = create_api_token(s, user=root, scope="export", settings=settings, project_id=a.id)
        _, api_token = create_api_token(s, user=root, scope="api", settings=settings)
        project_id, root_id, alice_id = a.id, root.id, alice.id
        ids = {
            "project": "a",
            "item_id": items[0].id,
            "assignment_id": lease.assignment.id,
            "judgment_id": judgment.id,
            "job_id": job.id,
            "token_id": token.id,
            "user_id": victim.id,
            "name": "ties",  # a snapshot part's name (this snapshot has none: a 404, which changes nothing either)
        }
    snapshot_id = write_snapshot(db, settings, project_id=project_id, rows=ROWS)
    with db.session() as s:
        run = TrainingRun(project_id=project_id, snapshot_id=snapshot_id, token_id=token.id, base_model="tiny")
        model = RegisteredModel(project_id=project_id, name="sft", kind="sft", uri="/models/sft")
        hook = Webhook(project_id=project_id, url="https://hooks.example.org/in", events=["snapshot.ready"], secret="s")
        s.add_all([run, model, hook])
        s.flush()
        ids.update(snapshot_id=snapshot_id, run_id=run.id, model_id=model.id, webhook_id=hook.id)
    return {"ids": ids, "root": root_id, "alice": alice_id, "api_token": api_token}


def _cookie_session(db: Database, settings: Settings, client: TestClient, user_id: int) -> str:
    """Log ``client`` in as the user (a server-side session, as the login form makes); returns its CSRF token."""
    with db.session() as s:
        user = s.get(User, user_id)
        assert user is not None
        cookie = start_session(s, user=user, settings=settings)
        csrf = s.scalar(select(AuthSession.csrf_token).order_by(AuthSession.created_at.desc()).limit(1))
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    client.cookies.set(LOGIN_CSRF_COOKIE, LOGIN_FORM_TOKEN)  # the login form's double-submit cookie, too
    assert csrf is not None
    return csrf


def _send(
    client: TestClient, method: str, path: str, *, token: str | None, origin: str | None, bearer: str | None = None
) -> Any:
    headers: dict[str, str] = {}
    if origin is not None:
        headers["Origin"] = origin
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    if path.startswith("/api/"):
        if token is not None:
            headers["X-CSRF-Token"] = token
        return client.request(method, path, json={}, headers=headers, follow_redirects=False)
    form = {"csrf_token": token} if token is not None else {}
    return client.request(method, path, data=form, headers=headers, follow_redirects=False)


def _detail(response: Any) -> str:
    if response.headers.get("content-type", "").startswith("application/json"):
        return str(response.json().get("detail"))
    return str(response.text)


def db_digest(db: Database) -> dict[str, str]:
    """A hash of every table's rows (bookkeeping stamps left out)."""
    out = {}
    with db.read_engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            skip = BOOKKEEPING.get(table.name, set())
            cols = [c.name for c in table.columns if c.name not in skip]
            order = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
            rows = conn.execute(
                text(f'SELECT {", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)} FROM "{table.name}" ORDER BY {order}')
            )
            out[table.name] = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
    return out


@pytest.fixture
def unsafe_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes = _routes(app, UNSAFE_METHODS)
    # The walk must see the whole app (HTML pages and /api/v1 alike), not just a part of it.
    assert len(routes) >= 40
    assert ("POST", "/login") in routes and ("DELETE", "/api/v1/projects/{project}/tokens/{token_id}") in routes
    return routes


def test_every_unsafe_route_needs_the_token_and_the_same_origin(
    app: FastAPI,
    client: TestClient,
    db: Database,
    settings: Settings,
    world: dict[str, Any],
    unsafe_routes: list[tuple[str, str]],
) -> None:
    token = _cookie_session(db, settings, client, world["root"])
    before = db_digest(db)
    wrong: list[str] = []
    for method, template in unsafe_routes:
        path = template.format(**world["ids"])
        valid = LOGIN_FORM_TOKEN if template == "/login" else token
        for case, kwargs in (
            ("no token", {"token": None, "origin": None}),
            ("no token, same origin", {"token": None, "origin": SAME}),
            ("a wrong token", {"token": "x" * 32, "origin": None}),
            ("a valid token from another site", {"token": valid, "origin": FOREIGN}),
        ):
            r = _send(client, method, path, **kwargs)  # type: ignore[arg-type]
            if r.status_code != 403 or not CSRF_REFUSAL.search(_detail(r)):
                wrong.append(f"{method} {template} with {case}: {r.status_code} {_detail(r)[:120]!r}")
    assert not wrong, "\n".join(wrong)
    assert db_digest(db) == before, "a refused request changed the database"


def test_the_valid_token_from_this_site_is_accepted(
    app: FastAPI,
    client: TestClient,
    db: Database,
    settings: Settings,
    world: dict[str, Any],
    unsafe_routes: list[tuple[str, str]],
) -> None:
    """The control for the test above: the same requests with the right token are not refused for CSRF."""
    refused = []
    for method, template in unsafe_routes:
        token = _cookie_session(db, settings, client, world["root"])  # fresh: an earlier route may have logged out
        if template == "/login":
            token = LOGIN_FORM_TOKEN
        for origin in (None, SAME):
            r = _send(client, method, template.format(**world["ids"]), token=token, origin=origin)
            if r.status_code == 403 and CSRF_REFUSAL.search(_detail(r)):
                refused.append(f"{method} {template} (Origin {origin})")
    assert not refused, refused


def test_bearer_token_calls_need_no_csrf_token(
    client: TestClient, db: Database, world: dict[str, Any], unsafe_routes: list[tuple[str, str]]
) -> None:
    api_routes = [(m, p) for m, p in unsafe_routes if p.startswith("/api/")]
    assert len(api_routes) >= 20
    refused = []
    for method, template in api_routes:
        r = _send(
            client, method, template.format(**world["ids"]), token=None, origin=FOREIGN, bearer=world["api_token"]
        )
        if r.status_code in (401, 403):
            refused.append(f"{method} {template}: {r.status_code} {_detail(r)[:100]}")
    assert not refused, "\n".join(refused)


def test_a_bogus_bearer_header_does_not_fall_back_to_the_cookie(
    client: TestClient, db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    _cookie_session(db, settings, client, world["root"])
    r = client.post("/api/v1/projects", json={"name": "Sneaky"}, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    assert client.get("/api/v1/projects").status_code == 200  # the cookie alone still reads


def _get_paths(app: FastAPI, ids: dict[str, Any]) -> Iterator[str]:
    for _, template in _routes(app, {"GET"}):
        yield template.format(**ids)  # a KeyError: a new kind of path parameter, add an object to the world


def test_no_get_route_changes_state(
    app: FastAPI, client: TestClient, db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    """Every GET route of the app, as an annotator and as an admin, by cookie: the database stays as it was.

    (tests/test_access.py checks the annotation pages' assignments; this covers every route and every table.)"""
    paths = list(_get_paths(app, world["ids"]))
    assert len(paths) >= 40
    before = db_digest(db)
    errors = []
    for who in ("alice", "root"):
        _cookie_session(db, settings, client, world[who])
        before = db_digest(db)  # making the session is the only write
        for path in paths:
            r = client.get(path, follow_redirects=False)
            if r.status_code >= 500:
                errors.append(f"{who} GET {path}: {r.status_code}")
            after = db_digest(db)
            changed = [t for t in after if after[t] != before[t]]
            if changed:
                errors.append(f"{who} GET {path} changed {changed}")
                before = after
    assert not errors, "\n".join(errors)
