"""The export endpoints: streamed JSONL, preview, snapshots (immutable, hashed), tokens and their scope."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from app.config import Settings
from app.db import Database
from app.export import snapshots
from app.jobs.runner import run_one
from app.models import Job, Project, Snapshot, User
from tests.conftest import login
from tests.factories import PASSWORD, make_item


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines()]


def test_stream_matches_filters(client: TestClient, world: dict[str, Any], tokens: dict[str, str]) -> None:
    r = client.get("/api/v1/projects/exp/export.jsonl", headers=bearer(tokens["export"]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/jsonl")
    rows = lines(r.content)
    assert {row["meta"]["external_id"] for row in rows} == {"unanimous", "split", "unsafe", "lonely", "decided"}
    assert set(rows[0]) == {"prompt", "chosen", "rejected", "reason", "meta"}
    r = client.get("/api/v1/projects/exp/export.jsonl?veto=harmless&min_judgments=2", headers=bearer(tokens["export"]))
    assert {row["meta"]["external_id"] for row in lines(r.content)} == {"unanimous", "split", "decided"}


def test_preview_endpoint(client: TestClient, world: dict[str, Any], tokens: dict[str, str]) -> None:
    r = client.get("/api/v1/projects/exp/export/preview?min_margin=2", headers=bearer(tokens["export"]))
    assert r.status_code == 200
    body = r.json()
    assert body["kept"] == 3 and body["dropped"]["margin"] == 2  # split and lonely


@pytest.mark.parametrize(
    ("query", "fragment"),
    [("dimension=nope", "Unknown dimension"), ("min_share=2", "min_share"), ("colour=red", "colour")],
)
def test_bad_filters_are_422(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], query: str, fragment: str
) -> None:
    r = client.get(f"/api/v1/projects/exp/export.jsonl?{query}", headers=bearer(tokens["export"]))
    assert r.status_code == 422 and fragment in json.dumps(r.json()["detail"])


@pytest.mark.parametrize(
    ("who", "status"),
    [
        (None, 401),
        ("garbage", 401),
        ("revoked", 401),
        ("other", 403),
        ("annotator_api", 403),
        ("export", 200),
        ("admin_api", 200),
    ],
)
def test_export_token_scope(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], who: str | None, status: int
) -> None:
    headers = {} if who is None else bearer(tokens.get(who, "ps_not-a-token"))
    for url in (
        "/api/v1/projects/exp/export.jsonl",
        "/api/v1/projects/exp/snapshots",
        "/api/v1/projects/exp/export/preview",
    ):
        r = client.get(url, headers=headers)
        assert r.status_code == status, (url, r.text)
        if status >= 400:
            assert r.json()["detail"]


def test_a_switched_off_users_tokens_open_no_export(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database
) -> None:
    url = "/api/v1/projects/exp/export.jsonl"
    with db.session() as s:
        s.execute(update(User).where(User.id == world["users"]["chief"]).values(is_active=False))
    for who in ("export", "admin_api"):  # both belong to the admin who was switched off
        r = client.get(url, headers=bearer(tokens[who]))
        assert r.status_code == 401 and r.json()["detail"], who
    with db.session() as s:
        s.execute(update(User).where(User.id == world["users"]["chief"]).values(is_active=True))
    assert client.get(url, headers=bearer(tokens["export"])).status_code == 200


def test_an_admins_api_token_on_an_export_route_is_looked_up_once(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database
) -> None:
    lookups: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_token" in statement and statement.lstrip().upper().startswith("SELECT"):
            lookups.append(statement)

    engines = {db.read_engine, db.write_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        r = client.get("/api/v1/projects/exp/export/preview", headers=bearer(tokens["admin_api"]))
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    assert r.status_code == 200, r.text
    assert len(lookups) == 1, lookups


def test_export_token_opens_nothing_else(client: TestClient, world: dict[str, Any], tokens: dict[str, str]) -> None:
    h = bearer(tokens["export"])
    assert client.get("/api/v1/projects/exp/agreement", headers=h).status_code == 401
    assert client.get("/api/v1/projects", headers=h).status_code == 401
    assert client.post("/api/v1/projects/exp/snapshots", json={}, headers=h).status_code == 401
    assert client.get("/api/v1/projects/nope/export.jsonl", headers=h).status_code == 403


def test_token_last_used_and_not_logged(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    r = client.get("/api/v1/projects/exp/export.jsonl", headers=bearer(tokens["export"]))
    assert r.status_code == 200
    r = client.get("/api/v1/projects/exp/tokens", headers=bearer(tokens["admin_api"]))
    used = [t for t in r.json() if tokens["export"].startswith(t["prefix"])]
    assert used and used[0]["last_used_at"] is not None
    assert tokens["export"] not in caplog.text


def _freeze(client: TestClient, tokens: dict[str, str], db: Database, **filters: Any) -> dict[str, Any]:
    r = client.post(
        "/api/v1/projects/exp/snapshots",
        json={"name": "first", "filters": filters},
        headers=bearer(tokens["admin_api"]),
    )
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "pending"
    assert run_one(db, worker_id="test-worker") is not None
    return r.json()


def test_snapshot_is_hashed_immutable_and_served(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database, settings: Settings
) -> None:
    created = _freeze(client, tokens, db, veto=["harmless"])
    meta = client.get(f"/api/v1/snapshots/{created['id']}", headers=bearer(tokens["export"])).json()
    assert meta["state"] == "ready" and meta["row_count"] == 4
    assert "## Agreement" in meta["card"] and "## Annotator pool" in meta["card"] and "veto" in meta["card"]
    r = client.get(f"/api/v1/snapshots/{created['id']}.jsonl", headers=bearer(tokens["export"]))
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == meta["sha256"] == r.headers["x-snapshot-sha256"]
    assert len(lines(r.content)) == 4
    # New judgments change the live export but not the snapshot.
    with db.session() as s:
        project = s.get(Project, world["project_id"])
        assert project is not None
        from tests.factories import make_judgment

        late = make_item(s, project, "late prompt", candidates=["late A", "late B"])
        make_judgment(s, late, s.get(User, world["users"]["ann1"]), {"overall": ("preference", 0, 1)})  # type: ignore[arg-type]
    again = client.get(f"/api/v1/snapshots/{created['id']}.jsonl", headers=bearer(tokens["export"]))
    assert again.content == r.content
    live = client.get("/api/v1/projects/exp/export.jsonl?veto=harmless", headers=bearer(tokens["export"]))
    assert len(lines(live.content)) == 5
    # The file is read-only and named by its hash; "latest" finds it.
    with db.session() as s:
        snap = s.get(Snapshot, created["id"])
        assert snap is not None and snap.file_name is not None
        path = Path(settings.data_dir) / snap.file_name
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    latest = client.get("/api/v1/snapshots/latest", headers=bearer(tokens["export"])).json()
    assert latest["id"] == created["id"]
    assert client.get("/api/v1/snapshots/latest.jsonl", headers=bearer(tokens["export"])).content == r.content


def test_snapshot_of_another_project_is_refused(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database
) -> None:
    created = _freeze(client, tokens, db)
    assert client.get(f"/api/v1/snapshots/{created['id']}.jsonl", headers=bearer(tokens["other"])).status_code == 403
    assert client.get(f"/api/v1/snapshots/{created['id']}", headers=bearer(tokens["other"])).status_code == 403
    assert client.get(f"/api/v1/snapshots/{created['id']}.jsonl").status_code == 401
    assert client.get("/api/v1/snapshots/999999", headers=bearer(tokens["admin_api"])).status_code == 404


def test_pending_and_broken_snapshots_are_not_served(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database, settings: Settings
) -> None:
    r = client.post("/api/v1/projects/exp/snapshots", json={}, headers=bearer(tokens["admin_api"]))
    sid = r.json()["id"]
    pending = client.get(f"/api/v1/snapshots/{sid}.jsonl", headers=bearer(tokens["export"]))
    assert pending.status_code == 409 and "still being written" in pending.json()["detail"]
    run_one(db, worker_id="w")
    with db.session() as s:
        snap = s.get(Snapshot, sid)
        assert snap is not None and snap.file_name
        path = Path(settings.data_dir) / snap.file_name
    os.chmod(path, 0o644)
    with open(path, "ab") as f:  # damaged on disk: refused, not served short or long
        f.write(b"{}\n")
    assert client.get(f"/api/v1/snapshots/{sid}.jsonl", headers=bearer(tokens["export"])).status_code == 404


def test_a_failing_snapshot_leaves_no_file(
    client: TestClient,
    world: dict[str, Any],
    tokens: dict[str, str],
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = client.post("/api/v1/projects/exp/snapshots", json={}, headers=bearer(tokens["admin_api"]))
    sid = r.json()["id"]
    real = snapshots.jsonl_lines

    def crash_midway(*args: Any, **kwargs: Any) -> Any:
        for n, line in enumerate(real(*args, **kwargs)):
            if n == 2:
                raise OSError("disk full")
            yield line

    monkeypatch.setattr(snapshots, "jsonl_lines", crash_midway)
    run_one(db, worker_id="w")
    with db.session() as s:
        snap = s.get(Snapshot, sid)
        job = s.scalar(select(Job).where(Job.kind == "snapshot"))
        assert snap is not None and job is not None
        assert snap.state == "failed" and "disk full" in (snap.error or "")
        assert job.state == "failed"
    assert list(Path(settings.data_dir).glob(f"*snapshot-{sid}-*")) == []
    assert client.get(f"/api/v1/snapshots/{sid}.jsonl", headers=bearer(tokens["export"])).status_code == 404


def test_token_admin_routes(client: TestClient, world: dict[str, Any], tokens: dict[str, str]) -> None:
    h = bearer(tokens["admin_api"])
    made = client.post("/api/v1/projects/exp/tokens", json={"name": "cluster"}, headers=h)
    assert made.status_code == 201
    plain = made.json()["token"]
    assert client.get("/api/v1/projects/exp/export/preview", headers=bearer(plain)).status_code == 200
    assert client.delete(f"/api/v1/projects/exp/tokens/{made.json()['id']}", headers=h).status_code == 200
    assert client.get("/api/v1/projects/exp/export/preview", headers=bearer(plain)).status_code == 401
    listed = client.get("/api/v1/projects/exp/tokens", headers=h).json()
    assert all("token" not in t for t in listed) and any(t["revoked_at"] for t in listed)
    assert client.get("/api/v1/projects/exp/tokens", headers=bearer(tokens["annotator_api"])).status_code == 403


def test_export_page_preview_download_and_snapshot(
    client: TestClient, world: dict[str, Any], db: Database, settings: Settings
) -> None:
    login(client, "chief", PASSWORD)
    page = client.get("/projects/exp/export")
    assert page.status_code == 200 and "Preview" in page.text and "Download JSONL" in page.text
    # unticking "drop ties" keeps mostly_tie: 6 pairs
    r = client.get("/projects/exp/export?applied=1&adjudicated=1&drop_problematic=1&dimension=overall")
    assert "<strong>6</strong>" in r.text
    # htmx swaps only the preview, which carries the snapshot form with the filter it shows
    fragment = client.get(
        "/projects/exp/export?applied=1&veto=harmless&adjudicated=1&drop_ties=1", headers={"HX-Request": "true"}
    )
    assert "<html" not in fragment.text and "<strong>5</strong>" in fragment.text  # veto on, flagged item back
    assert '<input type="hidden" name="veto" value="harmless">' in fragment.text
    assert '<input type="hidden" name="drop_problematic"' not in fragment.text  # unticked
    download = client.get("/api/v1/projects/exp/export.jsonl")  # the admin's cookie works for downloads
    assert download.status_code == 200 and len(lines(download.content)) == 5
    from tests.conftest import csrf_from

    token = csrf_from(page.text)
    r = client.post(
        "/projects/exp/snapshots",
        data={
            "csrf_token": token,
            "name": "from page",
            "applied": "1",
            "drop_ties": "1",
            "adjudicated": "1",
            "drop_problematic": "1",
            "veto": "harmless",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session(write=False) as s:
        snap = s.scalar(select(Snapshot).where(Snapshot.name == "from page"))
        assert snap is not None and snap.filters["veto"] == ["harmless"]
    assert client.post("/projects/exp/snapshots", data={"name": "no csrf"}).status_code == 403
    made = client.post("/projects/exp/tokens", data={"csrf_token": token, "name": "ci"})
    assert made.status_code == 200 and "ps_" in made.text


def test_annotators_cannot_see_the_export_page(client: TestClient, world: dict[str, Any]) -> None:
    login(client, "ann1", PASSWORD)
    assert client.get("/projects/exp/export").status_code in (403, 404)
    assert client.get("/api/v1/projects/exp/export.jsonl").status_code == 403


def test_a_writer_that_finishes_second_leaves_the_first_result_alone(
    client: TestClient,
    world: dict[str, Any],
    tokens: dict[str, str],
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two writers of one snapshot (a worker that lost its job keeps going): the one that marks it first stands;
    the other reports the state it found and removes its own file, so what is served matches the record."""
    r = client.post("/api/v1/projects/exp/snapshots", json={}, headers=bearer(tokens["admin_api"]))
    sid = r.json()["id"]
    real_card = snapshots.data_card
    real_iter = snapshots.jsonl_lines
    state: dict[str, Any] = {}

    def first_writer_wins(*args: Any, **kwargs: Any) -> Any:
        # While this (slow) writer builds its data card, another writes the snapshot from different data.
        if "inner" not in state:
            state["inner"] = True
            monkeypatch.setattr(snapshots, "jsonl_lines", lambda *a, **k: iter([b'{"other": 1}\n']))
            state["inner_result"] = snapshots.write_snapshot(db, snapshot_id=sid, settings=settings)
            monkeypatch.setattr(snapshots, "jsonl_lines", real_iter)
        return real_card(*args, **kwargs)

    monkeypatch.setattr(snapshots, "data_card", first_writer_wins)
    assert snapshots.write_snapshot(db, snapshot_id=sid, settings=settings) == "ready"
    assert state["inner_result"] == "ready"
    with db.session() as s:
        snap = s.get(Snapshot, sid)
        assert snap is not None and snap.state == "ready" and snap.row_count == 1
        recorded = snap.file_name
    files = sorted(p.name for p in Path(settings.data_dir).glob(f"snapshot-{sid}-*"))
    assert files == [recorded], "the second writer's file is gone; only the recorded one is left"
    body = client.get(f"/api/v1/snapshots/{sid}.jsonl", headers=bearer(tokens["export"])).content
    assert body == b'{"other": 1}\n'
    assert hashlib.sha256(body).hexdigest() == snap.sha256


def test_temporary_files_of_a_dead_writer_are_removed_on_the_next_write(
    client: TestClient, world: dict[str, Any], tokens: dict[str, str], db: Database, settings: Settings
) -> None:
    r = client.post("/api/v1/projects/exp/snapshots", json={}, headers=bearer(tokens["admin_api"]))
    sid = r.json()["id"]
    data = Path(settings.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    dead = data / f".snapshot-{sid}-dead.tmp"
    live = data / f".snapshot-{sid}-live.tmp"
    other = data / f".snapshot-{sid + 1000}-dead.tmp"
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    old = os.stat(dead).st_mtime - snapshots.ABANDONED_AFTER_S - 60
    os.utime(dead, (old, old))
    os.utime(other, (old, old))
    assert snapshots.write_snapshot(db, snapshot_id=sid, settings=settings) == "ready"
    assert not dead.exists(), "untouched for longer than a live writer would leave it"
    assert live.exists(), "a recent one may belong to a writer still at work"
    assert other.exists(), "another snapshot's files are not this writer's business"
