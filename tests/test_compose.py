"""The compose stack's structure (no Docker engine here to run it): services, variables, health, volumes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import ROOT

COMPOSE = ROOT / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def _env_example() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"#?\s*([A-Z0-9_]+)=", line.strip())
        if match:
            names.add(match.group(1))
    return names


def test_the_services_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "vllm", "app", "worker", "trainer"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
    assert services["trainer"].get("profiles"), "the trainer only starts when asked for (a profile)"


def test_every_variable_is_documented_and_secrets_fail_fast(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    documented = _env_example()
    used = {m.group(1): m.group(2) or "" for m in VARIABLE.finditer(text)}
    assert used, "the compose file reads its settings from .env"
    missing = sorted(name for name in used if name not in documented)
    assert not missing, f"not in .env.example: {missing}"
    for secret in ("POSTGRES_PASSWORD", "PREFSTUDIO_SECRET_KEY"):
        assert used[secret].startswith(":?"), f"{secret} must be required (${{{secret}:?...}})"


def test_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in services
            assert rule.get("condition") == "service_healthy", f"{name} → {target}"
            assert "healthcheck" in services[target], f"{target} has no health check for {name} to wait on"
    assert {"postgres", "app"} <= set(services["worker"]["depends_on"])


def test_gpu_reservations(compose: dict[str, Any]) -> None:
    for name in ("vllm", "trainer"):
        devices = compose["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d.get("capabilities", []) for d in devices), name


def test_app_migrates_then_serves_and_shares_snapshots_with_the_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    command = " ".join(services["app"]["command"])
    assert command.index("db upgrade") < command.index("serve")
    for name in ("app", "worker"):
        env = services[name]["environment"]
        assert env["PREFSTUDIO_DATA_DIR"] == "/data"
        assert "snapshots:/data" in services[name]["volumes"]
        assert "postgres:5432" in env["PREFSTUDIO_DATABASE_URL"]
    assert "snapshots" in compose["volumes"]


def test_dockerfile_copies_what_exists() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies a missing {source}"
    assert "USER " in dockerfile, "the app does not run as root"
    assert Path(ROOT / ".dockerignore").exists()
