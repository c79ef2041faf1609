"""The command line: users, tokens, import, generate, demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.models import ApiToken, Item, Project, User
from tests.factories import make_project

runner = CliRunner()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_user_add_reads_the_password_from_stdin(env: None, db: Database) -> None:
    result = runner.invoke(cli, ["user", "add", "zoe", "--role", "admin"], input="a-long-password\n")
    assert result.exit_code == 0, result.output
    with db.session(write=False) as s:
        user = s.scalar(select(User).where(User.username == "zoe"))
    assert user is not None and user.role == "admin" and user.password_hash.startswith("$argon2id$")
    again = runner.invoke(cli, ["user", "add", "zoe"], input="a-long-password\n")
    assert again.exit_code == 1 and "already exists" in again.output
    short = runner.invoke(cli, ["user", "add", "tiny"], input="short\n")
    assert short.exit_code == 1 and "at least 8" in short.output


def test_token_create_prints_once_and_stores_a_hash(env: None, db: Database) -> None:
    runner.invoke(cli, ["user", "add", "boss", "--role", "admin"], input="a-long-password\n")
    with db.session() as s:
        make_project(s, "tok")
    result = runner.invoke(cli, ["token", "create", "--project", "tok", "--scope", "export"])
    assert result.exit_code == 0, result.output
    plain = result.stdout.strip().splitlines()[-1]
    assert plain.startswith("ps_")
    with db.session(write=False) as s:
        token = s.scalar(select(ApiToken))
    assert token is not None and token.token_hash != plain and token.scope == "export"
    bad = runner.invoke(cli, ["token", "create", "--project", "nope"])
    assert bad.exit_code == 1


def test_import_command(env: None, db: Database, tmp_path: Path) -> None:
    with db.session() as s:
        make_project(s, "cliimp", k=2)
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps({"prompt": f"q{i}"}) for i in range(5)) + "\n")
    result = runner.invoke(cli, ["import", "cliimp", str(good)])
    assert result.exit_code == 0, result.output
    assert "imported 5 items" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": 3}\n')
    result = runner.invoke(cli, ["import", "cliimp", str(bad)])
    assert result.exit_code == 1 and "line 2" in result.output
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 5


def test_generate_refuses_an_unconfigured_project(env: None, db: Database) -> None:
    with db.session() as s:
        make_project(s, "nogen", k=2)
    result = runner.invoke(cli, ["generate", "nogen"])
    assert result.exit_code == 1 and "not configured" in result.output


def test_demo_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_file = tmp_path / "demo.db"
    # The demo command sets these itself; registering them here restores the originals afterwards.
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "demo")
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", f"sqlite:///{db_file}")
    for _ in range(2):
        result = runner.invoke(cli, ["demo", "--db", str(db_file), "--no-serve"])
        assert result.exit_code == 0, result.output
        assert "alice-demo-pass" in result.output
    get_settings.cache_clear()
    from app.db import make_database

    db = make_database(Settings(environment="demo", database_url=f"sqlite:///{db_file}"))
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(User)) == 4
        slugs = sorted(s.scalars(select(Project.slug)))
        assert slugs == ["demo-k2", "demo-k3", "demo-k4"]
        assert s.scalar(select(func.count()).select_from(Item)) == 30
        assert s.scalar(select(func.count()).select_from(Item).where(Item.status == "ready")) == 30
    db.dispose()
    get_settings.cache_clear()


def test_production_needs_a_real_secret() -> None:
    with pytest.raises(ValueError, match="SECRET_KEY is required"):
        Settings(environment="production", secret_key=None)
    with pytest.raises(ValueError, match="at least 32"):
        Settings(environment="production", secret_key="short")
    assert Settings(environment="dev").secret_key
