"""`prefstudio models list|add`: registering by hand from the command line and listing the lineage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.models import RegisteredModel
from app.registry.weights import weights_digest
from tests.registry.conftest import Registry

runner = CliRunner()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    monkeypatch.setenv("COLUMNS", "200")  # rich would cut the table's columns to the runner's 80
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_add_then_list(env: None, reg: Registry, db: Database, tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"sft weights")
    r = runner.invoke(
        cli, ["models", "add", "--project", "dpo", "--name", "sft", "--kind", "sft", "--uri", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        cli,
        ["models", "add", "--project", "dpo", "--name", "dpo-r1", "--kind", "checkpoint", "--parent", "sft"]
        + ["--snapshot", str(reg.snapshot_id), "--base-url", "http://127.0.0.1:8001/v1", "--served-name", "dpo-r1"],
    )
    assert r.exit_code == 0, r.output
    with db.session(write=False) as s:
        rows = {m.name: m for m in s.scalars(select(RegisteredModel))}
        assert rows["sft"].weights_sha256 == weights_digest(tmp_path)
        assert rows["dpo-r1"].parent_id == rows["sft"].id
        assert rows["dpo-r1"].snapshot_sha256 == reg.snapshot_sha256
        assert rows["dpo-r1"].base_url == "http://127.0.0.1:8001"
    listed = runner.invoke(cli, ["models", "list", "--project", "dpo"])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "sft" in line or "dpo-r1" in line]
    assert "sft" in lines[0] and "dpo-r1" in lines[1]
    assert "dpo-r1 @ http://127.0.0.1:8001" in lines[1]
    assert (weights_digest(tmp_path) or "")[:12] in lines[0]


def test_errors_exit_1_and_store_nothing(env: None, reg: Registry, db: Database) -> None:
    cases = [
        ["--project", "nope", "--name", "x"],
        ["--project", "dpo", "--name", "x", "--kind", "lora"],
        ["--project", "dpo", "--name", "x", "--parent", "missing"],
        ["--project", "dpo", "--name", "x", "--base-url", "http://127.0.0.1:8001"],  # no served name
    ]
    for args in cases:
        r = runner.invoke(cli, ["models", "add", *args])
        assert r.exit_code == 1, (args, r.output)
    assert runner.invoke(cli, ["models", "add", "--project", "dpo", "--name", "x"]).exit_code == 0
    assert runner.invoke(cli, ["models", "add", "--project", "dpo", "--name", "x"]).exit_code == 1  # taken
    assert runner.invoke(cli, ["models", "list", "--project", "nope"]).exit_code == 1
    with db.session(write=False) as s:
        assert list(s.scalars(select(RegisteredModel.name))) == ["x"]
