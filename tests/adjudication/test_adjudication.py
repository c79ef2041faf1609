"""The adjudication queue (split votes, flags, safety conflicts) and decisions."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Adjudication, Candidate, Item, Project, User
from tests.factories import make_item, make_project, make_user
from tests.support.inert import assert_inert


def _judge(
    db: Database,
    project_id: int,
    username: str,
    item_id: int,
    best_position: int,
    *,
    harmless_worst: int | None = None,
    all_bad: bool = False,
    reason: str = "",
) -> None:
    with db.session() as s:
        project, user = s.get(Project, project_id), s.scalar(select(User).where(User.username == username))
        assert project is not None and user is not None
        task = assign_next_item(s, project=project, annotator=user)
        assert task is not None and task.item.id == item_id
        ids = {c.position: c.id for c in task.candidates}
        best, worst = ids[best_position], ids[1 - best_position]
        verdicts = {d: VerdictIn(kind="preference", chosen=best, rejected=worst) for d in dimension_keys(project)}
        if harmless_worst is not None:
            verdicts["harmless"] = VerdictIn(
                kind="preference", chosen=ids[1 - harmless_worst], rejected=ids[harmless_worst]
            )
        submit_judgment(
            s,
            project=project,
            annotator=user,
            assignment_id=task.assignment.id,
            submit_key=f"adj-{username}-{item_id}",
            data=JudgmentIn(verdicts=verdicts, all_bad=all_bad, reason=reason),
        )


@pytest.fixture
def world(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        users = [make_user(s, n) for n in ("u1", "u2", "u3")]
        admin = make_user(s, "boss", role="admin")
        project = make_project(s, "adj", k=2, overlap=3, members=users)
        items = [make_item(s, project, f"q{i}").id for i in range(4)]
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
        ann_token = create_api_token(s, user=users[0], scope="api", settings=settings)[1]
        project_id = project.id
    unanimous, split, flagged, unsafe = items
    for name in ("u1", "u2", "u3"):
        _judge(db, project_id, name, unanimous, 0)
    for name, best in (("u1", 0), ("u2", 0), ("u3", 1)):
        _judge(db, project_id, name, split, best, reason="<script>alert(1)</script>" if name == "u3" else "")
    for name in ("u1", "u2", "u3"):
        _judge(db, project_id, name, flagged, 0, all_bad=name == "u2")
    for name in ("u1", "u2", "u3"):
        _judge(db, project_id, name, unsafe, 0, harmless_worst=0)  # best overall, but worse on harmless
    return {
        "project_id": project_id,
        "items": items,
        "h": {"Authorization": f"Bearer {token}"},
        "ann": {"Authorization": f"Bearer {ann_token}"},
    }


def test_queue_lists_split_flagged_and_unsafe_items(client: TestClient, world: dict[str, Any]) -> None:
    unanimous, split, flagged, unsafe = world["items"]
    queue = client.get("/api/v1/projects/adj/adjudication", headers=world["h"]).json()
    by_item = {e["item_id"]: e for e in queue}
    assert set(by_item) == {split, flagged, unsafe}
    assert by_item[split]["margin"] == pytest.approx(1 / 3, abs=1e-3) and "split vote" in by_item[split]["reasons"][0]
    assert "flagged by 1" in by_item[flagged]["reasons"]
    assert "chosen overall but worse on harmless" in by_item[unsafe]["reasons"]
    assert queue[0]["item_id"] == split  # closest vote first
    assert client.get("/api/v1/projects/adj/adjudication", headers=world["ann"]).status_code == 403


def test_decision_is_kept_and_leaves_the_queue(client: TestClient, world: dict[str, Any], db: Database) -> None:
    split = world["items"][1]
    with db.session(write=False) as s:
        ids = dict(s.execute(select(Candidate.position, Candidate.id).where(Candidate.item_id == split)).tuples().all())
    dims = ["overall", "helpful", "harmless", "honest", "polite", "refusal"]
    body = {
        "verdicts": {d: {"kind": "preference", "chosen": ids[1], "rejected": ids[0]} for d in dims},
        "reason": "the minority read the question right",
    }
    bad = client.post(
        f"/api/v1/projects/adj/items/{split}/adjudication", json={**body, "reason": ""}, headers=world["h"]
    )
    assert bad.status_code == 422
    r = client.post(f"/api/v1/projects/adj/items/{split}/adjudication", json=body, headers=world["h"])
    assert r.status_code == 201 and r.json()["reason"] == body["reason"]
    queue = client.get("/api/v1/projects/adj/adjudication", headers=world["h"]).json()
    assert split not in {e["item_id"] for e in queue}
    with db.session(write=False) as s:
        decision = s.scalar(select(Adjudication))
        boss = s.scalar(select(User).where(User.username == "boss"))
        assert decision is not None and boss is not None
        assert decision.decided_by_id == boss.id and decision.verdicts["overall"]["chosen"] == ids[1]
        assert decision.round == s.get(Item, split).round  # type: ignore[union-attr]


def test_case_page_shows_every_judgment_safely_and_the_form_decides(
    client: TestClient, world: dict[str, Any], db: Database
) -> None:
    split = world["items"][1]
    page = client.get(f"/projects/adj/adjudication/{split}", headers=world["h"])
    assert page.status_code == 200
    assert page.text.count("<td>u") >= 3 and "A ≻ B" in page.text and "B ≻ A" in page.text
    assert_inert(page.text)
    form = dict.fromkeys(("overall", "helpful", "harmless", "honest", "polite"), "2>1")
    form["refusal"] = "na"
    r = client.post(
        f"/projects/adj/adjudication/{split}",
        data={**form, "reason": "checked"},
        headers=world["h"],
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session(write=False) as s:
        decision = s.scalar(select(Adjudication))
        assert decision is not None and decision.verdicts["refusal"]["kind"] == "na"
    queue_page = client.get("/projects/adj/adjudication", headers=world["h"])
    assert f'/adjudication/{split}"' not in queue_page.text and "split vote" not in queue_page.text


def test_items_sent_for_review_from_the_explorer_join_the_queue(
    client: TestClient, world: dict[str, Any], db: Database
) -> None:
    unanimous, split, _flagged, _unsafe = world["items"]
    with db.session() as s:
        unjudged = make_item(s, s.get(Project, world["project_id"]), "nobody judged this yet").id  # type: ignore[arg-type]
    r = client.post(
        "/api/v1/projects/adj/explorer/bulk",
        json={"action": "adjudicate", "item_ids": [unanimous, unjudged]},
        headers=world["h"],
    )
    assert r.status_code == 200, r.text
    queue = client.get("/api/v1/projects/adj/adjudication", headers=world["h"]).json()
    by_item = {e["item_id"]: e for e in queue}
    assert "sent for review" in by_item[unanimous]["reasons"]  # unanimous, so only the request puts it here
    assert by_item[unjudged]["reasons"] == ["sent for review"] and by_item[unjudged]["judgments"] == 0
    assert "sent for review" not in by_item[split]["reasons"]
