"""The generation job, run by a worker: many requests in flight, each item's candidates committed together.

Resumable by construction: the items still to do are read from the database (pending items, or items
still on the round they were on when the job was queued), so a job taken over after a crash continues
where it stopped and an item is never stored twice (``store_candidates`` moves it only once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from sqlalchemy import select

from app.config import get_settings
from app.db import Database
from app.generation import service
from app.generation.client import GenerationError, Pool, Sample, candidates_for, derive_seed
from app.generation.egress import guarded_async_client
from app.jobs import service as jobs
from app.models import Item, Job, Project

log = logging.getLogger("prefstudio.generation")

CHUNK = 500  # item ids read from the database at a time
COMMIT_EVERY_S = 1.0  # also the heartbeat period


async def _todo(db: Database, job: Job) -> AsyncIterator[tuple[int, Any, int, bool]]:
    """(item id, prompt, from round, regenerate) of every item the job still has to do, in id order."""
    params = job.params
    regen: dict[str, int] = params.get("regenerate", {})
    pending_ids: list[int] | None = params.get("pending") if params["selection"] != "missing" else None

    def _chunk(after: int) -> list[tuple[int, Any, int, str]]:
        with db.session(write=False) as s:
            query = select(Item.id, Item.prompt, Item.round, Item.status).where(
                Item.project_id == job.project_id, Item.id > after
            )
            if params["selection"] == "missing":
                query = query.where(Item.status == "pending")
            else:
                ids = [int(i) for i in regen] + list(pending_ids or [])
                query = query.where(Item.id.in_(sorted(i for i in ids if i > after)[:CHUNK]))
            return [(r[0], r[1], r[2], r[3]) for r in s.execute(query.order_by(Item.id).limit(CHUNK))]

    after = 0
    while True:
        rows = await asyncio.to_thread(_chunk, after)
        if not rows:
            return
        for item_id, prompt, round_, status in rows:
            after = item_id
            if str(item_id) in regen:
                if round_ == regen[str(item_id)] and status == "ready":
                    yield item_id, prompt, round_, True
            elif status == "pending":
                yield item_id, prompt, round_, False


class _Progress:
    def __init__(self, job: Job) -> None:
        self.done = job.progress_done
        self.total = job.progress_total
        self.failed_items = int(job.result.get("failed_items", 0))
        self.candidates = int(job.result.get("candidates", 0))
        self.started = time.monotonic()
        self.done_at_start = self.done
        self.consecutive_failures = 0

    def result(self, pool: Pool) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate_items = (self.done - self.done_at_start) / elapsed
        k = self.candidates / self.done if self.done else 0
        remaining = max(self.total - self.done - self.failed_items, 0)
        return {
            "candidates": self.candidates,
            "failed_items": self.failed_items,
            "retries": pool.stats.retries,
            "request_errors": pool.stats.errors,
            "requests": pool.stats.requests,
            "last_error": pool.stats.last_error,
            "candidates_per_s": round(rate_items * k, 2),
            "eta_s": round(remaining / rate_items, 1) if rate_items > 0 else None,
            "elapsed_s": round(elapsed, 1),
        }


def _finished_callback(
    tasks: set[asyncio.Task[None]], limit: asyncio.Semaphore
) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        limit.release()

    return done


async def run_generation_job(
    db: Database,
    job_id: int,
    *,
    worker_id: str,
    client: httpx.AsyncClient | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> str:
    """Run (or resume) one claimed generation job; returns its final state."""
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None
        project = s.get(Project, job.project_id)
        assert project is not None
        settings = service.settings_of(project)
        k = project.k
    progress = _Progress(job)
    own_client = client is None
    allow_private = bool((db.settings or get_settings()).allow_private_model_servers)
    http = client or guarded_async_client(allow_private=allow_private, limits=httpx.Limits(max_connections=None))
    pool = Pool(settings, http)
    finished: list[tuple[int, int, bool, list[Sample]]] = []
    state = "running"
    fatal: str | None = None

    def _commit(batch: list[tuple[int, int, bool, list[Sample]]]) -> str:
        with db.session() as s:
            for item_id, from_round, regenerate, samples in batch:
                if service.store_candidates(
                    s, item_id=item_id, from_round=from_round, regenerate=regenerate, samples=samples
                ):
                    progress.candidates += len(samples)
                progress.done += 1
            return jobs.heartbeat(
                s, job_id=job_id, worker_id=worker_id, done=progress.done, result=progress.result(pool)
            )

    flush_lock = asyncio.Lock()

    async def flush() -> None:
        nonlocal state
        async with flush_lock:
            batch = finished[:]
            del finished[:]
            try:
                state = await asyncio.to_thread(_commit, batch)
            except BaseException:
                finished[:0] = batch  # not stored: nothing of the batch is counted as done
                raise
        if on_progress:
            on_progress(progress.done, progress.total)

    stop_committer = asyncio.Event()

    async def committer() -> None:
        # Commits finished items a few times a second and, even when nothing finishes (slow server),
        # keeps the heartbeat moving so that no other worker takes the job over.
        while state == "running" and not stop_committer.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_committer.wait(), COMMIT_EVERY_S)
            await flush()

    async def one(item_id: int, prompt: Any, from_round: int, regenerate: bool) -> None:
        nonlocal fatal
        try:
            samples = await candidates_for(pool, prompt=prompt, k=k, seed=derive_seed(settings.seed, item_id * 7919))
        except GenerationError as exc:
            progress.failed_items += 1
            progress.consecutive_failures += 1
            log.warning("item %s failed: %s", item_id, exc)
            if progress.consecutive_failures >= settings.max_consecutive_failures:
                fatal = f"Stopped after {progress.consecutive_failures} items failed in a row. Last error: {exc}"
            return
        progress.consecutive_failures = 0
        finished.append((item_id, from_round, regenerate, samples))

    limit = asyncio.Semaphore(settings.concurrency * max(len(pool.urls), 1))
    tasks: set[asyncio.Task[None]] = set()
    commit_task = asyncio.create_task(committer())
    try:
        async for item_id, prompt, from_round, regenerate in _todo(db, job):
            await limit.acquire()
            if fatal or state != "running":
                limit.release()
                break
            task = asyncio.create_task(one(item_id, prompt, from_round, regenerate))
            tasks.add(task)
            task.add_done_callback(_finished_callback(tasks, limit))
        while tasks and not fatal and state == "running":
            await asyncio.wait(tasks, timeout=COMMIT_EVERY_S)
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        stop_committer.set()
        (commit_error,) = await asyncio.gather(commit_task, return_exceptions=True)
        if isinstance(commit_error, Exception):
            log.error("storing candidates failed", exc_info=commit_error)
            fatal = f"Could not store candidates: {type(commit_error).__name__}: {commit_error}"[:2000]
        elif state == "running":
            await flush()  # what finished before the end or the stop is kept
        if own_client:
            await http.aclose()
    if state != "running":
        return state
    final = "failed" if fatal else "done"
    error = fatal
    if not fatal and progress.failed_items:
        error = f"{progress.failed_items} item(s) failed; run the job again to retry them. Last error: " + str(
            pool.stats.last_error
        )

    def _finish() -> None:
        with db.session() as s:
            jobs.finish(
                s,
                job_id=job_id,
                worker_id=worker_id,
                state=final,
                error=error,
                result=progress.result(pool),
                done=progress.done,
            )

    await asyncio.to_thread(_finish)
    return final
