"""Background jobs whose state lives in the database: queue, claim (one worker per job), heartbeat, finish.

A worker that dies leaves its job "running" with a heartbeat that stops moving; after ``STALE_AFTER``
another worker takes the job over and, because every task is resumable, continues where it stopped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.kit.errors import Conflict, NotFound
from app.models import Job, utcnow

STALE_AFTER = timedelta(seconds=30)
FINAL_STATES = ("done", "failed", "cancelled")


def enqueue(
    session: Session,
    *,
    kind: str,
    project_id: int | None,
    params: dict[str, Any],
    total: int = 0,
    created_by_id: int | None = None,
) -> Job:
    job = Job(
        kind=kind, project_id=project_id, params=params, progress_total=total, created_by_id=created_by_id, result={}
    )
    session.add(job)
    session.flush()
    return job


def claim(session: Session, *, worker_id: str, kinds: list[str], job_id: int | None = None) -> Job | None:
    """Take the oldest queued job (or one whose worker stopped beating); None if there is none."""
    now = utcnow()
    query = (
        select(Job)
        .where(
            Job.kind.in_(kinds),
            or_(Job.state == "queued", (Job.state == "running") & (Job.heartbeat_at < now - STALE_AFTER)),
        )
        .order_by(Job.id)
        .limit(1)
    )
    if job_id is not None:
        query = query.where(Job.id == job_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    job = session.scalar(query)
    if job is None:
        return None
    job.state = "running"
    job.worker_id = worker_id
    job.heartbeat_at = now
    job.started_at = job.started_at or now
    session.flush()
    return job


def heartbeat(
    session: Session, *, job_id: int, worker_id: str, done: int | None = None, result: dict[str, Any] | None = None
) -> str:
    """Record progress; returns the job's state (a cancelled job tells its worker to stop).

    Only the worker that holds the job may write; one that lost it (taken over) sees "lost".
    """
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if done is not None:
        values["progress_done"] = done
    if result is not None:
        values["result"] = result
    updated = session.execute(
        update(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running").values(**values)
    )
    if updated.rowcount == 1:  # type: ignore[attr-defined]
        return "running"
    state = session.scalar(select(Job.state).where(Job.id == job_id))
    return "lost" if state == "running" else (state or "lost")


def finish(
    session: Session,
    *,
    job_id: int,
    worker_id: str,
    state: str,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    done: int | None = None,
) -> None:
    values: dict[str, Any] = {"state": state, "finished_at": utcnow(), "heartbeat_at": utcnow()}
    if error is not None:
        values["error"] = error[:5000]
    if result is not None:
        values["result"] = result
    if done is not None:
        values["progress_done"] = done
    session.execute(
        update(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running").values(**values)
    )


def cancel(session: Session, *, job: Job) -> Job:
    if job.state in FINAL_STATES:
        raise Conflict(f"The job is already {job.state}")
    job.state = "cancelled"
    job.finished_at = utcnow()
    session.flush()
    return job


def get_job(session: Session, *, job_id: int, project_id: int | None = None) -> Job:
    job = session.get(Job, job_id)
    if job is None or (project_id is not None and job.project_id != project_id):
        raise NotFound("No such job")
    return job


def recent_jobs(session: Session, *, project_id: int, kind: str | None = None, limit: int = 10) -> list[Job]:
    query = select(Job).where(Job.project_id == project_id).order_by(Job.id.desc()).limit(limit)
    if kind:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query))
