"""Who may read /metrics: the metrics token or an allowed address; everybody else gets a plain 404. Real HTTP for
the addresses (a uvicorn server on loopback), the test client for the tokens."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from tests.conftest import make_settings
from tests.ops.conftest import METRICS_TOKEN, bearer


def test_only_the_metrics_token_opens_it(client: TestClient, world: dict[str, Any]) -> None:
    unknown = client.get("/no-such-route", headers={"Accept": "application/json"})
    for headers in (
        {},
        bearer("wrong-token"),
        bearer(METRICS_TOKEN + "x"),
        bearer(METRICS_TOKEN[:-1]),
        bearer(world["tokens"]["root"]),  # an admin's API token is not the metrics token
        {"Authorization": f"Basic {METRICS_TOKEN}"},
    ):
        refused = client.get("/metrics", headers={"Accept": "application/json", **headers})
        assert refused.status_code == 404, headers
        assert refused.json() == unknown.json() == {"detail": "Not Found"}  # indistinguishable from no route
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    assert client.get("/metrics", headers={"Authorization": f"bearer  {METRICS_TOKEN} "}).status_code == 200


def test_labels_name_no_user_token_or_prompt(client: TestClient, world: dict[str, Any]) -> None:
    alice = world["tokens"]["alice"]
    assert client.post("/api/v1/projects/pa/next", headers=bearer(alice)).status_code == 200
    assert client.get("/api/v1/projects/pa/export.jsonl", headers=bearer(world["tokens"]["export"])).status_code == 200
    text = client.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    for secret in ("alice", "root", alice, world["tokens"]["export"], METRICS_TOKEN, "prompt number"):
        assert secret not in text


@contextmanager
def served(database_url: str, tmp_path: Path, **overrides: Any) -> Iterator[str]:
    """An app with these settings behind a real uvicorn server on 127.0.0.1; yields its base URL."""
    settings = make_settings(database_url, data_dir=tmp_path / "data", **overrides)
    app = create_app(settings)
    # As `prefstudio serve` runs uvicorn: forwarded headers believed only from the trusted proxies.
    proxies = ",".join(str(network) for network in settings.trusted_proxy_networks)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.db.dispose()


def test_an_allowed_address_needs_no_token(database_url: str, tmp_path: Path) -> None:
    with served(database_url, tmp_path, metrics_allow="10.0.0.0/8, 127.0.0.1/32") as url:
        scraped = httpx.get(f"{url}/metrics")
        assert scraped.status_code == 200
        assert "prefstudio_http_request_duration_seconds" in scraped.text
    with served(database_url, tmp_path, metrics_allow="10.0.0.0/8", metrics_token=METRICS_TOKEN) as url:
        assert httpx.get(f"{url}/metrics").status_code == 404  # loopback is not in 10/8
        assert httpx.get(f"{url}/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200  # either suffices


def test_forwarded_addresses_count_only_from_trusted_proxies(database_url: str, tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-For": "10.1.2.3"}
    with served(database_url, tmp_path, metrics_allow="10.0.0.0/8") as url:
        assert httpx.get(f"{url}/metrics", headers=forwarded).status_code == 404  # anybody can send the header
    with served(database_url, tmp_path, metrics_allow="10.0.0.0/8", trusted_proxies="127.0.0.1") as url:
        assert httpx.get(f"{url}/metrics", headers=forwarded).status_code == 200  # the proxy on loopback says so
        assert httpx.get(f"{url}/metrics", headers={"X-Forwarded-For": "192.0.2.7"}).status_code == 404


def test_without_token_or_addresses_it_is_off(database_url: str, tmp_path: Path) -> None:
    with served(database_url, tmp_path) as url:
        assert httpx.get(f"{url}/metrics").status_code == 404
        assert httpx.get(f"{url}/metrics", headers=bearer("anything")).status_code == 404


def test_a_bad_network_stops_the_start(database_url: str) -> None:
    with pytest.raises(ValidationError, match="PREFSTUDIO_METRICS_ALLOW"):
        make_settings(database_url, metrics_allow="10.0.0.0/8, not-a-network")
