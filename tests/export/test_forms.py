"""The export page's forms: the snapshot form reads the filter as the page's query does (an unticked box is
False once the form was applied, lists repeat), and a token label is cut to 200 characters, not refused."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.export.forms import SnapshotForm
from app.export.router import filter_from
from app.export.schemas import ExportFilter
from app.models import ApiToken
from tests.conftest import csrf_from, login
from tests.factories import PASSWORD


def test_the_snapshot_form_gives_the_filter_the_page_shows() -> None:
    form = SnapshotForm.model_validate(
        {
            "csrf_token": "t",
            "name": "weekly",
            "applied": "1",
            "adjudicated": "1",
            "min_margin": "2",
            "min_annotator_kappa": "",
            "veto": ["harmless", "honest"],
            "exclude_annotators": ["ann1, ann2"],
        }
    )
    assert form.name == "weekly"
    assert filter_from(form.filter_items()) == ExportFilter(
        min_margin=2,
        drop_ties=False,  # unticked boxes of an applied form
        drop_problematic=False,
        adjudicated=True,
        veto=["harmless", "honest"],
        exclude_annotators=["ann1", "ann2"],
    )
    assert filter_from(SnapshotForm.model_validate({}).filter_items()) == ExportFilter()  # first visit: defaults


def test_a_long_token_label_is_cut_not_refused(client: TestClient, world: dict[str, Any], db: Database) -> None:
    login(client, "chief", PASSWORD)
    token = csrf_from(client.get("/projects/exp/export").text)
    made = client.post("/projects/exp/tokens", data={"csrf_token": token, "name": "x" * 300})
    assert made.status_code == 200 and "ps_" in made.text
    unnamed = client.post("/projects/exp/tokens", data={"csrf_token": token})
    assert unnamed.status_code == 200
    with db.session(write=False) as session:
        names = sorted(session.scalars(select(ApiToken.name).where(ApiToken.scope == "export")))
    assert names == ["", "x" * 200]
