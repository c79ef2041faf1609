"""A judgment's text the databases cannot store (NUL, lone surrogates): a 422 naming the field, nothing stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Judgment
from tests.factories import make_items, make_project, make_user


@pytest.fixture
def annotator(db: Database, settings: Settings, client: TestClient) -> dict[str, Any]:
    with db.session() as s:
        alice = make_user(s, "alice")
        project = make_project(s, "pa", k=2, overlap=2, members=[alice])
        make_items(s, project, 2)
        token = create_api_token(s, user=alice, scope="api", settings=settings)[1]
    headers = {"Authorization": f"Bearer {token}"}
    assignment = client.post("/api/v1/projects/pa/next", headers=headers).json()["assignment"]
    first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
    verdicts = {d["key"]: {"kind": "preference", "chosen": first, "rejected": last} for d in assignment["dimensions"]}
    return {"headers": headers, "assignment": assignment, "verdicts": verdicts}


def _send(client: TestClient, method: str, url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    # As a client sends a lone surrogate: a JSON escape (it has no UTF-8 form).
    headers = {**headers, "Content-Type": "application/json"}
    return client.request(method, url, content=json.dumps(body), headers=headers)


def _judgments(db: Database) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(Judgment)) or 0)


@pytest.mark.parametrize(("bad", "problem"), [("a\x00b", "NUL"), ("x \ud800 y", "unicode")])
def test_a_reason_with_nul_or_a_lone_surrogate_is_a_422_naming_it(
    client: TestClient, db: Database, annotator: dict[str, Any], bad: str, problem: str
) -> None:
    body = {
        "assignment_id": annotator["assignment"]["assignment_id"],
        "submit_key": "text-key-0001",
        "verdicts": annotator["verdicts"],
        "reason": bad,
    }
    r = _send(client, "POST", "/api/v1/projects/pa/judgments", body, annotator["headers"])
    assert r.status_code == 422, r.text[:300]
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "reason"] and problem.lower() in error["msg"].lower()
    assert _judgments(db) == 0

    skip_url = f"/api/v1/projects/pa/assignments/{annotator['assignment']['assignment_id']}/skip"
    skip = _send(client, "POST", skip_url, {"reason": bad}, annotator["headers"])
    assert skip.status_code == 422 and skip.json()["detail"][0]["loc"] == ["body", "reason"]

    ok = client.post("/api/v1/projects/pa/judgments", json={**body, "reason": "fine"}, headers=annotator["headers"])
    assert ok.status_code == 201
    edit = {"version": 1, "verdicts": annotator["verdicts"], "reason": bad}
    r = _send(client, "PUT", f"/api/v1/projects/pa/judgments/{ok.json()['id']}", edit, annotator["headers"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "reason"]


def test_a_lone_surrogate_in_a_dimension_name_is_a_4xx(
    client: TestClient, db: Database, annotator: dict[str, Any]
) -> None:
    body = {
        "assignment_id": annotator["assignment"]["assignment_id"],
        "submit_key": "text-key-0002",
        "verdicts": {**annotator["verdicts"], "\ud800": {"kind": "tie"}},
    }
    r = _send(client, "POST", "/api/v1/projects/pa/judgments", body, annotator["headers"])
    assert r.status_code == 422, r.text[:300]
    assert _judgments(db) == 0
