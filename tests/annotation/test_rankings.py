"""Rankings (k ≥ 3, ranking mode "rank") and strength (k = 2) through the JSON API and the page's forms: stored
in canonical candidate ids, read back, reopened for editing and summarised in the annotator's letters."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Assignment, Judgment, User, Verdict
from tests.factories import make_items, make_project, make_user

HX = {"HX-Request": "true"}


@pytest.fixture
def projects(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        user = make_user(s, "ranker")
        ranked = make_project(s, "ranked", k=4, overlap=1, members=[user], ranking_mode="rank", dimensions=[])
        strong = make_project(s, "strong", k=2, overlap=1, members=[user], strength=True, dimensions=[])
        make_items(s, ranked, 2)
        make_items(s, strong, 2)
        token = create_api_token(s, user=user, scope="api", settings=settings)[1]
    return {"user": user, "token": token}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _next(client: TestClient, slug: str, token: str) -> dict[str, Any]:
    r = client.post(f"/api/v1/projects/{slug}/next", headers=_h(token))
    assert r.status_code == 200, r.text
    assignment: dict[str, Any] = r.json()["assignment"]
    return assignment


def _ids(assignment: dict[str, Any]) -> dict[str, int]:
    return {c["label"]: c["id"] for c in assignment["candidates"]}


def test_a_ranking_goes_through_the_api_and_is_edited(
    client: TestClient, db: Database, projects: dict[str, Any]
) -> None:
    h = _h(projects["token"])
    assignment = _next(client, "ranked", projects["token"])
    c = _ids(assignment)
    ranking = [[c["C"]], sorted([c["A"], c["B"]]), [c["D"]]]
    body = {
        "assignment_id": assignment["assignment_id"],
        "submit_key": "rank-key-0001",
        "verdicts": {"overall": {"kind": "ranking", "ranking": ranking, "much": [0]}},
    }
    first = client.post("/api/v1/projects/ranked/judgments", json=body, headers=h)
    assert first.status_code == 201, first.text
    stored = first.json()["verdicts"]["overall"]
    assert (stored["kind"], stored["ranking"], stored["much"]) == ("ranking", ranking, [0])
    with db.session(write=False) as s:
        row = s.scalar(select(Verdict))
        assert row is not None and row.ranking == {"tiers": ranking, "much": [0]}
        assert (row.chosen_candidate_id, row.rejected_candidate_id, row.strength) == (None, None, None)
    judgment_id = first.json()["id"]
    flat = [[c["D"]], [c["C"]], [c["B"]], [c["A"]]]
    edit = {"version": 1, "verdicts": {"overall": {"kind": "ranking", "ranking": flat}}}
    edited = client.put(f"/api/v1/projects/ranked/judgments/{judgment_id}", json=edit, headers=h)
    assert edited.status_code == 200 and edited.json()["version"] == 2
    read = client.get(f"/api/v1/projects/ranked/judgments/{judgment_id}", headers=h).json()["verdicts"]["overall"]
    assert (read["ranking"], read["much"]) == (flat, [])


@pytest.mark.parametrize(
    ("verdict", "message"),
    [
        ({"kind": "preference", "chosen": "A", "rejected": "B"}, "send a ranking"),
        ({"kind": "ranking", "ranking": [["A"], ["B"], ["C"]]}, "every candidate"),
        ({"kind": "ranking", "ranking": [["A", "B"], ["C"], ["D"]], "much": [2]}, "'much' lists gaps"),
    ],
)
def test_a_ranking_project_refuses_other_shapes_and_stores_nothing(
    client: TestClient, db: Database, projects: dict[str, Any], verdict: dict[str, Any], message: str
) -> None:
    assignment = _next(client, "ranked", projects["token"])
    c = _ids(assignment)
    shaped = dict(verdict)  # letters as shown → candidate ids
    for key in ("chosen", "rejected"):
        if key in shaped:
            shaped[key] = c[shaped[key]]
    if "ranking" in shaped:
        shaped["ranking"] = [[c[letter] for letter in tier] for tier in shaped["ranking"]]
    body = {"assignment_id": assignment["assignment_id"], "submit_key": "bad-rank-01", "verdicts": {"overall": shaped}}
    r = client.post("/api/v1/projects/ranked/judgments", json=body, headers=_h(projects["token"]))
    assert r.status_code == 422 and message in r.text, r.text
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Judgment)) == 0


def test_a_strength_goes_through_the_api_and_is_required(
    client: TestClient, db: Database, projects: dict[str, Any]
) -> None:
    h = _h(projects["token"])
    assignment = _next(client, "strong", projects["token"])
    c = _ids(assignment)
    verdict = {"kind": "preference", "chosen": c["B"], "rejected": c["A"]}
    body = {"assignment_id": assignment["assignment_id"], "submit_key": "strong-0001", "verdicts": {"overall": verdict}}
    missing = client.post("/api/v1/projects/strong/judgments", json=body, headers=h)
    assert missing.status_code == 422 and "how much better" in missing.text
    body["verdicts"] = {"overall": {**verdict, "strength": 3}}
    first = client.post("/api/v1/projects/strong/judgments", json=body, headers=h)
    assert first.status_code == 201, first.text
    assert first.json()["verdicts"]["overall"]["strength"] == 3
    edit = {"version": 1, "verdicts": {"overall": {**verdict, "strength": 1}}}
    edited = client.put(f"/api/v1/projects/strong/judgments/{first.json()['id']}", json=edit, headers=h)
    assert edited.status_code == 200, edited.text
    with db.session(write=False) as s:
        assert s.scalar(select(Verdict.strength)) == 1
    tie = {"version": 2, "verdicts": {"overall": {"kind": "tie", "strength": 2}}}
    assert client.put(f"/api/v1/projects/strong/judgments/{first.json()['id']}", json=tie, headers=h).status_code == 422


def _claim(client: TestClient, slug: str) -> int:
    r = client.post(f"/projects/{slug}/annotate/next", headers=HX)
    match = re.search(r'data-assignment="(\d+)"', r.text)
    assert r.status_code == 200 and match, r.text[:300]
    return int(match.group(1))


def test_the_page_posts_a_typed_order_reopens_it_and_summarises_it(
    client: TestClient, db: Database, login_as: Callable[[User], str], projects: dict[str, Any]
) -> None:
    login_as(projects["user"])
    lease = _claim(client, "ranked")
    form = {"overall": "", "overall__rank": "c>>a=b d", "submit_key": "page-rank-01"}
    assert client.post(f"/projects/ranked/annotate/{lease}", data=form, headers=HX).status_code == 200
    with db.session(write=False) as s:
        shown = s.get(Assignment, lease).display_order  # type: ignore[union-attr]
        judgment_id = s.scalar(select(Judgment.id))
        row = s.scalar(select(Verdict))
        assert row is not None and row.kind == "ranking"
        assert row.ranking == {"tiers": [[shown[2]], sorted([shown[0], shown[1]]), [shown[3]]], "much": [0]}
    assert "Overall: C ≫ A = B &gt; D" in client.get("/projects/ranked/judgments").text
    page = client.get(f"/projects/ranked/judgments/{judgment_id}").text
    assert 'name="overall__rank" value="C&gt;&gt;A=B&gt;D"' in page and 'data-ranks="1"' in page
    again = {"overall": "", "overall__rank": "DCBA", "version": "1"}
    assert client.post(f"/projects/ranked/judgments/{judgment_id}", data=again).status_code in (200, 303)
    stale = client.post(f"/projects/ranked/judgments/{judgment_id}", data={**again, "overall__rank": "ABCD"})
    assert stale.status_code == 409
    assert "C ≫ A = B" not in stale.text  # stored: D > C > B > A; mine: A > B > C > D
    assert "D &gt; C &gt; B &gt; A" in stale.text and "A &gt; B &gt; C &gt; D" in stale.text


def test_the_page_refuses_a_half_typed_order_by_name(
    client: TestClient, login_as: Callable[[User], str], projects: dict[str, Any]
) -> None:
    login_as(projects["user"])
    lease = _claim(client, "ranked")
    r = client.post(f"/projects/ranked/annotate/{lease}", data={"overall__rank": "CA=B", "submit_key": "half-rank1"})
    assert r.status_code == 422 and "overall: missing: D" in r.text


def test_the_page_posts_a_strength_reopens_it_and_summarises_it(
    client: TestClient, db: Database, login_as: Callable[[User], str], projects: dict[str, Any]
) -> None:
    login_as(projects["user"])
    lease = _claim(client, "strong")
    refused = client.post(f"/projects/strong/annotate/{lease}", data={"overall": "B", "submit_key": "strong-page1"})
    assert refused.status_code == 422 and "say how much better" in refused.text
    form = {"overall": "B", "overall__strength": "3", "submit_key": "strong-page1"}
    assert client.post(f"/projects/strong/annotate/{lease}", data=form, headers=HX).status_code == 200
    with db.session(write=False) as s:
        shown = s.get(Assignment, lease).display_order  # type: ignore[union-attr]
        row = s.scalar(select(Verdict))
        assert row is not None and (row.chosen_candidate_id, row.strength) == (shown[1], 3)
        judgment_id = s.scalar(select(Judgment.id))
    assert "Overall: B ≫ A" in client.get("/projects/strong/judgments").text
    page = client.get(f"/projects/strong/judgments/{judgment_id}").text
    assert re.search(r'name="overall__strength" value="3" checked', page)
    assert 'data-strength="1"' in page
