"""Waiting for SQLite's write lock: short write transactions from several threads in several processes at once.

    .venv/bin/python bench/sqlite_writers.py                        # 2 processes × 5 threads, 30 s
    .venv/bin/python bench/sqlite_writers.py --processes 1 --threads 8 --hold-ms 5

Each thread, until the time is up: pauses (uniform 0–2 × ``--gap-ms``), then runs one write transaction through
``Database.session()`` — an insert, ``--hold-ms`` of work (a sleep, so that the figure does not depend on how busy
the CPUs are), commit — and records how long that took from asking to commit. Prints p50 / p95 / p99 / max, how many
took 328 ms or more (the sum of SQLite's first twelve busy-handler sleeps: a writer that waited there that long) and
the "database is locked" errors. Run it from an older checkout (``PYTHONPATH=<checkout>``, the script copied there)
to compare.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db import make_database  # noqa: E402

BUSY_BACKOFF_MS = 328.0


def _settings(url: str, busy_timeout_ms: int) -> Settings:
    return Settings(environment="dev", database_url=url, sqlite_busy_timeout_ms=busy_timeout_ms)


def _process(url: str, args: argparse.Namespace, ready: Any, go: Any, out: Any) -> None:
    db = make_database(_settings(url, args.busy_timeout_ms))
    with db.session(write=False) as s:
        s.execute(text("SELECT count(*) FROM w")).scalar_one()
    ready.put(True)
    go.wait()
    start_at = time.time()
    times: list[float] = []
    locked = [0]
    lock = threading.Lock()

    def thread(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[float] = []
        deadline = start_at + args.seconds
        while time.time() < deadline:
            time.sleep(rng.uniform(0, 2 * args.gap_ms / 1000))
            t0 = time.perf_counter()
            try:
                with db.session() as s:
                    s.execute(text("INSERT INTO w (at) VALUES (:at)"), {"at": time.time()})
                    time.sleep(args.hold_ms / 1000)
            except Exception as exc:  # noqa: BLE001 - counted
                if "locked" not in str(exc):
                    raise
                with lock:
                    locked[0] += 1
                continue
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            times.extend(mine)

    threads = [
        threading.Thread(target=thread, args=(hash((url, n, mp.current_process().name)),)) for n in range(args.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.dispose()
    out.put((times, locked[0]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=5, help="threads per process")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--hold-ms", type=float, default=2.0, help="work inside each transaction")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="mean pause between a thread's transactions")
    parser.add_argument("--busy-timeout-ms", type=int, default=30_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'writers.db'}"
        db = make_database(_settings(url, args.busy_timeout_ms))
        with db.session() as s:
            s.execute(text("CREATE TABLE w (id INTEGER PRIMARY KEY, at REAL NOT NULL)"))
        db.dispose()
        ctx = mp.get_context("spawn")
        ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_process, args=(url, args, ready, go, out)) for _ in range(args.processes)]
        for p in procs:
            p.start()
        for _ in procs:
            ready.get()  # every process started and connected
        go.set()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
    ms = np.array([t for times, _ in results for t in times])
    locked = sum(n for _, n in results)
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    print(
        f"{args.processes} processes × {args.threads} threads, {args.seconds:g} s, hold {args.hold_ms:g} ms, "
        f"gap ~{args.gap_ms:g} ms: {len(ms)} write transactions ({len(ms) / args.seconds:.0f}/s)\n"
        f"ask to commit: p50 {p50:.1f} ms  p95 {p95:.1f} ms  p99 {p99:.1f} ms  max {ms.max():.0f} ms; "
        f"{int((ms >= BUSY_BACKOFF_MS).sum())} at or over {BUSY_BACKOFF_MS:.0f} ms; "
        f'"database is locked": {locked}'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
