"""The personal-data gate of snapshots, through the API and the export page, on both backends: the scan report,
the refusal without a decision, and mask / drop / accept in the written file, its filters and its data card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.jobs.runner import run_one
from app.models import Item, Snapshot
from tests.conftest import csrf_from, login
from tests.factories import PASSWORD, make_item, make_judgment, make_project, make_user

EMAIL, PHONE, CARD, KEY = "jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE"
A = {"overall": ("preference", 0, 1)}


@pytest.fixture
def world(db: Database, settings: Settings) -> dict[str, Any]:
    """Five items, k = 2, two votes each: personal data in a prompt, a candidate, a reason, a chat prompt; one clean."""
    with db.session() as s:
        u1, u2 = make_user(s, "ann1"), make_user(s, "ann2")
        admin = make_user(s, "chief", role="admin")
        project = make_project(s, "pii", k=2, overlap=2, members=[u1, u2])
        items = {
            "in_prompt": make_item(s, project, f"Mail {EMAIL} the report", candidates=["yes", "no"]),
            "in_answer": make_item(s, project, "Whom do I call?", candidates=[f"Call {PHONE}.", "Nobody."]),
            "in_reason": make_item(s, project, "Pay how?", candidates=["By card.", "In cash."]),
            "in_chat": make_item(
                s, project, [{"role": "user", "content": f"My key is {KEY}"}], candidates=["Rotate it.", "ok"]
            ),
            "clean": make_item(s, project, "What is 2 + 2?", candidates=["4", "5"]),
        }
        for name, item in items.items():
            item.external_id = name
            for user in (u1, u2):
                reason = f"he wrote {CARD} here" if name == "in_reason" and user is u1 else "fine"
                make_judgment(s, item, user, A, reason=reason)
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
        return {"ids": {n: i.id for n, i in items.items()}, "token": token}


def _h(world: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['token']}"}


def _freeze(client: TestClient, db: Database, world: dict[str, Any], **body: Any) -> Snapshot:
    r = client.post("/api/v1/projects/pii/snapshots", json=body, headers=_h(world))
    assert r.status_code == 202, r.text
    run_one(db, worker_id="w")
    with db.session(write=False) as s:
        snapshot = s.get(Snapshot, r.json()["id"])
        assert snapshot is not None and snapshot.state == "ready", snapshot and snapshot.error
        s.expunge(snapshot)
        return snapshot


def _rows(settings: Settings, snapshot: Snapshot) -> list[dict[str, Any]]:
    text = (Path(settings.data_dir) / str(snapshot.file_name)).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_the_report_lists_each_item_with_its_matches(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get("/api/v1/projects/pii/pii", headers=_h(world))
    assert r.status_code == 200, r.text
    report = r.json()
    ids = world["ids"]
    assert report["items_scanned"] == 5 and report["items_with_hits"] == 4
    assert report["hits"] == {"api_key": 1, "email": 1, "iban": 0, "credit_card": 1, "ip": 0, "phone": 1}
    found = {item["item_id"]: item["hits"] for item in report["items"]}
    assert set(found) == {ids["in_prompt"], ids["in_answer"], ids["in_reason"], ids["in_chat"]}
    assert found[ids["in_prompt"]] == [
        {"kind": "email", "field": "prompt", "candidate_id": None, "match": "ja" + "*" * 16 + "om"}
    ]
    assert found[ids["in_answer"]][0]["field"] == "candidate" and found[ids["in_answer"]][0]["candidate_id"]
    assert found[ids["in_reason"]][0]["field"] == "reason"
    assert EMAIL not in r.text and CARD not in r.text  # only masked matches leave the server
    # The export filters apply: the test split of this small project holds fewer items.
    narrowed = client.get("/api/v1/projects/pii/pii?split=test&test_share=0.0", headers=_h(world)).json()
    assert narrowed["items_scanned"] == 0 and narrowed["items"] == []
    assert client.get("/api/v1/projects/pii/pii").status_code == 401


def test_a_snapshot_without_a_decision_is_refused(client: TestClient, db: Database, world: dict[str, Any]) -> None:
    r = client.post("/api/v1/projects/pii/snapshots", json={"name": "no choice"}, headers=_h(world))
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "Personal data found in 4 item(s)" in detail and "pii=mask" in detail
    assert f"#{world['ids']['in_prompt']}" in detail
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Snapshot)) == 0
    bad = client.post("/api/v1/projects/pii/snapshots", json={"pii": "hide"}, headers=_h(world))
    assert bad.status_code == 422


def test_mask_replaces_every_match_and_records_it(
    client: TestClient, db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    snapshot = _freeze(client, db, world, name="masked", pii="mask")
    body = (Path(settings.data_dir) / str(snapshot.file_name)).read_text(encoding="utf-8")
    for seeded in (EMAIL, PHONE, CARD, KEY):
        assert seeded not in body
    rows = _rows(settings, snapshot)
    assert len(rows) == 5
    by_item = {row["meta"]["external_id"]: row for row in rows}
    assert by_item["in_prompt"]["prompt"] == "Mail [EMAIL] the report"
    assert "Call [PHONE]." in (by_item["in_answer"]["chosen"], by_item["in_answer"]["rejected"])
    assert "[CREDIT_CARD]" in by_item["in_reason"]["reason"]
    assert "user: My key is [API_KEY]" in by_item["in_chat"]["prompt"]
    assert by_item["clean"]["prompt"] == "What is 2 + 2?"
    pii = snapshot.filters["pii"]
    assert pii["decision"] == "mask" and pii["items_with_hits"] == 4 and pii["masked_items"] == 4
    assert pii["hits"]["email"] == 1 and pii["dropped_pairs"] == 0
    assert "## Personal data" in snapshot.card and "Decision: mask" in snapshot.card
    assert "e-mail addresses 1" in snapshot.card and "Masked: 4 matches in 4 items" in snapshot.card


def test_drop_leaves_those_items_out(
    client: TestClient, db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    snapshot = _freeze(client, db, world, name="dropped", pii="drop")
    rows = _rows(settings, snapshot)
    assert [row["meta"]["external_id"] for row in rows] == ["clean"]
    assert snapshot.row_count == 1
    pii = snapshot.filters["pii"]
    assert pii["decision"] == "drop" and pii["dropped_items"] == 4 and pii["dropped_pairs"] == 4
    assert "Dropped: 4 items (4 pairs)" in snapshot.card
    split = rows[0]["meta"]["split"]
    assert (
        "- Pairs: 1 " in snapshot.card
        and f"- Split: {int(split == 'train')} train, {int(split == 'test')} test" in snapshot.card
    )


def test_accept_exports_as_is_and_overrides_choose_per_item(
    client: TestClient, db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    accepted = _freeze(client, db, world, name="as is", pii="accept")
    body = (Path(settings.data_dir) / str(accepted.file_name)).read_text(encoding="utf-8")
    assert EMAIL in body and CARD in body and accepted.row_count == 5
    assert accepted.filters["pii"]["accepted_items"] == 4 and "Accepted as they are: 4 items" in accepted.card
    ids = world["ids"]
    overrides = {ids["in_prompt"]: "drop", ids["in_answer"]: "accept"}
    # Overrides alone do not cover the other two items with matches: refused.
    r = client.post("/api/v1/projects/pii/snapshots", json={"pii_overrides": overrides}, headers=_h(world))
    assert r.status_code == 422 and f"#{ids['in_reason']}" in r.json()["detail"]
    mixed = _freeze(client, db, world, name="mixed", pii="mask", pii_overrides=overrides)
    rows = {row["meta"]["external_id"]: row for row in _rows(settings, mixed)}
    assert set(rows) == {"in_answer", "in_reason", "in_chat", "clean"}
    assert f"Call {PHONE}." in (rows["in_answer"]["chosen"], rows["in_answer"]["rejected"])
    assert CARD not in rows["in_reason"]["reason"]
    assert mixed.filters["pii"]["overrides"] == {str(k): v for k, v in sorted(overrides.items())}
    assert f"#{ids['in_prompt']} drop" in mixed.card and f"#{ids['in_answer']} accept" in mixed.card


def test_a_clean_export_needs_no_decision(
    client: TestClient, db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    with db.session() as s:  # only the clean item passes min_judgments = 3 once it has a third vote
        clean = s.get(Item, world["ids"]["clean"])
        assert clean is not None
        make_judgment(s, clean, make_user(s, "ann3"), A)
    snapshot = _freeze(client, db, world, name="clean", filters={"min_judgments": 3})
    assert snapshot.row_count == 1 and snapshot.filters["pii"]["items_with_hits"] == 0
    assert "Decision: none needed (no matches)" in snapshot.card


def test_the_export_page_scans_and_freezes_with_a_choice(
    client: TestClient, db: Database, world: dict[str, Any]
) -> None:
    login(client, "chief", PASSWORD)
    page = client.get("/projects/pii/export")
    assert "Scan for personal data" in page.text and 'name="pii"' in page.text
    fragment = client.get("/projects/pii/export/pii?applied=1&drop_ties=1", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="pii-report"' in fragment.text and f'name="pii_item_{world["ids"]["in_chat"]}"' in fragment.text
    assert "AK****" in fragment.text and "AKIAIOSFODNN7EXAMPLE" not in fragment.text
    full = client.get("/projects/pii/export/pii")
    assert "<html" in full.text and "4 items have personal data" in full.text
    token = csrf_from(page.text)
    form = {"csrf_token": token, "name": "from page", "applied": "1", "drop_ties": "1", "adjudicated": "1"}
    refused = client.post("/projects/pii/snapshots", data=form, follow_redirects=False)
    assert refused.status_code == 422 and "Personal data found" in refused.text
    ids = world["ids"]
    per_item = {f"pii_item_{i}": "drop" for i in ids.values()}
    made = client.post("/projects/pii/snapshots", data=form | per_item, follow_redirects=False)
    assert made.status_code == 303, made.text
    with db.session(write=False) as s:
        snapshot = s.scalar(select(Snapshot).where(Snapshot.name == "from page"))
        assert snapshot is not None
        assert snapshot.filters["pii"] == {
            "decision": None,
            "overrides": {str(i): "drop" for i in sorted(ids.values())},
        }


def test_the_command_line_refuses_without_pii_and_drops_with_it(
    db: Database, settings: Settings, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from app.cli import cli
    from app.config import get_settings

    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    monkeypatch.setenv("PREFSTUDIO_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        refused = runner.invoke(cli, ["export", "pii", "--snapshot"])
        assert refused.exit_code == 1 and "Personal data found in 4 item(s)" in refused.output
        assert runner.invoke(cli, ["export", "pii", "--snapshot", "--pii", "hide"]).exit_code == 2
        done = runner.invoke(cli, ["export", "pii", "--snapshot", "--name", "cli", "--pii", "drop"])
        assert done.exit_code == 0, done.output
    finally:
        get_settings.cache_clear()
    with db.session(write=False) as s:
        snapshot = s.scalar(select(Snapshot).where(Snapshot.name == "cli"))
        assert snapshot is not None and snapshot.row_count == 1 and snapshot.filters["pii"]["dropped_items"] == 4
        assert s.scalar(select(func.count()).select_from(Snapshot)) == 1  # the refused ones left no row
