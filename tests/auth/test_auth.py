"""Login, sessions, CSRF, rate limits, roles, tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.auth.deps import SESSION_COOKIE
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import ApiToken, AuthSession, User, utcnow
from tests.conftest import csrf_from, login
from tests.factories import make_user
from tests.support.inert import assert_inert


def _form_login(client: TestClient, username: str, password: str, **extra: str) -> object:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text), **extra},
        follow_redirects=False,
    )


def test_login_sets_a_safe_cookie_and_logout_ends_the_session(client: TestClient, db: Database) -> None:
    with db.session() as s:
        make_user(s, "ann")
    r = _form_login(client, "ann", "password123")
    assert r.status_code == 303 and r.headers["location"] == "/projects"  # type: ignore[attr-defined]
    cookie = r.headers["set-cookie"]  # type: ignore[attr-defined]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    token = client.cookies[SESSION_COOKIE]
    with db.session(write=False) as s:
        stored = s.scalars(select(AuthSession.id)).all()
    assert token not in stored and len(stored) == 1  # only a keyed hash is stored
    page = client.get("/projects")
    assert page.status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False).status_code == 303
    client.cookies.set(SESSION_COOKIE, token)  # a copied cookie is dead after logout
    assert client.get("/projects", follow_redirects=False).headers["location"].startswith("/login")


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient, db: Database) -> None:
    with db.session() as s:
        make_user(s, "ann")
    for name in ("ann", "nobody"):
        r = _form_login(client, name, "wrong-password")
        assert r.status_code == 401 and "Wrong username or password" in r.text  # type: ignore[attr-defined]


def test_new_session_id_on_every_login(client: TestClient, db: Database) -> None:
    with db.session() as s:
        make_user(s, "ann")
    login(client, "ann")
    first = client.cookies[SESSION_COOKIE]
    client.cookies.delete(SESSION_COOKIE)
    login(client, "ann")
    assert client.cookies[SESSION_COOKIE] != first


def test_idle_and_absolute_expiry(client: TestClient, db: Database, settings: Settings) -> None:
    with db.session() as s:
        make_user(s, "ann")
    login(client, "ann")
    with db.session() as s:
        s.execute(
            update(AuthSession).values(last_seen_at=utcnow() - timedelta(minutes=settings.session_idle_minutes + 1))
        )
    assert client.get("/projects", follow_redirects=False).status_code == 303
    login(client, "ann")
    with db.session() as s:
        s.execute(update(AuthSession).where(AuthSession.revoked_at.is_(None)).values(expires_at=utcnow()))
    assert client.get("/api/v1/projects").status_code == 401


def test_login_rate_limit_per_account_and_address(client: TestClient, db: Database, settings: Settings) -> None:
    with db.session() as s:
        make_user(s, "ann")
    for _ in range(settings.login_max_failures_per_pair):
        assert _form_login(client, "ann", "nope-nope").status_code == 401  # type: ignore[attr-defined]
    blocked = _form_login(client, "ann", "password123")
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.text  # type: ignore[attr-defined]


def test_login_rate_limit_per_ip(client: TestClient, db: Database, settings: Settings) -> None:
    with db.session() as s:
        make_user(s, "ann")
    for i in range(settings.login_max_failures_per_ip):
        _form_login(client, f"guess{i}", "nope-nope")
    assert _form_login(client, "ann", "password123").status_code == 429  # type: ignore[attr-defined]


def test_csrf_on_login_and_on_writes(client: TestClient, db: Database) -> None:
    with db.session() as s:
        make_user(s, "root", role="admin")
    client.get("/login")
    r = client.post("/login", data={"username": "root", "password": "password123", "csrf_token": "forged"})
    assert r.status_code == 403
    token = login(client, "root")
    add = {"username": "newbie", "password": "password123", "role": "annotator"}
    assert client.post("/admin/users", data=add).status_code == 403
    assert (
        client.post(
            "/admin/users", data={**add, "csrf_token": token}, headers={"Origin": "https://evil.example"}
        ).status_code
        == 403
    )
    assert client.post("/admin/users", data={**add, "csrf_token": token}, follow_redirects=False).status_code == 303


def test_open_redirect_is_refused(client: TestClient, db: Database) -> None:
    with db.session() as s:
        make_user(s, "ann")
    r = _form_login(client, "ann", "password123", next="//evil.example/x")
    assert r.headers["location"] == "/projects"  # type: ignore[attr-defined]


def test_passwords_are_argon2id(client: TestClient, db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    client.post("/admin/users", data={"username": "fresh", "password": "correct horse", "role": "annotator"})
    with db.session(write=False) as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "fresh"))
    assert stored and stored.startswith("$argon2id$") and "correct horse" not in stored


def test_roles(client: TestClient, db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        ann = make_user(s, "ann")
    assert client.get("/admin/users", follow_redirects=False).status_code == 303  # anonymous → login
    assert client.get("/api/v1/projects").status_code == 401
    login_as(ann)
    assert client.get("/admin/users").status_code == 403
    assert client.post("/projects/new", data={"name": "x"}).status_code == 403


def test_admin_can_reset_password_and_switch_users_off(
    client: TestClient, db: Database, other_client: TestClient, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        admin, ann = make_user(s, "root", role="admin"), make_user(s, "ann")
    login(other_client, "ann")
    login_as(admin)
    client.post(f"/admin/users/{ann.id}/password", data={"password": "a-new-password"})
    assert other_client.get("/projects", follow_redirects=False).status_code == 303  # their session ended
    assert _form_login(other_client, "ann", "a-new-password").status_code == 303  # type: ignore[attr-defined]
    client.post(f"/admin/users/{ann.id}/active", data={"active": "0"})
    assert _form_login(other_client, "ann", "a-new-password").status_code == 401  # type: ignore[attr-defined]
    assert client.post(f"/admin/users/{admin.id}/active", data={"active": "0"}).status_code == 403


def test_api_tokens_are_hashed_scoped_and_revocable(client: TestClient, db: Database, settings: Settings) -> None:
    with db.session() as s:
        ann = make_user(s, "ann")
        token, plain = create_api_token(s, user=ann, scope="api", settings=settings)
        from tests.factories import make_project

        project = make_project(s, "p", members=[ann])
        _, export_plain = create_api_token(s, user=ann, scope="export", settings=settings, project_id=project.id)
    with db.session(write=False) as s:
        hashes = s.scalars(select(ApiToken.token_hash)).all()
    assert plain not in hashes and export_plain not in hashes
    h = {"Authorization": f"Bearer {plain}"}
    assert client.get("/api/v1/projects", headers=h).status_code == 200
    # An export token does not open the rest of the API.
    assert client.get("/api/v1/projects", headers={"Authorization": f"Bearer {export_plain}"}).status_code == 401
    with db.session() as s:
        s.execute(update(ApiToken).where(ApiToken.id == token.id).values(revoked_at=utcnow()))
    assert client.get("/api/v1/projects", headers=h).status_code == 401


def test_hostile_usernames_are_escaped(client: TestClient, db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
        make_user(s, "<img/src=x/onerror=alert(1)>")
    login_as(admin)
    page = client.get("/admin/users")
    assert_inert(page.text)
    assert "&lt;img/src=x/onerror=alert(1)&gt;" in page.text


def test_security_headers(client: TestClient) -> None:
    r = client.get("/login")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
