"""Time on task: the wall-clock seconds and the active seconds are both stored; the figures use the active ones."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.agreement import service as agreement
from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentForm, JudgmentIn, VerdictIn
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Judgment, Project, User
from tests.factories import make_items, make_project, make_user


def _judge_all(db: Database, *, seconds: float, active: float | None) -> int:
    """Two annotators judge every item of a fresh project, each judgment timed ``seconds`` wall, ``active``."""
    with db.session() as s:
        users = [make_user(s, name) for name in ("ann1", "ann2")]
        project = make_project(s, "timed", k=2, overlap=2, members=users)
        make_items(s, project, 4)
        for user in users:
            while (task := assign_next_item(s, project=project, annotator=user)) is not None:
                first, last = task.candidates[0].id, task.candidates[-1].id
                verdicts = {
                    d: VerdictIn(kind="preference", chosen=first, rejected=last) for d in dimension_keys(project)
                }
                submit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    assignment_id=task.assignment.id,
                    submit_key=f"{user.username}-{task.assignment.id}-key",
                    data=JudgmentIn(verdicts=verdicts, seconds=seconds, active_seconds=active),
                )
        return project.id


def _median_seconds(db: Database, project_id: int) -> dict[str, float | None]:
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        figures = agreement.compute(s, project=project, resamples=20)
    return {a.annotator: a.median_seconds for a in figures.annotators}


def test_both_times_are_stored_and_the_figures_use_the_active_one(db: Database) -> None:
    project_id = _judge_all(db, seconds=150.3, active=4.2)
    with db.session(write=False) as s:
        stored = s.execute(select(Judgment.seconds, Judgment.active_seconds)).all()
    assert stored and all(row == (150.3, 4.2) for row in stored)
    # An idle sit of two and a half minutes does not make the annotator look slow.
    assert _median_seconds(db, project_id) == {"ann1": 4.2, "ann2": 4.2}


def test_judgments_without_active_seconds_fall_back_to_the_wall_clock(db: Database) -> None:
    project_id = _judge_all(db, seconds=9.0, active=None)
    with db.session(write=False) as s:
        assert set(s.scalars(select(Judgment.active_seconds))) == {None}  # as rows stored before the column
    assert _median_seconds(db, project_id) == {"ann1": 9.0, "ann2": 9.0}
    # Mixed: rows that have both count with their active seconds, the others with their wall seconds.
    with db.session() as s:
        ann1 = s.scalar(select(User.id).where(User.username == "ann1"))
        s.execute(update(Judgment).where(Judgment.annotator_id == ann1).values(active_seconds=1.0))
        s.commit()
    assert _median_seconds(db, project_id) == {"ann1": 1.0, "ann2": 9.0}


def test_active_seconds_never_exceed_the_wall_clock(db: Database) -> None:
    _judge_all(db, seconds=5.0, active=7.5)
    with db.session(write=False) as s:
        assert set(s.scalars(select(Judgment.active_seconds))) == {5.0}


def test_the_page_form_reads_active_seconds() -> None:
    form = JudgmentForm.model_validate({"seconds": "151.0", "active_seconds": "3.4"})
    assert (form.seconds, form.active_seconds) == (151.0, 3.4)
    assert JudgmentForm.model_validate({"seconds": "2", "active_seconds": "junk"}).active_seconds is None


@pytest.fixture
def token(db: Database, settings: Settings) -> str:
    with db.session() as s:
        alice = make_user(s, "alice")
        project = make_project(s, "pa", k=2, overlap=2, members=[alice])
        make_items(s, project, 3)
        return create_api_token(s, user=alice, scope="api", settings=settings)[1]


def _body(client: TestClient, h: dict[str, str], key: str, **times: Any) -> dict[str, Any]:
    assignment = client.post("/api/v1/projects/pa/next", headers=h).json()["assignment"]
    first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
    verdicts = {d["key"]: {"kind": "preference", "chosen": first, "rejected": last} for d in assignment["dimensions"]}
    return {"assignment_id": assignment["assignment_id"], "submit_key": key, "verdicts": verdicts, **times}


def test_the_api_takes_and_returns_active_seconds_optionally(client: TestClient, token: str) -> None:
    h = {"Authorization": f"Bearer {token}"}
    timed = client.post(
        "/api/v1/projects/pa/judgments",
        json=_body(client, h, "api-key-0001", seconds=60, active_seconds=12.5),
        headers=h,
    )
    assert timed.status_code == 201, timed.text
    assert (timed.json()["seconds"], timed.json()["active_seconds"]) == (60, 12.5)
    read = client.get(f"/api/v1/projects/pa/judgments/{timed.json()['id']}", headers=h).json()
    assert read["active_seconds"] == 12.5
    plain = client.post("/api/v1/projects/pa/judgments", json=_body(client, h, "api-key-0002", seconds=8), headers=h)
    assert plain.status_code == 201 and plain.json()["active_seconds"] is None
    bad = client.post(
        "/api/v1/projects/pa/judgments", json=_body(client, h, "api-key-0003", active_seconds=-1), headers=h
    )
    assert bad.status_code == 422
