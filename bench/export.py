"""Export at scale: ≥ 1M preference pairs in the database → pairs/s and peak RSS of a full streamed export.

Fills a project (once; reused while it matches) with 200k items of k = 4 candidates, judged by 3 annotators
(best/worst, overall and harmless; two follow a planted ranking, the third is right 80% of the time), which
imply about 1M exported pairs. Then, each in a fresh process so that its peak RSS is its own:

- baseline: the same rows read with a bare cursor and thrown away (what the database costs);
- `prefstudio export PROJECT --out FILE` (the command line; same code as the API and snapshots);
- `GET /api/v1/projects/PROJECT/export.jsonl` with an export token, over HTTP (uvicorn), read to the end.

Targets: ≥ 50k pairs/s and < 300 MB peak RSS.

    PREFSTUDIO_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/export.py
    python bench/export.py            # a SQLite file under /tmp (kept for the next run)
    python bench/export.py --refill   # fill again from scratch
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402

from app.auth.service import create_api_token  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import Database, make_database  # noqa: E402
from app.kit.security import hash_password  # noqa: E402
from app.models import Judgment, Project, User  # noqa: E402
from bench.common import (  # noqa: E402
    ASSIGNMENT_COLUMNS,
    ITEM_COLUMNS,
    JUDGMENT_COLUMNS,
    VERDICT_COLUMNS,
    alembic_config,
    bulk,
    finish_fill,
    process_tree,
    stamp,
)

SLUG = "export-bench"
SECRET = "bench-secret-key-0123456789-0123456789"
RATERS = 3
K = 4
ANSWER = "The answer, explained step by step with an example and a caveat. " * 5


def fill(db: Database, items: int) -> None:
    rng = np.random.default_rng(7)
    now = stamp(db, datetime.now(UTC))
    with db.session() as s:
        pw = hash_password("bench-password")
        users = [User(username=f"exporter{i}", password_hash=pw) for i in range(RATERS)]
        s.add_all(users)
        project = Project(slug=SLUG, name="Export bench", k=K, overlap=RATERS)
        s.add(project)
        s.flush()
        project_id, user_ids = project.id, [u.id for u in users]
    item_rows = [
        (
            i,
            project_id,
            json.dumps(f"Bench prompt {i}: explain something useful in a few sentences."),
            f"{i:064x}",
            "{}",
            False,
            "ready",
            0,
            RATERS,
            RATERS,
            now,
        )
        for i in range(1, items + 1)
    ]
    bulk(
        db,
        "item",
        ITEM_COLUMNS,
        item_rows,
    )
    del item_rows
    params = json.dumps({"temperature": 0.8, "top_p": 0.95, "max_tokens": 256})
    bulk(
        db,
        "candidate",
        ["id", "item_id", "round", "position", "text", "model", "params", "seed", "finish_reason", "created_at"],
        [
            (K * (i - 1) + p + 1, i, 0, p, f"{ANSWER}({i}/{p})", "sft-v1", params, p, "stop", now)
            for i in range(1, items + 1)
            for p in range(K)
        ],
    )
    n = items * RATERS
    item_of = np.repeat(np.arange(1, items + 1), RATERS)
    rater_of = np.tile(np.arange(RATERS), items)
    bulk(
        db,
        "assignment",
        ASSIGNMENT_COLUMNS,
        [
            (j + 1, project_id, int(item_of[j]), user_ids[rater_of[j]], 0, "submitted", "[]", now, now, now)
            for j in range(n)
        ],
    )
    bulk(
        db,
        "judgment",
        JUDGMENT_COLUMNS,
        [
            (
                j + 1,
                project_id,
                int(item_of[j]),
                user_ids[rater_of[j]],
                j + 1,
                0,
                f"reason {j % 7}",
                False,
                False,
                12.0,
                f"export-bench-{j}",
                1,
                now,
                now,
            )
            for j in range(n)
        ],
    )
    # Planted ranking: candidate 0 best, 3 worst; the third rater is right 80% of the time.
    noisy = (rater_of == 2) & (rng.random(n) >= 0.8)
    best = np.where(noisy, rng.integers(0, K, n), 0)
    worst = np.where(noisy, (best + rng.integers(1, K, n)) % K, K - 1)
    verdicts = []
    vid = 0
    for j in range(n):
        first = K * (int(item_of[j]) - 1) + 1
        for dim in ("overall", "harmless"):
            vid += 1
            verdicts.append((vid, j + 1, dim, "preference", first + int(best[j]), first + int(worst[j])))
    bulk(
        db,
        "verdict",
        VERDICT_COLUMNS,
        verdicts,
    )
    finish_fill(db, project_id, vacuum=False)


# VmHWM, not ru_maxrss: the latter survives exec and would report the parent's size (it forked the child).
RSS = "\nimport re\nprint('RSS', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"


class TreeMemory:
    """Samples (every 50 ms, in a thread) the memory of a process and all its descendants — the export processes
    included — as the sum of their proportional set sizes (shared pages split between the processes that map
    them), and keeps the peak. A sample costs about 2 ms of CPU (it once cost 18, a core's worth at 20 ms
    intervals, taken from the export it measured on a 2-CPU machine)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_kb = max(self.peak_kb, self.total_kb())

    def total_kb(self) -> int:
        total = 0
        for pid in process_tree(self.root):  # proportional set size: pages the forked processes share count once
            try:
                with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                    rollup = f.read()
            except OSError:
                continue
            at = rollup.find(b"\nPss:")
            total += int(rollup[at + 5 :].split(None, 1)[0]) if at >= 0 else 0
        return total


def _child(code: str, env: dict[str, str]) -> tuple[float, int, int, str]:
    """Run ``code`` in a fresh interpreter; (seconds, its own peak RSS in MB, the peak RSS of it and the processes
    it started, together, in MB, the rest of its stdout)."""
    t0 = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code + RSS], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    with TreeMemory(process.pid) as memory:
        stdout, _ = process.communicate()
    seconds = time.perf_counter() - t0
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, "export")
    lines = stdout.strip().splitlines()
    rss_kb = int(lines[-1].split()[1])
    return seconds, rss_kb // 1024, memory.peak_kb // 1024, "\n".join(lines[:-1]).strip()


BASELINE = """
import sys
from sqlalchemy import text
from app.config import get_settings
from app.db import make_database
db = make_database(get_settings())
n = 0
with db.read_engine.connect().execution_options(stream_results=True, yield_per=10000) as conn:
    for sql in ("SELECT id, external_id, prompt, round FROM item WHERE project_id = :p",
                "SELECT c.id, c.item_id, c.round, c.position, c.text, c.model, c.params, c.seed FROM candidate c "
                "JOIN item i ON i.id = c.item_id WHERE i.project_id = :p",
                "SELECT j.id, j.item_id, j.round, j.annotator_id, j.reason, j.flag_problematic, v.dimension, v.kind, "
                "v.chosen_candidate_id, v.rejected_candidate_id FROM judgment j JOIN verdict v ON v.judgment_id = j.id "
                "WHERE j.project_id = :p AND v.dimension = 'overall'"):
        for row in conn.execute(text(sql), {"p": int(sys.argv[1]) if len(sys.argv) > 1 else PID}):
            n += 1
print(n)
"""


def _http(slug: str, env: dict[str, str]) -> None:
    """The live endpoint: the app under uvicorn in its own process, read to the end by this one."""
    settings = Settings(environment="dev", database_url=env["PREFSTUDIO_DATABASE_URL"], secret_key=SECRET)
    db = make_database(settings)
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == slug))
        owner = s.scalar(select(User).where(User.username == "exporter0"))
        assert project is not None and owner is not None
        _, token = create_api_token(s, user=owner, scope="export", settings=settings, project_id=project.id)
    db.dispose()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        lines = 0
        # Its RSS now, not VmHWM: that would be a moment of warming up (argon2 takes 64 MB to make a hash).
        before = int(Path(f"/proc/{server.pid}/status").read_text().split("VmRSS:")[1].split()[0]) // 1024
        t0 = time.perf_counter()
        memory = TreeMemory(server.pid).__enter__()
        with httpx.stream(
            "GET",
            f"http://127.0.0.1:{port}/api/v1/projects/{slug}/export.jsonl",
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        ) as r:
            r.raise_for_status()
            for chunk in r.iter_raw():
                lines += chunk.count(b"\n")
        seconds = time.perf_counter() - t0
        memory.__exit__()
    finally:
        server.terminate()
        server.wait()
    print(
        f"GET export.jsonl over HTTP (uvicorn in its own process): {lines:,} pairs in {seconds:.1f} s = "
        f"{lines / seconds:,.0f} pairs/s; server RSS {before} MB before the export, with its export processes "
        f"{memory.peak_kb // 1024} MB together at the peak (PSS)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--refill", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("PREFSTUDIO_DATABASE_URL") or "sqlite:////tmp/prefstudio-export-bench.db"
    settings = Settings(environment="dev", database_url=url, secret_key=SECRET)
    if args.refill and url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    command.upgrade(alembic_config(url), "head")
    db = make_database(settings)
    with db.session(write=False) as s:
        have = s.scalar(select(func.count()).select_from(Judgment).join(Project).where(Project.slug == SLUG)) or 0
    if have != args.items * RATERS:
        if have:
            with db.session() as s:
                s.execute(text("DELETE FROM project WHERE slug = :s"), {"s": SLUG})
                s.execute(text("DELETE FROM \"user\" WHERE username LIKE 'exporter%'"))
        t0 = time.perf_counter()
        fill(db, args.items)
        print(f"filled {args.items:,} items × {RATERS} judgments in {time.perf_counter() - t0:.0f} s")
    with db.session(write=False) as s:
        project_id = s.scalar(select(Project.id).where(Project.slug == SLUG))
    db.dispose()
    env = {
        **os.environ,
        "PREFSTUDIO_DATABASE_URL": url,
        "PREFSTUDIO_SECRET_KEY": SECRET,
        "PREFSTUDIO_ENVIRONMENT": "dev",
        "PYTHONPATH": str(ROOT),
    }
    print(f"database: {url.split('@')[-1]}")

    seconds, rss, _, rows = _child(BASELINE.replace("PID", str(project_id)), env)
    print(f"baseline (bare cursor over the same rows): {int(rows):,} rows in {seconds:.1f} s, peak RSS {rss} MB")
    base_s = seconds

    out = Path("/tmp/prefstudio-export-bench.jsonl")
    code = f"from app.cli import cli; cli(['export', '{SLUG}', '--out', '{out}'], standalone_mode=False)"
    seconds, rss, together, _ = _child(code, env)
    pairs = sum(1 for _ in out.open("rb"))
    size = out.stat().st_size
    out.unlink()
    print(
        f"prefstudio export --out: {pairs:,} pairs ({size / 1e6:,.0f} MB) in {seconds:.1f} s = "
        f"{pairs / seconds:,.0f} pairs/s, peak RSS {rss} MB, with its export processes {together} MB together (PSS) "
        f"(target ≥ 50,000 pairs/s, < 300 MB); {seconds / base_s:.1f}× the bare read"
    )

    if not args.skip_http:
        _http(SLUG, env)


if __name__ == "__main__":
    main()
