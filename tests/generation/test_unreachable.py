"""Every model server down: the health answer says so in plain words, a start is refused, and a job that could
produce nothing ends failed with the reason instead of done."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.generation import service
from app.generation.schemas import GenerationSettings, JobIn
from app.jobs import runner
from app.kit.errors import Conflict
from app.models import Job
from tests.conftest import login
from tests.factories import make_item, make_project, make_user


def closed_port() -> int:
    """A local port nothing listens on (bound for a moment by the OS, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(port: int) -> dict[str, object]:
    return {
        "base_urls": [f"http://127.0.0.1:{port}"],
        "model": "tiny-sft",
        "max_retries": 1,
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.02,
    }


def test_health_says_in_plain_words_that_no_server_answers() -> None:
    port = closed_port()
    (found,) = service.health(GenerationSettings.model_validate(_settings(port)), allow_private=True)
    assert found.ok is False
    assert found.problem is not None
    assert f"No server answers at http://127.0.0.1:{port}" in found.problem
    assert f"vllm serve tiny-sft --port {port}" in found.problem
    assert "Errno" not in found.problem and "ConnectError" in (found.error or "")  # the detail is kept apart


def test_an_unknown_host_and_a_missing_model_are_told_apart(db: Database) -> None:
    settings = GenerationSettings.model_validate(
        {**_settings(closed_port()), "base_urls": ["http://nohost.invalid:8000"]}
    )
    (found,) = service.health(settings, allow_private=True)
    assert found.problem is not None and "does not resolve" in found.problem and "nohost.invalid" in found.problem


def test_start_is_refused_when_every_server_is_down(db: Database) -> None:
    with db.session() as s:
        project = make_project(s, "down", generation=_settings(closed_port()))
        make_item(s, project, "p", candidates=[])
        with pytest.raises(Conflict, match="No server answers"):
            service.check_reachable(service.settings_of(project), allow_private=True)


def test_a_job_that_reached_no_server_ends_failed_with_the_reason(db: Database) -> None:
    port = closed_port()
    with db.session() as s:
        project = make_project(s, "down", k=2, overlap=1, generation=_settings(port))
        for i in range(2):
            make_item(s, project, f"p{i}", candidates=[])
        job_id = service.start_job(s, project=project, request=JobIn(selection="missing"), user_id=None).id
    assert runner.run_one(db, worker_id="w") == (job_id, "failed")
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.state == "failed"
        assert job.result["candidates"] == 0 and job.result["failed_items"] == 2
        assert job.error is not None and "Nothing was generated" in job.error
        assert f"No server answers at http://127.0.0.1:{port}" in job.error


def test_the_api_refuses_a_start_unless_forced(client: TestClient, db: Database, settings: Settings) -> None:
    with db.session() as s:
        admin = make_user(s, "boss", role="admin")
        project = make_project(s, "down", k=2, overlap=1, generation=_settings(closed_port()))
        make_item(s, project, "p", candidates=[])
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
    headers = {"Authorization": f"Bearer {token}"}
    refused = client.post("/api/v1/projects/down/generation/jobs", json={"selection": "missing"}, headers=headers)
    assert refused.status_code == 409 and "No server answers" in refused.json()["detail"]
    forced = client.post(
        "/api/v1/projects/down/generation/jobs", json={"selection": "missing", "force": True}, headers=headers
    )
    assert forced.status_code == 201
    health = client.get("/api/v1/projects/down/generation/health", headers=headers).json()
    assert "is vLLM running?" in health[0]["problem"]


def test_a_retrying_job_shows_its_failed_requests_and_the_reason(client: TestClient, db: Database) -> None:
    port = closed_port()
    with db.session() as s:
        admin = make_user(s, "boss", role="admin")
        project = make_project(s, "down", k=2, overlap=1, generation=_settings(port))
        make_item(s, project, "p", candidates=[])
        job = service.start_job(s, project=project, request=JobIn(selection="missing"), user_id=admin.id)
        job.state = "running"
        problem = f"No server answers at http://127.0.0.1:{port} — is vLLM running?"
        job.result = {"retries": 3, "request_errors": 0, "failed_items": 0, "last_problem": problem}
    login(client, "boss")
    fragment = client.get("/projects/down/generation/jobs", headers={"HX-Request": "true"}).text
    assert "3 failed requests" in fragment  # not a bare "Errors 0" while it retries
    assert "Retrying:" in fragment and "is vLLM running?" in fragment
