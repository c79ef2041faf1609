"""PostgreSQL connections killed server-side (``pg_terminate_backend``) while annotators submit: every judgment
the app acknowledged is stored, every failed request got a clear JSON error that is safe to retry, and no
half-written rows are left behind."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Assignment, Item, Judgment, Verdict
from tests.factories import make_items, make_project, make_user
from tests.reliability.helpers import postgres_only, wait_for

pytestmark = postgres_only

ANNOTATORS = 8
ITEMS = 12
OVERLAP = 3
KILL_EVERY_S = 0.3
DIMS = 6  # overall and the five default dimensions
KILL_ALL = (
    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def _libpq_url(settings: Settings) -> str:
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", settings.database_url)


@pytest.fixture
def plain(app: FastAPI) -> Iterator[TestClient]:
    """A client that sees what a user sees when the app fails (no exception re-raised into the test)."""
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def crowd(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        users = [make_user(s, f"a{i}") for i in range(ANNOTATORS)]
        project = make_project(s, "storm", k=2, overlap=OVERLAP, members=users)
        make_items(s, project, ITEMS)
        tokens = [create_api_token(s, user=u, scope="api", settings=settings)[1] for u in users]
    return {"headers": [{"Authorization": f"Bearer {t}"} for t in tokens]}


def _verdicts(assignment: dict[str, Any]) -> dict[str, Any]:
    first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
    return {d["key"]: {"kind": "preference", "chosen": first, "rejected": last} for d in assignment["dimensions"]}


def _assert_clear_retryable_error(response: Any) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    assert "database" in response.json()["detail"].lower()
    assert response.headers["Retry-After"] == "1"  # the client may try again at once: the pool reconnects


def _assert_no_half_rows(db: Database) -> None:
    with db.session(write=False) as s:
        per_judgment = Counter(s.scalars(select(Verdict.judgment_id)))
        judgments = list(s.scalars(select(Judgment.id)))
        assert all(per_judgment[j] == DIMS for j in judgments) and set(per_judgment) <= set(judgments)
        by_item = Counter(s.scalars(select(Judgment.item_id)))
        leased = Counter(s.scalars(select(Assignment.item_id).where(Assignment.status == "leased")))
        for item_id, claims, judgment_count in s.execute(select(Item.id, Item.claims, Item.judgment_count)):
            assert judgment_count == by_item[item_id], f"item {item_id}: counter out of step with its judgments"
            assert claims == by_item[item_id] + leased[item_id], f"item {item_id}: claims out of step"
            assert claims <= OVERLAP
        submitted = set(s.scalars(select(Assignment.id).where(Assignment.status == "submitted")))
        assert submitted == set(s.scalars(select(Judgment.assignment_id)))


def test_a_connection_killed_mid_submit_is_a_clear_503_and_the_retry_stores_it_once(
    plain: TestClient, db: Database, settings: Settings, crowd: dict[str, Any]
) -> None:
    h = crowd["headers"][0]
    assignment = plain.post("/api/v1/projects/storm/next", headers=h).json()["assignment"]
    body = {
        "assignment_id": assignment["assignment_id"],
        "submit_key": "killed-0001",
        "verdicts": _verdicts(assignment),
    }

    armed = threading.Event()
    armed.set()

    def kill_own_backend(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Just before the judgment row is written, the server ends this very connection.
        if armed.is_set() and statement.startswith("INSERT INTO judgment "):
            armed.clear()
            pid = conn.connection.dbapi_connection.info.backend_pid
            with psycopg.connect(_libpq_url(settings), autocommit=True) as admin:
                assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
                wait_for(
                    lambda: (
                        admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == (0,)
                    ),
                    timeout=10,
                    what="the backend to end",
                )

    event.listen(db.write_engine, "before_cursor_execute", kill_own_backend)
    try:
        failed = plain.post("/api/v1/projects/storm/judgments", json=body, headers=h)
    finally:
        event.remove(db.write_engine, "before_cursor_execute", kill_own_backend)
    assert not armed.is_set(), "the connection was never killed"
    _assert_clear_retryable_error(failed)
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == 0
    _assert_no_half_rows(db)

    retried = plain.post("/api/v1/projects/storm/judgments", json=body, headers=h)
    assert retried.status_code == 201, retried.text
    again = plain.post("/api/v1/projects/storm/judgments", json=body, headers=h)
    assert again.status_code == 200 and again.json()["id"] == retried.json()["id"]
    _assert_no_half_rows(db)
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == 1


def _annotate_until_done(client: TestClient, headers: dict[str, str], log: dict[str, Any]) -> None:
    """Pull and judge items until none is left; on a 5xx, check the error and retry the same request."""

    def call(path: str, **kwargs: Any) -> Any:
        for _ in range(100):
            response = client.post(path, headers=headers, **kwargs)
            if response.status_code < 500:
                return response
            _assert_clear_retryable_error(response)
            with log["lock"]:
                log["errors"] += 1
            time.sleep(0.05)
        raise AssertionError(f"{path}: still failing after 100 tries")

    n = 0
    while True:
        nxt = call("/api/v1/projects/storm/next")
        assert nxt.status_code == 200, nxt.text
        assignment = nxt.json()["assignment"]
        if assignment is None:
            return
        n += 1
        key = f"{headers['Authorization'][-8:]}-{n:04d}".replace("_", "x")
        body = {"assignment_id": assignment["assignment_id"], "submit_key": key, "verdicts": _verdicts(assignment)}
        done = call("/api/v1/projects/storm/judgments", json=body)
        assert done.status_code in (200, 201), done.text
        with log["lock"]:
            log["acknowledged"].add((done.json()["id"], done.json()["item_id"], key))


def test_submit_storm_while_connections_are_killed_loses_no_acknowledged_judgment(
    plain: TestClient, db: Database, settings: Settings, crowd: dict[str, Any]
) -> None:
    log: dict[str, Any] = {"lock": threading.Lock(), "acknowledged": set(), "errors": 0}
    stop = threading.Event()
    kills: list[int] = []

    def killer() -> None:
        with psycopg.connect(_libpq_url(settings), autocommit=True) as admin:
            while not stop.is_set():
                row = admin.execute(KILL_ALL).fetchone()
                kills.append(int(row[0]) if row else 0)
                stop.wait(KILL_EVERY_S)

    with ThreadPoolExecutor(max_workers=ANNOTATORS + 1) as pool:
        killing = pool.submit(killer)
        storm = [pool.submit(_annotate_until_done, plain, h, log) for h in crowd["headers"]]
        try:
            for future in storm:
                future.result(timeout=120)
        finally:
            stop.set()
            killing.result(timeout=30)

    assert sum(kills) > 0, "no connection was killed: the storm tested nothing"
    acknowledged = log["acknowledged"]
    assert len(acknowledged) == ITEMS * OVERLAP
    with db.session(write=False) as s:
        stored = set(s.execute(select(Judgment.id, Judgment.item_id, Judgment.submit_key)).tuples().all())
    assert stored == acknowledged  # every acknowledged judgment is there, and nothing else
    _assert_no_half_rows(db)
    with db.session(write=False) as s:
        assert set(s.scalars(select(Item.judgment_count))) == {OVERLAP}
