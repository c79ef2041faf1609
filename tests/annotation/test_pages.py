"""The annotation page over HTTP: htmx flow, letters → canonical ids, CSRF, XSS, expired sessions, edits."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.db import Database
from app.models import Assignment, AuthSession, Judgment, User, Verdict, utcnow
from tests.factories import make_item, make_items, make_project, make_user
from tests.support.inert import assert_inert

HX = {"HX-Request": "true"}
DIMS = ["overall", "helpful", "harmless", "honest", "polite", "refusal"]
XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    '<div hx-get="/logout" hx-trigger="load">x</div>',
    "<svg onload=alert(1)>",
    '<a href="data:text/html,<script>alert(1)</script>">d</a>',
]


@pytest.fixture
def ann(db: Database) -> dict[str, Any]:
    with db.session() as s:
        user = make_user(s, "annie")
        project = make_project(s, "p", k=2, overlap=1, members=[user], guidelines="Be **kind**")
        make_items(s, project, 3)
        return {"user": user, "project_id": project.id}


def _assignment_id(html: str) -> int:
    match = re.search(r'data-assignment="(\d+)"', html)
    assert match, "no item on the page"
    return int(match.group(1))


def _claim(client: TestClient) -> str:
    r = client.post("/projects/p/annotate/next", headers=HX)
    assert r.status_code == 200, r.text
    return r.text


def _form(letter: str = "A", **extra: str) -> dict[str, str]:
    return {**dict.fromkeys(DIMS, letter), "submit_key": extra.pop("submit_key", "pagekey-0001"), **extra}


def test_page_claims_and_submit_swaps_in_next(
    client: TestClient, login_as: Callable[[User], str], ann: dict[str, Any], db: Database
) -> None:
    login_as(ann["user"])
    page = client.get("/projects/p/annotate")
    assert page.status_code == 200
    assert 'hx-post="/projects/p/annotate/next"' in page.text and "<html" in page.text
    panel = _claim(client)
    assert "<html" not in panel and 'id="annotate-panel"' in panel
    lease = _assignment_id(panel)
    r = client.post(f"/projects/p/annotate/{lease}", data=_form("B", seconds="7.5", reason="B is right"), headers=HX)
    assert r.status_code == 200 and "Saved" in r.text
    assert _assignment_id(r.text) != lease  # the next item swapped in
    with db.session(write=False) as s:
        assignment = s.get(Assignment, lease)
        judgment = s.scalar(select(Judgment).where(Judgment.assignment_id == lease))
        assert assignment is not None and judgment is not None
        overall = s.scalar(select(Verdict).where(Verdict.judgment_id == judgment.id, Verdict.dimension == "overall"))
        # "B" is the second candidate *as shown*; storage holds canonical ids.
        assert overall is not None and overall.chosen_candidate_id == assignment.display_order[1]
        assert judgment.seconds == 7.5 and judgment.reason == "B is right"


def test_plain_form_post_redirects(client: TestClient, login_as: Callable[[User], str], ann: dict[str, Any]) -> None:
    login_as(ann["user"])
    lease = _assignment_id(_claim(client))
    r = client.post(f"/projects/p/annotate/{lease}", data=_form("A"), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/projects/p/annotate"


def test_incomplete_form_is_a_readable_error(
    client: TestClient, login_as: Callable[[User], str], ann: dict[str, Any]
) -> None:
    login_as(ann["user"])
    lease = _assignment_id(_claim(client))
    r = client.post(f"/projects/p/annotate/{lease}", data={"overall": "A", "submit_key": "x" * 12}, headers=HX)
    assert r.status_code == 422
    assert "helpful: no answer given" in r.text and r.headers.get("HX-Retarget") == "#toasts"


def test_csrf_is_required(client: TestClient, login_as: Callable[[User], str], ann: dict[str, Any]) -> None:
    login_as(ann["user"])
    lease = _assignment_id(_claim(client))
    del client.headers["X-CSRF-Token"]
    r = client.post(f"/projects/p/annotate/{lease}", data=_form("A"), headers=HX)
    assert r.status_code == 403
    r = client.post(
        f"/projects/p/annotate/{lease}",
        data=_form("A"),
        headers={**HX, "X-CSRF-Token": "forged", "Origin": "http://testserver"},
    )
    assert r.status_code == 403


def test_untrusted_text_is_inert(client: TestClient, login_as: Callable[[User], str], db: Database) -> None:
    with db.session() as s:
        user = make_user(s, "xss")
        project = make_project(s, "x", k=2, overlap=1, members=[user], guidelines="\n\n".join(XSS))
        make_item(s, project, "\n\n".join(XSS), candidates=["\n\n".join(XSS), "fine " + XSS[1]])
    login_as(user)
    page = client.get("/projects/x/annotate").text
    panel = _claim_x(client)
    assert_inert(page)
    assert_inert(panel)
    # What users typed survives as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in panel


def _claim_x(client: TestClient) -> str:
    r = client.post("/projects/x/annotate/next", headers=HX)
    assert r.status_code == 200
    return r.text


def test_session_expiry_mid_judgment_keeps_the_lease(
    client: TestClient, login_as: Callable[[User], str], ann: dict[str, Any], db: Database
) -> None:
    login_as(ann["user"])
    lease = _assignment_id(_claim(client))
    with db.session() as s:
        s.execute(update(AuthSession).values(last_seen_at=utcnow() - timedelta(days=2)))
    r = client.post(
        f"/projects/p/annotate/{lease}",
        data=_form("A"),
        headers={**HX, "HX-Current-URL": "http://testserver/projects/p/annotate"},
    )
    # Back to the page (not the POST URL) after login; the page's script then resubmits the kept draft.
    assert r.status_code == 401 and r.headers["HX-Redirect"] == "/login?next=/projects/p/annotate"
    login_as(ann["user"])
    page = client.get("/projects/p/annotate")
    assert _assignment_id(page.text) == lease  # the draft's item is still theirs
    r = client.post(f"/projects/p/annotate/{lease}", data=_form("A"), headers=HX)
    assert r.status_code == 200 and "Saved" in r.text


def test_edit_prefills_and_refuses_stale_versions(
    client: TestClient, login_as: Callable[[User], str], ann: dict[str, Any], db: Database
) -> None:
    login_as(ann["user"])
    lease = _assignment_id(_claim(client))
    client.post(f"/projects/p/annotate/{lease}", data=_form("A", reason="<b>mine</b>"), headers=HX)
    with db.session(write=False) as s:
        judgment_id = s.scalar(select(Judgment.id))
    listing = client.get("/projects/p/judgments")
    assert f"/projects/p/judgments/{judgment_id}" in listing.text
    page = client.get(f"/projects/p/judgments/{judgment_id}")
    assert page.status_code == 200 and 'value="A" checked' in page.text
    assert "&lt;b&gt;mine&lt;/b&gt;" in page.text
    ok = client.post(f"/projects/p/judgments/{judgment_id}", data=_form("tie", version="1"), follow_redirects=False)
    assert ok.status_code == 303
    stale = client.post(f"/projects/p/judgments/{judgment_id}", data=_form("B", version="1"))
    assert stale.status_code == 409 and "changed elsewhere" in stale.text


def test_best_worst_with_four_candidates(client: TestClient, login_as: Callable[[User], str], db: Database) -> None:
    with db.session() as s:
        user = make_user(s, "four")
        project = make_project(s, "k4", k=4, overlap=1, members=[user])
        make_item(s, project, "q4", candidates=["w", "x", "y", "z"])
        make_item(s, project, "q5", candidates=["w", "x", "y", "z"])
    login_as(user)
    panel = client.post("/projects/k4/annotate/next", headers=HX).text
    lease = _assignment_id(panel)
    form = {"submit_key": "k4key-00001", "refusal": "na", "polite": "tie"}
    for d in DIMS[:4]:
        form[f"{d}__best"], form[f"{d}__worst"] = "C", "A"
    r = client.post(f"/projects/k4/annotate/{lease}", data=form, headers=HX)
    assert r.status_code == 200, r.text
    with db.session(write=False) as s:
        order = s.get(Assignment, lease).display_order  # type: ignore[union-attr]
        rows = {v.dimension: v for v in s.scalars(select(Verdict))}
        assert (rows["overall"].chosen_candidate_id, rows["overall"].rejected_candidate_id) == (order[2], order[0])
        assert rows["refusal"].kind == "na" and rows["polite"].kind == "tie"
    lease2 = _assignment_id(r.text)
    same = {**form, "submit_key": "k4key-00002", "overall__worst": "C"}
    refused = client.post(f"/projects/k4/annotate/{lease2}", data=same, headers=HX)
    assert refused.status_code == 422 and "must be different" in refused.text
