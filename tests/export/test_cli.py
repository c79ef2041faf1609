"""`prefstudio export`: the same pairs as the API, to a file, as a preview, or as a snapshot."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.models import Snapshot

runner = CliRunner()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    monkeypatch.setenv("PREFSTUDIO_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_export_to_file_with_filters(env: None, world: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "pairs.jsonl"
    result = runner.invoke(cli, ["export", "exp", "--out", str(out), "--veto", "harmless", "--min-judgments", "2"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["meta"]["external_id"] for r in rows} == {"unanimous", "split", "decided"}
    assert "kept" in result.output and not list(tmp_path.glob(".*.part"))


def test_preview_and_bad_input(env: None, world: dict[str, Any]) -> None:
    result = runner.invoke(cli, ["export", "exp", "--preview", "--min-margin", "2"])
    assert result.exit_code == 0 and "margin" in result.output
    bad = runner.invoke(cli, ["export", "exp", "--preview", "--dimension", "nope"])
    assert bad.exit_code == 1 and "Unknown dimension" in bad.output
    nowhere = runner.invoke(cli, ["export", "exp"])
    assert nowhere.exit_code == 2 and "--out" in nowhere.output
    missing = runner.invoke(cli, ["export", "no-such-project", "--preview"])
    assert missing.exit_code == 1 and "no-such-project" in missing.output


def test_snapshot_from_the_command_line(env: None, world: dict[str, Any], db: Database, settings: Settings) -> None:
    result = runner.invoke(cli, ["export", "exp", "--snapshot", "--name", "cli", "--format", "conversational"])
    assert result.exit_code == 0, result.output
    with db.session(write=False) as s:
        snap = s.scalar(select(Snapshot).where(Snapshot.name == "cli"))
        assert snap is not None and snap.state == "ready" and snap.row_count == 5 and snap.job_id is None
        body = (Path(settings.data_dir) / (snap.file_name or "")).read_bytes()
    assert hashlib.sha256(body).hexdigest() == snap.sha256 and snap.sha256 in result.output
    assert json.loads(body.splitlines()[0])["prompt"][0]["role"] == "user"


def test_snapshot_with_parts_and_the_model_label(
    env: None, world: dict[str, Any], db: Database, settings: Settings
) -> None:
    """--ties and --per-dimension write the parts; with --label model the card's smoothing hint says so."""
    arguments = ["export", "exp", "--snapshot", "--name", "parts", "--ties", "--per-dimension", "--label", "model"]
    result = runner.invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    with db.session(write=False) as s:
        snapshot = s.scalars(select(Snapshot).where(Snapshot.name == "parts")).one()
        assert snapshot.state == "ready"
        parts = {p["name"]: p for p in snapshot.parts}
        card = snapshot.card
    assert set(parts) == {"ties", *(f"dimension-{d}" for d in ("helpful", "harmless", "honest", "polite", "refusal"))}
    for part in parts.values():
        body = (Path(settings.data_dir) / part["file_name"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == part["sha256"] and len(body.splitlines()) == part["rows"]
    assert "mean of 1 − meta.confidence" in card and "| min_votes |" in card
    bad = runner.invoke(cli, ["export", "exp", "--out", "x.jsonl", "--label", "nobody"])
    assert bad.exit_code == 2
