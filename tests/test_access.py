"""Who may do what, route by route: anonymous, an annotator of another project, a member, an admin."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from tests.annotation.helpers import prefer_first
from tests.factories import make_items, make_project, make_user

# (method, path, who may): "member" = members of project "a" and admins; "admin" = admins only;
# "owner" = only the annotator who made the judgment (alice) — for anyone else it does not exist;
# "user" = anyone logged in (their own account).
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/projects/a", "member"),
    ("GET", "/projects/a/annotate", "member"),
    ("POST", "/projects/a/annotate/next", "member"),
    ("GET", "/projects/a/judgments", "member"),
    ("GET", "/projects/a/judgments/{judgment}", "owner"),
    ("GET", "/projects/a/edit", "admin"),
    ("POST", "/projects/a/edit", "admin"),
    ("GET", "/projects/a/items", "admin"),
    ("GET", "/projects/a/items/{item}", "admin"),
    ("POST", "/projects/a/items/{item}/gold", "admin"),
    ("POST", "/projects/a/items/{item}/gold/remove", "admin"),
    ("POST", "/projects/a/import", "admin"),
    ("GET", "/projects/a/judgments/import", "admin"),
    ("POST", "/projects/a/judgments/import", "admin"),
    ("POST", "/projects/a/members", "admin"),
    ("GET", "/projects/a/generation", "admin"),
    ("POST", "/projects/a/generation/settings", "admin"),
    ("POST", "/projects/a/generation/start", "admin"),
    ("GET", "/projects/new", "admin"),
    ("GET", "/admin/users", "admin"),
    ("POST", "/admin/users", "admin"),
    ("GET", "/admin/tokens", "admin"),
    ("GET", "/account/tokens", "user"),
    ("POST", "/account/tokens", "user"),
    ("GET", "/account/password", "user"),
    ("POST", "/account/password", "user"),
    ("GET", "/api/v1/me/tokens", "user"),
    ("POST", "/api/v1/me/tokens", "user"),
    ("POST", "/api/v1/me/password", "user"),
    ("GET", "/api/v1/tokens", "admin"),
    ("GET", "/api/v1/projects/a", "member"),
    ("POST", "/api/v1/projects/a/next", "member"),
    ("GET", "/api/v1/projects/a/judgments", "member"),
    ("GET", "/api/v1/projects/a/judgments/{judgment}", "owner"),
    ("PATCH", "/api/v1/projects/a", "admin"),
    ("GET", "/api/v1/projects/a/counts", "admin"),
    ("GET", "/api/v1/projects/a/members", "admin"),
    ("GET", "/api/v1/projects/a/items", "admin"),
    ("GET", "/api/v1/projects/a/items/{item}", "admin"),
    ("POST", "/api/v1/projects/a/import", "admin"),
    ("POST", "/api/v1/projects/a/judgments/import", "admin"),
    ("GET", "/api/v1/projects/a/generation/settings", "admin"),
    ("POST", "/api/v1/projects/a/generation/jobs", "admin"),
    ("POST", "/api/v1/projects", "admin"),
    ("GET", "/projects/a/agreement", "admin"),
    ("GET", "/api/v1/projects/a/agreement", "admin"),
    ("GET", "/api/v1/projects/a/consensus", "admin"),
    ("GET", "/projects/a/adjudication", "admin"),
    ("GET", "/projects/a/adjudication/{item}", "admin"),
    ("GET", "/api/v1/projects/a/adjudication", "admin"),
    ("POST", "/api/v1/projects/a/items/{item}/adjudication", "admin"),
    ("GET", "/projects/a/export", "admin"),
    ("GET", "/projects/a/export/snapshots", "admin"),
    ("POST", "/projects/a/snapshots", "admin"),
    ("POST", "/projects/a/tokens", "admin"),
    ("GET", "/api/v1/projects/a/export.jsonl", "admin"),
    ("GET", "/api/v1/projects/a/export/preview", "admin"),
    ("GET", "/api/v1/projects/a/snapshots", "admin"),
    ("POST", "/api/v1/projects/a/snapshots", "admin"),
    ("GET", "/api/v1/projects/a/tokens", "admin"),
    ("POST", "/api/v1/projects/a/tokens", "admin"),
    ("GET", "/projects/a/training", "admin"),
    ("GET", "/api/v1/projects/a/training-runs", "admin"),
    ("POST", "/api/v1/training-runs", "admin"),
    ("PATCH", "/api/v1/training-runs/1", "admin"),
]


@pytest.fixture
def world(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        root, alice, bob = make_user(s, "root", role="admin"), make_user(s, "alice"), make_user(s, "bob")
        a = make_project(s, "a", k=2, overlap=1, members=[alice])
        make_project(s, "b", k=2, overlap=1, members=[bob])
        items = make_items(s, a, 2)
        task = assign_next_item(s, project=a, annotator=alice)
        assert task is not None
        judgment, _ = submit_judgment(
            s,
            project=a,
            annotator=alice,
            assignment_id=task.assignment.id,
            submit_key="access-0001",
            data=prefer_first(task, a),
        )
        tokens = {
            u.username: create_api_token(s, user=u, scope="api", settings=settings)[1] for u in (root, alice, bob)
        }
        return {"tokens": tokens, "ids": {"item": items[0].id, "judgment": judgment.id}}


def _call(client: TestClient, method: str, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    if method in ("POST", "PATCH") and "/api/" in path:
        kwargs["json"] = {}
    elif method == "POST":
        kwargs["data"] = {}
    return client.request(method, path, **kwargs).status_code


@pytest.mark.parametrize(("method", "path", "who"), ROUTES)
def test_access_matrix(client: TestClient, world: dict[str, Any], method: str, path: str, who: str) -> None:
    path = path.format(**world["ids"])
    tokens = world["tokens"]
    anonymous = _call(client, method, path, None)
    if path.startswith("/api/"):
        assert anonymous == 401
    else:
        assert anonymous in (303, 401, 403)  # pages send strangers to the login page
    outsider = _call(client, method, path, tokens["bob"])  # annotator of project b only
    member = _call(client, method, path, tokens["alice"])
    admin = _call(client, method, path, tokens["root"])
    if who == "owner":
        assert (outsider, admin) == (404, 404)
        assert member == 200
        return
    if who == "user":
        assert all(status not in (401, 403, 404) for status in (outsider, member, admin))
        return
    if who == "member":
        assert outsider == 404, "another project's pages and ids must not exist for an outsider"
        assert member not in (401, 403, 404)
    else:
        assert outsider == 403 and member == 403
    assert admin not in (401, 403, 404)


def test_another_projects_ids_are_404(client: TestClient, world: dict[str, Any], db: Database) -> None:
    with db.session() as s:
        from sqlalchemy import select

        from app.models import Project

        b = s.scalar(select(Project).where(Project.slug == "b"))
        assert b is not None
        (other_item,) = make_items(s, b, 1)
    h = {"Authorization": f"Bearer {world['tokens']['root']}"}
    assert client.get(f"/api/v1/projects/a/items/{other_item.id}", headers=h).status_code == 404
    alice = {"Authorization": f"Bearer {world['tokens']['alice']}"}
    assert (
        client.get(f"/api/v1/projects/a/judgments/{world['ids']['judgment'] + 999}", headers=alice).status_code == 404
    )


def test_no_get_changes_state(client: TestClient, world: dict[str, Any], db: Database) -> None:
    from sqlalchemy import func, select

    from app.models import Assignment

    with db.session(write=False) as s:
        before = s.scalar(select(func.count()).select_from(Assignment))
    h = {"Authorization": f"Bearer {world['tokens']['alice']}"}
    for path in ("/projects/a/annotate", "/projects/a", "/projects", "/projects/a/judgments"):
        assert client.get(path, headers=h).status_code == 200
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Assignment)) == before


def test_oversized_bodies_are_refused(client: TestClient, world: dict[str, Any], settings: Settings) -> None:
    h = {"Authorization": f"Bearer {world['tokens']['root']}", "Content-Type": "application/x-ndjson"}
    too_big = b"x" * (settings.max_upload_mb * 1024 * 1024 + 1)
    r = client.post("/api/v1/projects/a/import", content=too_big, headers=h)
    assert r.status_code == 413 and "too large" in r.json()["detail"]


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
