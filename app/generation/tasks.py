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
from app.generation import service, store
from app.generation.bound import Bound, InFlightController
from app.generation.client import GenerationError, Pool, Sample, candidates_for, derive_seed
from app.generation.egress import JOB_LIMITS, guarded_async_client
from app.generation.schemas import GenerationSettings
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
            "last_problem": pool.stats.last_problem,
            "candidates_per_s": round(rate_items * k, 2),
            "eta_s": round(remaining / rate_items, 1) if rate_items > 0 else None,
            "elapsed_s": round(elapsed, 1),
        }


def _finished_callback(tasks: set[asyncio.Task[None]], limit: Bound) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        limit.release()

    return done


class _GenerationRun:
    """One run of a generation job: items are generated concurrently, and a committer task stores the
    finished ones (and beats the job's heartbeat) every ``COMMIT_EVERY_S``."""

    def __init__(
        self,
        db: Database,
        job: Job,
        *,
        worker_id: str,
        settings: GenerationSettings,
        k: int,
        http: httpx.AsyncClient,
        on_progress: Callable[[int, int], None] | None,
    ) -> None:
        self.db, self.job, self.worker_id = db, job, worker_id
        self.settings, self.k = settings, k
        self.on_progress = on_progress
        self.progress = _Progress(job)
        self.pool = Pool(settings, http)
        self.finished: list[tuple[int, int, bool, list[Sample]]] = []
        self.state = "running"  # the job's state in the database, as the last heartbeat read it
        self.fatal: str | None = None  # why the run stops early, when it does
        self.flush_lock = asyncio.Lock()
        self.stop_committer = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        servers = max(len(self.pool.urls), 1)
        self.servers = servers
        self.controller = InFlightController.for_concurrency(settings.concurrency)
        self.limit = Bound(settings.concurrency * servers)
        self.completed = 0  # items finished in this run, stored or failed (the controller's rate)
        self.window = (time.monotonic(), 0, False)  # start, completed then, bound full at some point since
        self.waiting: float | None = None  # the most requests the servers had queued during the window, if they say

    def adapt(self) -> None:
        """Once per controller window: raise the in-flight bound while completions per second grow."""
        started, completed_then, saturated = self.window
        now = time.monotonic()
        if now - started < self.controller.window_s:
            return
        rate = (self.completed - completed_then) / (now - started)
        bound = self.controller.update(rate, saturated=saturated, waiting=self.waiting)
        if bound * self.servers != self.limit.limit:
            log.info("job %s: %d requests in flight per server", self.job.id, bound)
            self.limit.set_limit(bound * self.servers)
            self.pool.set_bound(bound)
        self.window = (now, self.completed, False)
        self.waiting = None

    async def sample_queue(self) -> None:
        """While the bound may still grow: how many requests the servers have waiting now (vLLM's metrics)."""
        if self.controller.settled or not self.window[2]:
            return
        waiting = await self.pool.queue_depth()
        if waiting is not None:
            self.waiting = max(self.waiting or 0.0, waiting)

    def note_full(self) -> None:
        if not self.window[2] and self.limit.used >= self.limit.limit:
            self.window = (self.window[0], self.window[1], True)

    def _commit(self, batch: list[tuple[int, int, bool, list[Sample]]]) -> str:
        progress = self.progress
        with self.db.session() as s:
            first = [
                (item_id, from_round, samples) for item_id, from_round, regenerate, samples in batch if not regenerate
            ]
            stored = store.store_first(s, first)
            progress.candidates += sum(len(samples) for item_id, _, samples in first if item_id in stored)
            for item_id, from_round, regenerate, samples in batch:
                if regenerate and service.store_candidates(
                    s, item_id=item_id, from_round=from_round, regenerate=True, samples=samples
                ):
                    progress.candidates += len(samples)
            progress.done += len(batch)
            return jobs.heartbeat(
                s, job_id=self.job.id, worker_id=self.worker_id, done=progress.done, result=progress.result(self.pool)
            )

    async def flush(self) -> None:
        async with self.flush_lock:
            batch = self.finished[:]
            del self.finished[:]
            try:
                self.state = await asyncio.to_thread(self._commit, batch)
            except BaseException:
                self.finished[:0] = batch  # not stored: nothing of the batch is counted as done
                raise
        if self.on_progress:
            self.on_progress(self.progress.done, self.progress.total)

    async def committer(self) -> None:
        # Commits finished items a few times a second and, even when nothing finishes (slow server),
        # keeps the heartbeat moving so that no other worker takes the job over.
        while self.state == "running" and not self.stop_committer.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_committer.wait(), COMMIT_EVERY_S)
            await self.flush()
            await self.sample_queue()
            self.adapt()

    async def generate_item(self, item_id: int, prompt: Any, from_round: int, regenerate: bool) -> None:
        progress, settings = self.progress, self.settings
        try:
            samples = await candidates_for(
                self.pool, prompt=prompt, k=self.k, seed=derive_seed(settings.seed, item_id * 7919)
            )
        except GenerationError as exc:
            self.completed += 1
            progress.failed_items += 1
            progress.consecutive_failures += 1
            log.warning("item %s failed: %s", item_id, exc)
            if progress.consecutive_failures >= settings.max_consecutive_failures:
                self.fatal = (
                    f"Stopped after {progress.consecutive_failures} items failed in a row: {exc.problem} "
                    f"(last error: {exc})"
                )
            return
        progress.consecutive_failures = 0
        self.completed += 1
        self.finished.append((item_id, from_round, regenerate, samples))

    async def generate_all(self) -> None:
        """Start a task per item still to do, at most the in-flight bound per model server at once (``concurrency``
        at first, raised by ``adapt``); return when they are done, or at the first fatal error or a stop."""
        limit = self.limit
        async for item_id, prompt, from_round, regenerate in _todo(self.db, self.job):
            self.note_full()
            await limit.acquire()
            if self.fatal or self.state != "running":
                limit.release()
                break
            task = asyncio.create_task(self.generate_item(item_id, prompt, from_round, regenerate))
            self.tasks.add(task)
            task.add_done_callback(_finished_callback(self.tasks, limit))
        while self.tasks and not self.fatal and self.state == "running":
            await asyncio.wait(self.tasks, timeout=COMMIT_EVERY_S)

    async def wind_down(self, commit_task: asyncio.Task[None]) -> None:
        """Cancel what is still generating, stop the committer and keep what finished before the end."""
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.stop_committer.set()
        (commit_error,) = await asyncio.gather(commit_task, return_exceptions=True)
        if isinstance(commit_error, Exception):
            log.error("storing candidates failed", exc_info=commit_error)
            self.fatal = f"Could not store candidates: {type(commit_error).__name__}: {commit_error}"[:2000]
        elif self.state == "running":
            await self.flush()  # what finished before the end or the stop is kept

    async def finish(self) -> str:
        """Record the job's final state (done, or failed with the reason) and return it."""
        progress = self.progress
        stats = self.pool.stats
        if not self.fatal and progress.failed_items and not progress.candidates:
            # Nothing came back at all (every server down, say): that is a failure, not a job done.
            self.fatal = (
                f"Nothing was generated: {progress.failed_items} item(s) failed. {stats.last_problem} "
                f"(last error: {stats.last_error})"
            )
        final = "failed" if self.fatal else "done"
        error = self.fatal
        if not self.fatal and progress.failed_items:
            error = (
                f"{progress.failed_items} item(s) failed; run the job again to retry them. {stats.last_problem} "
                f"(last error: {stats.last_error})"
            )

        def store() -> None:
            with self.db.session() as s:
                jobs.finish(
                    s,
                    job_id=self.job.id,
                    worker_id=self.worker_id,
                    state=final,
                    error=error,
                    result=progress.result(self.pool),
                    done=progress.done,
                )

        await asyncio.to_thread(store)
        return final


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
        settings = service.job_settings(project, job)
        k = project.k
    own_client = client is None
    allow_private = bool((db.settings or get_settings()).allow_private_model_servers)
    http = client or guarded_async_client(allow_private=allow_private, limits=JOB_LIMITS)
    run = _GenerationRun(db, job, worker_id=worker_id, settings=settings, k=k, http=http, on_progress=on_progress)
    commit_task = asyncio.create_task(run.committer())
    try:
        await run.generate_all()
    finally:
        await run.wind_down(commit_task)
        if own_client:
            await http.aclose()
    if run.state != "running":
        return run.state
    return await run.finish()
