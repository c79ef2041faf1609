"""The export's ``rounds`` filter (items by their current candidate round) and the rounds a snapshot records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.auth.service import create_api_token
from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.export import snapshots
from app.models import Candidate, Item, RegisteredModel, Snapshot
from tests.conftest import login
from tests.factories import make_item, make_judgment, make_project, make_user

A = {"overall": ("preference", 0, 1)}


def _new_round(s: Any, item: Item, texts: list[str], model_id: int) -> None:
    """Move ``item`` to its next round, with candidates written by the registered model ``model_id``."""
    item.round += 1
    for position, text in enumerate(texts):
        s.add(Candidate(item_id=item.id, round=item.round, position=position, text=text, model_id=model_id))
    s.flush()


@pytest.fixture
def rounds_world(db: Database, settings: Settings) -> dict[str, Any]:
    """k = 2, one annotator: item r0 on round 0, r1 on round 1, r2 on round 2; each judged "A" on its current
    round (r1 was also judged on round 0, a judgment that no longer counts)."""
    with db.session() as s:
        admin, annotator = make_user(s, "chief", role="admin"), make_user(s, "ann")
        project = make_project(s, "rnd", k=2, overlap=1, members=[annotator])
        model = RegisteredModel(project_id=project.id, name="dpo-r1", weights_sha256="d4" * 32)
        s.add(model)
        s.flush()
        items = {name: make_item(s, project, f"prompt {name}", external_id=name) for name in ("r0", "r1", "r2")}
        make_judgment(s, items["r1"], annotator, A)
        _new_round(s, items["r1"], ["r1 round-1 A", "r1 round-1 B"], model.id)
        _new_round(s, items["r2"], ["r2 round-1 A", "r2 round-1 B"], model.id)
        _new_round(s, items["r2"], ["r2 round-2 A", "r2 round-2 B"], model.id)
        for item in items.values():
            make_judgment(s, item, annotator, A)
        return {
            "project_id": project.id,
            "export": create_api_token(s, user=admin, scope="export", settings=settings, project_id=project.id)[1],
            "admin": create_api_token(s, user=admin, scope="api", settings=settings)[1],
        }


def _rows(client: TestClient, token: str, query: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/projects/rnd/export.jsonl?{query}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def test_rounds_keep_the_items_on_those_rounds(client: TestClient, rounds_world: dict[str, Any]) -> None:
    token = rounds_world["export"]
    everything = _rows(client, token, "")
    assert sorted(r["meta"]["external_id"] for r in everything) == ["r0", "r1", "r2"]
    only_one = _rows(client, token, "rounds=1")
    assert [(r["meta"]["external_id"], r["chosen"]) for r in only_one] == [("r1", "r1 round-1 A")]
    assert sorted(r["meta"]["external_id"] for r in _rows(client, token, "rounds=0,2")) == ["r0", "r2"]
    assert sorted(r["meta"]["external_id"] for r in _rows(client, token, "rounds=0&rounds=2")) == ["r0", "r2"]
    assert _rows(client, token, "rounds=7") == []
    preview = client.get("/api/v1/projects/rnd/export/preview?rounds=2", headers={"Authorization": f"Bearer {token}"})
    assert preview.status_code == 200 and preview.json()["items"] == 1 and preview.json()["kept"] == 1
    refused = client.get("/api/v1/projects/rnd/export.jsonl?rounds=-1", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 422


def test_a_snapshot_records_the_rounds_its_pairs_came_from(
    client: TestClient, rounds_world: dict[str, Any], db: Database, settings: Settings
) -> None:
    admin = {"Authorization": f"Bearer {rounds_world['admin']}"}
    chosen = client.post("/api/v1/projects/rnd/snapshots", json={"filters": {"rounds": [2, 1]}}, headers=admin)
    every = client.post("/api/v1/projects/rnd/snapshots", json={}, headers=admin)
    assert chosen.status_code == every.status_code == 202
    for made in (chosen, every):
        assert snapshots.write_snapshot(db, snapshot_id=made.json()["id"], settings=settings) == "ready"
    with db.session(write=False) as s:
        first, second = (s.get(Snapshot, r.json()["id"]) for r in (chosen, every))
        assert first is not None and second is not None
        assert (first.rounds, first.row_count, first.filters["rounds"]) == ([1, 2], 2, [1, 2])
        assert (second.rounds, second.row_count) == ([0, 1, 2], 3)
        assert "rounds" not in second.filters  # a filter of every round reads as it did before rounds
    shown = client.get(f"/api/v1/snapshots/{chosen.json()['id']}", headers=admin)
    assert shown.status_code == 200 and shown.json()["rounds"] == [1, 2]


def test_the_export_page_keeps_the_rounds_asked(client: TestClient, rounds_world: dict[str, Any]) -> None:
    login(client, "chief")
    page = client.get("/projects/rnd/export?applied=1&rounds=1,2")
    assert page.status_code == 200 and 'name="rounds" value="1, 2"' in page.text
    assert "rounds=1&amp;rounds=2" in page.text  # the download link carries them


def test_the_command_line_takes_rounds(
    rounds_world: dict[str, Any], settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    monkeypatch.setenv("PREFSTUDIO_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    out = tmp_path / "r.jsonl"
    try:
        result = CliRunner().invoke(cli, ["export", "rnd", "--out", str(out), "--round", "0", "--round", "2"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["meta"]["external_id"] for r in rows) == ["r0", "r2"]
