"""Cases of ranking and strength projects: the judgments shown as rankings ("C ≫ A = B") and strengths ("A ≫ B"),
the majority pre-fill from each ranking's best and worst, and the queue's split votes read from rankings."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.adjudication.majority import majority_verdict
from app.annotation.judgments import submit_judgment
from app.annotation.queue import assign_next_item
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Project, User
from tests.factories import make_item, make_project, make_user


def _rank(*tiers: list[int], much: list[int] | None = None) -> VerdictIn:
    return VerdictIn(kind="ranking", ranking=list(tiers), much=much)


def _pref(best: int, worst: int) -> VerdictIn:
    return VerdictIn(kind="preference", chosen=best, rejected=worst)


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        ([_rank([1], [2], [3]), _rank([1], [3], [2]), _rank([2], [1], [3])], _pref(1, 3)),
        ([_rank([1], [2, 3]), _rank([1, 2], [3]), _rank([1], [2], [3])], _pref(1, 3)),  # tied tiers name none
        ([_rank([1, 2, 3]), _rank([1, 2, 3]), _rank([1], [2], [3])], VerdictIn(kind="tie")),
        ([_rank([1], [2], [3]), _rank([2], [1], [3])], None),  # 1-1 on the best
        ([_rank([1], [2], [3]), _pref(1, 2), VerdictIn(kind="na")], None),  # worst 3 or 2: 1-1
        ([_rank([3], [2], [1], much=[0]), _pref(3, 1)], _pref(3, 1)),
    ],
)
def test_a_ranking_votes_with_its_best_and_worst(votes: list[VerdictIn], expected: VerdictIn | None) -> None:
    assert majority_verdict(votes) == expected


def test_a_strength_is_not_part_of_the_majority() -> None:
    votes = [VerdictIn(kind="preference", chosen=1, rejected=2, strength=s) for s in (1, 3, 3)]
    assert majority_verdict(votes) == _pref(1, 2)


def _submit(db: Database, project_id: int, username: str, verdicts: Any) -> None:
    with db.session() as s:
        project, user = s.get(Project, project_id), s.scalar(select(User).where(User.username == username))
        assert project is not None and user is not None
        task = assign_next_item(s, project=project, annotator=user)
        assert task is not None
        ids = {c.position: c.id for c in task.candidates}
        submit_judgment(
            s,
            project=project,
            annotator=user,
            assignment_id=task.assignment.id,
            submit_key=f"ranked-{username}-{project_id}",
            data=JudgmentIn(verdicts={"overall": verdicts(ids)}),
        )


@pytest.fixture
def cases(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        users = [make_user(s, n) for n in ("r1", "r2", "r3")]
        admin = make_user(s, "judge", role="admin")
        ranked = make_project(s, "rk", k=3, overlap=3, members=users, ranking_mode="rank", dimensions=[])
        strong = make_project(s, "st", k=2, overlap=3, members=users, strength=True, dimensions=[])
        ranked_item, strong_item = make_item(s, ranked, "rank me").id, make_item(s, strong, "how much").id
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
        ids = ranked.id, strong.id
    # positions 0, 1, 2 = canonical letters A, B, C
    _submit(db, ids[0], "r1", lambda c: _rank([c[2]], sorted([c[0], c[1]]), much=[0]))  # C ≫ A = B
    _submit(db, ids[0], "r2", lambda c: _rank([c[2]], [c[0]], [c[1]]))  # C > A > B
    _submit(db, ids[0], "r3", lambda c: _rank([c[0]], [c[2]], [c[1]]))  # A > C > B
    for name, strength in (("r1", 3), ("r2", 1), ("r3", 2)):
        _submit(
            db, ids[1], name, lambda c, n=strength: VerdictIn(kind="preference", chosen=c[0], rejected=c[1], strength=n)
        )
    return {"items": (ranked_item, strong_item), "h": {"Authorization": f"Bearer {token}"}}


def test_a_ranking_case_shows_the_rankings_and_opens_with_their_majority(
    client: TestClient, cases: dict[str, Any]
) -> None:
    page = client.get(f"/projects/rk/adjudication/{cases['items'][0]}", headers=cases["h"])
    assert page.status_code == 200
    assert "C ≫ A = B" in page.text and "C &gt; A &gt; B" in page.text and "A &gt; C &gt; B" in page.text
    # best: C twice, A once; worst: B twice (r1's tied bottom tier names none)
    assert 'data-majority="C&gt;B"' in page.text and '<option value="C&gt;B" selected>' in page.text


def test_a_ranking_case_is_queued_by_its_split_best(client: TestClient, cases: dict[str, Any]) -> None:
    queue = client.get("/api/v1/projects/rk/adjudication", headers=cases["h"])
    assert queue.status_code == 200, queue.text
    entries = {e["item_id"]: e for e in queue.json()}
    assert entries[cases["items"][0]]["margin"] == pytest.approx(1 / 3, abs=1e-3)  # C 2, A 1 of 3


def test_a_strength_case_shows_how_much_better(client: TestClient, cases: dict[str, Any]) -> None:
    page = client.get(f"/projects/st/adjudication/{cases['items'][1]}", headers=cases["h"])
    assert page.status_code == 200
    assert all(shown in page.text for shown in ("A ≫ B", "A ≳ B", "A &gt; B"))
    assert '<option value="A&gt;B" selected>' in page.text
