"""The review stream's service: the majority a case opens with, decisions from the page's form (a blank reason
only for the majority), the next case in queue order, and the Decided list (newest first, keyset paginated)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.adjudication import stream
from app.adjudication.majority import MAJORITY_ACCEPTED, majority_verdict
from app.annotation.dimensions import dimension_keys
from app.annotation.schemas import VerdictIn
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.kit.errors import Invalid
from app.models import Adjudication, Project, User
from tests.factories import make_item, make_judgment, make_project, make_user


def _pref(chosen: int, rejected: int) -> VerdictIn:
    return VerdictIn(kind="preference", chosen=chosen, rejected=rejected)


def test_majority_by_best_then_worst_and_none_on_a_tie() -> None:
    assert majority_verdict([_pref(1, 2), _pref(1, 2), _pref(2, 1)]) == _pref(1, 2)
    assert majority_verdict([_pref(1, 2), _pref(2, 1)]) is None  # 1-1: no majority
    tie = VerdictIn(kind="tie")
    assert majority_verdict([tie, tie, _pref(1, 2)]) == tie
    # k = 3: best by the most votes, then worst among the votes that named one.
    assert majority_verdict([_pref(1, 3), _pref(1, 3), _pref(2, 3)]) == _pref(1, 3)
    assert majority_verdict([_pref(1, 2), _pref(1, 3), _pref(2, 1)]) is None  # best 1, worst 2 vs 3 tie
    assert majority_verdict([_pref(1, 2), _pref(2, 3), _pref(3, 1)]) is None
    assert majority_verdict([]) is None


@pytest.fixture
def split(db: Database, settings: Settings) -> dict[str, Any]:
    """Three items judged 2-1 (A over B by u1 and u2, B over A by u3) on every dimension; on item 0 "harmless" is
    1-1-1 (A, B, tie)."""
    with db.session() as s:
        users = [make_user(s, n) for n in ("u1", "u2", "u3")]
        boss = make_user(s, "boss", role="admin")
        project = make_project(s, "rev", k=2, overlap=3, members=users)
        dims = dimension_keys(project)
        items = [make_item(s, project, f"question {i}") for i in range(3)]
        harmless_split = (("preference", 0, 1), ("preference", 1, 0), ("tie", None, None))
        for n, item in enumerate(items):
            for i, (user, best) in enumerate(zip(users, (0, 0, 1), strict=True)):
                verdicts: dict[str, tuple[str, int | None, int | None]] = dict.fromkeys(
                    dims, ("preference", best, 1 - best)
                )
                if n == 0:
                    verdicts["harmless"] = harmless_split[i]
                make_judgment(s, item, user, verdicts)
        token = create_api_token(s, user=boss, scope="api", settings=settings)[1]
        ann = create_api_token(s, user=users[0], scope="api", settings=settings)[1]
        s.commit()
        return {
            "project_id": project.id,
            "items": [i.id for i in items],
            "dims": dims,
            "h": {"Authorization": f"Bearer {token}"},
            "ann": {"Authorization": f"Bearer {ann}"},
        }


def _project_admin(s: Any, world: dict[str, Any]) -> tuple[Project, User]:
    project = s.get(Project, world["project_id"])
    admin = s.scalar(select(User).where(User.username == "boss"))
    assert project is not None and admin is not None
    return project, admin


def test_a_case_opens_with_the_majority_and_then_with_its_stored_decision(db: Database, split: dict[str, Any]) -> None:
    first = split["items"][0]
    with db.session() as s:
        project, admin = _project_admin(s, split)
        view = stream.case_view(s, project=project, item_id=first)
        assert view.source == "majority"
        assert view.prefill["overall"] == "A>B" and view.prefill["helpful"] == "A>B"
        assert view.prefill["harmless"] == "" and view.no_majority == ["harmless"]
        answers = dict.fromkeys(split["dims"], "A>B") | {"harmless": "tie", "overall": "B>A"}
        stream.decide_from_form(s, project=project, item_id=first, answers=answers, reason="B is right", admin=admin)
        s.commit()
    with db.session() as s:
        project, _ = _project_admin(s, split)
        view = stream.case_view(s, project=project, item_id=first)
        assert view.source == "decision" and view.decided_by == "boss"
        assert view.prefill == answers  # the stored values, not the majority and not blank
        assert view.majority["overall"] == "A>B"


def test_a_blank_reason_only_for_the_majority_and_decide_moves_to_the_next_case(
    db: Database, split: dict[str, Any]
) -> None:
    first, second, third = split["items"]
    majority = dict.fromkeys(split["dims"], "A>B")
    with db.session() as s:
        project, admin = _project_admin(s, split)
        queue_order = [e.item_id for e in stream.service.queue(s, project=project)]
        assert set(queue_order) == {first, second, third}
        with pytest.raises(Invalid, match="harmless"):  # no majority on harmless: choosing it needs a reason
            stream.decide_from_form(s, project=project, item_id=first, answers=majority, reason="", admin=admin)
        with pytest.raises(Invalid, match="overall"):
            stream.decide_from_form(
                s, project=project, item_id=second, answers=majority | {"overall": "B>A"}, reason=" ", admin=admin
            )
        decision, nxt = stream.decide_from_form(
            s, project=project, item_id=second, answers=majority, reason="", admin=admin
        )
        assert decision.reason == MAJORITY_ACCEPTED and nxt == next(i for i in queue_order if i != second)
        decision, nxt = stream.decide_from_form(  # numbers (1>2) as the old form posted them still work
            s, project=project, item_id=third, answers=dict.fromkeys(split["dims"], "1>2"), reason="", admin=admin
        )
        assert nxt == first
        decision, nxt = stream.decide_from_form(
            s, project=project, item_id=first, answers=majority, reason="harmless: A", admin=admin
        )
        assert nxt is None and decision.reason == "harmless: A"
        s.commit()


def test_decided_lists_the_current_decisions_newest_first_in_pages(
    db: Database, split: dict[str, Any], client: TestClient
) -> None:
    first, second, _ = split["items"]
    majority = dict.fromkeys(split["dims"], "A>B")
    with db.session() as s:
        project, admin = _project_admin(s, split)
        for item_id, reason in ((first, "one"), (second, "two"), (first, "one, again")):
            stream.decide_from_form(s, project=project, item_id=item_id, answers=majority, reason=reason, admin=admin)
        s.commit()
    with db.session() as s:
        project, _ = _project_admin(s, split)
        assert len(s.scalars(select(Adjudication.id).where(Adjudication.item_id == first)).all()) == 2  # both kept
        page, cursor = stream.decided(s, project=project, limit=1)
        assert [(e.item_id, e.reason, e.decided_by) for e in page] == [(first, "one, again", "boss")]
        assert page[0].overall == "A>B" and page[0].differs == []
        rest, end = stream.decided(s, project=project, before=cursor, limit=1)
        assert [(e.item_id, e.reason) for e in rest] == [(second, "two")] and end is None
    r = client.get("/api/v1/projects/rev/adjudication/decided?limit=1", headers=split["h"])
    assert r.status_code == 200
    body = r.json()
    assert body["entries"][0]["item_id"] == first and body["entries"][0]["verdicts"]["overall"] == "A>B"
    older = client.get(f"/api/v1/projects/rev/adjudication/decided?before={body['next_before']}", headers=split["h"])
    assert [e["reason"] for e in older.json()["entries"]] == ["two"] and older.json()["next_before"] is None
    assert client.get("/api/v1/projects/rev/adjudication/decided", headers=split["ann"]).status_code == 403


def test_an_optional_dimension_may_be_left_out_of_a_decision(db: Database) -> None:
    with db.session() as s:
        users = [make_user(s, n) for n in ("o1", "o2")]
        admin = make_user(s, "chief", role="admin")
        dims = [{"key": "helpful", "label": "Helpful"}, {"key": "refusal", "label": "Refusal", "required": False}]
        project = make_project(s, "opt", k=2, overlap=2, members=users, dimensions=dims)
        item = make_item(s, project, "q")
        make_judgment(s, item, users[0], {"overall": ("preference", 0, 1), "helpful": ("preference", 0, 1)})
        make_judgment(s, item, users[1], {"overall": ("preference", 1, 0), "helpful": ("preference", 0, 1)})
        view = stream.case_view(s, project=project, item_id=item.id)
        assert view.optional == {"refusal"} and view.no_majority == ["overall"]  # nobody answered refusal
        with pytest.raises(Invalid, match="overall"):
            stream.decide_from_form(
                s,
                project=project,
                item_id=item.id,
                answers={"overall": "B>A", "helpful": "A>B"},
                reason="",
                admin=admin,
            )
        decision, _ = stream.decide_from_form(
            s,
            project=project,
            item_id=item.id,
            answers={"overall": "B>A", "helpful": "A>B", "refusal": ""},
            reason="B",
            admin=admin,
        )
        assert set(decision.verdicts) == {"overall", "helpful"}
        s.commit()
