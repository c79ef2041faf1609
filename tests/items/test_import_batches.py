"""Import batches on both backends: one per import (service, JSON API, CLI) with its file name, author and counts,
none left by a failed import, the list of a project's batches, and the migration that keeps the search index."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.explorer.query import explore
from app.explorer.schemas import Filters
from app.items.importer import ImportFailed, ImportResult, import_items
from app.kit.errors import Invalid
from app.models import ImportBatch, Item, Project, User
from tests.conftest import alembic_config, login
from tests.factories import make_item, make_project, make_user


def _jsonl(*prompts: str) -> bytes:
    return "".join(json.dumps({"prompt": p}) + "\n" for p in prompts).encode()


def _import(db: Database, body: bytes, filename: str, *, by: str | None = None, slug: str = "bat") -> ImportResult:
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == slug)) or make_project(s, slug, k=2)
        user = s.scalar(select(User).where(User.username == by)) if by else None
        return import_items(s, project=project, stream=io.BytesIO(body), filename=filename, created_by=user)


def _batches(db: Database) -> list[ImportBatch]:
    with db.session(write=False) as s:
        return list(s.scalars(select(ImportBatch).order_by(ImportBatch.id)))


def _batch_of_items(db: Database) -> dict[str, int | None]:
    with db.session(write=False) as s:
        return {str(i.prompt): i.import_batch_id for i in s.scalars(select(Item))}


def test_each_import_is_one_batch_with_its_file_author_and_counts(db: Database) -> None:
    with db.session() as s:
        make_user(s, "importer-admin", role="admin")
    first = _import(db, _jsonl("a", "b", "c", "A"), "prompts.jsonl", by="importer-admin")  # "A" repeats "a"
    second = _import(db, _jsonl("c", "d", "e"), "more.jsonl")  # "c" is already in the project
    batches = _batches(db)
    assert [b.id for b in batches] == [first.batch_id, second.batch_id]
    one, two = batches
    assert (one.filename, one.added, one.duplicates) == ("prompts.jsonl", 3, 1)
    assert (two.filename, two.added, two.duplicates) == ("more.jsonl", 2, 1)
    with db.session(write=False) as s:
        admin_id = s.scalar(select(User.id).where(User.username == "importer-admin"))
    assert one.created_by_id == admin_id and two.created_by_id is None
    assert one.created_at is not None and one.created_at <= two.created_at
    owner = _batch_of_items(db)
    assert owner == {"a": one.id, "b": one.id, "c": one.id, "d": two.id, "e": two.id}


def test_a_batch_of_only_duplicates_is_still_recorded(db: Database) -> None:
    _import(db, _jsonl("x", "y"), "first.jsonl")
    again = _import(db, _jsonl("x", "y"), "again.jsonl")
    last = _batches(db)[-1]
    assert last.id == again.batch_id and (last.added, last.duplicates) == (0, 2)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_jsonl("fine") + b'{"prompt": 3}\n', id="bad line"),
        pytest.param(_jsonl(*[f"p{i}" for i in range(2500)]) + b"not json\n", id="bad line after full batches"),
        pytest.param(b"\n\n", id="empty"),
    ],
)
def test_a_failed_import_leaves_no_batch(db: Database, body: bytes) -> None:
    with pytest.raises((ImportFailed, Invalid)):
        _import(db, body, "broken.jsonl")
    assert _batches(db) == []
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 0


def test_the_stored_file_name_is_bounded_and_storable(db: Database) -> None:
    name = "bad\x00name\ud800" + "x" * 300 + ".jsonl"
    _import(db, _jsonl("q"), name)
    (batch,) = _batches(db)
    assert len(batch.filename) == 255 and batch.filename.startswith("bad\ufffdname\ufffdxxx")


def test_items_made_otherwise_have_no_batch_and_deleting_the_author_keeps_the_batch(db: Database) -> None:
    with db.session() as s:
        project = make_project(s, "bat", k=2)
        make_item(s, project, "made by hand")
        make_user(s, "leaver", role="admin")
    _import(db, _jsonl("imported"), "f.jsonl", by="leaver")
    with db.session() as s:
        s.delete(s.scalar(select(User).where(User.username == "leaver")))
    (batch,) = _batches(db)
    assert batch.created_by_id is None and batch.added == 1
    assert _batch_of_items(db) == {"made by hand": None, "imported": batch.id}


def test_the_json_api_import_answers_its_batch_and_lists_them(
    client: TestClient, other_client: TestClient, db: Database, login_as: Any
) -> None:
    with db.session() as s:
        admin = make_user(s, "api-importer", role="admin")
        ann = make_user(s, "api-annotator")
        make_project(s, "apibat", k=2, members=[ann])
        make_project(s, "otherbat", k=2)
        s.commit()
    login_as(admin)
    ids = []
    for name, body in (("one.jsonl", _jsonl("q1", "q2")), ("two.csv", b"prompt\nq3\nq1\n")):
        r = client.post("/api/v1/projects/apibat/import", files={"file": (name, body)})
        assert r.status_code == 201, r.text
        ids.append(r.json()["batch_id"])
    raw = client.post(
        "/api/v1/projects/otherbat/import",
        content=_jsonl("elsewhere"),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert raw.status_code == 201 and raw.json()["batch_id"] not in ids
    bad = client.post("/api/v1/projects/apibat/import", files={"file": ("bad.jsonl", b'{"prompt": 1}\n')})
    assert bad.status_code == 422
    listed = client.get("/api/v1/projects/apibat/import-batches")
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    assert [b["id"] for b in rows] == ids[::-1]  # newest first; the failed import and the other project absent
    assert [(b["filename"], b["added"], b["duplicates"]) for b in rows] == [("two.csv", 1, 1), ("one.jsonl", 2, 0)]
    assert {b["created_by_id"] for b in rows} == {admin.id}
    page = client.get("/api/v1/projects/apibat/import-batches", params={"before": ids[1], "limit": 1})
    assert [b["id"] for b in page.json()] == [ids[0]]
    items = client.get("/api/v1/projects/apibat/items", params={"batch": ids[1]}).json()
    assert [i["prompt"] for i in items] == ["q3"] and items[0]["import_batch_id"] == ids[1]
    login(other_client, ann.username)
    assert other_client.get("/api/v1/projects/apibat/import-batches").status_code in (403, 404)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_cli_import_makes_one_batch(cli_env: None, db: Database, tmp_path: Path) -> None:
    with db.session() as s:
        make_project(s, "clibat", k=2)
    good = tmp_path / "from-cli.jsonl"
    good.write_bytes(_jsonl("c1", "c2", "c3"))
    result = CliRunner().invoke(cli, ["import", "clibat", str(good)])
    assert result.exit_code == 0, result.output
    (batch,) = _batches(db)
    assert (batch.filename, batch.added, batch.duplicates, batch.created_by_id) == ("from-cli.jsonl", 3, 0, None)
    assert f"import batch #{batch.id}" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(_jsonl("c4") + b'{"prompt": 3}\n')
    assert CliRunner().invoke(cli, ["import", "clibat", str(bad)]).exit_code == 1
    assert [b.id for b in _batches(db)] == [batch.id]


def _search(session: Session, project: Project, q: str) -> list[int]:
    return [r.id for r in explore(session, project=project, filters=Filters(q=q)).items]


def test_the_migration_keeps_the_search_index_of_existing_items(scratch_url: str) -> None:
    cfg = alembic_config(scratch_url)
    command.upgrade(cfg, "head")
    engine = create_engine(scratch_url)
    with Session(engine) as s:
        old = make_item(s, make_project(s, "mig", k=2), "a narwhal from before")
        s.commit()
        old_id = old.id
    command.downgrade(cfg, "0011")
    command.upgrade(cfg, "head")  # the item table copied twice on SQLite: its triggers must come back each time
    with Session(engine) as s:
        project = s.scalar(select(Project).where(Project.slug == "mig"))
        assert project is not None
        new = make_item(s, project, "a narwhal from after")
        s.commit()
        assert _search(s, project, "narwhal") == [old_id, new.id]
        s.delete(s.get(Item, old_id))
        s.commit()
        assert _search(s, project, "narwhal") == [new.id]
        assert _search(s, project, "before") == []
    engine.dispose()
