"""The annotation JSON API with bearer tokens: next, submit (idempotent), edit (versioned), skip, isolation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from tests.factories import make_items, make_project, make_user


@pytest.fixture
def setup(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        alice, bob, admin = make_user(s, "alice"), make_user(s, "bob"), make_user(s, "root", role="admin")
        a = make_project(s, "pa", k=2, overlap=2, members=[alice])
        make_project(s, "pb", k=2, overlap=2, members=[bob])
        make_items(s, a, 2)
        tokens = {
            u.username: create_api_token(s, user=u, scope="api", settings=settings)[1] for u in (alice, bob, admin)
        }
    return {"tokens": tokens}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _verdicts(assignment: dict[str, Any], kind: str = "preference") -> dict[str, Any]:
    first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
    dims = [d["key"] for d in assignment["dimensions"]]
    if kind != "preference":
        return {d: {"kind": kind} for d in dims}
    return {d: {"kind": "preference", "chosen": first, "rejected": last} for d in dims}


def test_next_submit_edit_flow(client: TestClient, setup: dict[str, Any]) -> None:
    h = _h(setup["tokens"]["alice"])
    nxt = client.post("/api/v1/projects/pa/next", headers=h)
    assert nxt.status_code == 200, nxt.text
    assignment = nxt.json()["assignment"]
    assert [c["label"] for c in assignment["candidates"]] == ["A", "B"]
    assert assignment["dimensions"][0]["key"] == "overall" and len(assignment["dimensions"]) == 6

    body = {
        "assignment_id": assignment["assignment_id"],
        "submit_key": "api-key-0001",
        "verdicts": _verdicts(assignment),
        "reason": "A is clearer",
        "seconds": 12.5,
    }
    first = client.post("/api/v1/projects/pa/judgments", json=body, headers=h)
    again = client.post("/api/v1/projects/pa/judgments", json=body, headers=h)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()  # the answer made from the submitted verdicts = the stored judgment, read
    judgment = first.json()
    assert judgment["verdicts"]["overall"]["chosen"] == assignment["candidates"][0]["id"]
    assert judgment["seconds"] == 12.5 and judgment["version"] == 1

    edit = {"version": 1, "verdicts": _verdicts(assignment, "tie"), "reason": "on reflection, a tie"}
    ok = client.put(f"/api/v1/projects/pa/judgments/{judgment['id']}", json=edit, headers=h)
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = client.put(f"/api/v1/projects/pa/judgments/{judgment['id']}", json=edit, headers=h)
    assert stale.status_code == 409 and "version" in stale.json()["detail"]
    mine = client.get("/api/v1/projects/pa/judgments", headers=h).json()
    assert [j["reason"] for j in mine] == ["on reflection, a tie"]


def test_bad_input_gets_json_4xx(client: TestClient, setup: dict[str, Any]) -> None:
    h = _h(setup["tokens"]["alice"])
    assignment = client.post("/api/v1/projects/pa/next", headers=h).json()["assignment"]
    same = assignment["candidates"][0]["id"]
    bad = {
        "assignment_id": assignment["assignment_id"],
        "submit_key": "api-key-0002",
        "verdicts": {"overall": {"kind": "preference", "chosen": same, "rejected": same}},
    }
    r = client.post("/api/v1/projects/pa/judgments", json=bad, headers=h)
    assert r.status_code == 422 and isinstance(r.json()["detail"], list)
    missing = dict(bad, verdicts={"overall": {"kind": "tie"}})
    r = client.post("/api/v1/projects/pa/judgments", json=missing, headers=h)
    assert r.status_code == 422 and "Missing verdicts" in r.json()["detail"]
    r = client.post(
        "/api/v1/projects/pa/judgments", content=b"{not json", headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    r = client.post(
        "/api/v1/projects/pa/judgments",
        json=dict(bad, assignment_id=999_999, verdicts=_verdicts(assignment)),
        headers=h,
    )
    assert r.status_code == 404


def test_skip_then_next_gives_another_item(client: TestClient, setup: dict[str, Any]) -> None:
    h = _h(setup["tokens"]["alice"])
    first = client.post("/api/v1/projects/pa/next", headers=h).json()["assignment"]
    r = client.post(
        f"/api/v1/projects/pa/assignments/{first['assignment_id']}/skip", json={"reason": "unclear"}, headers=h
    )
    assert r.status_code == 204
    second = client.post("/api/v1/projects/pa/next", headers=h).json()["assignment"]
    assert second["item_id"] != first["item_id"]
    r = client.post(f"/api/v1/projects/pa/assignments/{first['assignment_id']}/skip", json={}, headers=h)
    assert r.status_code == 409


def test_other_projects_and_other_annotators_are_invisible(client: TestClient, setup: dict[str, Any]) -> None:
    alice, bob = _h(setup["tokens"]["alice"]), _h(setup["tokens"]["bob"])
    assignment = client.post("/api/v1/projects/pa/next", headers=alice).json()["assignment"]
    body = {
        "assignment_id": assignment["assignment_id"],
        "submit_key": "api-key-0003",
        "verdicts": _verdicts(assignment),
    }
    judgment = client.post("/api/v1/projects/pa/judgments", json=body, headers=alice).json()
    # Bob is not a member of pa: the project does not exist for him.
    assert client.post("/api/v1/projects/pa/next", headers=bob).status_code == 404
    assert client.get(f"/api/v1/projects/pa/judgments/{judgment['id']}", headers=bob).status_code == 404
    assert client.post("/api/v1/projects/pb/next", headers=alice).status_code == 404
    # Anonymous: 401 with a JSON detail.
    r = client.post("/api/v1/projects/pa/next")
    assert r.status_code == 401 and r.json()["detail"]
    r = client.post("/api/v1/projects/pa/next", headers=_h("ps_wrong"))
    assert r.status_code == 401


def test_nothing_left(client: TestClient, setup: dict[str, Any]) -> None:
    h = _h(setup["tokens"]["alice"])
    for n in range(2):
        a = client.post("/api/v1/projects/pa/next", headers=h).json()["assignment"]
        body = {"assignment_id": a["assignment_id"], "submit_key": f"api-key-10{n}0", "verdicts": _verdicts(a)}
        assert client.post("/api/v1/projects/pa/judgments", json=body, headers=h).status_code == 201
    done = client.post("/api/v1/projects/pa/next", headers=h).json()
    assert done["assignment"] is None and done["progress"]["judged_by_me"] == 2
