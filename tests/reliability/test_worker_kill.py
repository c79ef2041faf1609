"""`kill -9` a real `prefstudio worker` mid-generation, start another: the job completes, no candidate is stored
twice, and an item's k candidates are only ever stored together."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable

from sqlalchemy import func, select, update

from app.db import Database
from app.generation import service
from app.generation.schemas import JobIn
from app.jobs import service as jobs
from app.models import Candidate, Item, Job, utcnow
from tests.factories import make_item, make_project
from tests.reliability.conftest import prefstudio_command
from tests.reliability.helpers import wait_for
from tests.support.fake_openai import FakeOpenAI

K = 4
N = 24


def _queue(db: Database, fake: FakeOpenAI) -> tuple[int, int]:
    settings = {"base_urls": [fake.base_url], "model": "fake", "concurrency": 2, "timeout_s": 5.0}
    with db.session() as s:
        project = make_project(s, "killed", k=K, overlap=1, generation=settings)
        for i in range(N):
            make_item(s, project, f"prompt {i}", candidates=[])
        job = service.start_job(s, project=project, request=JobIn(selection="missing"), user_id=None)
        return project.id, job.id


def _job(db: Database, job_id: int) -> Job:
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def _items_all_or_nothing(db: Database, project_id: int) -> int:
    """Checks every item has 0 candidates (pending) or exactly k (ready); returns how many are ready."""
    with db.session(write=False) as s:
        items = dict(s.execute(select(Item.id, Item.status).where(Item.project_id == project_id)).tuples().all())
        counts = dict(s.execute(select(Candidate.item_id, func.count()).group_by(Candidate.item_id)).tuples().all())
        positions = s.execute(select(Candidate.item_id, Candidate.round, Candidate.position)).all()
    assert len(positions) == len(set(positions))
    for item_id, status in items.items():
        n = counts.get(item_id, 0)
        assert (status, n) in (("pending", 0), ("ready", K)), f"item {item_id}: {status} with {n} candidates"
    return sum(1 for status in items.values() if status == "ready")


def test_worker_killed_mid_generation_resumes_in_a_new_process(
    db: Database, fake: FakeOpenAI, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    fake.default = "slow"
    fake.slow_s = 0.25
    project_id, job_id = _queue(db, fake)

    first = spawn([*prefstudio_command(), "worker", "--poll", "0.1"], log="first")
    wait_for(lambda: _job(db, job_id).progress_done >= 4, what="the first worker to store some items")
    sent = len(fake.requests)
    wait_for(lambda: len(fake.requests) > sent, what="requests in flight")  # killed mid-request, not between
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL

    job = _job(db, job_id)
    ready = _items_all_or_nothing(db, project_id)
    assert job.state == "running" and 4 <= job.progress_done == ready < N
    dead_worker = job.worker_id

    # The dead worker's heartbeat no longer moves; once it is stale (as after STALE_AFTER), a new worker takes over.
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - jobs.STALE_AFTER * 2))
    fake.slow_s = 0.02
    second = spawn([*prefstudio_command(), "worker", "--once", "--poll", "0.1"], log="second")
    assert second.wait(90) == 0

    job = _job(db, job_id)
    assert job.state == "done" and job.error is None and job.worker_id != dead_worker
    assert job.progress_done == N and job.result["candidates"] == K * N
    assert _items_all_or_nothing(db, project_id) == N
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Candidate)) == K * N
