"""The judge job, run by a worker: every comparison asked in every order, each item's suggestions stored together.

Resumable by construction: an item whose suggestions from this judge on its current round and rubric are all
stored is skipped, and storing replaces (never duplicates), so a job taken over after a crash continues where
it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from app.config import get_settings
from app.db import Database
from app.generation.egress import JOB_LIMITS, guarded_async_client
from app.jobs import service as jobs
from app.judge import rubric, service
from app.judge.client import JudgeError, JudgeStats, PromptTooLong, ask
from app.judge.repository import judge_name
from app.judge.schemas import JudgeServer, JudgeSettings
from app.models import Candidate, Item, Job, Project, Suggestion

log = logging.getLogger("prefstudio.judge")

CHUNK = 200
COMMIT_EVERY_S = 1.0  # also the heartbeat period
MAX_SHRINKS = 8


@dataclass
class ItemTodo:
    item_id: int
    round: int
    prompt: Any
    candidate_ids: list[int]
    texts: dict[int, str]


@dataclass
class ProjectView:
    id: int
    k: int
    guidelines: str
    dimensions: list[dict[str, str]]


def _dimensions(project: Project) -> list[dict[str, str]]:
    dims = [{"key": "overall", "label": "Overall", "description": "Which answer is better overall."}]
    return dims + [
        {"key": str(d["key"]), "label": str(d.get("label", d["key"])), "description": str(d.get("description", ""))}
        for d in project.dimensions
    ]


async def _todo(db: Database, view: ProjectView, judge: str, version: str) -> AsyncIterator[ItemTodo]:
    """Ready items without this judge's full set of suggestions on their current round and rubric, in id order."""

    def _chunk(after: int) -> list[ItemTodo]:
        with db.session(write=False) as s:
            items = s.execute(
                select(Item.id, Item.round, Item.prompt)
                .where(Item.project_id == view.id, Item.status == "ready", Item.id > after)
                .order_by(Item.id)
                .limit(CHUNK)
            ).all()
            ids = [r[0] for r in items]
            done = dict(
                s.execute(
                    select(Suggestion.item_id, func.count())
                    .join(Item, Item.id == Suggestion.item_id)
                    .where(
                        Suggestion.item_id.in_(ids),
                        Suggestion.round == Item.round,
                        Suggestion.judge == judge,
                        Suggestion.prompt_version == version,
                    )
                    .group_by(Suggestion.item_id)
                )
                .tuples()
                .all()
            )
            cands: dict[tuple[int, int], list[tuple[int, str]]] = {}
            for item_id, round_, cand_id, text in s.execute(
                select(Candidate.item_id, Candidate.round, Candidate.id, Candidate.text)
                .where(Candidate.item_id.in_(ids))
                .order_by(Candidate.item_id, Candidate.position)
            ):
                cands.setdefault((item_id, round_), []).append((cand_id, text))
            out = []
            for item_id, round_, prompt in items:
                got = cands.get((item_id, round_), [])
                if done.get(item_id, 0) >= len(view.dimensions) or len(got) < 2:
                    out.append(ItemTodo(item_id, round_, None, [], {}))  # nothing to ask: counted as done
                    continue
                out.append(ItemTodo(item_id, round_, prompt, [c for c, _ in got], dict(got)))
            return out

    after = 0
    while True:
        rows = await asyncio.to_thread(_chunk, after)
        if not rows:
            return
        for todo in rows:
            after = todo.item_id
            yield todo


class _JudgeRun:
    """One judge's part of a job: items judged concurrently; a committer stores finished items (and beats the
    job's heartbeat) every ``COMMIT_EVERY_S``."""

    def __init__(
        self, db: Database, job: Job, *, worker_id: str, settings: JudgeSettings, judge: JudgeServer,
        view: ProjectView, http: httpx.AsyncClient, progress: dict[str, Any],
    ) -> None:  # fmt: skip
        self.db, self.job, self.worker_id = db, job, worker_id
        self.settings, self.judge, self.view, self.http = settings, judge, view, http
        self.name = judge_name(judge.model, judge.base_url)
        self.version = settings.prompt_version
        self.rubric = settings.effective_rubric()
        self.limit = asyncio.Semaphore(settings.concurrency)
        self.stats = JudgeStats()
        self.progress = progress
        self.max_chars = settings.max_candidate_chars
        self.finished: list[tuple[ItemTodo, list[dict[str, Any]]]] = []
        self.skipped = 0
        self.state = "running"
        self.fatal: str | None = None
        self.stop_committer = asyncio.Event()
        self.flush_lock = asyncio.Lock()

    async def ask_order(self, todo: ItemTodo, dimension: dict[str, str], shown: list[int]) -> dict[str, Any]:
        for _ in range(MAX_SHRINKS):
            limit = self.max_chars
            text = rubric.build_prompt(
                self.rubric, guidelines=self.view.guidelines, dimension=dimension, prompt=todo.prompt,
                texts=[todo.texts[c] for c in shown], max_chars=limit,
            )  # fmt: skip
            try:
                got = await ask(
                    self.http, self.limit, self.stats, settings=self.settings, judge=self.judge, text=text,
                    k=len(shown),
                )  # fmt: skip
            except PromptTooLong:
                # Longer than the server's context: shorter candidates from now on, for every comparison.
                self.max_chars = min(self.max_chars, max(limit // 2, 20))
                continue
            self.progress["comparisons"] += 1
            self.progress["comparisons_run"] += 1
            return {"shown": shown, "answer": got.answer, "p": got.p, "rationale": got.rationale}
        raise JudgeError(f"the prompt does not fit the server's context even with {self.max_chars} characters")

    async def judge_item(self, todo: ItemTodo) -> None:
        try:
            rows = []
            for dimension in self.view.dimensions:
                asked = await asyncio.gather(
                    *(self.ask_order(todo, dimension, shown) for shown in rubric.shown_orders(todo.candidate_ids))
                )
                rows.append(self._row(dimension["key"], asked))
        except JudgeError as exc:
            self.progress["failed_items"] += 1
            self.stats.last_error = str(exc)
            log.warning("item %s failed: %s", todo.item_id, exc)
            return
        self.finished.append((todo, rows))

    def _row(self, dimension: str, asked: list[dict[str, Any]]) -> dict[str, Any]:
        orders = [{"shown": a["shown"], "answer": a["answer"], "p": a["p"]} for a in asked]
        verdict = rubric.verdict_of(orders)
        return {
            "dimension": dimension,
            "model": self.judge.model,
            "base_url": self.judge.base_url,
            "prompt_version": self.version,
            "kind": verdict.kind,
            "chosen_candidate_id": verdict.chosen,
            "rejected_candidate_id": verdict.rejected,
            "ranking": verdict.ranking,
            "confidence": verdict.confidence,
            "orders": orders,
            "rationale": asked[0]["rationale"],  # the canonical order's
            "job_id": self.job.id,
        }

    def result(self) -> dict[str, Any]:
        p = self.progress
        elapsed = max(time.monotonic() - p["started"], 1e-6)
        return {
            "comparisons": p["comparisons"],
            "failed_items": p["failed_items"],
            "suggestions": p["suggestions"],
            "requests": self.stats.requests,
            "retries": self.stats.retries,
            "request_errors": self.stats.errors,
            "last_error": self.stats.last_error,
            "comparisons_per_s": round(p["comparisons_run"] / elapsed, 2),
            "elapsed_s": round(elapsed, 1),
        }

    def _commit(self, batch: list[tuple[ItemTodo, list[dict[str, Any]]]], skipped: int) -> str:
        with self.db.session() as s:
            project = s.get(Project, self.view.id)
            assert project is not None
            for todo, rows in batch:
                if service.store_suggestions(
                    s, project=project, item_id=todo.item_id, round_=todo.round, judge=self.name, rows=rows
                ):
                    self.progress["suggestions"] += len(rows)
            self.progress["done"] += len(batch) + skipped
            return jobs.heartbeat(
                s, job_id=self.job.id, worker_id=self.worker_id, done=self.progress["done"], result=self.result()
            )

    async def flush(self) -> None:
        async with self.flush_lock:
            batch, skipped = self.finished[:], self.skipped
            del self.finished[:]
            self.skipped = 0
            try:
                self.state = await asyncio.to_thread(self._commit, batch, skipped)
            except BaseException:
                self.finished[:0] = batch
                self.skipped += skipped
                raise

    async def committer(self) -> None:
        while self.state == "running" and not self.stop_committer.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_committer.wait(), COMMIT_EVERY_S)
            await self.flush()

    async def judge_all(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        gate = asyncio.Semaphore(self.settings.concurrency)  # items in flight; requests are bounded by self.limit

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            gate.release()

        try:
            async for todo in _todo(self.db, self.view, self.name, self.version):
                if not todo.candidate_ids:
                    self.skipped += 1
                    continue
                await gate.acquire()
                if self.fatal or self.state != "running":
                    gate.release()
                    break
                task = asyncio.create_task(self.judge_item(todo))
                tasks.add(task)
                task.add_done_callback(done)
            while tasks and self.state == "running":
                await asyncio.wait(tasks, timeout=COMMIT_EVERY_S)
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)


async def _run_judge(run: _JudgeRun) -> str:
    commit_task = asyncio.create_task(run.committer())
    try:
        await run.judge_all()
    finally:
        run.stop_committer.set()
        await asyncio.gather(commit_task, return_exceptions=True)
        if run.state == "running":
            await run.flush()
    return run.state


async def run_judge_job(
    db: Database,
    job_id: int,
    *,
    worker_id: str,
    client: httpx.AsyncClient | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> str:
    """Run (or resume) one claimed judge job; returns its final state."""
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None
        project = s.get(Project, job.project_id)
        assert project is not None
        settings = service.settings_of(project)
        view = ProjectView(project.id, project.k, project.guidelines or "", _dimensions(project))
    wanted = set(job.params.get("judges") or [])
    judges = [j for j in settings.judges if judge_name(j.model, j.base_url) in wanted]
    allow_private = bool((db.settings or get_settings()).allow_private_model_servers)
    http = client or guarded_async_client(allow_private=allow_private, limits=JOB_LIMITS)
    progress: dict[str, Any] = {
        "done": 0, "comparisons": 0, "comparisons_run": 0, "failed_items": 0, "suggestions": 0,
        "started": time.monotonic(),
    }  # fmt: skip
    last: _JudgeRun | None = None
    try:
        for judge in judges:
            last = _JudgeRun(
                db, job, worker_id=worker_id, settings=settings, judge=judge, view=view, http=http, progress=progress
            )
            state = await _run_judge(last)
            if on_progress:
                on_progress(progress["done"], job.progress_total)
            if state != "running":
                return state
    finally:
        if client is None:
            await http.aclose()
    return await asyncio.to_thread(_finish, db, job, worker_id, progress, last)


def _finish(db: Database, job: Job, worker_id: str, progress: dict[str, Any], last: _JudgeRun | None) -> str:
    result = last.result() if last else {}
    failed = progress["failed_items"]
    state = "failed" if failed and not progress["suggestions"] else "done"
    error = f"{failed} item(s) failed; run the job again to retry them ({result.get('last_error')})" if failed else None
    with db.session() as s:
        jobs.finish(
            s, job_id=job.id, worker_id=worker_id, state=state, error=error, result=result, done=progress["done"]
        )
    return state
