"""Gold items: expected answers, their share of each queue, accuracy, pausing, and no effect on the data."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.agreement import loading
from app.agreement import service as agreement
from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.kit.errors import Forbidden, Invalid
from app.models import Item, Project, ProjectMember, User
from tests.factories import make_items, make_project, make_user


@pytest.fixture
def world(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        users = [make_user(s, n) for n in ("good", "bad", "third")]
        admin = make_user(s, "boss", role="admin")
        project = make_project(s, "g", k=2, overlap=1, members=users, gold_share=0.25)
        items = make_items(s, project, 8)
        gold = items[:2]
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
        return {"project_id": project.id, "gold": [i.id for i in gold], "h": {"Authorization": f"Bearer {token}"}}


def _mark_gold(client: TestClient, world: dict[str, Any]) -> None:
    for item_id in world["gold"]:
        expected = {"overall": {"kind": "preference", "chosen": 0, "rejected": 1}, "refusal": {"kind": "either"}}
        r = client.put(f"/api/v1/projects/g/items/{item_id}/gold", json={"expected": expected}, headers=world["h"])
        assert r.status_code == 200 and r.json()["is_gold"] is True


def _work(db: Database, project_id: int, name: str, *, right_on_gold: bool, n: int) -> list[int]:
    served = []
    with db.session() as s:
        project, user = s.get(Project, project_id), s.scalar(select(User).where(User.username == name))
        assert project is not None and user is not None
        for _ in range(n):
            task = assign_next_item(s, project=project, annotator=user)
            if task is None:
                break
            served.append(task.item.id)
            by_pos = {c.position: c.id for c in task.candidates}
            first_wins = right_on_gold if task.item.is_gold else True
            best, worst = (by_pos[0], by_pos[1]) if first_wins else (by_pos[1], by_pos[0])
            verdicts = {d: VerdictIn(kind="preference", chosen=best, rejected=worst) for d in dimension_keys(project)}
            submit_judgment(
                s,
                project=project,
                annotator=user,
                assignment_id=task.assignment.id,
                submit_key=f"gold-{name}-{task.item.id}",
                data=JudgmentIn(verdicts=verdicts),
            )
    return served


def test_expected_answers_are_validated(client: TestClient, world: dict[str, Any]) -> None:
    url = f"/api/v1/projects/g/items/{world['gold'][0]}/gold"
    bad = [
        {"helpful": {"kind": "tie"}},
        {"overall": {"kind": "preference", "chosen": 0, "rejected": 0}},
        {"overall": {"kind": "maybe"}},
        {"overall": {"kind": "tie"}, "colour": {"kind": "tie"}},
    ]
    for expected in bad:
        assert client.put(url, json={"expected": expected}, headers=world["h"]).status_code == 422
    _mark_gold(client, world)
    assert client.put(url, json={"expected": None}, headers=world["h"]).json()["is_gold"] is False


def test_gold_share_accuracy_and_exclusion(client: TestClient, world: dict[str, Any], db: Database) -> None:
    _mark_gold(client, world)
    good = _work(db, world["project_id"], "good", right_on_gold=True, n=8)
    bad = _work(db, world["project_id"], "bad", right_on_gold=False, n=8)
    # Gold is not limited by r = 1: both annotators got both gold items, about a quarter of their queue.
    assert set(world["gold"]) <= set(good) and set(world["gold"]) <= set(bad)
    assert good[0] in world["gold"]
    with db.session(write=False) as s:
        project = s.get(Project, world["project_id"])
        assert project is not None
        figures = agreement.compute(s, project=project, resamples=0)
        gold = agreement.gold_accuracy(s, project=project)
        names = dict(s.execute(select(User.username, User.id)).tuples().all())
    assert gold[names["good"]] == (2, 1.0) and gold[names["bad"]] == (2, 0.0)
    by_name = {a.annotator: a for a in figures.annotators}
    assert by_name["bad"].below_gold_threshold and not by_name["good"].below_gold_threshold
    # Gold judgments are not data: no unit of agreement comes from a gold item.
    with db.session(write=False) as s:
        project = s.get(Project, world["project_id"])
        rows = loading.load(s, project=project).ratings  # type: ignore[arg-type]
    assert len(rows.item) and not set(rows.item.tolist()) & set(world["gold"])


def test_pausing_stops_new_items(client: TestClient, world: dict[str, Any], db: Database) -> None:
    with db.session(write=False) as s:
        third = s.scalar(select(User.id).where(User.username == "third"))
    r = client.post(f"/api/v1/projects/g/members/{third}/pause", json={"paused": True}, headers=world["h"])
    assert r.status_code == 204
    with pytest.raises(Forbidden, match="paused"):
        _work(db, world["project_id"], "third", right_on_gold=True, n=1)
    page = client.get("/projects/g/agreement", headers=world["h"])
    assert "Resume" in page.text
    client.post(f"/projects/g/members/{third}/pause", data={"paused": "0"}, headers=world["h"])
    with db.session(write=False) as s:
        assert not s.scalar(select(ProjectMember.paused).where(ProjectMember.user_id == third))
    assert _work(db, world["project_id"], "third", right_on_gold=True, n=1)


def test_set_gold_needs_overall(db: Database, world: dict[str, Any]) -> None:
    from app.items.service import set_gold

    with db.session() as s:
        project = s.get(Project, world["project_id"])
        assert project is not None
        with pytest.raises(Invalid, match="overall"):
            set_gold(s, project=project, item_id=world["gold"][0], expected={"helpful": {"kind": "tie"}})
        s.execute(update(Item).values(is_gold=False))
