"""JSON logs: one parseable line per request with its route template, status, duration, caller and request id —
and no password, token, cookie or query string anywhere in what the app logs."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.ops import logs
from tests.conftest import csrf_from, make_settings
from tests.factories import PASSWORD
from tests.ops.conftest import METRICS_TOKEN, bearer

CLIENT = ("httpx", "httpcore")  # the test client's loggers
FIELDS = {"time", "level", "logger", "message", "route", "method", "status", "duration_ms", "user_id", "auth"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, data_dir=tmp_path / "data", metrics_token=METRICS_TOKEN, log_format="json")


@pytest.fixture
def captured(app: Any, settings: Settings, caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """What the JSON handler writes (to a buffer instead of stderr); ``caplog`` sees every record at INFO, the
    level the app logs at in JSON mode."""
    caplog.set_level(logging.INFO)
    buffer = io.StringIO()
    handler = logs.configure_logging(settings, stream=buffer)
    assert handler is not None
    yield buffer
    logs.unconfigure_logging(handler)


def request_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]  # every line is JSON
    return [line for line in lines if line["logger"] == logs.REQUEST_LOGGER]


def everything_logged(buffer: io.StringIO, caplog: pytest.LogCaptureFixture) -> str:
    """The JSON output, and every record's message, arguments and extra fields. The test client's own httpx
    records are left out: they are the client's log of the URLs it asked for, not the app's."""
    lines = [line for line in buffer.getvalue().splitlines() if not json.loads(line)["logger"].startswith(CLIENT)]
    records = [r for r in caplog.records if not r.name.startswith(CLIENT)]
    return "\n".join(lines) + "\n".join(repr(r.__dict__) + r.getMessage() for r in records)


def test_each_request_is_one_json_line(
    client: TestClient, world: dict[str, Any], captured: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    token = world["tokens"]["alice"]
    response = client.post("/api/v1/projects/pa/next", headers=bearer(token))
    assert response.status_code == 200
    assert client.get("/no/such/page").status_code == 404
    first, missing = request_lines(captured)
    assert FIELDS <= set(first)
    assert first["route"] == "/api/v1/projects/{project}/next" and first["method"] == "POST"
    assert first["status"] == 200 and first["duration_ms"] >= 0
    assert (first["user_id"], first["auth"]) == (world["alice_id"], "token")
    assert first["request_id"] == response.headers["X-Request-ID"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*", first["time"])
    assert (missing["route"], missing["status"], missing["user_id"]) == ("<unmatched>", 404, None)


def test_an_export_token_is_logged_as_its_owner(
    client: TestClient, world: dict[str, Any], captured: io.StringIO
) -> None:
    response = client.get("/api/v1/projects/pa/export/preview", headers=bearer(world["tokens"]["export"]))
    assert response.status_code == 200
    (line,) = request_lines(captured)
    assert (line["route"], line["user_id"], line["auth"]) == (
        "/api/v1/projects/{project}/export/preview",
        world["admin_id"],
        "export-token",
    )


def test_a_proxys_request_id_is_kept_when_plain(
    client: TestClient, world: dict[str, Any], captured: io.StringIO
) -> None:
    kept = client.get("/healthz", headers={"X-Request-ID": "edge-7f3a.91"})
    replaced = client.get("/healthz", headers={"X-Request-ID": 'x" injected {"status": 200}'})
    assert kept.headers["X-Request-ID"] == "edge-7f3a.91"
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["X-Request-ID"])
    assert [line["request_id"] for line in request_lines(captured)] == [
        "edge-7f3a.91",
        replaced.headers["X-Request-ID"],
    ]


def test_no_secret_reaches_the_logs(
    client: TestClient, world: dict[str, Any], captured: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    page = client.get("/login")
    wrong = "Wrong-Horse-Battery-4417"
    denied = client.post("/login", data={"username": "alice", "password": wrong, "csrf_token": csrf_from(page.text)})
    assert denied.status_code == 401
    page = client.get("/login")
    login = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert login.status_code == 303
    cookie = next(iter(client.cookies.values()))
    assert client.get("/projects").status_code == 200
    client.cookies.clear()
    token, export = world["tokens"]["alice"], world["tokens"]["export"]
    assert client.get("/api/v1/projects/pa/judgments", headers=bearer(token)).status_code == 200
    query = "/api/v1/projects/pa/export.jsonl?access_token=query-secret-5521&format=standard"
    assert client.get(query, headers=bearer(export)).status_code == 422  # an unknown parameter: refused
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200

    lines = request_lines(captured)
    assert [(line["route"], line["status"]) for line in lines] == [
        ("/login", 200),
        ("/login", 401),
        ("/login", 200),
        ("/login", 303),
        ("/projects", 200),
        ("/api/v1/projects/{project}/judgments", 200),
        ("/api/v1/projects/{project}/export.jsonl", 422),
        ("/metrics", 200),
    ]
    assert (lines[4]["user_id"], lines[4]["auth"]) == (world["alice_id"], "cookie")
    logged = everything_logged(captured, caplog)
    for secret in (PASSWORD, wrong, token, export, cookie, METRICS_TOKEN, "query-secret-5521", "alice"):
        assert secret not in logged


def test_text_mode_writes_no_request_lines(database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(make_settings(database_url, data_dir=tmp_path / "data"))
    try:
        with TestClient(app) as client:
            response = client.get("/healthz")
    finally:
        app.state.db.dispose()
    assert response.status_code == 200 and response.headers["X-Request-ID"]
    assert not [r for r in caplog.records if r.name == logs.REQUEST_LOGGER]
    assert not [h for h in logging.getLogger().handlers if h.get_name() == logs.HANDLER_NAME]


def test_records_logged_during_a_request_carry_its_id(captured: io.StringIO) -> None:
    token = logs.current_request_id.set("req-42")
    try:
        logging.getLogger("prefstudio.test").warning("something happened")
    finally:
        logs.current_request_id.reset(token)
    line = json.loads(captured.getvalue().splitlines()[-1])
    assert (line["message"], line["level"], line["request_id"]) == ("something happened", "WARNING", "req-42")


def test_the_worker_logs_json_lines_too(tmp_path: Path) -> None:
    """``prefstudio worker`` under PREFSTUDIO_LOG_FORMAT=json: its own records are JSON lines as well."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PREFSTUDIO_ENVIRONMENT": "dev",
        "PREFSTUDIO_DATABASE_URL": f"sqlite:///{tmp_path}/worker.db",
        "PREFSTUDIO_DATA_DIR": str(tmp_path / "data"),
        "PREFSTUDIO_LOG_FORMAT": "json",
    }
    cli = [str(Path(sys.executable).parent / "prefstudio")]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    done = subprocess.run([*cli, "worker", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert any(r["logger"] == "prefstudio.worker" and "waiting for jobs" in r["message"] for r in lines), lines
