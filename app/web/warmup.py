"""What a server process does once, before and around serving, so that its requests do not pay for it.

Each mechanism, and the measurement behind it (the commits that added them hold the runs):

- **Warm-up before the first request** (``warm_up``): open some database connections, count the newest projects
  for the annotation page, compile every template and make the password check's stand-in hash. Without it the
  first second of requests paid for all of it at once: next-item took up to 1.7 s for the first 1.8 s of a load
  run; with it, up to 0.8 s for the first 0.9 s, then 30 ms.
- **A 1 ms interpreter switch interval** (``SWITCH_INTERVAL``; Python's default is 5 ms): a request thread whose
  database answer has arrived waits at most this long for the interpreter lock while another thread computes,
  and a request makes ~15 such round trips. Next-item / submit p99 under load, back-to-back pairs at 5 ms and
  1 ms: 347 → 257 and 233 → 209 ms; 392 → 290 and 286 → 248 ms.
- **Start-up objects frozen out of the garbage collector's sight** (``gc.freeze``, setting ``gc_freeze``): a full
  collection walked the 150k objects start-up made for about 105 ms holding the interpreter lock, every few
  hundred requests, and each time every request of the process waited (the clusters of slow next-items and
  submits under load). Off for apps started inside a longer process, such as the tests.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from app.annotation.progress import warm_counts
from app.db import Database
from app.kit.security import dummy_hash
from app.templating import compile_templates

log = logging.getLogger("prefstudio")
SWITCH_INTERVAL = 0.001
WARM_CONNECTIONS = 8  # opened before serving (of the pool's 20 on PostgreSQL)


def warm_up(db: Database) -> None:
    """Before a server process takes requests: open some database connections, count the newest projects for
    the annotation page, compile every template and make the password check's stand-in hash."""
    engine = db.read_engine
    opened = [engine.connect() for _ in range(min(WARM_CONNECTIONS, engine.pool.size()))]  # type: ignore[attr-defined]
    for conn in opened:
        conn.close()
    warm_counts(db)
    compile_templates()
    dummy_hash()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The server process's start and end: the switch interval, the warm-up, then the freeze while it serves."""
    freeze = app.state.settings.gc_freeze
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        await run_in_threadpool(warm_up, app.state.db)
    except Exception:  # a database that is down now is reported by the requests (and /healthz) instead
        log.exception("warming up")
    if freeze:
        gc.collect()
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()  # an app started and stopped within a longer process leaves nothing pinned
