"""A user's own password, and the banner of demo and dev modes."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import User
from tests.conftest import csrf_from, login
from tests.factories import make_user


def _form_login(client: TestClient, username: str, password: str) -> int:
    page = client.get("/login")
    data = {"username": username, "password": password, "csrf_token": csrf_from(page.text)}
    return client.post("/login", data=data, follow_redirects=False).status_code


def test_change_own_password_keeps_this_session_and_ends_the_others(
    client: TestClient, other_client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        ann = make_user(s, "ann")
    login(other_client, "ann")
    csrf = login_as(ann)
    assert client.get("/account/password").status_code == 200
    change = {"old_password": "wrong-one", "new_password": "a-new-password", "csrf_token": csrf}
    wrong = client.post("/account/password", data=change)
    assert wrong.status_code == 422 and "current password" in wrong.text
    forged = {"X-CSRF-Token": "forged"}
    assert client.post("/account/password", data=change, headers=forged).status_code == 403
    short = client.post("/account/password", data={**change, "old_password": "password123", "new_password": "x"})
    assert short.status_code == 422
    ok = client.post("/account/password", data={**change, "old_password": "password123"}, follow_redirects=False)
    assert ok.status_code == 303
    assert client.get("/projects", follow_redirects=False).status_code == 200  # this session goes on
    assert other_client.get("/projects", follow_redirects=False).status_code == 303  # the other one ended
    assert _form_login(other_client, "ann", "password123") == 401
    assert _form_login(other_client, "ann", "a-new-password") == 303


def test_change_own_password_through_the_api(client: TestClient, db: Database, settings: Settings) -> None:
    with db.session() as s:
        ann = make_user(s, "ann")
        _, plain = create_api_token(s, user=ann, scope="api", settings=settings)
    headers = {"Authorization": f"Bearer {plain}"}
    body = {"old_password": "nope-nope", "new_password": "a-new-password"}
    wrong = client.post("/api/v1/me/password", json=body, headers=headers)
    assert wrong.status_code == 422 and "current password" in wrong.json()["detail"]
    assert (
        client.post("/api/v1/me/password", json={**body, "old_password": "password123"}, headers=headers).status_code
        == 200
    )
    assert _form_login(client, "ann", "a-new-password") == 303


def test_demo_and_dev_modes_show_a_banner_on_every_page(
    client: TestClient, db: Database, settings: Settings, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        ann = make_user(s, "ann")
    assert "mode-banner" not in client.get("/login").text
    settings.environment = "dev"
    settings.secret_key = "dev-only-insecure-secret-key-change-me"
    page = client.get("/login")
    assert "mode-banner" in page.text and "public" in page.text
    login_as(ann)
    assert "mode-banner" in client.get("/projects").text
    assert "mode-banner" in client.get("/nope-not-a-page").text
