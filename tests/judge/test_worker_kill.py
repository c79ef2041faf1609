"""`kill -9` a real `prefstudio worker` mid-way through a judge job on the real vLLM server, start another: the
job completes and no suggestion is stored twice."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from app.config import Settings
from app.db import Database
from app.jobs import service as jobs
from app.models import Job, Suggestion, utcnow
from tests.judge.test_vllm import make_judged_project, queue
from tests.reliability.conftest import prefstudio_command
from tests.reliability.helpers import wait_for

N = 30


@pytest.fixture
def spawn(settings: Settings, tmp_path: Path) -> Iterator[Callable[[list[str]], subprocess.Popen[bytes]]]:
    env = {
        **os.environ,
        "PREFSTUDIO_DATABASE_URL": settings.database_url,
        "PREFSTUDIO_ENVIRONMENT": "dev",
        "PREFSTUDIO_SECRET_KEY": settings.secret_key or "",
        "PREFSTUDIO_DATA_DIR": str(settings.data_dir),
        "PREFSTUDIO_ALLOW_PRIVATE_MODEL_SERVERS": "true",
    }
    started: list[subprocess.Popen[bytes]] = []

    def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
        out = open(tmp_path / f"worker-{len(started)}.log", "wb")
        process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        started.append(process)
        return process

    yield _spawn
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _job(db: Database, job_id: int) -> Job:
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def _suggestions(db: Database) -> list[tuple[int, str]]:
    with db.session(write=False) as s:
        return [(r[0], r[1]) for r in s.execute(select(Suggestion.item_id, Suggestion.dimension))]


def test_judge_worker_killed_resumes_without_duplicates(
    db: Database, vllm_base_url: str, spawn: Callable[[list[str]], subprocess.Popen[bytes]]
) -> None:
    project_id = make_judged_project(db, vllm_base_url, n=N, slug="jk")
    with db.session() as s:
        from app.models import Project

        project = s.get(Project, project_id)
        assert project is not None
        project.judge = {**project.judge, "concurrency": 1}  # slow enough to be killed half-way
    job_id = queue(db, project_id)

    first = spawn([*prefstudio_command(), "worker", "--poll", "0.1"])
    wait_for(lambda: _job(db, job_id).progress_done >= 3, what="the first worker to store some items")
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    stored = _suggestions(db)
    assert _job(db, job_id).state == "running" and 6 <= len(stored) < 2 * N
    assert len(stored) % 2 == 0  # an item's dimensions are stored together

    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - jobs.STALE_AFTER * 2))
    second = spawn([*prefstudio_command(), "worker", "--once", "--poll", "0.1"])
    assert second.wait(240) == 0

    job = _job(db, job_id)
    assert job.state == "done" and job.error is None and job.progress_done == N
    rows = _suggestions(db)
    assert len(rows) == 2 * N and len(set(rows)) == 2 * N
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Suggestion).where(Suggestion.job_id == job_id)) == 2 * N
