"""What an export reveals and what it may cost: annotators stay pseudonymous to token holders, data cards hold no
secrets, pseudonyms come from a per-install key, exports are capped, odd snapshot ids are 4xx."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db import Database
from app.export import pseudonyms, slots, stream
from app.jobs.runner import run_one
from app.models import Project, Snapshot
from tests.conftest import TEST_SECRET, login
from tests.export.test_api import bearer, lines
from tests.factories import PASSWORD, make_user

# --- 4: export tokens name annotators only by pseudonym --------------------------------------------------------


def _pseudonyms_of(client: TestClient, token: str) -> dict[str, set[str]]:
    """external id → the pseudonyms in its rows (the export as a token holder sees it)."""
    r = client.get("/api/v1/projects/exp/export.jsonl", headers=bearer(token))
    assert r.status_code == 200, r.text
    return {row["meta"]["external_id"]: set(row["meta"]["annotators"]) for row in lines(r.content)}


def _pseudonym(settings: Settings, world: dict[str, Any], name: str) -> str:
    """The pseudonym of a fixture annotator, worked out here from the install's key (after an export made it)."""
    key = pseudonyms.pseudonym_key(settings.data_dir)
    return pseudonyms.pseudonym(key, world["project_id"], world["users"][name])


@pytest.mark.parametrize("route", ["export.jsonl", "export/preview"])
def test_a_token_cannot_name_users_nor_tell_which_exist(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database, route: str
) -> None:
    with db.session() as s:
        make_user(s, "outsider")  # a user, not a member of the project
    users = world["users"]
    probes = [
        "ann3",
        str(users["ann3"]),
        "chief",
        str(users["chief"]),
        "outsider",
        "nobody",
        "999999",
        "a_0123456789ab",
    ]
    answers = []
    for who in probes:
        r = client.get(
            f"/api/v1/projects/exp/{route}?exclude_annotators={quote(who)}", headers=bearer(tokens["export"])
        )
        assert r.status_code == 422, (who, r.text)
        answers.append(json.dumps(r.json()).replace(who, "WHO"))
        assert "ann1" not in r.text and "chief" not in r.text.replace(who, "")
    assert len(set(answers)) == 1, answers  # the same answer whether the user exists, is a member, or not


def test_a_token_excludes_by_pseudonym_and_hears_no_names(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], settings: Settings
) -> None:
    token = tokens["export"]
    ann3 = _pseudonym(settings, world, "ann3")
    r = client.get(f"/api/v1/projects/exp/export/preview?exclude_annotators={ann3}", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["excluded_annotators"] == [ann3]
    assert not any(name in r.text for name in ("ann1", "ann2", "ann3", "chief"))
    seen = _pseudonyms_of(client, token)
    r = client.get(f"/api/v1/projects/exp/export.jsonl?exclude_annotators={ann3}", headers=bearer(token))
    assert r.status_code == 200
    rows = lines(r.content)
    assert rows and all(ann3 not in row["meta"]["annotators"] for row in rows)
    assert any(ann3 in found for found in seen.values())


def test_an_admin_may_name_members_but_learns_nothing_of_other_users(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database, settings: Settings
) -> None:
    admin = bearer(tokens["admin_api"])
    ann3 = _pseudonym(settings, world, "ann3")
    by = {}
    for who in ("ann3", str(world["users"]["ann3"]), ann3):
        r = client.get(f"/api/v1/projects/exp/export/preview?exclude_annotators={who}", headers=admin)
        assert r.status_code == 200, (who, r.text)
        by[who] = r.json()
    assert by["ann3"] == by[ann3] == by[str(world["users"]["ann3"])]
    assert by["ann3"]["excluded_annotators"] == [ann3]  # the same pseudonym, whoever asks
    with db.session() as s:
        make_user(s, "outsider")
    answers = set()
    for who in ("chief", str(world["users"]["chief"]), "outsider", "nobody"):  # chief: an admin, no member
        r = client.get(f"/api/v1/projects/exp/export/preview?exclude_annotators={who}", headers=admin)
        assert r.status_code == 422, (who, r.text)
        answers.add(r.text.replace(who, "WHO"))
    assert len(answers) == 1


def test_the_admin_page_shows_whose_votes_it_ignores_by_name(client: TestClient, world: dict[str, Any]) -> None:
    login(client, "chief", PASSWORD)
    r = client.get("/projects/exp/export?exclude_annotators=ann3", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "Votes ignored from:" in r.text and "ann3" in r.text, r.text[:500]


def test_a_snapshot_excluding_by_name_shows_token_holders_only_pseudonyms(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database, settings: Settings
) -> None:
    ann3 = _pseudonym(settings, world, "ann3")
    r = client.post(
        "/api/v1/projects/exp/snapshots",
        json={"filters": {"exclude_annotators": ["ann3"]}},
        headers=bearer(tokens["admin_api"]),
    )
    assert r.status_code == 202, r.text
    assert run_one(db, worker_id="w") is not None
    sid = r.json()["id"]
    listed = client.get("/api/v1/projects/exp/snapshots", headers=bearer(tokens["export"]))
    meta = client.get(f"/api/v1/snapshots/{sid}", headers=bearer(tokens["export"]))
    body = client.get(f"/api/v1/snapshots/{sid}.jsonl", headers=bearer(tokens["export"]))
    for answer in (r, listed, meta, body):
        assert answer.status_code in (200, 202)
        assert "ann3" not in answer.text
    for shown in (r.json(), listed.json()[0], meta.json()):  # by pseudonym, neither by name nor by user id
        assert shown["filters"]["exclude_annotators"] == [ann3]
    assert meta.json()["state"] == "ready" and f"`{json.dumps([ann3])}`" in meta.json()["card"]
    assert all(ann3 not in row["meta"]["annotators"] for row in lines(body.content))


# --- 8: no secrets in the data card ----------------------------------------------------------------------------

SECRETS = ("hunter2", "sk-very-secret", "pw9", "vllm-internal", "user:", "10.1.2.3")


def test_the_data_card_records_models_and_sampling_only(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database
) -> None:
    with db.session() as s:
        project = s.get(Project, world["project_id"])
        assert project is not None
        project.generation = {
            "base_urls": ["http://user:hunter2@vllm-internal:8000/v1", "http://10.1.2.3:8000/v1?key=pw9"],
            "api_key": "sk-very-secret",
            "model": "sft-7b",
            "models": [{"model": "sft-7b-b", "base_url": "http://user:pw9@10.1.2.3/v1"}],
            "temperature": 0.7,
            "top_p": 0.95,
            "max_tokens": 256,
            "timeout_s": 33,
            "headers": {"Authorization": "Bearer sk-very-secret"},
        }
    r = client.post("/api/v1/projects/exp/snapshots", json={}, headers=bearer(tokens["admin_api"]))
    assert run_one(db, worker_id="w") is not None
    meta = client.get(f"/api/v1/snapshots/{r.json()['id']}", headers=bearer(tokens["export"]))
    assert meta.status_code == 200 and meta.json()["state"] == "ready"
    card = meta.json()["card"]
    for secret in SECRETS:
        assert secret not in meta.text, secret
    assert "base_url" not in card and "timeout" not in card and "headers" not in card
    for kept in ("sft-7b", "sft-7b-b", "0.7", "0.95", "256", "test-model"):
        assert kept in card, kept
    login(client, "chief", PASSWORD)
    page = client.get(f"/projects/exp/snapshots/{r.json()['id']}")
    assert page.status_code == 200 and "sft-7b" in page.text
    assert not any(secret in page.text for secret in SECRETS)


# --- 11: pseudonyms from a per-install random key --------------------------------------------------------------


def test_pseudonyms_come_from_an_install_key_not_the_secret_key(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database, settings: Settings
) -> None:
    seen = set().union(*_pseudonyms_of(client, tokens["export"]).values())
    assert len(seen) == 3
    users, project_id = world["users"], world["project_id"]
    for secret in (TEST_SECRET, settings.secret_key or "", "dev-only-insecure-secret-key-change-me"):
        for name in ("ann1", "ann2", "ann3"):
            old = "a_" + hmac.new(secret.encode(), f"{project_id}:{users[name]}".encode(), hashlib.sha256).hexdigest()
            assert old[:14] not in seen
    stored = (settings.data_dir / pseudonyms.KEY_FILE).read_text()
    assert (
        len(bytes.fromhex(stored)) >= 32 and oct((settings.data_dir / pseudonyms.KEY_FILE).stat().st_mode)[-3:] == "600"
    )
    key = pseudonyms.pseudonym_key(settings.data_dir)
    assert {pseudonyms.pseudonym(key, project_id, users[n]) for n in ("ann1", "ann2", "ann3")} == seen
    assert set().union(*_pseudonyms_of(client, tokens["export"]).values()) == seen  # stable


def test_the_install_key_is_made_once_under_a_race(tmp_path: Path) -> None:
    """Processes that start at once (here: a pool of them) all get the key that was stored first."""
    import multiprocessing

    data_dir = tmp_path / "fresh"
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        keys = pool.map(pseudonyms.pseudonym_key, [data_dir] * 24)
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert pseudonyms.pseudonym_key(data_dir) == keys[0]
    assert sorted(p.name for p in data_dir.iterdir()) == [pseudonyms.KEY_FILE]  # no temporary file left


# --- 10: exports are capped per server and per token, and give their slot back --------------------------------


def _capped(app: FastAPI, **limits: int) -> slots.ExportSlots:
    app.state.settings = app.state.settings.model_copy(update=limits)
    return slots.slots_of(app)


def test_exports_beyond_the_server_cap_are_503_with_retry_after(
    app: FastAPI, client: TestClient, world: dict[str, Any], tokens: dict[str, str]
) -> None:
    board = _capped(app, export_max_concurrent=2, export_max_per_token=5)
    held = [board.take(caller=None), board.take(caller=None)]
    url = "/api/v1/projects/exp/export.jsonl"
    for who in ("export", "admin_api"):
        r = client.get(url, headers=bearer(tokens[who]))
        assert r.status_code == 503 and int(r.headers["retry-after"]) > 0 and r.json()["detail"], r.text
    held.pop().release()
    r = client.get(url, headers=bearer(tokens["export"]))
    assert r.status_code == 200 and lines(r.content)
    assert board.in_use() == 1  # the download's slot came back; the one held here is still held
    held.pop().release()
    assert board.in_use() == 0


def test_exports_beyond_the_per_token_cap_are_429_and_other_tokens_go_on(
    app: FastAPI, client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database
) -> None:
    from app.models import ApiToken

    board = _capped(app, export_max_concurrent=10, export_max_per_token=1)
    with db.session(write=False) as s:
        token_id = next(
            t.id for t in s.scalars(select(ApiToken)) if tokens["export"].startswith(t.prefix) and t.revoked_at is None
        )
    held = board.take(caller=f"token:{token_id}")
    url = "/api/v1/projects/exp/export.jsonl"
    r = client.get(url, headers=bearer(tokens["export"]))
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0, r.text
    assert client.get(url, headers=bearer(tokens["admin_api"])).status_code == 200
    held.release()
    held.release()  # twice is harmless
    assert client.get(url, headers=bearer(tokens["export"])).status_code == 200
    assert board.in_use() == 0


def _asgi_get(
    app: FastAPI, path: str, headers: dict[str, str], *, disconnect_after: int | None
) -> list[dict[str, Any]]:
    """Run one GET through the ASGI app; the client goes away after ``disconnect_after`` body messages."""
    sent: list[dict[str, Any]] = []
    bodies = anyio.Event() if disconnect_after is not None else None
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "testserver", **headers}.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "state": {},
    }
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if bodies is not None:
            await bodies.wait()
        else:
            await anyio.sleep_forever()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if bodies is not None and message["type"] == "http.response.body" and message.get("body"):
            if sum(1 for m in sent if m["type"] == "http.response.body" and m.get("body")) >= (disconnect_after or 0):
                bodies.set()  # the client goes away

    async def run() -> None:
        with anyio.fail_after(30):
            await app(scope, receive, send)

    anyio.run(run)
    return sent


def test_the_slot_comes_back_when_the_client_goes_away_mid_download(
    app: FastAPI, client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database
) -> None:
    from app.models import Candidate

    with db.session() as s:  # more than a pipe's buffer: the export is still at work after the first block
        for candidate in s.scalars(select(Candidate).where(Candidate.item_id == world["items"]["decided"])):
            candidate.text = f"{candidate.position} " + "long " * 40_000
    board = _capped(app, export_max_concurrent=1, export_max_per_token=1)
    sent = _asgi_get(app, "/api/v1/projects/exp/export.jsonl", bearer(tokens["export"]), disconnect_after=1)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert board.in_use() == 0
    assert client.get("/api/v1/projects/exp/export.jsonl", headers=bearer(tokens["export"])).status_code == 200


def test_the_slot_comes_back_when_the_export_fails_mid_stream(
    app: FastAPI,
    client: TestClient,
    world: dict[str, Any],
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    board = _capped(app, export_max_concurrent=1, export_max_per_token=1)

    async def failing(*args: Any, **kwargs: Any) -> Any:
        yield b'{"half": '
        raise stream.ExportFailed("export of project 1 failed: boom")

    monkeypatch.setattr("app.export.api.jsonl_body", failing)
    with pytest.raises(stream.ExportFailed):
        client.get("/api/v1/projects/exp/export.jsonl", headers=bearer(tokens["export"]))
    assert board.in_use() == 0
    monkeypatch.undo()
    assert client.get("/api/v1/projects/exp/export.jsonl", headers=bearer(tokens["export"])).status_code == 200


def test_a_refused_filter_takes_no_slot(
    app: FastAPI, client: TestClient, world: dict[str, Any], tokens: dict[str, str]
) -> None:
    board = _capped(app, export_max_concurrent=1, export_max_per_token=1)
    r = client.get("/api/v1/projects/exp/export.jsonl?dimension=nope", headers=bearer(tokens["export"]))
    assert r.status_code == 422 and board.in_use() == 0


def test_snapshot_files_are_not_counted(
    app: FastAPI, client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database
) -> None:
    r = client.post("/api/v1/projects/exp/snapshots", json={}, headers=bearer(tokens["admin_api"]))
    assert run_one(db, worker_id="w") is not None
    board = _capped(app, export_max_concurrent=1, export_max_per_token=1)
    held = board.take(caller=None)
    try:
        got = client.get(f"/api/v1/snapshots/{r.json()['id']}.jsonl", headers=bearer(tokens["export"]))
        assert got.status_code == 200 and lines(got.content)
    finally:
        held.release()


# --- 16: odd snapshot ids are 404 or 422, never 500 ------------------------------------------------------------

ODD_IDS = ["²", "1" * 20, "9" * 5000, "-1", "１２", "0x10", "1e3", " 1", "٣"]


@pytest.mark.parametrize("sid", ODD_IDS)
def test_odd_snapshot_ids_are_4xx(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database, sid: str
) -> None:
    path = quote(sid)
    for url in (f"/api/v1/snapshots/{path}.jsonl", f"/api/v1/snapshots/{path}"):
        for who in ("admin_api", "export"):
            r = client.get(url, headers=bearer(tokens[who]))
            assert r.status_code in (403, 404, 422), (url, who, r.status_code, r.text[:200])
            assert r.json()["detail"]
    login(client, "chief", PASSWORD)
    r = client.get(f"/projects/exp/snapshots/{path}")
    assert r.status_code in (404, 422), r.text[:200]
    with db.session(write=False) as s:
        assert s.scalar(select(Snapshot.id)) is None


# --- 8 and 4 for snapshots stored before: the migration scrubs their cards and filters --------------------------

OLD_CARD = """# Exp — snapshot 1

## Filter

| rule | value |
| --- | --- |
| dimension | `"overall"` |
| exclude_annotators | `["ann3","7"]` |

## Models

| model | candidates |
| --- | --- |
| sft-7b | 10 |

Generation settings of the project:

```json
{"base_urls":["http://user:hunter2@vllm-internal:8000/v1"],"model":"sft-7b","temperature":0.7}
```
"""


def test_the_migration_scrubs_stored_cards_and_filters(scratch_url: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text

    from tests.conftest import alembic_config

    cfg = alembic_config(scratch_url)
    command.upgrade(cfg, "0007")
    engine = create_engine(scratch_url)
    now = "2026-12-01 10:00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO project (id, slug, name, guidelines, dimensions, k, overlap, lease_minutes, gold_share, "
                "gold_min_accuracy, generation, created_at, updated_at) VALUES (1, 'p', 'P', '', '[]', 2, 3, 30, 0, "
                "0.7, :generation, :now, :now)"
            ),
            {"generation": json.dumps({"base_urls": ["http://user:hunter2@vllm-internal:8000/v1"]}), "now": now},
        )
        for sid, state in ((1, "ready"), (2, "pending")):
            conn.execute(
                text(
                    "INSERT INTO snapshot (id, project_id, name, format, filters, state, row_count, size_bytes, card, "
                    "created_at) VALUES (:id, 1, '', 'standard', :filters, :state, 0, 0, :card, :now)"
                ),
                {
                    "id": sid,
                    "state": state,
                    "filters": json.dumps({"dimension": "overall", "exclude_annotators": ["ann3", "7"]}),
                    "card": OLD_CARD if state == "ready" else "",
                    "now": now,
                },
            )
    command.upgrade(cfg, "0008")
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(text("SELECT id, card, filters FROM snapshot"))}
    engine.dispose()
    ready, pending = rows[1], rows[2]
    filters = ready.filters if isinstance(ready.filters, dict) else json.loads(ready.filters)
    assert filters == {"dimension": "overall", "exclude_annotators": ["withheld"]}
    for secret in ("hunter2", "vllm-internal", "Generation settings", "ann3", '"7"'):
        assert secret not in ready.card, secret
    assert "| sft-7b | 10 |" in ready.card and '| exclude_annotators | `["withheld"]` |' in ready.card
    # A pending snapshot keeps its filter for the writer, which stores it by pseudonym when it is done.
    pending_filters = pending.filters if isinstance(pending.filters, dict) else json.loads(pending.filters)
    assert pending_filters["exclude_annotators"] == ["ann3", "7"]
