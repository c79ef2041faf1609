"""A submit key answers only its own submission: a true retry gets the stored judgment, any other reuse a 409."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from app.annotation.judgments import edit_judgment, submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import VerdictIn
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.kit.errors import Conflict
from app.models import AnnotatorTally, Assignment, Item, Judgment, User
from tests.annotation.helpers import prefer_first, project_and_user
from tests.factories import make_items, make_project, make_user


@pytest.fixture
def two_items(db: Database) -> dict[str, int]:
    with db.session() as s:
        me = make_user(s, "keys")
        project = make_project(s, "keys", k=2, overlap=1, members=[me], gold_share=0.0)
        make_items(s, project, 2)
        return {"project": project.id, "me": me.id}


def test_a_key_reused_for_another_assignment_is_refused_and_that_lease_stays_open(
    db: Database, two_items: dict[str, int]
) -> None:
    with db.session() as s:
        project, me = project_and_user(s, two_items)
        one = assign_next_item(s, project=project, annotator=me)
        assert one is not None
        first, created = submit_judgment(
            s,
            project=project,
            annotator=me,
            assignment_id=one.assignment.id,
            submit_key="shared-01",
            data=prefer_first(one, project),
        )
        assert created
        two = assign_next_item(s, project=project, annotator=me)
        assert two is not None and two.item.id != one.item.id
        lease, data = two.assignment.id, prefer_first(two, project)
    with pytest.raises(Conflict, match="another item") as refused, db.session() as s:
        project, me = project_and_user(s, two_items)
        submit_judgment(s, project=project, annotator=me, assignment_id=lease, submit_key="shared-01", data=data)
    assert "not stored" in str(refused.value.detail)
    with db.session() as s:
        project, me = project_and_user(s, two_items)
        assert s.scalar(select(Assignment.status).where(Assignment.id == lease)) == "leased"
        assert s.scalar(select(func.count()).select_from(Judgment)) == 1
        assert s.scalar(select(AnnotatorTally.judged).where(AnnotatorTally.annotator_id == me.id)) == 1
        # With a key of its own, the same answer is stored.
        second, created = submit_judgment(
            s, project=project, annotator=me, assignment_id=lease, submit_key="shared-02", data=data
        )
        assert created and second.id != first.id and second.item_id == two.item.id


def test_a_key_reused_with_a_different_answer_is_refused_and_a_true_retry_is_answered(
    db: Database, two_items: dict[str, int]
) -> None:
    with db.session() as s:
        project, me = project_and_user(s, two_items)
        task = assign_next_item(s, project=project, annotator=me)
        assert task is not None
        data = prefer_first(task, project, reason="  A is clearer ")
        stored, _ = submit_judgment(
            s, project=project, annotator=me, assignment_id=task.assignment.id, submit_key="body-0001", data=data
        )
        # The page sends the time on task again as measured when it resends: that is still the same answer.
        retry, created = submit_judgment(
            s,
            project=project,
            annotator=me,
            assignment_id=task.assignment.id,
            submit_key="body-0001",
            data=data.model_copy(update={"seconds": 99.0}),
        )
        assert (retry.id, created) == (stored.id, False)
        first, last = task.candidates[0].id, task.candidates[-1].id
        flipped = {d: VerdictIn(kind="preference", chosen=last, rejected=first) for d in data.verdicts}
        for different in (
            data.model_copy(update={"verdicts": flipped}),
            data.model_copy(update={"reason": "B is clearer"}),
            data.model_copy(update={"all_bad": True}),
        ):
            with pytest.raises(Conflict, match="different answer"):
                submit_judgment(
                    s,
                    project=project,
                    annotator=me,
                    assignment_id=task.assignment.id,
                    submit_key="body-0001",
                    data=different,
                )
        # An edit does not make the original submission's retry a stranger.
        edit_judgment(
            s,
            project=project,
            annotator=me,
            judgment_id=stored.id,
            version=1,
            data=data.model_copy(update={"verdicts": flipped}),
        )
        retry, created = submit_judgment(
            s, project=project, annotator=me, assignment_id=task.assignment.id, submit_key="body-0001", data=data
        )
        assert (retry.id, created) == (stored.id, False)


def test_a_judgment_stored_without_a_digest_still_answers_its_retry(db: Database, two_items: dict[str, int]) -> None:
    """Judgments stored before answers were fingerprinted have none: their retries are answered as before."""
    with db.session() as s:
        project, me = project_and_user(s, two_items)
        task = assign_next_item(s, project=project, annotator=me)
        assert task is not None
        data = prefer_first(task, project)
        stored, _ = submit_judgment(
            s, project=project, annotator=me, assignment_id=task.assignment.id, submit_key="old-00001", data=data
        )
        s.execute(update(Judgment).values(submit_digest=None))
        s.expire_all()
        retry, created = submit_judgment(
            s,
            project=project,
            annotator=me,
            assignment_id=task.assignment.id,
            submit_key="old-00001",
            data=data.model_copy(update={"reason": "anything"}),
        )
        assert (retry.id, created) == (stored.id, False)


def test_api_answers_409_for_a_key_reused_on_another_assignment(
    client: TestClient, db: Database, settings: Settings, two_items: dict[str, int]
) -> None:
    with db.session() as s:
        me = s.get(User, two_items["me"])
        assert me is not None
        h = {"Authorization": f"Bearer {create_api_token(s, user=me, scope='api', settings=settings)[1]}"}

    def body(assignment: dict[str, Any], key: str) -> dict[str, Any]:
        first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
        dims = [d["key"] for d in assignment["dimensions"]]
        verdicts = {d: {"kind": "preference", "chosen": first, "rejected": last} for d in dims}
        return {"assignment_id": assignment["assignment_id"], "submit_key": key, "verdicts": verdicts}

    one = client.post("/api/v1/projects/keys/next", headers=h).json()["assignment"]
    assert client.post("/api/v1/projects/keys/judgments", json=body(one, "api-shared"), headers=h).status_code == 201
    two = client.post("/api/v1/projects/keys/next", headers=h).json()["assignment"]
    reused = client.post("/api/v1/projects/keys/judgments", json=body(two, "api-shared"), headers=h)
    assert reused.status_code == 409, reused.text
    assert "submit key" in reused.json()["detail"] and "another item" in reused.json()["detail"]
    changed = {**body(one, "api-shared"), "reason": "changed my mind"}
    different = client.post("/api/v1/projects/keys/judgments", json=changed, headers=h)
    assert different.status_code == 409 and "different answer" in different.json()["detail"]
    retry = client.post("/api/v1/projects/keys/judgments", json=body(one, "api-shared"), headers=h)
    assert retry.status_code == 200 and retry.json()["assignment_id"] == one["assignment_id"]
    # The lease of the refused submission is still open and takes the judgment under a new key.
    assert (
        client.post("/api/v1/projects/keys/next", headers=h).json()["assignment"]["assignment_id"]
        == two["assignment_id"]
    )
    stored = client.post("/api/v1/projects/keys/judgments", json=body(two, "api-fresh1"), headers=h)
    assert stored.status_code == 201
    with db.session(write=False) as s:
        assert set(s.scalars(select(Item.judgment_count))) == {1}
