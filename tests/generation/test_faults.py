"""Generation against a server that fails on cue: retries, timeouts, dropped connections, crashes, cancel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from sqlalchemy import func, select, update

from app.config import ROOT
from app.db import Database
from app.generation import service
from app.generation.client import Sample
from app.generation.schemas import JobIn
from app.jobs import runner
from app.jobs import service as jobs
from app.models import Candidate, Item, Job, Project, utcnow
from tests.factories import make_item, make_project
from tests.support.fake_openai import FakeOpenAI


def _project(db: Database, fake: FakeOpenAI, n_items: int, **gen: Any) -> tuple[int, int]:
    settings = {
        "base_urls": [fake.base_url],
        "model": "fake",
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05,
        "timeout_s": 30.0,  # only the hang test wants a timeout; a busy machine must not add retries
        **gen,
    }
    with db.session() as s:
        project = make_project(s, "gen", k=3, overlap=1, generation=settings)
        for i in range(n_items):
            make_item(s, project, f"prompt {i}", candidates=[])
        job = service.start_job(s, project=project, request=JobIn(selection="missing"), user_id=None)
        return project.id, job.id


def _samples(*texts: str) -> list[Sample]:
    return [
        Sample(
            text=t,
            model="m",
            base_url="u",
            params={},
            seed=1,
            finish_reason="stop",
            prompt_tokens=1,
            completion_tokens=1,
            latency_ms=1.0,
        )
        for t in texts
    ]


def _check_complete(db: Database, project_id: int, n_items: int, k: int = 3) -> None:
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).where(Item.project_id == project_id, Item.status == "ready")) == n_items
        per_item = s.execute(select(Candidate.item_id, func.count()).group_by(Candidate.item_id)).all()
        assert len(per_item) == n_items
        assert {count for _, count in per_item} == {k}


def _job(db: Database, job_id: int) -> Job:
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def test_retries_503_and_429_then_succeeds(db: Database, fake: FakeOpenAI) -> None:
    project_id, job_id = _project(db, fake, 5)
    fake.script.extend(["503", "429", "503"])
    assert runner.run_one(db, worker_id="w1") == (job_id, "done")
    job = _job(db, job_id)
    assert job.result["retries"] == 3 and job.progress_done == 5 and job.error is None
    _check_complete(db, project_id, 5)


def test_hang_hits_the_request_timeout_and_is_retried(db: Database, fake: FakeOpenAI) -> None:
    project_id, job_id = _project(db, fake, 2, timeout_s=0.3)
    fake.script.extend(["hang"])
    started = time.monotonic()
    assert runner.run_one(db, worker_id="w1") == (job_id, "done")
    assert time.monotonic() - started < 20  # the 10-minute library default would hang the test
    assert "Timeout" in (_job(db, job_id).result["last_error"] or "")
    _check_complete(db, project_id, 2)


def test_dropped_connection_mid_response_is_retried(db: Database, fake: FakeOpenAI) -> None:
    project_id, job_id = _project(db, fake, 3)
    fake.script.extend(["drop", "drop"])
    assert runner.run_one(db, worker_id="w1") == (job_id, "done")
    result = _job(db, job_id).result
    assert result["retries"] == 2, result["last_error"]
    _check_complete(db, project_id, 3)


def test_a_server_that_keeps_failing_fails_the_job_clearly(db: Database, fake: FakeOpenAI) -> None:
    fake.default = "503"
    project_id, job_id = _project(db, fake, 10, max_retries=1, max_consecutive_failures=3, concurrency=1)
    assert runner.run_one(db, worker_id="w1") == (job_id, "failed")
    job = _job(db, job_id)
    assert job.state == "failed" and "HTTP 503" in (job.error or "") and "in a row" in (job.error or "")
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Candidate)) == 0
        assert s.scalar(select(func.count()).where(Item.status == "pending")) == 10


def test_candidates_record_their_provenance(db: Database, fake: FakeOpenAI) -> None:
    project_id, job_id = _project(db, fake, 1, temperature=0.8, max_tokens=64, seed=7)
    runner.run_one(db, worker_id="w1")
    with db.session(write=False) as s:
        cands = list(s.scalars(select(Candidate).order_by(Candidate.position)))
    assert [c.position for c in cands] == [0, 1, 2]
    assert len({c.text for c in cands}) == 3
    first = cands[0]
    assert first.model == "fake" and first.base_url == fake.base_url and first.seed is not None
    assert first.params["temperature"] == 0.8 and first.params["max_tokens"] == 64
    assert first.prompt_tokens == 11 and first.completion_tokens and first.latency_ms is not None
    assert cands[-1].finish_reason == "length" and cands[-1].truncated


def test_identical_candidates_are_resampled(db: Database, fake: FakeOpenAI) -> None:
    project_id, job_id = _project(db, fake, 1, strategy="temperature_ladder", temperatures=[0.5, 0.5, 0.9])
    runner.run_one(db, worker_id="w1")
    with db.session(write=False) as s:
        texts = list(s.scalars(select(Candidate.text)))
    # The fake answers by seed and temperature; the ladder's seeds differ, so texts differ.
    assert len(set(texts)) == 3


def test_store_candidates_moves_an_item_only_once(db: Database, fake: FakeOpenAI) -> None:
    with db.session() as s:
        project = make_project(s, "once", k=2, overlap=1)
        item = make_item(s, project, "q", candidates=[])
        samples = _samples("a", "b")
        assert service.store_candidates(s, item_id=item.id, from_round=0, regenerate=False, samples=samples)
        assert not service.store_candidates(s, item_id=item.id, from_round=0, regenerate=False, samples=samples)
        assert s.scalar(select(func.count()).select_from(Candidate)) == 2


def test_cancel_stops_the_job(db: Database, fake: FakeOpenAI) -> None:
    fake.default = "slow"
    fake.slow_s = 0.3
    project_id, job_id = _project(db, fake, 40, concurrency=2)

    import threading

    def cancel_soon() -> None:
        time.sleep(0.8)
        with db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            jobs.cancel(s, job=job)

    threading.Thread(target=cancel_soon).start()
    assert runner.run_one(db, worker_id="w1") == (job_id, "cancelled")
    with db.session(write=False) as s:
        ready = s.scalar(select(func.count()).where(Item.status == "ready"))
        cands = s.scalar(select(func.count()).select_from(Candidate))
    assert 0 < ready < 40 and cands == 3 * ready  # whole items only


def test_only_one_worker_takes_a_job(db: Database, fake: FakeOpenAI) -> None:
    _, job_id = _project(db, fake, 1)
    with db.session() as s:
        assert jobs.claim(s, worker_id="a", kinds=["generate"]) is not None
    with db.session() as s:
        assert jobs.claim(s, worker_id="b", kinds=["generate"]) is None


def test_killed_worker_resumes_without_duplicates(db: Database, fake: FakeOpenAI, settings: Any) -> None:
    fake.default = "slow"
    fake.slow_s = 0.15
    n = 30
    project_id, job_id = _project(db, fake, n, concurrency=2)
    env = {
        **os.environ,
        "PREFSTUDIO_DATABASE_URL": settings.database_url,
        "PREFSTUDIO_ENVIRONMENT": "dev",
        "PREFSTUDIO_SECRET_KEY": settings.secret_key,
    }
    code = (
        "from app.config import get_settings; from app.db import make_database; "
        "from app.jobs.runner import run_worker; run_worker(make_database(get_settings()), poll_s=0.1)"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _job(db, job_id).progress_done >= 4:
                break
            time.sleep(0.1)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    job = _job(db, job_id)
    assert job.state == "running" and 4 <= job.progress_done < n
    # The dead worker's heartbeat stops; once stale, another worker takes the job over.
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - jobs.STALE_AFTER * 2))
    assert runner.run_one(db, worker_id="w2") == (job_id, "done")
    _check_complete(db, project_id, n)
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        assert s.scalar(select(func.count()).select_from(Candidate)) == 3 * n


def test_cli_generate_runs_the_job_with_a_progress_bar(
    db: Database, fake: FakeOpenAI, settings: Any, monkeypatch: Any
) -> None:
    from typer.testing import CliRunner

    from app.cli import cli
    from app.config import get_settings

    project_id, job_id = _project(db, fake, 4)
    with db.session() as s:  # the CLI queues its own job: drop the one the helper queued
        jobs.cancel(s, job=jobs.get_job(s, job_id=job_id))
    monkeypatch.setenv("PREFSTUDIO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PREFSTUDIO_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("PREFSTUDIO_ENVIRONMENT", "test")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["generate", "gen"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "done; 12 candidates" in result.output
    _check_complete(db, project_id, 4)


def test_nul_in_model_output_is_stored_as_replacement_character(db: Database) -> None:
    with db.session() as s:
        project = make_project(s, "nul", k=2, overlap=1)
        item = make_item(s, project, "q", candidates=[])
        samples = _samples("a\x00b", "c")
        assert service.store_candidates(s, item_id=item.id, from_round=0, regenerate=False, samples=samples)
    with db.session(write=False) as s:
        assert s.scalar(select(Candidate.text).where(Candidate.position == 0)) == "a\ufffdb"
