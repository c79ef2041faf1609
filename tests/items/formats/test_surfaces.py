"""The format choice on every surface: the API's ``format=`` (a JSON body, a JSONL body, a multipart file), the
import page's select and the command's ``--format``; errors keep their lines and leave nothing behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.auth.service import create_api_token
from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.models import Item, Judgment, User
from tests.conftest import login
from tests.factories import make_user
from tests.items.formats.helpers import FIXTURES, count, fixture, judgments, project


def _admin_headers(db: Database, settings: Settings) -> dict[str, str]:
    with db.session() as s:
        root = make_user(s, "root", role="admin")
        return {"Authorization": f"Bearer {create_api_token(s, user=root, scope='api', settings=settings)[1]}"}


def test_api_imports_a_label_studio_json_body_and_refuses_a_bad_one(
    db: Database, settings: Settings, client: TestClient
) -> None:
    pid = project(db, "fmt")
    h = _admin_headers(db, settings) | {"Content-Type": "application/json"}
    tasks = json.loads(fixture("label-studio.json"))
    tasks[0]["data"].pop("answer2")
    r = client.post("/api/v1/projects/fmt/import?format=label-studio", content=json.dumps(tasks, indent=1), headers=h)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]["errors"]
    assert error["line"] == 2 and "no pair of answers" in error["message"]
    assert count(db, Item) == count(db, Judgment) == 0
    r = client.post("/api/v1/projects/fmt/import?format=label-studio", content=fixture("label-studio.json"), headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["format"] == "label-studio" and body["created"] == 2 and body["judgments"] == 3
    assert body["annotators_created"] == ["label-studio:3", "label-studio:4"]
    assert len(judgments(db, pid)) == 3


def test_api_format_jsonl_and_multipart_with_an_annotator_and_native_unchanged(
    db: Database, settings: Settings, client: TestClient
) -> None:
    pid = project(db, "fmt")
    h = _admin_headers(db, settings)
    jsonl = h | {"Content-Type": "application/x-ndjson"}
    r = client.post(
        "/api/v1/projects/fmt/import?format=hh-rlhf&annotator=anthropic",
        content=fixture("hh-rlhf.jsonl"),
        headers=jsonl,
    )
    assert r.status_code == 201 and r.json()["annotators_created"] == ["anthropic"] and r.json()["skipped_count"] == 1
    files = {"file": ("uf.jsonl", fixture("ultrafeedback.jsonl"), "application/octet-stream")}
    r = client.post("/api/v1/projects/fmt/import?format=ultrafeedback", files=files, headers=h)
    assert r.status_code == 201 and r.json()["judgments"] == 2
    assert {a for _, a in judgments(db, pid)} == {"anthropic", "ultrafeedback"}
    native = json.dumps({"prompt": "a native prompt", "candidates": ["one", "two"]}).encode() + b"\n"
    r = client.post("/api/v1/projects/fmt/import", content=native, headers=jsonl)
    assert r.status_code == 201 and r.json()["format"] == "native" and r.json()["created"] == 1
    r = client.post("/api/v1/projects/fmt/import", content=b"[]", headers=h | {"Content-Type": "application/json"})
    assert r.status_code == 422  # a JSON body is a foreign format's
    r = client.post("/api/v1/projects/fmt/import?format=excel", content=native, headers=jsonl)
    assert r.status_code == 422 and count(db, Item) == 5


def test_page_offers_the_formats_and_shows_the_result_or_the_errors(
    db: Database, client: TestClient, login_as: Callable[[User], str]
) -> None:
    project(db, "fmt")
    with db.session() as s:
        root = make_user(s, "root", role="admin")
    login_as(root)
    page = client.get("/projects/fmt/import/formats")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    assert '<option value="argilla"' in page.text and '<option value="native" selected' in page.text
    assert 'href="/projects/fmt/import/formats"' in client.get("/projects/fmt/judgments/import").text
    bad = json.loads(fixture("argilla.json"))
    bad[0]["fields"]["prompt"] = ""
    r = client.post(
        "/projects/fmt/import/formats",
        files={"file": ("bad.json", json.dumps(bad, indent=2).encode(), "application/json")},
        data={"format": "argilla"},
    )
    assert r.status_code == 422 and "line 2" in r.text and "record 1: field &#39;prompt&#39;" in r.text
    assert count(db, Item) == 0
    r = client.post(
        "/projects/fmt/import/formats",
        files={"file": ("argilla.json", fixture("argilla.json"), "application/json")},
        data={"format": "argilla", "annotator": "vendor"},
    )
    assert r.status_code == 200 and "3 judgments" in r.text and "vendor:0f6a2b1e" in r.text
    assert '<option value="argilla" selected' in r.text and "line 86" in r.text  # rec-3: no judgment
    r = client.post(
        "/projects/fmt/import/formats", files={"file": ("x.json", b"[]", "application/json")}, data={"format": "nope"}
    )
    assert r.status_code == 422


def test_the_command_takes_a_format_and_an_annotator(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    get_settings.cache_clear()
    try:
        pid = project(db, "fmt")
        runner = CliRunner()
        done = runner.invoke(cli, ["import", "fmt", str(FIXTURES / "hh-rlhf.jsonl"), "--format", "hh-rlhf"])
        assert done.exit_code == 0, done.output
        assert "imported 2 items" in done.output and "hh-rlhf: 3 records; 2 judgments" in done.output
        assert "line 3" in done.output  # the record with identical answers, skipped
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps({"chosen": "no turns", "rejected": "\n\nHuman: a\n\nAssistant: b"}) + "\n")
        failed = runner.invoke(cli, ["import", "fmt", str(bad), "--format", "hh-rlhf", "--annotator", "hh"])
        assert failed.exit_code == 1 and "line 1" in failed.output and "'chosen' must be turns" in failed.output
        wrong = runner.invoke(cli, ["import", "fmt", str(bad), "--format", "excel"])
        assert wrong.exit_code == 2 and "--format" in wrong.output
        assert count(db, Item) == 2 and {a for _, a in judgments(db, pid)} == {"hh-rlhf"}
    finally:
        get_settings.cache_clear()


def test_page_is_for_admins_and_its_post_needs_the_csrf_token(
    db: Database, client: TestClient, other_client: TestClient, login_as: Callable[[User], str]
) -> None:
    project(db, "fmt")
    with db.session() as s:
        make_user(s, "ann")
        root = make_user(s, "root", role="admin")
    login(other_client, "ann")
    assert other_client.get("/projects/fmt/import/formats").status_code in (403, 404)
    token = login_as(root)
    files = {"file": ("hh.jsonl", fixture("hh-rlhf.jsonl"), "application/octet-stream")}
    del client.headers["X-CSRF-Token"]
    r = client.post("/projects/fmt/import/formats", files=files, data={"format": "hh-rlhf"})
    assert r.status_code == 403 and count(db, Item) == 0
    r = client.post("/projects/fmt/import/formats", files=files, data={"format": "hh-rlhf", "csrf_token": token})
    assert r.status_code == 200 and count(db, Item) == 2
