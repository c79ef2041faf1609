"""Optional dimensions (``"required": false``): a judgment may leave them out — through the JSON API and the page's
form — while a required one is still refused; the figures and the export read a left-out verdict as missing (as
n.a.), never as a tie."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.agreement import service as agreement
from app.annotation.schemas import JudgmentForm
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.export.filters import resolve
from app.export.pseudonyms import pseudonym_key
from app.export.rows import jsonl_lines
from app.export.schemas import ExportFilter
from app.kit.errors import Invalid
from app.models import Project, User, Verdict
from tests.factories import make_item, make_items, make_judgment, make_project, make_user

HX = {"HX-Request": "true"}
DIMS = [
    {"key": "helpful", "label": "Helpful", "description": ""},
    {"key": "style", "label": "Style", "description": "", "required": False},
]


@pytest.fixture
def setup(db: Database, settings: Settings) -> dict[str, Any]:
    with db.session() as s:
        alice = make_user(s, "alice")
        project = make_project(s, "opt", k=2, overlap=2, members=[alice], dimensions=DIMS)
        make_items(s, project, 3)
        token = create_api_token(s, user=alice, scope="api", settings=settings)[1]
    return {"token": token, "user": alice}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_api_takes_a_judgment_without_an_optional_dimension(
    client: TestClient, db: Database, setup: dict[str, Any]
) -> None:
    h = _h(setup["token"])
    assignment = client.post("/api/v1/projects/opt/next", headers=h).json()["assignment"]
    required = {d["key"]: d["required"] for d in assignment["dimensions"]}
    assert required == {"overall": True, "helpful": True, "style": False}
    first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
    pref = {"kind": "preference", "chosen": first, "rejected": last}
    body = {"assignment_id": assignment["assignment_id"], "submit_key": "optional-0001", "verdicts": {}}

    refused = client.post("/api/v1/projects/opt/judgments", json={**body, "verdicts": {"overall": pref}}, headers=h)
    assert refused.status_code == 422 and "helpful" in refused.json()["detail"]
    assert "style" not in refused.json()["detail"]

    stored = client.post(
        "/api/v1/projects/opt/judgments", json={**body, "verdicts": {"overall": pref, "helpful": pref}}, headers=h
    )
    assert stored.status_code == 201, stored.text
    assert set(stored.json()["verdicts"]) == {"overall", "helpful"}
    with db.session(write=False) as s:
        assert set(s.scalars(select(Verdict.dimension))) == {"overall", "helpful"}


def test_the_form_leaves_out_a_blank_optional_dimension_and_refuses_a_blank_required_one() -> None:
    project = Project(dimensions=DIMS)
    verdicts = JudgmentForm.model_validate({"overall": "A", "helpful": "B"}).verdicts(
        project=project, display_order=[11, 22]
    )
    assert set(verdicts) == {"overall", "helpful"}
    answered = JudgmentForm.model_validate({"overall": "A", "helpful": "B", "style": "tie"})
    assert answered.verdicts(project=project, display_order=[11, 22])["style"].kind == "tie"
    with pytest.raises(Invalid, match="helpful: no answer given"):
        JudgmentForm.model_validate({"overall": "A", "style": "A"}).verdicts(project=project, display_order=[11, 22])
    # k ≥ 3: half an answer on an optional dimension is still an error, not a blank
    with pytest.raises(Invalid, match="style: pick both"):
        JudgmentForm.model_validate(
            {"overall__best": "A", "overall__worst": "B", "helpful": "tie", "style__best": "A"}
        ).verdicts(project=project, display_order=[1, 2, 3])


def test_the_page_submits_without_the_optional_dimension(
    client: TestClient, login_as: Callable[[User], str], db: Database, setup: dict[str, Any]
) -> None:
    login_as(setup["user"])
    panel = client.post("/projects/opt/annotate/next", headers=HX).text
    assert re.search(r'data-dim="style" data-optional="1"', panel)
    assert not re.search(r'data-dim="helpful" data-optional', panel)
    lease = re.search(r'data-assignment="(\d+)"', panel)
    assert lease is not None
    form = {"overall": "A", "submit_key": "page-optional-1"}
    missing = client.post(f"/projects/opt/annotate/{lease[1]}", data=form, headers=HX)
    assert missing.status_code == 422 and "helpful" in missing.text
    ok = client.post(f"/projects/opt/annotate/{lease[1]}", data={**form, "helpful": "B"}, headers=HX)
    assert ok.status_code == 200 and "Saved" in ok.text
    with db.session(write=False) as s:
        assert sorted(s.scalars(select(Verdict.dimension))) == ["helpful", "overall"]


def _world(db: Database, third: str) -> int:
    """Three annotators say A ≻ B on "style" for two items but the third one's verdict there is ``third``:
    "left out", "na" or "tie"."""
    with db.session() as s:
        users = [make_user(s, f"{third}-{n}") for n in range(3)]
        project = make_project(s, f"w-{third}", k=2, overlap=3, members=users, dimensions=DIMS)
        for n in range(2):
            item = make_item(s, project, f"prompt {n}", candidates=[f"A{n}", f"B{n}"], external_id=f"x{n}")
            for i, user in enumerate(users):
                verdicts: dict[str, tuple[str, int | None, int | None]] = {
                    "overall": ("preference", 0, 1),
                    "helpful": ("preference", 0, 1),
                }
                if i < 2:
                    verdicts["style"] = ("preference", 0, 1)
                elif third != "left out":
                    verdicts["style"] = (third, None, None)
                make_judgment(s, item, user, verdicts)
        return project.id


def _export_votes(db: Database, settings: Settings, project_id: int) -> list[dict[str, int]]:
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        rules = resolve(
            s,
            project=project,
            filters=ExportFilter(dimension="style"),
            key=pseudonym_key(settings.data_dir),
            by_admin=True,
        )
        return [json.loads(line)["meta"]["votes"] for line in jsonl_lines(s, rules=rules, drops=None)]


def _style_figures(db: Database, project_id: int) -> dict[str, Any]:
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        out = agreement.compute(s, project=project, resamples=20)
    style = next(d for d in out.dimensions if d.dimension == "style")
    return {"units": style.units, "labels": style.labels, "agreement": style.percent_agreement}


def test_figures_and_export_read_a_left_out_optional_verdict_as_missing(db: Database, settings: Settings) -> None:
    left_out, na, tie = (_world(db, third) for third in ("left out", "na", "tie"))
    assert _export_votes(db, settings, left_out) == _export_votes(db, settings, na)
    assert _export_votes(db, settings, left_out) == [{"chosen": 2, "rejected": 0, "tie": 0}] * 2
    assert _export_votes(db, settings, tie) != _export_votes(db, settings, left_out)
    assert _style_figures(db, left_out) == _style_figures(db, na)
    assert _style_figures(db, left_out)["labels"].get("tie", 0) == 0
    assert _style_figures(db, tie) != _style_figures(db, left_out)
