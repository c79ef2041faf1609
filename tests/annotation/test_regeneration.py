"""A lease whose item is regenerated meanwhile: the late submit is refused and the new round starts empty."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.annotation import repository
from app.annotation.judgments import submit_judgment
from app.annotation.progress import progress
from app.annotation.queue import assign_next_item
from app.annotation.tallies import judged_count
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.generation import service as generation
from app.generation.schemas import JobIn
from app.jobs import runner
from app.kit.errors import Conflict
from app.models import AnnotatorTally, Assignment, Item, Judgment, User
from tests.annotation.helpers import prefer_first, project_and_user, regenerated_samples
from tests.factories import make_items, make_project, make_user
from tests.support.fake_openai import FakeOpenAI

REGENERATED = "regenerated"


def _regenerate(s: Session, item_id: int) -> None:
    item = s.get(Item, item_id)
    assert item is not None
    new = regenerated_samples(2)
    assert generation.store_candidates(s, item_id=item_id, from_round=item.round, regenerate=True, samples=new)


def _item_counts(s: Session, item_id: int) -> tuple[int, int, int]:
    row = s.execute(select(Item.round, Item.claims, Item.judgment_count).where(Item.id == item_id)).one()
    return row[0], row[1], row[2]


def _tally(s: Session, user_id: int) -> int:
    return (
        s.scalar(
            select(func.coalesce(func.sum(AnnotatorTally.judged), 0)).where(AnnotatorTally.annotator_id == user_id)
        )
        or 0
    )


@pytest.fixture
def one_item(db: Database) -> dict[str, int]:
    with db.session() as s:
        me, admin = make_user(s, "late"), make_user(s, "boss", role="admin")
        project = make_project(s, "regen", k=2, overlap=1, members=[me], gold_share=0.0)
        (item,) = make_items(s, project, 1)
        return {"project": project.id, "me": me.id, "admin": admin.id, "item": item.id}


def test_a_submit_for_a_regenerated_round_is_refused_and_the_new_round_stays_open(
    db: Database, one_item: dict[str, int]
) -> None:
    with db.session() as s:
        project, me = project_and_user(s, one_item)
        task = assign_next_item(s, project=project, annotator=me)
        assert task is not None
        lease, data = task.assignment.id, prefer_first(task, project)
    with db.session() as s:
        _regenerate(s, one_item["item"])
    with db.session() as s:
        assert _item_counts(s, one_item["item"]) == (1, 0, 0)  # the old round's lease released
        assert s.scalar(select(Assignment.status).where(Assignment.id == lease)) == "expired"
    with pytest.raises(Conflict, match=REGENERATED) as refused, db.session() as s:
        project, me = project_and_user(s, one_item)
        submit_judgment(s, project=project, annotator=me, assignment_id=lease, submit_key="late-0001", data=data)
    assert "not stored" in str(refused.value.detail)
    with db.session() as s:
        project, me = project_and_user(s, one_item)
        assert _item_counts(s, one_item["item"]) == (1, 0, 0)
        assert s.scalar(select(func.count()).select_from(Judgment)) == 0
        assert _tally(s, me.id) == 0
        assert judged_count(s, project=project, annotator=me) == 0
        # The new candidates are still to be judged: by the same annotator, who has not judged them.
        again = assign_next_item(s, project=project, annotator=me)
        assert again is not None and again.item.id == one_item["item"] and again.assignment.round == 1
        judgment, created = submit_judgment(
            s,
            project=project,
            annotator=me,
            assignment_id=again.assignment.id,
            submit_key="late-0002",
            data=prefer_first(again, project),
        )
        assert created and judgment.round == 1
        assert _item_counts(s, one_item["item"]) == (1, 1, 1)


def test_a_regeneration_after_the_submit_keeps_the_judgment_on_its_round(
    db: Database, one_item: dict[str, int]
) -> None:
    """The other order: judged first, regenerated after — the judgment stays (for the record) on round 0, and a
    retry of it still answers it."""
    with db.session() as s:
        project, me = project_and_user(s, one_item)
        task = assign_next_item(s, project=project, annotator=me)
        assert task is not None
        data = prefer_first(task, project)
        first, created = submit_judgment(
            s, project=project, annotator=me, assignment_id=task.assignment.id, submit_key="before-01", data=data
        )
        assert created
    with db.session() as s:
        _regenerate(s, one_item["item"])
    with db.session() as s:
        project, me = project_and_user(s, one_item)
        again, created = submit_judgment(
            s, project=project, annotator=me, assignment_id=task.assignment.id, submit_key="before-01", data=data
        )
        assert (again.id, again.round, created) == (first.id, 0, False)
        assert _item_counts(s, one_item["item"]) == (1, 0, 0)
        assert _tally(s, me.id) == 1


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_regeneration_waits_for_a_submit_in_flight_instead_of_deadlocking(
    db: Database, one_item: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submit locks its lease, then updates the item; a regeneration that took the item first and the lease
    second deadlocked with it (PostgreSQL aborted one of them). The interleaving is forced: the submit holds its
    lease while the regeneration starts, and goes on once the regeneration waits for a lock."""
    with db.session() as s:
        project, me = project_and_user(s, one_item)
        task = assign_next_item(s, project=project, annotator=me)
        assert task is not None
        lease, data = task.assignment.id, prefer_first(task, project)
    locked, go = threading.Event(), threading.Event()
    real_stored = repository.stored_judgments

    def stored_then_wait(session: Session, assignment: Assignment, submit_key: str) -> Any:
        found = real_stored(session, assignment, submit_key)
        locked.set()
        assert go.wait(10)
        return found

    monkeypatch.setattr(repository, "stored_judgments", stored_then_wait)
    errors: list[BaseException] = []
    results: dict[str, Any] = {}

    def submit() -> None:
        try:
            with db.session() as s:
                project, me = project_and_user(s, one_item)
                judgment, created = submit_judgment(
                    s, project=project, annotator=me, assignment_id=lease, submit_key="inflight-1", data=data
                )
                results["submit"] = (judgment.round, created)
        except BaseException as exc:
            errors.append(exc)

    def regenerate() -> None:
        try:
            with db.session() as s:
                _regenerate(s, one_item["item"])
                results["regenerated"] = True
        except BaseException as exc:
            errors.append(exc)

    submitter = threading.Thread(target=submit)
    submitter.start()
    assert locked.wait(10)
    regenerator = threading.Thread(target=regenerate)
    regenerator.start()
    with db.session(write=False) as watch:
        deadline = time.monotonic() + 10
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        while not watch.scalar(text(waiting)):
            assert time.monotonic() < deadline, "the regeneration never waited for a lock"
            watch.rollback()
            time.sleep(0.01)
    go.set()
    submitter.join(15)
    regenerator.join(15)
    assert errors == []
    assert results == {"submit": (0, True), "regenerated": True}
    with db.session(write=False) as s:
        assert _item_counts(s, one_item["item"]) == (1, 0, 0)  # the judgment stays on round 0, the new round open
        assert s.scalar(select(Assignment.status).where(Assignment.id == lease)) == "submitted"


def _fake_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


fake = pytest.fixture(_fake_server)


def test_the_all_bad_regeneration_refuses_the_late_submit_of_the_other_annotator(
    db: Database, fake: FakeOpenAI
) -> None:
    """One annotator flags "all bad", the project regenerates those items (the job), and another annotator's
    lease on the same item is released: their late submit is refused, the item is open again."""
    with db.session() as s:
        flagger, slow = make_user(s, "flagger"), make_user(s, "slow")
        project = make_project(
            s,
            "allbad",
            k=2,
            overlap=2,
            members=[flagger, slow],
            gold_share=0.0,
            generation={"base_urls": [fake.base_url], "model": "fake", "backoff_base_s": 0.01, "timeout_s": 30.0},
        )
        (item,) = make_items(s, project, 1)
        mine = assign_next_item(s, project=project, annotator=flagger)
        theirs = assign_next_item(s, project=project, annotator=slow)
        assert mine is not None and theirs is not None and theirs.item.id == item.id
        bad = prefer_first(mine, project).model_copy(update={"all_bad": True})
        submit_judgment(
            s, project=project, annotator=flagger, assignment_id=mine.assignment.id, submit_key="bad-0001", data=bad
        )
        late = (theirs.assignment.id, prefer_first(theirs, project))
        job = generation.start_job(s, project=project, request=JobIn(selection="all_bad"), user_id=None)
        ids = {"project": project.id, "me": slow.id, "item": item.id}
    assert runner.run_one(db, worker_id="w1") == (job.id, "done")
    with pytest.raises(Conflict, match=REGENERATED), db.session() as s:
        project, me = project_and_user(s, ids)
        submit_judgment(s, project=project, annotator=me, assignment_id=late[0], submit_key="bad-0002", data=late[1])
    with db.session() as s:
        project, me = project_and_user(s, ids)
        assert _item_counts(s, item.id) == (1, 0, 0)
        assert _tally(s, me.id) == 0
        assert progress(s, project=project, annotator=me).judged_by_me == 0
        assert s.scalar(select(func.count()).select_from(Judgment)) == 1  # the flagger's, on round 0


# --- HTTP --------------------------------------------------------------------------------------------------


@pytest.fixture
def api(db: Database, settings: Settings, one_item: dict[str, int]) -> dict[str, Any]:
    with db.session() as s:
        me = s.get(User, one_item["me"])
        assert me is not None
        token = create_api_token(s, user=me, scope="api", settings=settings)[1]
    return {**one_item, "h": {"Authorization": f"Bearer {token}"}}


def _body(assignment: dict[str, Any], key: str) -> dict[str, Any]:
    first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
    verdicts = {d["key"]: {"kind": "preference", "chosen": first, "rejected": last} for d in assignment["dimensions"]}
    return {"assignment_id": assignment["assignment_id"], "submit_key": key, "verdicts": verdicts}


def test_api_refuses_a_late_submit_with_409_and_counts_nothing(
    client: TestClient, db: Database, api: dict[str, Any]
) -> None:
    nxt = client.post("/api/v1/projects/regen/next", headers=api["h"]).json()["assignment"]
    with db.session() as s:
        _regenerate(s, api["item"])
    late = client.post("/api/v1/projects/regen/judgments", json=_body(nxt, "api-late-01"), headers=api["h"])
    assert late.status_code == 409, late.text
    assert REGENERATED in late.json()["detail"] and "not stored" in late.json()["detail"]
    again = client.post("/api/v1/projects/regen/next", headers=api["h"]).json()
    assert again["progress"]["judged_by_me"] == 0 and again["progress"]["items_done"] == 0
    fresh = again["assignment"]
    assert fresh["item_id"] == api["item"] and fresh["assignment_id"] != nxt["assignment_id"]
    stored = client.post("/api/v1/projects/regen/judgments", json=_body(fresh, "api-late-02"), headers=api["h"])
    assert stored.status_code == 201, stored.text
    with db.session(write=False) as s:
        assert _item_counts(s, api["item"]) == (1, 1, 1)


def test_the_page_says_the_item_was_regenerated_and_moves_on(
    client: TestClient, db: Database, one_item: dict[str, int], login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        me = s.get(User, one_item["me"])
        assert me is not None
    login_as(me)
    htmx = {"HX-Request": "true"}
    panel = client.post("/projects/regen/annotate/next", headers=htmx)
    assert panel.status_code == 200
    lease = int(re.search(r'data-assignment="(\d+)"', panel.text).group(1))  # type: ignore[union-attr]
    with db.session() as s:
        _regenerate(s, one_item["item"])
    form = {"overall": "A", **dict.fromkeys(("helpful", "harmless", "honest", "polite", "refusal"), "A")}
    late = client.post(f"/projects/regen/annotate/{lease}", data={**form, "submit_key": "page-late-01"}, headers=htmx)
    assert late.status_code == 200, late.text
    assert "regenerated" in late.text and "not stored" in late.text
    # It moves on: the next item is shown (here the same prompt with its new candidates, on a new lease).
    shown = int(re.search(r'data-assignment="(\d+)"', late.text).group(1))  # type: ignore[union-attr]
    assert shown != lease and "regenerated 0" in late.text
    with db.session(write=False) as s:
        assert s.scalar(select(Assignment.round).where(Assignment.id == shown)) == 1
        assert s.scalar(select(func.count()).select_from(Judgment)) == 0
        assert _item_counts(s, one_item["item"]) == (1, 1, 0)  # the new lease's claim only
    # Without htmx: the form posts, and the page it is sent to says the same.
    plain = client.post(f"/projects/regen/annotate/{lease}", data={**form, "submit_key": "page-late-02"})
    assert plain.status_code == 200 and "regenerated" in plain.text, plain.text
    assert str(plain.url).endswith("/projects/regen/annotate?regenerated=1")
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == 0
