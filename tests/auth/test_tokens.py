"""Every user lists and revokes their own tokens; admins see and revoke all; resets and switch-offs revoke."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import ApiToken, User
from tests.factories import make_project, make_user
from tests.support.inert import assert_inert


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_page_lists_creates_once_and_revokes_own_tokens(
    client: TestClient, db: Database, settings: Settings, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        ann, bob = make_user(s, "ann"), make_user(s, "bob")
        mine, _ = create_api_token(s, user=ann, scope="api", settings=settings, name="laptop script")
        theirs, _ = create_api_token(s, user=bob, scope="api", settings=settings, name="bob's script")
    csrf = login_as(ann)
    page = client.get("/account/tokens")
    assert page.status_code == 200 and "laptop script" in page.text and "bob&#39;s script" not in page.text
    assert client.post("/account/tokens", data={"name": "ci"}, headers={"X-CSRF-Token": ""}).status_code == 403
    created = client.post("/account/tokens", data={"name": "ci", "csrf_token": csrf})
    assert created.status_code == 200
    plain = re.search(r"<code class=\"token\">(ps_[^<]+)</code>", created.text)
    assert plain, "the new token is shown once"
    assert client.get("/account/tokens").text.count(plain.group(1)) == 0  # and never again
    assert client.get("/api/v1/projects", headers=_bearer(plain.group(1))).status_code == 200
    assert client.post(f"/account/tokens/{theirs.id}/revoke", follow_redirects=False).status_code == 404
    assert client.post(f"/account/tokens/{mine.id}/revoke", follow_redirects=False).status_code == 303
    with db.session(write=False) as s:
        revoked = {t.name: t.revoked_at is not None for t in s.scalars(select(ApiToken))}
    assert revoked == {"laptop script": True, "bob's script": False, "ci": False}


def test_token_api_lists_and_revokes_own_tokens_only(client: TestClient, db: Database, settings: Settings) -> None:
    with db.session() as s:
        ann, bob = make_user(s, "ann"), make_user(s, "bob")
        _, ann_plain = create_api_token(s, user=ann, scope="api", settings=settings, name="a")
        bob_token, _ = create_api_token(s, user=bob, scope="api", settings=settings, name="b")
    listed = client.get("/api/v1/me/tokens", headers=_bearer(ann_plain))
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json()] == ["a"]
    assert {"id", "name", "prefix", "scope", "created_at", "last_used_at", "revoked_at"} <= set(listed.json()[0])
    made = client.post("/api/v1/me/tokens", json={"name": "c"}, headers=_bearer(ann_plain))
    assert made.status_code == 201 and made.json()["token"].startswith("ps_") and made.json()["scope"] == "api"
    assert client.delete(f"/api/v1/me/tokens/{bob_token.id}", headers=_bearer(ann_plain)).status_code == 404
    own_id = listed.json()[0]["id"]
    assert client.delete(f"/api/v1/me/tokens/{own_id}", headers=_bearer(ann_plain)).status_code == 200
    assert client.get("/api/v1/me/tokens", headers=_bearer(ann_plain)).status_code == 401  # it revoked itself
    assert client.get("/api/v1/me/tokens", headers=_bearer(made.json()["token"])).status_code == 200


def test_admins_list_and_revoke_every_token(
    client: TestClient, db: Database, settings: Settings, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        root, ann = make_user(s, "root", role="admin"), make_user(s, "ann")
        project = make_project(s, "p", members=[ann])
        _, root_plain = create_api_token(s, user=root, scope="api", settings=settings, name="root-api")
        ann_token, ann_plain = create_api_token(s, user=ann, scope="api", settings=settings, name="ann-api")
        export, _ = create_api_token(s, user=root, scope="export", settings=settings, project_id=project.id)
    assert client.get("/api/v1/tokens", headers=_bearer(ann_plain)).status_code == 403
    everything = client.get("/api/v1/tokens", headers=_bearer(root_plain)).json()
    assert {(t["username"], t["scope"]) for t in everything} == {("root", "api"), ("ann", "api"), ("root", "export")}
    assert next(t for t in everything if t["scope"] == "export")["project"] == "p"
    assert client.delete(f"/api/v1/tokens/{ann_token.id}", headers=_bearer(root_plain)).status_code == 200
    assert client.get("/api/v1/projects", headers=_bearer(ann_plain)).status_code == 401
    login_as(root)
    page = client.get("/admin/tokens")
    assert page.status_code == 200 and "ann-api" in page.text and "root-api" in page.text
    assert client.post(f"/admin/tokens/{export.id}/revoke", follow_redirects=False).status_code == 303
    with db.session(write=False) as s:
        assert s.get(ApiToken, export.id).revoked_at is not None  # type: ignore[union-attr]


def test_password_reset_and_switch_off_revoke_the_users_tokens(
    client: TestClient, db: Database, settings: Settings, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        root, ann, bob = make_user(s, "root", role="admin"), make_user(s, "ann"), make_user(s, "bob")
        project = make_project(s, "p", members=[ann])
        _, ann_plain = create_api_token(s, user=ann, scope="api", settings=settings)
        ann_export, _ = create_api_token(s, user=ann, scope="export", settings=settings, project_id=project.id)
        _, bob_plain = create_api_token(s, user=bob, scope="api", settings=settings)
        _, root_plain = create_api_token(s, user=root, scope="api", settings=settings)
    login_as(root)
    client.post(f"/admin/users/{ann.id}/password", data={"password": "a-new-password"})
    assert client.get("/api/v1/projects", headers=_bearer(ann_plain)).status_code == 401
    client.post(f"/admin/users/{bob.id}/active", data={"active": "0"})
    client.post(f"/admin/users/{bob.id}/active", data={"active": "1"})
    assert client.get("/api/v1/projects", headers=_bearer(bob_plain)).status_code == 401  # not back on switch-on
    assert client.get("/api/v1/projects", headers=_bearer(root_plain)).status_code == 200
    with db.session(write=False) as s:
        assert s.get(ApiToken, ann_export.id).revoked_at is not None  # type: ignore[union-attr]


def test_hostile_token_labels_are_escaped(
    client: TestClient, db: Database, settings: Settings, login_as: Callable[[User], str]
) -> None:
    hostile = "<img/src=x/onerror=alert(1)>"
    with db.session() as s:
        root = make_user(s, "root", role="admin")
        create_api_token(s, user=root, scope="api", settings=settings, name=hostile)
    login_as(root)
    for path in ("/account/tokens", "/admin/tokens"):
        page = client.get(path)
        assert_inert(page.text)
        assert "&lt;img/src=x/onerror=alert(1)&gt;" in page.text
