"""Faults in the middle of a judgment: the session expires (the draft survives and is sent after login), the
lease expires (accepted while the item has room, else a clear 409), two tabs edit one judgment (409, no loss)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.annotation.queue import assign_next_item, expire_leases
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Assignment, AuthSession, Item, Judgment, Project, User, Verdict, utcnow
from tests.factories import PASSWORD, make_item, make_judgment, make_project, make_user
from tests.reliability.helpers import wait_for

HX = {"HX-Request": "true"}
DIMS = ["overall", "helpful", "harmless", "honest", "polite", "refusal"]


@pytest.fixture
def team(db: Database, settings: Settings) -> dict[str, Any]:
    """k = 2, r = 3: annie and two colleagues; items "first" and "second" (in id order)."""
    with db.session() as s:
        annie, u1, u2 = make_user(s, "annie"), make_user(s, "u1"), make_user(s, "u2")
        project = make_project(s, "p", k=2, overlap=3, members=[annie, u1, u2])
        first = make_item(s, project, "first prompt", candidates=["first A", "first B"])
        second = make_item(s, project, "second prompt", candidates=["second A", "second B"])
        tokens = {u.username: create_api_token(s, user=u, scope="api", settings=settings)[1] for u in (annie, u1, u2)}
    return {
        "project_id": project.id,
        "users": {"annie": annie.id, "u1": u1.id, "u2": u2.id},
        "items": {"first": first.id, "second": second.id},
        "api": {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()},
    }


def _expire_sessions(db: Database) -> None:
    with db.session() as s:
        s.execute(update(AuthSession).values(last_seen_at=utcnow() - timedelta(days=2)))


def _lapse_lease_and_fill_the_other_item(db: Database, team: dict[str, Any]) -> None:
    """Annie's lease lapses and is swept; meanwhile her colleagues judge the other item, which makes it the
    fullest (the queue offers the fullest item first)."""
    with db.session() as s:
        s.execute(update(Assignment).values(lease_expires_at=utcnow() - timedelta(minutes=1)))
        assert expire_leases(s, project_id=team["project_id"]) == 1
        second = s.get(Item, team["items"]["second"])
        assert second is not None
        for name in ("u1", "u2"):
            colleague = s.get(User, team["users"][name])
            assert colleague is not None
            make_judgment(s, second, colleague, dict.fromkeys(DIMS, ("preference", 0, 1)))


def _annies_judgments(db: Database, team: dict[str, Any]) -> list[tuple[int, str, dict[str, int | None]]]:
    with db.session(write=False) as s:
        out = []
        for judgment in s.scalars(select(Judgment).where(Judgment.annotator_id == team["users"]["annie"])):
            chosen = {
                v.dimension: v.chosen_candidate_id
                for v in s.scalars(select(Verdict).where(Verdict.judgment_id == judgment.id))
            }
            out.append((judgment.item_id, judgment.submit_key, chosen))
        return out


def _assignment_of(html: str) -> int:
    match = re.search(r'data-assignment="(\d+)"', html)
    assert match, "no item on the page"
    return int(match.group(1))


def _display_order(db: Database, assignment_id: int) -> list[int]:
    with db.session(write=False) as s:
        assignment = s.get(Assignment, assignment_id)
        assert assignment is not None
        return list(assignment.display_order)


def test_session_and_lease_expire_mid_judgment_the_same_item_comes_back_after_login(
    client: TestClient, login_as: Callable[[User], str], db: Database, team: dict[str, Any]
) -> None:
    with db.session(write=False) as s:
        annie = s.get(User, team["users"]["annie"])
        assert annie is not None
    login_as(annie)
    lease = _assignment_of(client.post("/projects/p/annotate/next", headers=HX).text)
    form = {**dict.fromkeys(DIMS, "A"), "reason": "A is right", "submit_key": "draft-key-0001"}
    _expire_sessions(db)
    _lapse_lease_and_fill_the_other_item(db, team)

    refused = client.post(f"/projects/p/annotate/{lease}", data=form, headers=HX)
    assert refused.status_code == 401 and refused.headers["HX-Redirect"].startswith("/login?next=")
    assert _annies_judgments(db, team) == []

    login_as(annie)
    # The page's placeholder claims the next item: her lapsed lease comes back (same assignment, same
    # display order), so the draft the page kept for it is restored and sent, not discarded.
    again = client.post("/projects/p/annotate/next", headers=HX)
    assert _assignment_of(again.text) == lease
    saved = client.post(f"/projects/p/annotate/{lease}", data=form, headers=HX)
    assert saved.status_code == 200 and "Saved" in saved.text
    shown_a = _display_order(db, lease)[0]
    assert _annies_judgments(db, team) == [(team["items"]["first"], "draft-key-0001", dict.fromkeys(DIMS, shown_a))]


def test_a_lapsed_lease_comes_back_only_while_its_item_has_room(db: Database, team: dict[str, Any]) -> None:
    with db.session() as s:
        project, annie = s.get(Project, team["project_id"]), s.get(User, team["users"]["annie"])
        assert project is not None and annie is not None
        task = assign_next_item(s, project=project, annotator=annie)
        assert task is not None and task.item.id == team["items"]["first"]
        s.execute(update(Assignment).values(lease_expires_at=utcnow() - timedelta(minutes=1)))
        assert expire_leases(s, project_id=project.id) == 1
        first = s.get(Item, team["items"]["first"])
        assert first is not None
        for name in ("u1", "u2"):  # two colleagues judge it; one more fills it up to r = 3
            colleague = s.get(User, team["users"][name])
            assert colleague is not None
            make_judgment(s, first, colleague, dict.fromkeys(DIMS, ("preference", 0, 1)))
        third = make_user(s, "u3")
        make_judgment(s, first, third, dict.fromkeys(DIMS, ("preference", 0, 1)))
        nxt = assign_next_item(s, project=project, annotator=annie)
        assert nxt is not None and nxt.item.id == team["items"]["second"]


def test_lease_expired_and_item_filled_the_submit_is_a_clear_409_over_json_and_on_the_page(
    client: TestClient, login_as: Callable[[User], str], db: Database, team: dict[str, Any]
) -> None:
    h = team["api"]["annie"]
    assignment = client.post("/api/v1/projects/p/next", headers=h).json()["assignment"]
    first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
    body = {
        "assignment_id": assignment["assignment_id"],
        "submit_key": "late-key-0001",
        "verdicts": {d: {"kind": "preference", "chosen": first, "rejected": last} for d in DIMS},
    }
    with db.session() as s:
        s.execute(update(Assignment).values(lease_expires_at=utcnow() - timedelta(minutes=1)))
    # Two colleagues take the item (their claim sweeps her lease) and a third fills it up to r = 3.
    for name in ("u1", "u2"):
        got = client.post("/api/v1/projects/p/next", headers=team["api"][name]).json()["assignment"]
        assert got["item_id"] == assignment["item_id"]
    with db.session() as s:
        item = s.get(Item, assignment["item_id"])
        assert item is not None
        make_judgment(s, item, make_user(s, "u3"), dict.fromkeys(DIMS, ("preference", 0, 1)))

    late = client.post("/api/v1/projects/p/judgments", json=body, headers=h)
    assert late.status_code == 409
    assert late.json() == {"detail": "Your lease on this item expired and it was given to other annotators"}
    with db.session() as s:
        annie = s.get(User, team["users"]["annie"])
        assert annie is not None
    login_as(annie)
    page = client.post(
        f"/projects/p/annotate/{assignment['assignment_id']}",
        data={**dict.fromkeys(DIMS, "A"), "submit_key": "late-key-0002"},
        headers=HX,
    )
    assert page.status_code == 409 and page.headers["HX-Retarget"] == "#toasts"
    assert "Your lease on this item expired and it was given to other annotators" in page.text
    assert _annies_judgments(db, team) == []
    with db.session(write=False) as s:
        item = s.get(Item, assignment["item_id"])
        assert item is not None and item.claims == 3 and item.judgment_count == 1
    # She simply goes on with another item.
    nxt = client.post("/api/v1/projects/p/next", headers=h).json()["assignment"]
    assert nxt["item_id"] == team["items"]["second"]


def test_lease_lapsed_but_not_yet_swept_the_submit_is_accepted(
    client: TestClient, db: Database, team: dict[str, Any]
) -> None:
    h = team["api"]["annie"]
    assignment = client.post("/api/v1/projects/p/next", headers=h).json()["assignment"]
    first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
    with db.session() as s:
        s.execute(update(Assignment).values(lease_expires_at=utcnow() - timedelta(hours=3)))
    body = {
        "assignment_id": assignment["assignment_id"],
        "submit_key": "late-key-0003",
        "verdicts": {d: {"kind": "preference", "chosen": first, "rejected": last} for d in DIMS},
    }
    accepted = client.post("/api/v1/projects/p/judgments", json=body, headers=h)
    assert accepted.status_code == 201, accepted.text
    with db.session(write=False) as s:
        item = s.get(Item, assignment["item_id"])
        assert item is not None and item.claims == 1 and item.judgment_count == 1


def test_two_tabs_edit_one_judgment_the_stale_save_is_refused_and_nothing_is_lost(
    client: TestClient, db: Database, team: dict[str, Any]
) -> None:
    h = team["api"]["annie"]
    assignment = client.post("/api/v1/projects/p/next", headers=h).json()["assignment"]
    a, b = assignment["candidates"][0]["id"], assignment["candidates"][1]["id"]

    def body(chosen: int, rejected: int, reason: str, **extra: Any) -> dict[str, Any]:
        verdicts = {d: {"kind": "preference", "chosen": chosen, "rejected": rejected} for d in DIMS}
        return {"verdicts": verdicts, "reason": reason, **extra}

    created = client.post(
        "/api/v1/projects/p/judgments",
        json=body(a, b, "first", assignment_id=assignment["assignment_id"], submit_key="tabs-key-0001"),
        headers=h,
    ).json()
    url = f"/api/v1/projects/p/judgments/{created['id']}"
    tab1 = client.get(url, headers=h).json()
    tab2 = client.get(url, headers=h).json()
    assert tab1["version"] == tab2["version"] == 1

    saved = client.put(url, json=body(b, a, "tab one", version=tab1["version"]), headers=h)
    assert saved.status_code == 200 and saved.json()["version"] == 2
    stale = client.put(url, json=body(a, b, "tab two", version=tab2["version"]), headers=h)
    assert stale.status_code == 409
    assert "changed elsewhere" in stale.json()["detail"] and "reload" in stale.json()["detail"]
    current = client.get(url, headers=h).json()
    assert current["reason"] == "tab one" and current["verdicts"]["overall"]["chosen"] == b  # tab one's answer kept
    # Tab two reloads and saves again: now it applies on top of the current version.
    resaved = client.put(url, json=body(a, b, "tab two", version=current["version"]), headers=h)
    assert resaved.status_code == 200 and resaved.json()["version"] == 3 and resaved.json()["reason"] == "tab two"


def test_in_the_browser_the_draft_survives_an_expired_session_and_is_sent_after_login(
    browser: Any, live_url: str, db: Database, team: dict[str, Any]
) -> None:
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_url}/login?next=/projects/p/annotate")
    page.fill("#username", "annie")
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#judge-form")
    lease = int(page.get_attribute("#annotate-panel", "data-assignment") or 0)
    submit_key = page.input_value("#judge-form input[name=submit_key]")
    page.keyboard.press("a")  # overall: A better
    page.keyboard.press("=")  # the same on every dimension
    page.fill("#reason", "A answers the question")
    page.keyboard.press("Escape")

    _expire_sessions(db)
    _lapse_lease_and_fill_the_other_item(db, team)
    page.keyboard.press("Enter")  # the submit meets an expired session: to the login page, draft kept
    page.wait_for_url(re.compile(r"/login\?next="))
    assert _annies_judgments(db, team) == []

    page.fill("#username", "annie")
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    wait_for(lambda: _annies_judgments(db, team), timeout=15, what="the kept draft to be sent")
    shown_a = _display_order(db, lease)[0]
    assert _annies_judgments(db, team) == [(team["items"]["first"], submit_key, dict.fromkeys(DIMS, shown_a))]
    with db.session(write=False) as s:
        assert s.scalar(select(Judgment.reason).where(Judgment.annotator_id == team["users"]["annie"])) == (
            "A answers the question"
        )
    page.close()
