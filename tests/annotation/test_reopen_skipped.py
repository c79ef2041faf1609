"""Re-opening a skipped item: it becomes the annotator's lease again while it has room; a lease they held on
another item goes back to the pool and is offered to them next."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.annotation.queue import assign_next_item, skip_assignment
from app.annotation.skips import reopen_skipped, skipped
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.kit.errors import Conflict, Forbidden, NotFound
from app.models import Assignment, Item
from app.projects.service import set_paused
from tests.factories import make_item, make_items, make_project, make_user


def test_a_skipped_item_comes_back_and_the_held_lease_waits(db: Database) -> None:
    with db.session() as s:
        ann, other = make_user(s, "ann"), make_user(s, "other")
        project = make_project(s, "p", overlap=2, members=[ann, other], gold_share=0)
        make_items(s, project, 3)
        first = assign_next_item(s, project=project, annotator=ann)
        assert first is not None
        skip_assignment(s, project=project, annotator=ann, assignment_id=first.assignment.id, reason="unsure")
        assert [a.id for a in skipped(s, project=project, annotator=ann)] == [first.assignment.id]
        second = assign_next_item(s, project=project, annotator=ann)
        assert second is not None and second.item.id != first.item.id
        claims_before = s.get(Item, first.item.id).claims  # type: ignore[union-attr]

        again = reopen_skipped(s, project=project, annotator=ann, assignment_id=first.assignment.id)
        assert again.id == first.assignment.id and again.status == "leased" and again.skip_reason is None
        assert s.get(Item, first.item.id).claims == claims_before + 1  # type: ignore[union-attr]
        held = s.get(Assignment, second.assignment.id)
        assert held is not None and held.status == "expired"
        assert skipped(s, project=project, annotator=ann) == []
        # The lease they held comes back as soon as this one is done
        skip_assignment(s, project=project, annotator=ann, assignment_id=again.id, reason="")
        back = assign_next_item(s, project=project, annotator=ann)
        assert back is not None and back.assignment.id == second.assignment.id
        with pytest.raises(Conflict):  # not skipped any more
            reopen_skipped(s, project=project, annotator=ann, assignment_id=back.assignment.id)
        with pytest.raises(NotFound):  # not theirs
            reopen_skipped(s, project=project, annotator=other, assignment_id=again.id)


def test_a_full_item_cannot_be_reopened(db: Database) -> None:
    with db.session() as s:
        ann, b = make_user(s, "ann"), make_user(s, "b")
        project = make_project(s, "p", overlap=1, members=[ann, b], gold_share=0)
        make_items(s, project, 1)
        task = assign_next_item(s, project=project, annotator=ann)
        assert task is not None
        skip_assignment(s, project=project, annotator=ann, assignment_id=task.assignment.id, reason="")
        taken = assign_next_item(s, project=project, annotator=b)
        assert taken is not None and taken.item.id == task.item.id
        with pytest.raises(Conflict, match="all the annotators"):
            reopen_skipped(s, project=project, annotator=ann, assignment_id=task.assignment.id)


def test_the_api_lists_skipped_items_and_reopens_one(client: TestClient, db: Database, settings: Settings) -> None:
    with db.session() as s:
        ann = make_user(s, "ann")
        project = make_project(s, "p", overlap=2, members=[ann], gold_share=0)
        make_item(s, project, "which one?", external_id="ext-7")
        token = create_api_token(s, user=ann, scope="api", settings=settings)[1]
    h = {"Authorization": f"Bearer {token}"}
    lease = client.post("/api/v1/projects/p/next", headers=h).json()["assignment"]
    skip = client.post(
        f"/api/v1/projects/p/assignments/{lease['assignment_id']}/skip", json={"reason": "no idea"}, headers=h
    )
    assert skip.status_code == 204
    listed = client.get("/api/v1/projects/p/skipped", headers=h).json()
    assert [(x["assignment_id"], x["external_id"], x["reason"]) for x in listed] == [
        (lease["assignment_id"], "ext-7", "no idea")
    ]
    again = client.post(f"/api/v1/projects/p/assignments/{lease['assignment_id']}/reopen", headers=h)
    assert again.status_code == 200, again.text
    reopened = again.json()["assignment"]
    assert reopened["assignment_id"] == lease["assignment_id"]
    assert [c["id"] for c in reopened["candidates"]] == [c["id"] for c in lease["candidates"]]  # same order
    assert client.get("/api/v1/projects/p/skipped", headers=h).json() == []
    twice = client.post(f"/api/v1/projects/p/assignments/{lease['assignment_id']}/reopen", headers=h)
    assert twice.status_code == 409 and twice.json()["detail"]


def test_a_paused_annotator_cannot_reopen(db: Database) -> None:
    with db.session() as s:
        ann = make_user(s, "ann")
        project = make_project(s, "p", overlap=2, members=[ann], gold_share=0)
        make_items(s, project, 2)
        task = assign_next_item(s, project=project, annotator=ann)
        assert task is not None
        skip_assignment(s, project=project, annotator=ann, assignment_id=task.assignment.id, reason="")
        set_paused(s, project=project, user_id=ann.id, paused=True)
        with pytest.raises(Forbidden):
            reopen_skipped(s, project=project, annotator=ann, assignment_id=task.assignment.id)
