"""The model server fails (503, hang, dropped connection): the job retries with capped backoff, ends done or
failed, stores no duplicate candidates, and the generation page says what happened."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.generation import client as generation_client
from app.jobs import runner
from app.models import Candidate, Item
from tests.factories import make_item, make_project, make_user
from tests.support.fake_openai import FakeOpenAI

K = 3
CAP_S = 0.05


@pytest.fixture
def admin(db: Database, settings: Settings) -> dict[str, str]:
    with db.session() as s:
        user = make_user(s, "boss", role="admin")
        project = make_project(s, "g", k=K, overlap=1)
        for i in range(6):
            make_item(s, project, f"prompt {i}", candidates=[])
        token = create_api_token(s, user=user, scope="api", settings=settings)[1]
    return {"Authorization": f"Bearer {token}"}


def _configure(client: TestClient, admin: dict[str, str], fake: FakeOpenAI, **overrides: Any) -> None:
    body = {
        "base_urls": [fake.base_url],
        "model": "fake",
        "backoff_base_s": 0.01,
        "backoff_cap_s": CAP_S,
        "timeout_s": 0.5,
        "concurrency": 2,
        **overrides,
    }
    r = client.put("/api/v1/projects/g/generation/settings", json=body, headers=admin)
    assert r.status_code == 200, r.text


def _start(client: TestClient, admin: dict[str, str]) -> int:
    r = client.post("/api/v1/projects/g/generation/jobs", json={"selection": "missing"}, headers=admin)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _job_row(client: TestClient, admin: dict[str, str], job_id: int) -> dict[str, str]:
    """The job's row on the generation page (the htmx fragment the page polls), cell by cell, as text."""
    page = client.get("/projects/g/generation/jobs", headers={**admin, "HX-Request": "true"})
    assert page.status_code == 200
    rows = re.findall(
        r'<tr class="job job-(\w+)">(.*?)</tr>(\s*<tr><td></td><td colspan="7" class="error">(.*?)</td>)?',
        page.text,
        re.S,
    )
    for state, cells, _, error in rows:
        texts = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td>(.*?)</td>", cells, re.S)]
        if texts[0] == str(job_id):
            return {
                "state": state,
                "badge": texts[1],
                "progress": texts[2],
                "retries": texts[5],
                "errors": texts[6],
                "error": html.unescape(error),
            }
    raise AssertionError(f"job {job_id} is not on the page")


def _candidates_per_item(db: Database) -> dict[int, int]:
    with db.session(write=False) as s:
        rows = s.execute(select(Candidate.item_id, func.count()).group_by(Candidate.item_id)).tuples().all()
        positions = s.execute(select(Candidate.item_id, Candidate.round, Candidate.position)).all()
    assert len(positions) == len(set(positions)), "a candidate was stored twice"
    return dict(rows)


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every backoff the client slept, as it computed them."""
    seen: list[float] = []
    real = generation_client.backoff_delay

    def recording(attempt: int, settings: Any) -> float:
        seen.append(real(attempt, settings))
        return seen[-1]

    monkeypatch.setattr(generation_client, "backoff_delay", recording)
    return seen


def test_transient_faults_are_retried_and_the_page_counts_the_retries(
    client: TestClient, db: Database, fake: FakeOpenAI, admin: dict[str, str], delays: list[float]
) -> None:
    _configure(client, admin, fake, max_retries=8)
    fake.script.extend(["503", "hang", "drop", "429", "drop", "503"])
    job_id = _start(client, admin)
    assert runner.run_one(db, worker_id="w") == (job_id, "done")

    row = _job_row(client, admin, job_id)
    assert row["state"] == "done" and row["badge"] == "done"
    assert row["progress"] == "6 / 6" and row["retries"] == "6" and row["errors"] == "0" and row["error"] == ""
    job = client.get(f"/api/v1/projects/g/jobs/{job_id}", headers=admin).json()
    assert job["result"]["retries"] == 6 and job["error"] is None
    assert len(delays) == 6 and all(0 <= d <= CAP_S for d in delays)  # capped
    per_item = _candidates_per_item(db)
    assert len(per_item) == 6 and set(per_item.values()) == {K}


def test_backoff_is_capped_however_many_attempts() -> None:
    from app.generation.schemas import GenerationSettings

    settings = GenerationSettings(backoff_base_s=0.5, backoff_cap_s=2.0)
    for attempt in range(40):
        assert 0 <= generation_client.backoff_delay(attempt, settings) <= min(2.0, 0.5 * 2**attempt)


def test_items_that_fail_for_good_are_reported_and_a_rerun_completes_them(
    client: TestClient, db: Database, fake: FakeOpenAI, admin: dict[str, str]
) -> None:
    _configure(client, admin, fake, max_retries=1, concurrency=1)
    fake.script.extend(["503", "503"])  # the first item's request and its one retry: that item fails
    job_id = _start(client, admin)
    assert runner.run_one(db, worker_id="w") == (job_id, "done")

    row = _job_row(client, admin, job_id)
    assert row["state"] == "done" and row["progress"] == "5 / 6" and row["errors"] == "1" and row["retries"] == "1"
    assert "1 item(s) failed; run the job again to retry them" in row["error"] and "HTTP 503" in row["error"]
    per_item = _candidates_per_item(db)
    assert len(per_item) == 5 and set(per_item.values()) == {K}
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).where(Item.status == "pending")) == 1

    again = _start(client, admin)
    assert runner.run_one(db, worker_id="w") == (again, "done")
    assert _job_row(client, admin, again)["error"] == ""
    per_item = _candidates_per_item(db)
    assert len(per_item) == 6 and set(per_item.values()) == {K}


@pytest.mark.parametrize(
    ("fault", "shown"), [("503", "HTTP 503"), ("hang", "Timeout"), ("drop", "RemoteProtocolError")]
)
def test_a_server_that_keeps_failing_fails_the_job_and_the_page_says_why(
    client: TestClient, db: Database, fake: FakeOpenAI, admin: dict[str, str], fault: str, shown: str
) -> None:
    _configure(client, admin, fake, max_retries=1, max_consecutive_failures=2, concurrency=1, timeout_s=0.2)
    fake.default = fault
    job_id = _start(client, admin)
    assert runner.run_one(db, worker_id="w") == (job_id, "failed")

    row = _job_row(client, admin, job_id)
    assert row["state"] == "failed" and row["badge"] == "failed"
    assert "Stopped after 2 items failed in a row" in row["error"] and shown in row["error"]
    assert row["errors"] == "2" and row["retries"] == "2"
    page = client.get("/projects/g/generation", headers=admin)
    assert page.status_code == 200 and "Stopped after 2 items failed in a row" in html.unescape(page.text)
    assert _candidates_per_item(db) == {}
