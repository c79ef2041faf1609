"""A snapshot's parts: the file of tied pairs and one file per other dimension, written with the main one,
hashed, listed in the snapshot and its card, and served to an export token."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi.testclient import TestClient

from app.db import Database
from app.jobs.runner import run_one
from tests.conftest import login
from tests.factories import PASSWORD


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _freeze(client: TestClient, tokens: dict[str, str], db: Database, **body: Any) -> dict[str, Any]:
    admin = bearer(tokens["admin_api"])
    r = client.post("/api/v1/projects/exp/snapshots", json={"name": "parts", **body}, headers=admin)
    assert r.status_code == 202, r.text
    assert run_one(db, worker_id="test-worker") is not None
    meta = client.get(f"/api/v1/snapshots/{r.json()['id']}", headers=bearer(tokens["export"])).json()
    assert meta["state"] == "ready", meta
    return meta


def test_ties_and_dimension_files_are_written_hashed_and_served(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database
) -> None:
    meta = _freeze(client, tokens, db, ties=True, per_dimension=True)
    parts = {part["name"]: part for part in meta["parts"]}
    assert list(parts) == [
        "ties",
        "dimension-helpful",
        "dimension-harmless",
        "dimension-honest",
        "dimension-polite",
        "dimension-refusal",
    ]
    served: dict[str, list[dict[str, Any]]] = {}
    for name, part in parts.items():
        r = client.get(f"/api/v1/snapshots/{meta['id']}/parts/{name}.jsonl", headers=bearer(tokens["export"]))
        assert r.status_code == 200, r.text
        assert hashlib.sha256(r.content).hexdigest() == part["sha256"] == r.headers["x-snapshot-sha256"]
        assert len(r.content) == part["bytes"]
        served[name] = [json.loads(line) for line in r.content.splitlines()]
        assert len(served[name]) == part["rows"]
        assert part["sha256"] in meta["card"]
    # Ties: "mostly_tie" (2 ties, 1 A) and "level" (A, B, tie), A and B in canonical order, marked.
    ties = served["ties"]
    assert sorted(row["meta"]["external_id"] for row in ties) == ["level", "mostly_tie"]
    assert all(row["meta"]["tie"] is True and row["meta"]["chosen_position"] == 0 for row in ties)
    mostly = next(row for row in ties if row["meta"]["external_id"] == "mostly_tie")
    assert mostly["meta"]["agreement"] == 0.6667 and mostly["meta"]["votes"]["tie"] == 2
    # Harmless: only "unsafe" has harmless votes (3 × B); the other dimensions have none.
    harmless = served["dimension-harmless"]
    assert [(r["meta"]["external_id"], r["meta"]["dimension"], r["meta"]["chosen_position"]) for r in harmless] == [
        ("unsafe", "harmless", 1)
    ]
    assert parts["dimension-helpful"]["rows"] == 0
    # The main file is the snapshot's as ever.
    main = client.get(f"/api/v1/snapshots/{meta['id']}.jsonl", headers=bearer(tokens["export"]))
    assert hashlib.sha256(main.content).hexdigest() == meta["sha256"]
    assert not any(json.loads(line)["meta"].get("tie") for line in main.content.splitlines())


def test_parts_are_refused_to_other_tokens_and_unknown_names(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database
) -> None:
    meta = _freeze(client, tokens, db, ties=True)
    url = f"/api/v1/snapshots/{meta['id']}/parts/ties.jsonl"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=bearer(tokens["other"])).status_code == 403  # as its main file
    assert client.get(url, headers=bearer(tokens["revoked"])).status_code == 401
    main = f"/api/v1/snapshots/{meta['id']}.jsonl"
    annotator = bearer(tokens["annotator_api"])
    assert client.get(url, headers=annotator).status_code == client.get(main, headers=annotator).status_code == 403
    assert client.get(url, headers=bearer(tokens["export"])).status_code == 200
    for name in ("dimension-harmless", "..%2Fsnapshot", "nope"):
        r = client.get(f"/api/v1/snapshots/{meta['id']}/parts/{name}.jsonl", headers=bearer(tokens["export"]))
        assert r.status_code == 404, name
    plain = _freeze(client, tokens, db)
    assert plain["parts"] == []


def test_the_snapshot_page_lists_its_parts(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database
) -> None:
    token = login(client, "chief", PASSWORD)
    page = client.get("/projects/exp/export")
    assert 'name="ties"' in page.text and 'name="per_dimension"' in page.text
    r = client.post(
        "/projects/exp/snapshots",
        data={"name": "from the page", "applied": "1", "ties": "1", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code in (303, 200), r.text
    assert run_one(db, worker_id="test-worker") is not None
    listed = client.get("/api/v1/projects/exp/snapshots", headers=bearer(tokens["export"])).json()
    newest = listed[0]
    assert [p["name"] for p in newest["parts"]] == ["ties"] and newest["parts"][0]["rows"] == 2
    page = client.get(f"/projects/exp/snapshots/{newest['id']}")
    assert f"/api/v1/snapshots/{newest['id']}/parts/ties.jsonl" in page.text
