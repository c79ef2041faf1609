"""Arena votes never become training pairs unless asked: an arena project exports only with source=arena (rows
marked as the arena's, with the models compared), source=arena is refused elsewhere, and the parent project's
exports never carry the arena's items."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.export import snapshots
from app.models import Candidate, RegisteredModel, Snapshot
from tests.factories import make_item, make_judgment, make_project, make_user

A, B = {"overall": ("preference", 0, 1)}, {"overall": ("preference", 1, 0)}


@pytest.fixture
def arena_world(db: Database, settings: Settings) -> dict[str, Any]:
    """A preference project with two judged items, and its arena between two of its registered models: three
    items, each with one candidate per model (position 0: sft, 1: dpo), judged by one annotator."""
    with db.session() as s:
        admin, annotator = make_user(s, "chief", role="admin"), make_user(s, "ann")
        parent = make_project(s, "base", k=2, overlap=1, members=[annotator])
        sft = RegisteredModel(project_id=parent.id, name="sft", kind="sft")
        dpo = RegisteredModel(project_id=parent.id, name="dpo-r1", kind="checkpoint")
        s.add_all([sft, dpo])
        s.flush()
        arena = make_project(
            s, "base-arena", k=2, overlap=1, members=[annotator], kind="arena", parent_id=parent.id,
            arena={"model_ids": [sft.id, dpo.id], "prompts": {"imported": True}},
        )  # fmt: skip
        for i in range(2):
            make_judgment(s, make_item(s, parent, f"training prompt {i}", external_id=f"train-{i}"), annotator, A)
        for i, verdict in enumerate((A, B, B)):
            item = make_item(s, arena, f"held-out prompt {i}", candidates=[], external_id=f"arena-{i}")
            item.status = "ready"
            for position, model in enumerate((sft, dpo)):
                s.add(Candidate(item_id=item.id, position=position, text=f"{model.name} on {i}", model_id=model.id))
            s.flush()
            make_judgment(s, item, annotator, verdict)
        tokens = {
            slug: create_api_token(s, user=admin, scope="export", settings=settings, project_id=p.id)[1]
            for slug, p in (("base", parent), ("base-arena", arena))
        }
        tokens["admin"] = create_api_token(s, user=admin, scope="api", settings=settings)[1]
        return {"tokens": tokens, "sft": sft.id, "dpo": dpo.id}


def _get(client: TestClient, world: dict[str, Any], slug: str, query: str = "", what: str = "export.jsonl") -> Any:
    token = world["tokens"][slug]
    return client.get(f"/api/v1/projects/{slug}/{what}?{query}", headers={"Authorization": f"Bearer {token}"})


def test_an_arena_exports_only_when_asked_for_its_votes(client: TestClient, arena_world: dict[str, Any]) -> None:
    for what in ("export.jsonl", "export/preview"):
        refused = _get(client, arena_world, "base-arena", what=what)
        assert refused.status_code == 422 and "source=arena" in refused.json()["detail"]
        assert _get(client, arena_world, "base-arena", "source=judge", what).status_code == 422
    asked = _get(client, arena_world, "base-arena", "source=arena")
    assert asked.status_code == 200, asked.text
    rows = [json.loads(line) for line in asked.text.splitlines()]
    sft, dpo = arena_world["sft"], arena_world["dpo"]
    got = {
        r["meta"]["external_id"]: (
            r["meta"]["label_source"],
            r["meta"]["chosen_model_id"],
            r["meta"]["rejected_model_id"],
        )
        for r in rows
    }
    assert got == {"arena-0": ("arena", sft, dpo), "arena-1": ("arena", dpo, sft), "arena-2": ("arena", dpo, sft)}
    assert rows[0]["chosen"] == "sft on 0" and rows[0]["rejected"] == "dpo-r1 on 0"


def test_source_arena_is_refused_on_a_preference_project(client: TestClient, arena_world: dict[str, Any]) -> None:
    refused = _get(client, arena_world, "base", "source=arena")
    assert refused.status_code == 422 and "arena projects" in refused.json()["detail"]


def test_the_parent_projects_snapshot_never_holds_arena_items(
    client: TestClient, arena_world: dict[str, Any], db: Database, settings: Settings
) -> None:
    admin = {"Authorization": f"Bearer {arena_world['tokens']['admin']}"}
    made = client.post("/api/v1/projects/base/snapshots", json={}, headers=admin)
    assert made.status_code == 202
    assert snapshots.write_snapshot(db, snapshot_id=made.json()["id"], settings=settings) == "ready"
    body = client.get(f"/api/v1/snapshots/{made.json()['id']}.jsonl", headers=admin)
    rows = [json.loads(line) for line in body.text.splitlines()]
    assert sorted(r["meta"]["external_id"] for r in rows) == ["train-0", "train-1"]
    assert all("label_source" not in r["meta"] for r in rows)

    # An arena's snapshot: refused unless asked with source=arena, and then its card says what it holds.
    refused = client.post("/api/v1/projects/base-arena/snapshots", json={}, headers=admin)
    assert refused.status_code == 422 and "source=arena" in refused.json()["detail"]
    asked = client.post("/api/v1/projects/base-arena/snapshots", json={"filters": {"source": "arena"}}, headers=admin)
    assert asked.status_code == 202
    assert snapshots.write_snapshot(db, snapshot_id=asked.json()["id"], settings=settings) == "ready"
    with db.session(write=False) as s:
        snapshot = s.get(Snapshot, asked.json()["id"])
        assert snapshot is not None and snapshot.row_count == 3 and snapshot.rounds == [0]
        assert snapshot.filters["source"] == "arena" and "min_judge_kappa" not in snapshot.filters
        assert 'meta.label_source = "arena"' in snapshot.card


def test_the_arena_export_page_asks_for_the_arenas_votes(client: TestClient, arena_world: dict[str, Any]) -> None:
    from tests.conftest import login

    login(client, "chief")
    page = client.get("/projects/base-arena/export")
    assert page.status_code == 200
    assert '<option value="arena" selected>' in page.text and "source=arena" in page.text
    assert '<option value="arena"' not in client.get("/projects/base/export").text
