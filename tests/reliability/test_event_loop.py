"""A request waiting for the database never holds up the others: authentication runs off the event loop.

On SQLite every write transaction begins with ``BEGIN IMMEDIATE``; while another connection holds the write lock
a request waits for it. Run on the event loop, that wait froze the whole server — the lock holder's own request
could not finish, and every other request (a health check included) waited for the busy timeout.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from tests.browser import serve
from tests.factories import make_user

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _held_write_lock(path: str, released: threading.Event, holding: threading.Event) -> Callable[[], None]:
    def hold() -> None:
        conn = sqlite3.connect(path, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")
            holding.set()
            released.wait(timeout=20)
            conn.rollback()
        finally:
            conn.close()

    return hold


def test_a_request_waiting_for_the_write_lock_does_not_stall_the_server(
    app: FastAPI, db: Database, settings: Settings
) -> None:
    with db.session() as s:
        user = make_user(s, "waiter")
        token = create_api_token(s, user=user, scope="api", name="t", settings=settings)
    path = db.write_engine.url.database
    assert path
    released, holding = threading.Event(), threading.Event()
    locker = threading.Thread(target=_held_write_lock(path, released, holding), daemon=True)
    with serve(app) as base:
        locker.start()
        assert holding.wait(10)
        results: dict[str, Any] = {}

        def blocked_request() -> None:
            # A write session: its first query waits for the lock held above.
            with httpx.Client(base_url=base, timeout=30) as c:
                results["blocked"] = c.post("/api/v1/projects", headers={"Authorization": f"Bearer {token}"}, json={})

        waiter = threading.Thread(target=blocked_request, daemon=True)
        waiter.start()
        try:
            waiter.join(0.5)  # give it time to reach the lock
            with httpx.Client(base_url=base, timeout=10) as c:
                health = c.get("/healthz")
            answered_while_locked = not released.is_set() and waiter.is_alive()
        finally:
            released.set()
            waiter.join(30)
            locker.join(10)
    assert health.status_code == 200
    assert answered_while_locked, "the health check had to wait for the write lock"
    assert results["blocked"].status_code < 500, results["blocked"].text
