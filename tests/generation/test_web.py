"""Generation pages and JSON: settings, health, start, progress, cancel, and who may do it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.jobs import runner
from tests.factories import make_item, make_project, make_user
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture
def setup(db: Database, settings: Settings, fake: FakeOpenAI) -> dict[str, Any]:
    with db.session() as s:
        admin, ann = make_user(s, "boss", role="admin"), make_user(s, "worker")
        project = make_project(s, "g", k=2, overlap=1, members=[ann])
        for i in range(3):
            make_item(s, project, f"p{i}", candidates=[])
        tokens = {u.username: create_api_token(s, user=u, scope="api", settings=settings)[1] for u in (admin, ann)}
    return {
        "admin": {"Authorization": f"Bearer {tokens['boss']}"},
        "annotator": {"Authorization": f"Bearer {tokens['worker']}"},
    }


def test_settings_health_start_progress_cancel(
    client: TestClient, setup: dict[str, Any], fake: FakeOpenAI, db: Database
) -> None:
    h = setup["admin"]
    bad = client.put("/api/v1/projects/g/generation/settings", json={"base_urls": ["ftp://x"]}, headers=h)
    assert bad.status_code == 422
    not_ready = client.post("/api/v1/projects/g/generation/jobs", json={"selection": "missing"}, headers=h)
    assert not_ready.status_code == 422 and "not configured" in not_ready.json()["detail"]

    saved = client.put(
        "/api/v1/projects/g/generation/settings",
        json={"base_urls": [fake.base_url + "/v1/"], "model": "fake", "api_key": "sk-secret"},
        headers=h,
    )
    assert saved.status_code == 200
    assert saved.json()["base_urls"] == [fake.base_url] and saved.json()["api_key"] == "••••"
    assert "sk-secret" not in client.get("/api/v1/projects/g/generation/settings", headers=h).text

    health = client.get("/api/v1/projects/g/generation/health", headers=h).json()
    assert health[0]["ok"] and health[0]["models"] == ["fake"] and health[0]["max_model_len"] == 2048

    job = client.post("/api/v1/projects/g/generation/jobs", json={"selection": "missing"}, headers=h)
    assert job.status_code == 201 and job.json()["state"] == "queued" and job.json()["progress_total"] == 3
    again = client.post("/api/v1/projects/g/generation/jobs", json={"selection": "missing"}, headers=h)
    assert again.status_code == 409

    assert runner.run_one(db, worker_id="w") == (job.json()["id"], "done")
    done = client.get(f"/api/v1/projects/g/jobs/{job.json()['id']}", headers=h).json()
    assert done["state"] == "done" and done["progress_done"] == 3 and done["result"]["candidates"] == 6
    # The fake saw the key as a bearer token, never in a URL.
    assert fake.requests and all("sk-secret" not in str(r) for r in fake.requests)
    cancelled = client.post(f"/api/v1/projects/g/jobs/{job.json()['id']}/cancel", headers=h)
    assert cancelled.status_code == 409  # already done


def test_health_reports_a_server_that_is_down(client: TestClient, setup: dict[str, Any]) -> None:
    h = setup["admin"]
    client.put(
        "/api/v1/projects/g/generation/settings", json={"base_urls": ["http://127.0.0.1:9"], "model": "m"}, headers=h
    )
    health = client.get("/api/v1/projects/g/generation/health", headers=h).json()
    assert health[0]["ok"] is False and health[0]["error"]


def test_annotators_cannot_generate(client: TestClient, setup: dict[str, Any]) -> None:
    h = setup["annotator"]
    assert client.get("/api/v1/projects/g/generation/settings", headers=h).status_code == 403
    assert client.post("/api/v1/projects/g/generation/jobs", json={}, headers=h).status_code == 403
    assert client.get("/projects/g/generation", headers=h).status_code == 403


def test_page_shows_live_jobs_and_errors(
    client: TestClient, setup: dict[str, Any], fake: FakeOpenAI, db: Database
) -> None:
    h = setup["admin"]
    client.put(
        "/api/v1/projects/g/generation/settings",
        json={
            "base_urls": [fake.base_url],
            "model": "fake",
            "max_retries": 0,
            "max_consecutive_failures": 1,
            "concurrency": 1,
        },
        headers=h,
    )
    job = client.post("/api/v1/projects/g/generation/jobs", json={"selection": "missing"}, headers=h).json()
    page = client.get("/projects/g/generation", headers=h)
    assert page.status_code == 200 and 'hx-trigger="every 1s"' in page.text and "Waiting for a worker" in page.text
    fake.default = "503"
    runner.run_one(db, worker_id="w")
    fragment = client.get("/projects/g/generation/jobs", headers={**h, "HX-Request": "true"})
    assert "<html" not in fragment.text and "failed" in fragment.text and "HTTP 503" in fragment.text
    assert 'hx-trigger="every 1s"' not in fragment.text  # nothing left to follow
    assert str(job["id"]) in fragment.text
