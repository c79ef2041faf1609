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


def test_token_list_and_revoke(env: None, db: Database, settings: Settings) -> None:
    from app.auth.service import create_api_token
    from tests.factories import make_user

    with db.session() as s:
        ann, root = make_user(s, "ann"), make_user(s, "root", role="admin")
        project = make_project(s, "tok")
        api, _ = create_api_token(s, user=ann, scope="api", settings=settings, name="ann-script")
        export, _ = create_api_token(s, user=root, scope="export", settings=settings, project_id=project.id)
    listed = runner.invoke(cli, ["token", "list"])
    assert listed.exit_code == 0, listed.output
    assert "ann-script" in listed.output and "export" in listed.output and "tok" in listed.output
    only_ann = runner.invoke(cli, ["token", "list", "--user", "ann"])
    assert "ann-script" in only_ann.output and "export" not in only_ann.output
    revoked = runner.invoke(cli, ["token", "revoke", str(api.id)])
    assert revoked.exit_code == 0, revoked.output
    with db.session(write=False) as s:
        assert s.get(ApiToken, api.id).revoked_at is not None  # type: ignore[union-attr]
        assert s.get(ApiToken, export.id).revoked_at is None  # type: ignore[union-attr]
    assert "ann-script" not in runner.invoke(cli, ["token", "list"]).output  # live ones by default
    assert "ann-script" in runner.invoke(cli, ["token", "list", "--revoked"]).output
    assert runner.invoke(cli, ["token", "revoke", "99999"]).exit_code == 1


def test_demo_refuses_a_non_loopback_host_without_allow_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.cli as cli_module

    db_file = tmp_path / "demo.db"
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "demo")
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", f"sqlite:///{db_file}")
    served: list[tuple[str, int]] = []
    monkeypatch.setattr(cli_module, "_serve", lambda host, port: served.append((host, port)))
    monkeypatch.setattr(cli_module, "_start_background_worker", lambda: None)
    refused = runner.invoke(cli, ["demo", "--db", str(db_file), "--host", "0.0.0.0"])
    assert refused.exit_code != 0 and "--allow-remote" in refused.output
    assert not db_file.exists() and served == []
    allowed = runner.invoke(cli, ["demo", "--db", str(db_file), "--host", "0.0.0.0", "--allow-remote"])
    assert allowed.exit_code == 0, allowed.output
    assert served == [("0.0.0.0", 8000)]
    for host in ("127.0.0.1", "localhost", "::1"):
        assert cli_module.is_loopback(host)
    get_settings.cache_clear()


def test_serve_believes_forwarded_headers_only_from_trusted_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from app.cli import _serve

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "dev")
    monkeypatch.delenv("PREFSTUDIO_TRUSTED_PROXIES", raising=False)
    get_settings.cache_clear()
    _serve("127.0.0.1", 8000)
    assert calls[-1]["proxy_headers"] is False  # not even from 127.0.0.1
    monkeypatch.setenv("PREFSTUDIO_TRUSTED_PROXIES", "10.0.0.5, 172.16.0.0/12")
    get_settings.cache_clear()
    _serve("127.0.0.1", 8000)
    assert calls[-1]["proxy_headers"] is True and calls[-1]["forwarded_allow_ips"] == "10.0.0.5/32,172.16.0.0/12"
    get_settings.cache_clear()
