"""Judge-labelled pairs in the export: ``source=judge|both``, ``min_judge_confidence``, ``min_judge_kappa`` and
``meta.label_source`` — on a project where the primary judge agrees with people on "overall" but for one item
(κ = 0.92), always contradicts them on "style" (κ = −1), and judges items people never saw."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.jobs.runner import run_one
from app.models import Candidate, Item, Project, Suggestion
from tests.conftest import login
from tests.factories import PASSWORD, make_item, make_judgment, make_project, make_user

PREF = "preference"
JUDGE = "big-judge@http://judge:8000/v1"
DIMENSIONS = [{"key": "style", "label": "Style", "description": "Well written."}]


def _suggest(s: Session, project: Project, item: Item, dim: str, kind: str, **fields: Any) -> None:
    a, b = s.scalars(
        select(Candidate)
        .where(Candidate.item_id == item.id, Candidate.round == item.round)
        .order_by(Candidate.position)
    ).all()[:2]
    if kind == PREF:
        first = fields.pop("first")
        fields["chosen_candidate_id"], fields["rejected_candidate_id"] = (a.id, b.id) if first else (b.id, a.id)
    s.add(
        Suggestion(
            project_id=project.id,
            item_id=item.id,
            round=item.round,
            dimension=dim,
            judge=JUDGE,
            model="big-judge",
            base_url="http://judge:8000/v1",
            prompt_version="rubric-v1",
            kind=kind,
            orders=[],
            **fields,
        )
    )


@pytest.fixture
def judged(db: Database, settings: Settings) -> dict[str, Any]:
    """24 items people judged (truth alternating A, B) where the judge agrees on overall and contradicts them on
    style, with confidence 0.95; "mixed": people say A, the judge B; items only the judge saw: "sure" (A, 0.9),
    "weak" (B, 0.3), "nolog" (A, no confidence), "unsure", "tie"."""
    with db.session() as s:
        person = make_user(s, "rater")
        admin = make_user(s, "judgechief", role="admin")
        project = make_project(s, "judged", k=2, members=[person], dimensions=DIMENSIONS)
        for n in range(24):
            item = make_item(s, project, f"prompt {n}", candidates=[f"A{n}", f"B{n}"])
            truth = (PREF, 0, 1) if n % 2 == 0 else (PREF, 1, 0)
            make_judgment(s, item, person, {"overall": truth, "style": truth})
            _suggest(s, project, item, "overall", PREF, first=n % 2 == 0, confidence=0.95)
            _suggest(s, project, item, "style", PREF, first=n % 2 == 1, confidence=0.95)
        mixed = make_item(s, project, "mixed", candidates=["A mixed", "B mixed"], external_id="mixed")
        make_judgment(s, mixed, person, {"overall": (PREF, 0, 1)})
        _suggest(s, project, mixed, "overall", PREF, first=False, confidence=0.95)
        plan = {"sure": (PREF, True, 0.9), "weak": (PREF, False, 0.3), "nolog": (PREF, True, None)}
        for name, (kind, first, confidence) in plan.items():
            item = make_item(s, project, name, candidates=[f"A {name}", f"B {name}"], external_id=name)
            _suggest(s, project, item, "overall", kind, first=first, confidence=confidence, rationale=f"why {name}")
        for name in ("unsure", "tie"):
            item = make_item(s, project, name, candidates=[f"A {name}", f"B {name}"], external_id=name)
            _suggest(s, project, item, "overall", name, confidence=0.99)
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
        return {"token": token}


def _get(client: TestClient, token: str, **params: Any) -> Any:
    return client.get(
        "/api/v1/projects/judged/export.jsonl", params=params, headers={"Authorization": f"Bearer {token}"}
    )


def _rows(client: TestClient, token: str, **params: Any) -> dict[str, dict[str, Any]]:
    r = _get(client, token, **params)
    assert r.status_code == 200, r.text
    rows = [json.loads(line) for line in r.content.splitlines()]
    return {row["meta"]["external_id"] or row["prompt"]: row for row in rows}


def test_source_judge_gives_the_judges_consistent_labels(client: TestClient, judged: dict[str, Any]) -> None:
    rows = _rows(client, judged["token"], source="judge")
    assert set(rows) == {f"prompt {n}" for n in range(24)} | {"mixed", "sure", "weak", "nolog"}
    assert {row["meta"]["label_source"] for row in rows.values()} == {"judge"}
    assert rows["mixed"]["chosen"] == "B mixed"  # the judge's label, people's vote ignored
    assert rows["prompt 1"]["chosen"] == "B1"
    sure = rows["sure"]
    assert sure["chosen"] == "A sure" and sure["reason"] == "why sure"
    assert sure["meta"]["judge"] == {"name": JUDGE, "prompt_version": "rubric-v1", "confidence": 0.9, "kappa": 0.9201}
    assert sure["meta"]["votes"] == {"chosen": 0, "rejected": 0, "tie": 0} and sure["meta"]["annotators"] == []
    assert rows["nolog"]["meta"]["judge"]["confidence"] is None


def test_min_judge_confidence_and_none(client: TestClient, judged: dict[str, Any]) -> None:
    rows = _rows(client, judged["token"], source="judge", min_judge_confidence=0.5)
    assert {"sure", "mixed"} <= set(rows)
    assert "weak" not in rows and "nolog" not in rows  # no confidence passes only a threshold of 0
    assert len(rows) == 26
    assert len(_rows(client, judged["token"], source="judge", min_judge_confidence=0.96)) == 0


def test_min_judge_kappa_keeps_only_trusted_dimensions(client: TestClient, judged: dict[str, Any]) -> None:
    assert _rows(client, judged["token"], source="judge", dimension="style") == {}  # κ = −1 < 0.6
    low = _rows(client, judged["token"], source="judge", dimension="style", min_judge_kappa=-1)
    assert len(low) == 24 and low["prompt 0"]["chosen"] == "B0"
    assert low["prompt 0"]["meta"]["judge"]["kappa"] == -1.0
    assert len(_rows(client, judged["token"], source="judge", min_judge_kappa=0.92)) == 28  # κ = 0.9201 (24 of 25)
    assert _rows(client, judged["token"], source="judge", min_judge_kappa=0.93) == {}
    both = _rows(client, judged["token"], source="both", dimension="style")
    assert {row["meta"]["label_source"] for row in both.values()} == {"human"} and len(both) == 24


def test_source_both_prefers_people_per_pair(client: TestClient, judged: dict[str, Any]) -> None:
    rows = _rows(client, judged["token"], source="both")
    assert len(rows) == 28
    sources = {key: row["meta"]["label_source"] for key, row in rows.items()}
    assert sources["mixed"] == "human" and rows["mixed"]["chosen"] == "A mixed"
    assert {k for k, v in sources.items() if v == "judge"} == {"sure", "weak", "nolog"}
    assert rows["prompt 0"]["meta"]["judge"] is None and rows["prompt 0"]["meta"]["votes"]["chosen"] == 1
    assert len({tuple(row["meta"]) for row in rows.values()}) == 1  # the same keys on every row


def test_source_human_is_the_default_output(client: TestClient, judged: dict[str, Any]) -> None:
    default = _get(client, judged["token"])
    human = _get(client, judged["token"], source="human", min_judge_kappa=0.1)
    assert default.status_code == 200 and default.content == human.content
    rows = [json.loads(line) for line in default.content.splitlines()]
    assert len(rows) == 25 and all("label_source" not in r["meta"] and "judge" not in r["meta"] for r in rows)


@pytest.mark.parametrize(
    "params",
    [{"source": "robot"}, {"min_judge_confidence": 1.5}, {"min_judge_kappa": -2}, {"min_judge_confidence": "x"}],
)
def test_bad_judge_options_are_refused(client: TestClient, judged: dict[str, Any], params: dict[str, Any]) -> None:
    r = _get(client, judged["token"], **params)
    assert r.status_code == 422
    assert r.json()["detail"]


def test_snapshot_card_counts_the_judges_rows(client: TestClient, judged: dict[str, Any], db: Database) -> None:
    headers = {"Authorization": f"Bearer {judged['token']}"}
    body = {"name": "mixed", "filters": {"source": "both", "min_judge_kappa": 0.5}}
    r = client.post("/api/v1/projects/judged/snapshots", json=body, headers=headers)
    assert r.status_code == 202, r.text
    assert run_one(db, worker_id="test-worker") is not None
    meta = client.get(f"/api/v1/snapshots/{r.json()['id']}", headers=headers).json()
    assert meta["state"] == "ready", meta["error"]
    assert meta["row_count"] == 28
    assert meta["filters"]["source"] == "both" and meta["filters"]["min_judge_kappa"] == 0.5
    assert "3 rows labelled by the judge" in meta["card"] and "25 by people" in meta["card"]
    assert "1 unsure" in meta["card"] and "needed ≥ 0.5" in meta["card"]


def test_the_page_form_carries_the_judge_options(client: TestClient, judged: dict[str, Any]) -> None:
    login(client, "judgechief", PASSWORD)
    page = client.get("/projects/judged/export", params={"source": "judge", "min_judge_confidence": "0.5"})
    assert page.status_code == 200
    assert '<option value="judge" selected>' in page.text.replace("  ", " ")
    assert 'name="min_judge_confidence" min="0" max="1" step="0.05" value="0.5"' in page.text
    bad = client.get("/projects/judged/export", params={"source": "robot"})
    assert bad.status_code in (200, 400, 422) and "source" in bad.text
