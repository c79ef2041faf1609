"""Background work of the export domain: writing a snapshot file (job kind "snapshot")."""

from __future__ import annotations

from app.config import get_settings
from app.db import Database
from app.export import snapshots
from app.jobs import service as jobs
from app.models import Job


class _Lost(Exception):
    """The job was cancelled or taken over while the file was being written."""


def run_snapshot_job(db: Database, job_id: int, *, worker_id: str) -> str:
    """Write the job's snapshot; a crash mid-file leaves only a temporary file, and a retry starts afresh."""
    settings = db.settings or get_settings()
    with db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        snapshot_id = int(job.params["snapshot_id"])

    def beat() -> None:
        with db.session() as session:
            state = jobs.heartbeat(session, job_id=job_id, worker_id=worker_id)
        if state != "running":
            raise _Lost(state)

    try:
        state = snapshots.write_snapshot(db, snapshot_id=snapshot_id, settings=settings, beat=beat)
    except _Lost as lost:
        if str(lost) != "lost":  # cancelled or failed: the snapshot will not be written
            snapshots.fail_snapshot(db, snapshot_id=snapshot_id, error=f"stopped: job {lost}")
        # Taken over by another worker, which writes the snapshot itself: leave it to that worker.
        return str(lost)
    except Exception as exc:
        snapshots.fail_snapshot(db, snapshot_id=snapshot_id, error=f"{type(exc).__name__}: {exc}")
        raise
    with db.session() as session:
        snapshot = snapshots.get_snapshot(session, snapshot_id=snapshot_id)
        jobs.finish(
            session,
            job_id=job_id,
            worker_id=worker_id,
            state="done" if state == "ready" else "failed",
            result={"snapshot_id": snapshot_id, "rows": snapshot.row_count, "sha256": snapshot.sha256},
            done=snapshot.row_count,
        )
    return "done" if state == "ready" else "failed"
