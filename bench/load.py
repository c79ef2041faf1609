"""Reliability and latency under load: annotators, an admin and an export at once, over HTTP.

    .venv/bin/python bench/load.py                          # PostgreSQL (database bench_load), 50 annotators, 5 min
    .venv/bin/python bench/load.py --duration 20            # a short trial run
    .venv/bin/python bench/load.py --sqlite                 # a SQLite file, 5 annotators, 60 s
    .venv/bin/python bench/load.py --workers 1              # one uvicorn process (default: 2)
    .venv/bin/python bench/load.py --think 1                # annotators five times as fast (a stress run)
    .venv/bin/python bench/load.py --keep ... ; .venv/bin/python bench/load.py --reuse ...   # fill once, run again

Fills a project (k = 2, r = 3, the five default dimensions, 5% gold) with 1,000,000 judgments already made and
enough unjudged items to work on — COPY on PostgreSQL, executemany on SQLite — stores its agreement figures
(as the worker would), serves the app with uvicorn in its own process and, for ``--duration`` seconds, runs
in one asyncio process with httpx:

- ``--annotators`` annotators, each with an API token: POST next → think (uniform 0.5–1.5 × ``--think`` s,
  default 5: faster than people, who take 20 s or more for a pair and six dimensions) → POST the judgment
  (resent with the same key after a timeout or a 5xx, as the page does) → POST next …;
- one admin (a login session cookie) GETting the agreement dashboard page, ``--admin-pause`` s between views;
- one training worker (an export token) streaming ``GET export.jsonl`` to the end, again and again.

Prints count, errors by status and p50/p95/p99 per endpoint (target p99 < 50 ms for next-item and submit) —
over the whole run, and again without the first ``--warmup`` seconds (each server process's first requests
open its connections, count the project and parse the cached figures) —
the export's pairs/s and where the machine's CPU went, then stops the server and checks the database: stored
new judgments = judgments answered 2xx, no (item, annotator) judged twice, no item past r, no lease held
twice, the items' counters agree with the rows. Exits 1 if a check fails; any 5xx fails the run too, and with
``--sqlite`` any error response or server log line that says the database is locked.

The database is created from scratch each run (``DROP DATABASE … WITH (FORCE)`` of ``--database`` only, never
``test``) and dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402

from app.agreement.cache import refresh as refresh_agreement  # noqa: E402
from app.auth.deps import SESSION_COOKIE  # noqa: E402
from app.auth.service import create_api_token, start_session  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import Database, make_database  # noqa: E402
from app.kit.security import hash_password  # noqa: E402
from app.models import DEFAULT_DIMENSIONS, Item, Judgment, Project, ProjectMember, User  # noqa: E402
from bench.common import (  # noqa: E402
    ASSIGNMENT_COLUMNS,
    JUDGMENT_COLUMNS,
    VERDICT_COLUMNS,
    alembic_config,
    copy_rows,
    finish_fill,
    process_tree,
    stamp,
)

SLUG = "load"
SECRET = "bench-secret-key-0123456789-0123456789"
DIMS = ["overall", *(d["key"] for d in DEFAULT_DIMENSIONS)]
TARGET_P99_MS = 50.0
BUSY_BACKOFF_MS = 328.0  # SQLite's busy handler: the sum of its first twelve sleeps
EXTRA_GOLD = 200  # gold items nobody has judged yet, for the run's gold share
SUBMIT_TRIES = 3


@dataclass
class Seeded:
    project_id: int
    overlap: int
    tokens: list[str]
    export_token: str
    admin_cookie: str
    judgments: int  # already in the database
    max_judgment_id: int
    items: int
    fresh_items: int


# --- filling the database -----------------------------------------------------------------------------------


def fill(
    db: Database,
    settings: Settings,
    *,
    annotators: int,
    judgments: int,
    fresh: int,
    overlap: int,
    gold_share: float,
) -> Seeded:
    """A project whose ``judgments`` are spread evenly over the annotators (gold share included), by COPY."""
    if annotators < overlap:
        raise SystemExit(f"need at least r = {overlap} annotators")
    now = stamp(db, datetime.now(UTC))
    with db.session() as s:
        pw = hash_password("bench-password")
        users = [User(username=f"load{i}", display_name=f"load{i}", password_hash=pw) for i in range(annotators)]
        admin = User(username="load-admin", display_name="load-admin", password_hash=pw, role="admin")
        s.add_all([*users, admin])
        s.flush()
        project = Project(slug=SLUG, name="Load bench", k=2, overlap=overlap, gold_share=gold_share)
        s.add(project)
        s.flush()
        s.add_all(ProjectMember(project_id=project.id, user_id=u.id) for u in users)
        tokens = [create_api_token(s, user=u, scope="api", settings=settings)[1] for u in users]
        export_token = create_api_token(s, user=admin, scope="export", settings=settings, project_id=project.id)[1]
        admin_cookie = start_session(s, user=admin, settings=settings)
        project_id, user_ids = project.id, [u.id for u in users]

    # Each annotator has already judged `gold_done` gold items: their gold share is just met, so the run's
    # queue hands out gold at the project's rate (from EXTRA_GOLD untouched ones) as they judge more.
    per_annotator = judgments / annotators
    gold_done = min(math.ceil(gold_share * (per_annotator + 1)), judgments // annotators) if gold_share else 0
    gold_items = gold_done + (EXTRA_GOLD if gold_share else 0)
    regular = judgments - annotators * gold_done
    full, rest = divmod(regular, overlap)
    judged_items = full + (1 if rest else 0)
    items = gold_items + judged_items + fresh
    gold_answer = json.dumps({"overall": {"kind": "preference", "chosen": 0, "rejected": 1}})

    def item_rows() -> Iterator[tuple[Any, ...]]:
        for i in range(1, items + 1):
            if i <= gold_items:
                done = annotators if i <= gold_done else 0
                gold: str | None = gold_answer
            else:
                k = i - gold_items - 1
                done = overlap if k < full else rest if k < judged_items else 0
                gold = None
            prompt = json.dumps(f"Load prompt {i}: explain something useful in a few sentences.")
            yield (i, project_id, prompt, f"{i:064x}", "{}", gold, gold is not None, "ready", 0, done, done, now)

    def judged() -> Iterator[tuple[int, int, int]]:
        """(judgment id, item id, annotator id) of every judgment already made."""
        jid = 0
        for item in range(1, gold_done + 1):
            for a in range(annotators):
                jid += 1
                yield jid, item, user_ids[a]
        for k in range(judged_items):
            for t in range(overlap if k < full else rest):
                jid += 1
                yield jid, gold_items + 1 + k, user_ids[(k * overlap + t) % annotators]

    t0 = time.perf_counter()
    copy_rows(
        db,
        "item",
        [
            "id",
            "project_id",
            "prompt",
            "prompt_hash",
            "meta",
            "gold",
            "is_gold",
            "status",
            "round",
            "claims",
            "judgment_count",
            "created_at",
        ],
        item_rows(),
    )
    answer = "An answer, explained step by step with an example and a caveat. " * 3
    copy_rows(
        db,
        "candidate",
        ["id", "item_id", "round", "position", "text", "model", "params", "finish_reason", "created_at"],
        (
            (2 * i - 1 + p, i, 0, p, f"{answer}({i}/{p})", "sft-v1", "{}", "stop", now)
            for i in range(1, items + 1)
            for p in (0, 1)
        ),
    )
    copy_rows(
        db,
        "assignment",
        ASSIGNMENT_COLUMNS,
        (
            (j, project_id, i, a, 0, "submitted", f"[{2 * i - 1 + j % 2}, {2 * i - j % 2}]", now, now, now)
            for j, i, a in judged()
        ),
    )
    copy_rows(
        db,
        "judgment",
        JUDGMENT_COLUMNS,
        ((j, project_id, i, a, j, 0, "", False, False, 12.0, f"seed-{j}", 1, now, now) for j, i, a in judged()),
    )

    def verdict_rows() -> Iterator[tuple[Any, ...]]:
        # Mostly the first candidate wins, sometimes the second, now and then a tie: real-looking agreement.
        for j, i, a in judged():
            first = 2 * i - 1
            for d, dim in enumerate(DIMS):
                x = (i * 31 + d * 17 + a * 7) % 10
                vid = (j - 1) * len(DIMS) + d + 1
                if x < 7:
                    yield vid, j, dim, "preference", first, first + 1
                elif x < 9:
                    yield vid, j, dim, "preference", first + 1, first
                else:
                    yield vid, j, dim, "tie", None, None

    copy_rows(
        db,
        "verdict",
        VERDICT_COLUMNS,
        verdict_rows(),
    )
    copied = time.perf_counter() - t0
    t1 = time.perf_counter()
    finish_fill(db, project_id, sqlite_analyze=True)
    print(
        f"filled {items:,} items ({gold_items:,} gold, {fresh:,} unjudged), {judgments:,} judgments, "
        f"{judgments * len(DIMS):,} verdicts: COPY {copied:.0f} s, "
        f"{'VACUUM ' if db.is_postgres else ''}ANALYZE {time.perf_counter() - t1:.0f} s"
    )
    t2 = time.perf_counter()
    with db.session() as s:
        project_row = s.get(Project, project_id)
        assert project_row is not None
        refresh_agreement(s, project=project_row, force=True, resamples=0)
    print(f"agreement figures stored (no bootstrap) in {time.perf_counter() - t2:.0f} s")
    return Seeded(
        project_id=project_id,
        overlap=overlap,
        tokens=tokens,
        export_token=export_token,
        admin_cookie=admin_cookie,
        judgments=judgments,
        max_judgment_id=judgments,
        items=items,
        fresh_items=fresh,
    )


def attach(db: Database, settings: Settings) -> Seeded:
    """The project a run with --keep left behind (more judgments now), with fresh tokens and a fresh login."""
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == SLUG))
        if project is None:
            raise SystemExit("--reuse: no project left by an earlier run with --keep")
        users = list(
            s.scalars(
                select(User)
                .join(ProjectMember, ProjectMember.user_id == User.id)
                .where(ProjectMember.project_id == project.id)
                .order_by(User.id)
            )
        )
        admin = s.scalar(select(User).where(User.username == "load-admin"))
        assert admin is not None
        tokens = [create_api_token(s, user=u, scope="api", settings=settings)[1] for u in users]
        export_token = create_api_token(s, user=admin, scope="export", settings=settings, project_id=project.id)[1]
        judgments = s.scalar(select(func.count()).where(Judgment.project_id == project.id)) or 0
        items = s.scalar(select(func.count()).where(Item.project_id == project.id)) or 0
        fresh = s.scalar(select(func.count()).where(Item.project_id == project.id, Item.claims == 0)) or 0
        seeded = Seeded(
            project_id=project.id,
            overlap=project.overlap,
            tokens=tokens,
            export_token=export_token,
            admin_cookie=start_session(s, user=admin, settings=settings),
            judgments=judgments,
            max_judgment_id=s.scalar(select(func.max(Judgment.id))) or 0,
            items=items,
            fresh_items=fresh,
        )
    print(f"reusing {items:,} items ({fresh:,} unclaimed), {judgments:,} judgments, {len(tokens)} annotators")
    return seeded


# --- the load ------------------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str
    ms: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # perf_counter at the request's start
    statuses: Counter[str] = field(default_factory=Counter)
    locked: int = 0  # error responses that mention "locked"
    samples: list[str] = field(default_factory=list)  # a few error bodies, to print

    def record(self, started: float, response: httpx.Response | None, exc: BaseException | None = None) -> None:
        self.ms.append((time.perf_counter() - started) * 1000)
        self.starts.append(started)
        if response is None:
            self.statuses[type(exc).__name__] += 1
            if len(self.samples) < 3:
                self.samples.append(f"{type(exc).__name__}: {exc}")
            return
        self.statuses[str(response.status_code)] += 1
        if response.status_code >= 300:
            body = response.text
            if "locked" in body.lower():
                self.locked += 1
            if len(self.samples) < 3:
                self.samples.append(f"{response.status_code}: {body[:300]}")

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if s.startswith("2"))

    @property
    def errors(self) -> Counter[str]:
        return Counter({s: n for s, n in self.statuses.items() if not s.startswith("2")})


@dataclass
class Run:
    nxt: Endpoint = field(default_factory=lambda: Endpoint("next-item"))
    submit: Endpoint = field(default_factory=lambda: Endpoint("submit"))
    dashboard: Endpoint = field(default_factory=lambda: Endpoint("dashboard"))
    export: Endpoint = field(default_factory=lambda: Endpoint("export"))
    submits_ok: int = 0  # judgments sent (retries included) that ended in a 2xx answer
    submits_failed: int = 0  # ... that did not, after SUBMIT_TRIES attempts
    created_ids: list[int] = field(default_factory=list)  # judgments the server answered 201 for
    replayed_ids: list[int] = field(default_factory=list)  # 200: a retry of one it had stored already
    exports_done: list[tuple[int, float]] = field(default_factory=list)  # (pairs, seconds) of whole exports
    export_partial: tuple[int, float] = (0, 0.0)
    queue_empty: int = 0
    seconds: float = 0.0
    started: float = 0.0  # perf_counter when the annotators set off
    cpu: dict[str, float] = field(default_factory=dict)
    lag: Endpoint = field(default_factory=lambda: Endpoint("loop-lag"))  # the load generator's own stalls


LAG_TICK = 0.01


async def lag_monitor(run: Run, *, deadline: float) -> None:
    """How late the load generator's event loop wakes from a 10 ms sleep: a stall here (its own garbage
    collection, a CPU it did not get) would add to every latency it is measuring at that moment."""
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        await asyncio.sleep(LAG_TICK)
        run.lag.starts.append(t0)
        run.lag.ms.append(max(0.0, (time.perf_counter() - t0 - LAG_TICK) * 1000))


async def annotator(
    client: httpx.AsyncClient, run: Run, *, token: str, deadline: float, think: float, rng: random.Random
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    await asyncio.sleep(rng.uniform(0, think))  # annotators do not all start on the same millisecond
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            r = await client.post(f"/api/v1/projects/{SLUG}/next", headers=headers)
        except httpx.HTTPError as exc:
            run.nxt.record(t0, None, exc)
            await asyncio.sleep(0.5)
            continue
        run.nxt.record(t0, r)
        if r.status_code != 200:
            await asyncio.sleep(0.5)
            continue
        task = r.json()["assignment"]
        if task is None:
            run.queue_empty += 1
            return
        await asyncio.sleep(think * rng.uniform(0.5, 1.5))
        ids = [c["id"] for c in task["candidates"]]
        verdicts: dict[str, Any] = {}
        for d in task["dimensions"]:
            x = rng.random()
            if x < 0.1 and d["key"] != "overall":
                verdicts[d["key"]] = {"kind": "na"}
            elif x < 0.2:
                verdicts[d["key"]] = {"kind": "tie"}
            else:
                chosen, rejected = rng.sample(ids, 2)
                verdicts[d["key"]] = {"kind": "preference", "chosen": chosen, "rejected": rejected}
        body = {
            "assignment_id": task["assignment_id"],
            "submit_key": uuid.uuid4().hex,
            "verdicts": verdicts,
            "reason": "load bench",
            "seconds": round(think, 1),
        }
        # A submit that got no answer (or a 5xx) is sent again with the same key, as the page does: the server
        # stores it once and answers the replay with the judgment it kept.
        answer: httpx.Response | None = None
        for attempt in range(SUBMIT_TRIES):
            t0 = time.perf_counter()
            try:
                answer = await client.post(f"/api/v1/projects/{SLUG}/judgments", json=body, headers=headers)
            except httpx.HTTPError as exc:
                run.submit.record(t0, None, exc)
                answer = None
            else:
                run.submit.record(t0, answer)
                if answer.status_code < 500:
                    break
            await asyncio.sleep(0.5 * (attempt + 1))
        if answer is None or not 200 <= answer.status_code < 300:
            run.submits_failed += 1
            continue
        run.submits_ok += 1
        (run.created_ids if answer.status_code == 201 else run.replayed_ids).append(answer.json()["id"])


async def admin(client: httpx.AsyncClient, run: Run, *, cookie: str, deadline: float, pause: float) -> None:
    cookies = {SESSION_COOKIE: cookie}
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            # A fresh request each time, as a browser's reload: the cookie is sent, nothing is cached.
            r = await client.get(f"/projects/{SLUG}/agreement", headers={"Cookie": _cookie_header(cookies)})
        except httpx.HTTPError as exc:
            run.dashboard.record(t0, None, exc)
        else:
            run.dashboard.record(t0, r)
        await asyncio.sleep(max(0.0, min(pause, deadline - time.perf_counter())))


def _cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


async def exporter(client: httpx.AsyncClient, run: Run, *, token: str, deadline: float) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        pairs = 0
        try:
            async with client.stream("GET", f"/api/v1/projects/{SLUG}/export.jsonl", headers=headers, timeout=600) as r:
                if r.status_code != 200:
                    await r.aread()
                    run.export.record(t0, r)
                    await asyncio.sleep(1)
                    continue
                async for chunk in r.aiter_raw():
                    pairs += chunk.count(b"\n")
                    if time.perf_counter() >= deadline:  # cut at the deadline: counted as partial
                        run.export_partial = (pairs, time.perf_counter() - t0)
                        return
        except httpx.HTTPError as exc:
            run.export.record(t0, None, exc)
            continue
        run.export.record(t0, r)
        run.exports_done.append((pairs, time.perf_counter() - t0))


async def drive(base: str, seeded: Seeded, args: argparse.Namespace) -> Run:
    run = Run()
    # The filling left a large heap: a full collection of it would stall the loop (and every latency in flight).
    gc.collect()
    gc.freeze()
    limits = httpx.Limits(max_connections=len(seeded.tokens) + 8, max_keepalive_connections=len(seeded.tokens) + 8)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        start = run.started = time.perf_counter()
        deadline = start + args.duration
        rng = random.Random(7)
        jobs: list[Coroutine[Any, Any, None]] = [
            annotator(client, run, token=t, deadline=deadline, think=args.think, rng=random.Random(rng.random()))
            for t in seeded.tokens
        ]
        jobs.append(admin(client, run, cookie=seeded.admin_cookie, deadline=deadline, pause=args.admin_pause))
        jobs.append(lag_monitor(run, deadline=deadline))
        if not args.no_export:
            jobs.append(exporter(client, run, token=seeded.export_token, deadline=deadline))
        await asyncio.gather(*jobs)
        run.seconds = time.perf_counter() - start
    return run


# --- the figures and the checks ------------------------------------------------------------------------------


def _pcts(ms: list[float]) -> tuple[float, float, float]:
    p50, p95, p99 = np.percentile(np.array(ms), [50, 95, 99]) if ms else (math.nan,) * 3
    return float(p50), float(p95), float(p99)


def report(run: Run, warmup: float) -> None:
    print(f"\nran {run.seconds:.0f} s")
    for ep in (run.nxt, run.submit, run.dashboard):
        p50, p95, p99 = _pcts(ep.ms)
        errors = ", ".join(f"{s}: {n}" for s, n in sorted(ep.errors.items())) or "none"
        target = ""
        if ep in (run.nxt, run.submit):
            verdict = "met" if p99 < TARGET_P99_MS else "MISSED"
            target = f"  (target p99 < {TARGET_P99_MS:.0f} ms: {verdict})"
        print(
            f"{ep.name:10s} n={len(ep.ms):6d} ({len(ep.ms) / run.seconds:5.1f}/s)  "
            f"p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms  errors: {errors}{target}"
        )
        if ep in (run.nxt, run.submit) and ep.ms:
            # SQLite's busy handler sleeps 1, 2, 5, … 100 ms between tries (328 ms for the first twelve): a
            # writer that waited there past it answers in 0.328 s plus a multiple of 0.1 s.
            slow = sum(1 for ms in ep.ms if ms >= BUSY_BACKOFF_MS)
            print(f"{'':10s} {slow} of {len(ep.ms)} at or over {BUSY_BACKOFF_MS:.0f} ms; slowest {max(ep.ms):.1f} ms")
        if warmup > 0:
            later = [ms for ms, at in zip(ep.ms, ep.starts, strict=True) if at - run.started >= warmup]
            q50, q95, q99 = _pcts(later)
            print(
                f"{'':10s} n={len(later):6d} after the first {warmup:g} s (the server's cold start)  "
                f"p50 {q50:7.1f} ms  p95 {q95:7.1f} ms  p99 {q99:7.1f} ms"
            )
        for sample in ep.samples:
            print(f"    e.g. {sample}")
    if run.exports_done:
        pairs = sum(p for p, _ in run.exports_done)
        secs = sum(s for _, s in run.exports_done)
        each = run.exports_done[0][0]
        print(
            f"export     {len(run.exports_done)} whole exports of {each:,} pairs, {secs / len(run.exports_done):.1f} s "
            f"each: {pairs / secs:,.0f} pairs/s"
            + (
                f"; a last one cut at the deadline after {run.export_partial[0]:,} pairs"
                if run.export_partial[0]
                else ""
            )
        )
    elif run.export_partial[1]:
        pairs, secs = run.export_partial
        print(f"export     none finished; {pairs:,} pairs streamed in {secs:.1f} s: {pairs / secs:,.0f} pairs/s")
    if run.export.errors:
        print(f"export     errors: {dict(run.export.errors)}  e.g. {run.export.samples[:1]}")
    if run.queue_empty:
        print(f"({run.queue_empty} annotators ran out of items: seed more with --fresh)")
    if run.lag.ms:
        _, l95, l99 = _pcts(run.lag.ms)
        print(
            f"load generator's event loop: late by p95 {l95:.1f} ms, p99 {l99:.1f} ms, at most {max(run.lag.ms):.1f} "
            f"ms (what its own stalls could add to a latency)"
        )
    if run.cpu:
        cpus = os.cpu_count() or 1
        requests = len(run.nxt.ms) + len(run.submit.ms) + len(run.dashboard.ms)
        print(
            f"CPU over the run: machine {100 * run.cpu['machine_busy']:.0f}% busy ({cpus} CPUs, other work included); "
            f"server {run.cpu['server']:.0f} CPU-s = {100 * run.cpu['server'] / run.seconds / cpus:.0f}% of the "
            f"machine, {1000 * run.cpu['server'] / max(requests, 1):.1f} ms per request (export included); "
            f"load generator {run.cpu['generator']:.0f} CPU-s = "
            f"{100 * run.cpu['generator'] / run.seconds / cpus:.0f}%"
        )


def check(db: Database, seeded: Seeded, run: Run, *, sqlite: bool, server_log: str) -> bool:
    """The invariants, read from the database after the server stopped; prints each and returns all passed."""
    p, r = {"p": seeded.project_id}, seeded.overlap
    results: list[tuple[str, bool, str]] = []

    def one(sql: str, params: dict[str, Any] | None = None) -> Any:
        with db.read_engine.connect() as conn:
            return conn.execute(text(sql), params or p).scalar()

    new = one("SELECT count(*) FROM judgment WHERE project_id = :p AND id > :m", {**p, "m": seeded.max_judgment_id})
    ok_submits = run.submits_ok
    results.append(
        (
            "new judgments stored == judgments answered 2xx",
            new == ok_submits,
            f"{new} stored, {ok_submits} answered 2xx, {run.submits_failed} not (after {SUBMIT_TRIES} tries)",
        )
    )
    with db.read_engine.connect() as conn:
        stored = set(
            conn.execute(
                text("SELECT id FROM judgment WHERE project_id = :p AND id > :m"), {**p, "m": seeded.max_judgment_id}
            ).scalars()
        )
    answered = set(run.created_ids) | set(run.replayed_ids)
    results.append(
        (
            "the new judgments are exactly those the 2xx answers named",
            stored == answered and len(run.created_ids) == len(set(run.created_ids)),
            f"{len(stored - answered)} stored but not answered, {len(answered - stored)} answered but not stored, "
            f"{len(run.replayed_ids)} replays",
        )
    )
    total = one("SELECT count(*) FROM judgment WHERE project_id = :p")
    results.append(("judgments in total", total == seeded.judgments + ok_submits, f"{total:,}"))
    dup = one(
        "SELECT count(*) FROM (SELECT item_id, annotator_id FROM judgment WHERE project_id = :p "
        "GROUP BY item_id, annotator_id HAVING count(*) > 1) d"
    )
    results.append(("(item, annotator) judged twice", dup == 0, str(dup)))
    over = one(
        "SELECT count(*) FROM (SELECT j.item_id FROM judgment j JOIN item i ON i.id = j.item_id "
        "AND i.round = j.round WHERE j.project_id = :p AND NOT i.is_gold GROUP BY j.item_id "
        "HAVING count(*) > :r) o",
        {**p, "r": r},
    )
    results.append((f"items with more than r = {r} judgments (gold items excepted)", over == 0, str(over)))
    twice = one(
        "SELECT count(*) FROM (SELECT item_id, round, annotator_id FROM assignment WHERE project_id = :p "
        "GROUP BY item_id, round, annotator_id HAVING count(*) > 1) d"
    )
    results.append(("assignments of one (item, round, annotator) held twice", twice == 0, str(twice)))
    multi = one(
        "SELECT count(*) FROM (SELECT annotator_id FROM assignment WHERE project_id = :p AND status = 'leased' "
        "GROUP BY annotator_id HAVING count(*) > 1) m"
    )
    results.append(("annotators holding more than one open lease", multi == 0, str(multi)))
    # claims = live leases + judgments of the current round, and never past r: no slot was handed out twice.
    drift = one(
        "SELECT count(*) FROM item i WHERE i.project_id = :p AND ("
        " i.claims <> (SELECT count(*) FROM assignment a WHERE a.item_id = i.id AND a.round = i.round"
        "   AND a.status = 'leased')"
        " + (SELECT count(*) FROM judgment j WHERE j.item_id = i.id AND j.round = i.round)"
        " OR i.judgment_count <> (SELECT count(*) FROM judgment j WHERE j.item_id = i.id AND j.round = i.round)"
        " OR (NOT i.is_gold AND i.claims > :r))",
        {**p, "r": r},
    )
    results.append(
        ("items whose claims / judgment_count disagree with the rows, or claims > r", drift == 0, str(drift))
    )
    orphans = one(
        "SELECT count(*) FROM judgment j WHERE j.project_id = :p AND j.id > :m AND "
        "(SELECT count(*) FROM verdict v WHERE v.judgment_id = j.id) <> :d",
        {**p, "m": seeded.max_judgment_id, "d": len(DIMS)},
    )
    results.append((f"new judgments without their {len(DIMS)} verdicts", orphans == 0, str(orphans)))
    fives = sum(
        n for ep in (run.nxt, run.submit, run.dashboard, run.export) for s, n in ep.statuses.items() if s[0] == "5"
    )
    results.append(("5xx responses", fives == 0, str(fives)))
    if sqlite:
        locked = sum(ep.locked for ep in (run.nxt, run.submit, run.dashboard, run.export))
        results.append(('error responses that mention "locked"', locked == 0, str(locked)))
        logged = server_log.count("database is locked")
        results.append(('"database is locked" in the server\'s log', logged == 0, str(logged)))
    print("\nchecks (database read after the server stopped):")
    for name, passed, detail in results:
        print(f"  {'ok  ' if passed else 'FAIL'} {name}: {detail}")
    return all(passed for _, passed, _ in results)


# --- databases and the server --------------------------------------------------------------------------------


def _recreate_postgres(server: str, name: str, *, drop_only: bool = False) -> None:
    if name in ("test", "postgres", "template0", "template1"):
        raise SystemExit(f"refusing to drop database {name!r}")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, workers: int, data_dir: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "PREFSTUDIO_DATABASE_URL": url,
        "PREFSTUDIO_SECRET_KEY": SECRET,
        "PREFSTUDIO_ENVIRONMENT": "production",
        "PREFSTUDIO_DATA_DIR": data_dir,
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.1)
    server.terminate()
    raise SystemExit("the server did not answer /healthz")


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine since boot, in clock ticks (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (uvicorn's workers, the export processes), with that
    of their children that have ended (an export's processes, once their forkserver has reaped them)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return total


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    parser.add_argument("--duration", type=float, help="seconds of load (default 300; --sqlite 60)")
    parser.add_argument("--annotators", type=int, help="concurrent annotators (default 50; --sqlite 5)")
    parser.add_argument(
        "--think",
        type=float,
        default=5.0,
        help="mean seconds between an item and its submit (people take 20 s or more for a pair and six dimensions)",
    )
    parser.add_argument("--admin-pause", type=float, default=1.0, help="seconds between dashboard views")
    parser.add_argument("--judgments", type=int, default=1_000_000, help="judgments already in the database")
    parser.add_argument("--fresh", type=int, default=50_000, help="unjudged items to work on")
    parser.add_argument("--overlap", type=int, default=3, help="r, annotators per item")
    parser.add_argument("--gold-share", type=float, default=0.05)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="uvicorn worker processes (2 on this 2-CPU machine: p50 a third of one process's, the export's "
        "Python work no longer holding the GIL every annotator's request needs)",
    )
    parser.add_argument("--no-export", action="store_true", help="leave out the export loop")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432", help="server URL")
    parser.add_argument("--database", default="bench_load", help="PostgreSQL database, created and dropped")
    parser.add_argument("--sqlite-file", default=str(Path(tempfile.gettempdir()) / "prefstudio-load.db"))
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="run again on the database a --keep run left")
    parser.add_argument("--server-log", help="keep the server's output in this file")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="also print the latencies of requests after this many seconds"
    )
    parser.add_argument("--timings", help="write every request as CSV (endpoint, start s, ms) to this file")
    args = parser.parse_args()
    args.duration = args.duration if args.duration is not None else (60.0 if args.sqlite else 300.0)
    args.annotators = args.annotators if args.annotators is not None else (5 if args.sqlite else 50)

    if args.sqlite:
        path = Path(args.sqlite_file)
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        if not args.reuse:
            _recreate_postgres(args.postgres, args.database)
        url = f"{args.postgres}/{args.database}"
    print(f"database: {url}")
    settings = Settings(environment="dev", database_url=url, secret_key=SECRET)
    command.upgrade(alembic_config(url), "head")
    db = make_database(settings)
    passed = False
    try:
        if args.reuse:
            seeded = attach(db, settings)
        else:
            seeded = fill(
                db,
                settings,
                annotators=args.annotators,
                judgments=args.judgments,
                fresh=args.fresh,
                overlap=args.overlap,
                gold_share=args.gold_share,
            )
        with tempfile.TemporaryDirectory() as data_dir:
            log = Path(data_dir) / "server.log"
            server, base = serve(url, args.workers, data_dir, log)
            print(f"load average before the run: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
            print(
                f"load: {args.annotators} annotators (think {args.think:g} s, uniform ×0.5–1.5), one admin on the "
                f"dashboard (every {args.admin_pause:g} s), {'no export' if args.no_export else 'one export loop'}; "
                f"{args.duration:g} s; uvicorn --workers {args.workers}; this machine has {os.cpu_count()} CPUs "
                "shared by the server, the database and this load generator"
            )
            busy0, total0 = _machine_jiffies()
            server0, own0 = _tree_cpu_seconds(server.pid), time.process_time()
            try:
                run = _run_loop(drive(base, seeded, args))
                busy1, total1 = _machine_jiffies()
                run.cpu = {
                    "server": _tree_cpu_seconds(server.pid) - server0,
                    "generator": time.process_time() - own0,
                    "machine_busy": (busy1 - busy0) / max(total1 - total0, 1),
                }
            finally:
                stop(server)
                server_log = log.read_text(errors="replace")
        report(run, args.warmup)
        if args.timings:
            _write_timings(Path(args.timings), run)
        tracebacks = server_log.count("Traceback (most recent call last)")
        if tracebacks:
            print(f"\nserver log: {tracebacks} tracebacks; the last lines of the first:")
            first = server_log[server_log.index("Traceback") :].splitlines()
            end = next((n for n, line in enumerate(first) if line and not line.startswith((" ", "Traceback"))), 20)
            print("\n".join(f"    {line}" for line in first[max(0, end - 12) : end + 1]))
        if args.server_log:
            Path(args.server_log).write_text(server_log)
        passed = check(db, seeded, run, sqlite=args.sqlite, server_log=server_log)
    finally:
        db.dispose()
        if not args.keep:
            if args.sqlite:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{args.sqlite_file}{suffix}").unlink(missing_ok=True)
            else:
                _recreate_postgres(args.postgres, args.database, drop_only=True)
    print("\nall checks passed" if passed else "\nSOME CHECKS FAILED")
    return 0 if passed else 1


def _write_timings(path: Path, run: Run) -> None:
    origin = min((e.starts[0] for e in (run.nxt, run.submit, run.dashboard, run.export) if e.starts), default=0.0)
    with path.open("w") as out:
        out.write("endpoint,start_s,ms\n")
        for endpoint in (run.nxt, run.submit, run.dashboard, run.export, run.lag):
            for started, ms in zip(endpoint.starts, endpoint.ms, strict=True):
                out.write(f"{endpoint.name},{started - origin:.3f},{ms:.1f}\n")


def _run_loop(coro: Coroutine[Any, Any, Run]) -> Run:
    try:
        import uvloop  # uvicorn[standard] brings it; the load generator's own overhead is then smaller
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
