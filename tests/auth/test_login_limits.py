"""Failed-login limits that slow guessing without locking the owner out, and whose address counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.requests import Request

from app.auth.deps import client_address
from app.auth.service import authenticate
from app.config import Settings
from app.db import Database
from app.kit.errors import TooManyRequests
from app.models import LoginFailure
from tests.conftest import csrf_from
from tests.factories import make_user


def _login_from(app: FastAPI, address: str, username: str, password: str, **headers: str) -> Any:
    with TestClient(app, base_url="http://testserver", client=(address, 50000)) as browser:
        page = browser.get("/login", headers=headers)
        return browser.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
            headers=headers,
            follow_redirects=False,
        )


def test_wrong_passwords_from_five_addresses_do_not_lock_the_admin_out(app: FastAPI, db: Database) -> None:
    with db.session() as s:
        make_user(s, "root", role="admin")
    for i in range(5):
        assert _login_from(app, f"198.51.100.{i + 1}", "root", "wrong-guess").status_code == 401
    assert _login_from(app, "203.0.113.7", "root", "password123").status_code == 303


def test_one_address_backs_off_exponentially_on_one_account(db: Database, settings: Settings) -> None:
    with db.session() as s:
        make_user(s, "ann")

    def attempt(ip: str, password: str = "wrong-guess") -> object:
        with db.session() as s:
            return authenticate(s, username="ann", password=password, ip=ip, settings=settings)

    def age_failures(seconds: int) -> None:
        with db.session() as s:
            for failure in s.scalars(select(LoginFailure)):
                failure.created_at -= timedelta(seconds=seconds)

    for _ in range(settings.login_max_failures_per_pair):
        assert attempt("198.51.100.1") is None
    with pytest.raises(TooManyRequests, match="try again in 30 seconds"):
        attempt("198.51.100.1", "password123")
    assert attempt("198.51.100.2", "password123") is not None  # the owner elsewhere is not held up
    age_failures(settings.login_backoff_seconds + 1)
    assert attempt("198.51.100.1") is None  # the wait is over: one more try, which fails
    with pytest.raises(TooManyRequests, match="try again in 60 seconds"):
        attempt("198.51.100.1", "password123")  # and the next wait is twice as long
    age_failures(2 * settings.login_backoff_seconds + 1)
    assert attempt("198.51.100.1", "password123") is not None


def test_the_account_limit_spares_addresses_the_account_has_used(
    app: FastAPI, db: Database, settings: Settings
) -> None:
    settings.login_max_failures_per_account = 3
    with db.session() as s:
        make_user(s, "ann")
    assert _login_from(app, "192.0.2.10", "ann", "password123").status_code == 303  # the owner's usual address
    for i in range(3):
        assert _login_from(app, f"198.51.100.{i + 1}", "ann", "wrong-guess").status_code == 401
    refused = _login_from(app, "203.0.113.7", "ann", "password123")
    assert refused.status_code == 429 and "Too many failed logins" in refused.text
    assert "address" in refused.text  # says how to get in: from an address used before
    assert refused.headers["retry-after"] == str(15 * 60)
    assert _login_from(app, "192.0.2.10", "ann", "password123").status_code == 303


@pytest.fixture
def behind_proxy(app: FastAPI, settings: Settings) -> FastAPI:
    settings.trusted_proxies = "10.0.0.0/8"
    return app


def test_forwarded_for_is_believed_only_from_trusted_proxies(behind_proxy: FastAPI, db: Database) -> None:
    with db.session() as s:
        make_user(s, "ann")
    # Each guess claims another address, from the loopback (not a trusted proxy): it is all one address.
    for i in range(20):
        _login_from(behind_proxy, "127.0.0.1", f"guess{i}", "wrong-guess", **{"X-Forwarded-For": f"192.0.2.{i}"})
    assert _login_from(behind_proxy, "127.0.0.1", "ann", "password123").status_code == 429
    # Through the trusted proxy, the forwarded address is the client's: another client is not held up.
    forwarded = {"X-Forwarded-For": "203.0.113.5"}
    assert _login_from(behind_proxy, "10.1.2.3", "ann", "password123", **forwarded).status_code == 303


def _request(peer: str, forwarded: str | None, trusted: str) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    settings = Settings(environment="dev", trusted_proxies=trusted)
    app = type("App", (), {"state": type("State", (), {"settings": settings})()})()
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 1), "app": app}
    return Request(scope)


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("127.0.0.1", "192.0.2.1", "", "127.0.0.1"),  # no proxy trusted: the header is ignored
        ("10.0.0.2", "192.0.2.1", "10.0.0.0/8", "192.0.2.1"),
        ("10.0.0.2", "6.6.6.6, 192.0.2.1", "10.0.0.0/8", "192.0.2.1"),  # the client may prepend lies
        ("10.0.0.2", "192.0.2.1, 10.0.0.9", "10.0.0.0/8", "192.0.2.1"),  # proxies in a chain are skipped
        ("192.0.2.1", "10.0.0.2", "10.0.0.0/8", "192.0.2.1"),  # an untrusted peer's header is ignored
        ("10.0.0.2", None, "10.0.0.0/8", "10.0.0.2"),
        ("10.0.0.2", "not-an-address", "10.0.0.0/8", "10.0.0.2"),
    ],
)
def test_client_address(peer: str, forwarded: str | None, trusted: str, expected: str) -> None:
    assert client_address(_request(peer, forwarded, trusted)) == expected
