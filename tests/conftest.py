"""Test fixtures. Every test that touches the database runs on SQLite and on PostgreSQL.

PostgreSQL comes from PREFSTUDIO_TEST_POSTGRES_URL (an admin connection, e.g. to database ``test``);
each pytest run creates its own database from it and drops it afterwards. With CI=true a missing or
unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.config import ROOT, Settings
from app.db import Database
from app.kit.cache import clear_all
from app.main import create_app
from app.models import Base, User

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
PG_ENV = "PREFSTUDIO_TEST_POSTGRES_URL"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _backends() -> list[str]:
    backends = ["sqlite"]
    if os.environ.get(PG_ENV) or IN_CI:
        backends.append("postgresql")
    return backends


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _psycopg_url(url: str) -> str:
    return re.sub(r"^postgresql(\+psycopg)?://", "postgresql+psycopg://", url)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if IN_CI:
            pytest.fail(f"CI=true but {PG_ENV} is not set: PostgreSQL tests must run in CI")
        pytest.skip(f"{PG_ENV} not set")
    return _psycopg_url(url)


def _create_pg_database(admin_url: str) -> str:
    name = f"prefstudio_t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {admin_url} is unreachable: {exc}")
    finally:
        engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def _drop_pg_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session", params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A database migrated to head (through Alembic, as in production), one per backend per run."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        command.upgrade(alembic_config(url), "head")
        yield url
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    url = _create_pg_database(admin_url)
    command.upgrade(alembic_config(url), "head")
    yield url
    _drop_pg_database(admin_url, url)


@pytest.fixture
def scratch_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database (no migrations run) for tests that migrate it themselves."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/scratch.db"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    url = _create_pg_database(admin)
    yield url
    _drop_pg_database(admin, url)


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "gc_freeze": False,  # a full collection of the test process's heap at every app start (see Settings)
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, data_dir=tmp_path / "data")


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    # The process's caches key their entries by database and row ids, and every test empties the same tables
    # (PostgreSQL restarts the ids): an entry left by an earlier test could describe rows that are gone.
    clear_all()
    application = create_app(settings)
    yield application
    _empty_tables(application.state.db)
    application.state.db.dispose()


def _empty_tables(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.write_engine.begin() as conn:
        if db.is_postgres:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def db(app: FastAPI) -> Database:
    return app.state.db  # type: ignore[no-any-return]


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as c:
        yield c


def csrf_from(html: str) -> str:
    """The CSRF token a page carries (hidden form field)."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def login(client: TestClient, username: str, password: str = "password123") -> str:
    """Log in through the login form; returns the session's CSRF token for later writes."""
    page = client.get("/login")
    assert page.status_code == 200
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    home = client.get("/projects")
    assert home.status_code == 200
    return csrf_from(home.text)


@pytest.fixture
def login_as(client: TestClient) -> Callable[[User], str]:
    """Log ``client`` in as a user made by the factories (password 'password123')."""

    def _login(user: User) -> str:
        token = login(client, user.username)
        client.headers["X-CSRF-Token"] = token
        return token

    return _login


@pytest.fixture
def other_client(app: FastAPI) -> Iterator[TestClient]:
    """A second browser: its own cookies."""
    with TestClient(app, base_url="http://testserver") as c:
        yield c


def pytest_configure(config: pytest.Config) -> None:
    Path(ROOT / "test-artifacts").mkdir(exist_ok=True)


# Under pytest-xdist (-n 2 --dist loadgroup, the default addopts) the tests that need a model — the vLLM server,
# the tiny model a DPO run trains — run on one worker, so the run starts one vLLM server and builds one model.
MODEL_FIXTURES = frozenset({"vllm_base_url", "tiny_model"})


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the group into the test's id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("model"))


@pytest.fixture(scope="session")
def vllm_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real vLLM server on a tiny random model. Missing vLLM: a failure in CI, a skip elsewhere."""
    from tests.support import vllm

    python = vllm.vllm_python()
    if python is None or not python.exists():
        message = "vLLM virtualenv not found (set PREFSTUDIO_TEST_VLLM_PYTHON or run .ci/run once)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("vllm")
    model_dir = vllm.build_tiny_model(python, work / "model")
    log_dir = vllm.HERE.parent.parent / "test-artifacts"
    log_dir.mkdir(exist_ok=True)
    with vllm.vllm_server(python, model_dir, log_dir / "vllm.log") as base:
        yield base
