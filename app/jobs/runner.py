"""The worker process: claims jobs from the database and runs them, one at a time, until stopped."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from app.db import Database
from app.export.tasks import run_snapshot_job
from app.generation.tasks import run_generation_job
from app.jobs import service as jobs
from app.judge.tasks import run_judge_job
from app.webhooks import tasks as webhook_tasks

log = logging.getLogger("prefstudio.worker")

Runner = Callable[[Database, int, str], Coroutine[Any, Any, str]]


def _registry() -> dict[str, Runner]:
    async def generate(db: Database, job_id: int, worker_id: str) -> str:
        return await run_generation_job(db, job_id, worker_id=worker_id)

    async def snapshot(db: Database, job_id: int, worker_id: str) -> str:
        return await asyncio.to_thread(run_snapshot_job, db, job_id, worker_id=worker_id)

    async def judge(db: Database, job_id: int, worker_id: str) -> str:
        return await run_judge_job(db, job_id, worker_id=worker_id)

    return {"generate": generate, "snapshot": snapshot, "judge": judge}


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def run_one(db: Database, *, worker_id: str, job_id: int | None = None) -> tuple[int, str] | None:
    """Claim and run one job (a given one, or the oldest waiting); None when there is none."""
    registry = _registry()
    with db.session() as s:
        job = jobs.claim(s, worker_id=worker_id, kinds=list(registry), job_id=job_id)
        if job is None:
            return None
        claimed, kind = job.id, job.kind
    log.info("job %s (%s) started by %s", claimed, kind, worker_id)
    try:
        state: str = asyncio.run(registry[kind](db, claimed, worker_id))
    except Exception as exc:  # a bug or an outage: the job fails with the reason, the worker lives on
        log.error("job %s crashed: %s", claimed, traceback.format_exc())
        with db.session() as s:
            jobs.finish(s, job_id=claimed, worker_id=worker_id, state="failed", error=f"{type(exc).__name__}: {exc}")
        state = "failed"
    log.info("job %s ended: %s", claimed, state)
    return claimed, state


def run_worker(
    db: Database,
    *,
    poll_s: float = 1.0,
    once: bool = False,
    stop: threading.Event | None = None,
    agreement_every_s: float = 5.0,
) -> None:
    """Run jobs until SIGTERM/SIGINT (or ``stop``); with ``once``, return when no job is waiting.

    Between jobs, at most every ``agreement_every_s`` seconds, stale agreement figures and consensus fits are
    recomputed."""
    # Local: the agreement figures bring numpy and the statistics libraries, which only a running worker needs
    # (every `prefstudio` command imports this module).
    from app.agreement.tasks import refresh_stale_figures
    from app.consensus.tasks import refresh_stale_fits

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    worker_id = new_worker_id()
    log.info("worker %s waiting for jobs", worker_id)
    # Webhooks are sent beside the jobs, so a long generation does not hold them back.
    sender = None if once else webhook_tasks.start_sender(db, stop=stop, poll_s=poll_s)
    refreshed_at = float("-inf")
    while not stop.is_set():
        if time.monotonic() - refreshed_at >= agreement_every_s:
            refresh_stale_figures(db)
            refresh_stale_fits(db)
            refreshed_at = time.monotonic()
        ran = run_one(db, worker_id=worker_id)
        if ran is None:
            if once:
                webhook_tasks.run_webhooks_once(db)
                return
            stop.wait(poll_s)
    if sender is not None:
        sender.join(timeout=webhook_tasks.STOP_WITHIN_S)
