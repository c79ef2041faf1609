"""Next-item and submit latency over HTTP, with a large project already in the database.

Seeds ITEMS items (k=2) with bulk inserts, starts `prefstudio serve` (uvicorn, one process) on a free port,
and has ANNOTATORS clients pull-and-submit in sequence, each through the JSON API with a bearer token.
Prints p50 / p95 / p99 in milliseconds for next-item and submit; then the same for one more annotator who is far
ahead of the others: AHEAD items in progress that only they have judged (left at one judgment each, waiting for the
others), which next-item, fullest first, must not walk through one by one.

    PREFSTUDIO_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/next_item.py
    python bench/next_item.py            # a temporary SQLite file
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import insert, select, text, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402

from app.auth.service import create_api_token  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_database  # noqa: E402
from app.kit.security import hash_password  # noqa: E402
from app.models import Assignment, Candidate, Item, Project, ProjectMember, User  # noqa: E402

ITEMS = int(os.environ.get("BENCH_ITEMS", "100000"))
ANNOTATORS = int(os.environ.get("BENCH_ANNOTATORS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "100"))
AHEAD = int(os.environ.get("BENCH_AHEAD", "3000"))
SECRET = "bench-secret-key-0123456789-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str) -> list[str]:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("postgresql://", "postgresql+psycopg://"))
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    settings = Settings(environment="dev", database_url=url, secret_key=SECRET)
    db = make_database(settings)
    tokens = []
    with db.session() as s:
        pw = hash_password("bench-password")
        users = [User(username=f"bench{i}", password_hash=pw) for i in range(ANNOTATORS)]
        s.add_all(users)
        project = Project(slug="bench", name="Bench", k=2, overlap=3)
        s.add(project)
        s.flush()
        s.add_all(ProjectMember(project_id=project.id, user_id=u.id) for u in users)
        t0 = time.perf_counter()
        for start in range(0, ITEMS, 5000):
            rows = [
                {
                    "project_id": project.id,
                    "prompt": f"bench prompt {i}",
                    "prompt_hash": f"{i:064x}",
                    "meta": {},
                    "status": "ready",
                    "round": 0,
                    "claims": 0,
                    "judgment_count": 0,
                }
                for i in range(start, min(start + 5000, ITEMS))
            ]
            ids = s.scalars(insert(Item).returning(Item.id), rows).all()
            s.execute(
                insert(Candidate),
                [
                    {"item_id": item_id, "round": 0, "position": p, "text": f"answer {p}", "params": {}}
                    for item_id in ids
                    for p in (0, 1)
                ],
            )
        print(f"seeded {ITEMS} items in {time.perf_counter() - t0:.1f} s")
        # The one far ahead: judged the last AHEAD items alone (submitted assignments, one claim each).
        ahead = User(username="bench-ahead", password_hash=pw)
        s.add(ahead)
        s.flush()
        s.add(ProjectMember(project_id=project.id, user_id=ahead.id))
        theirs = s.scalars(select(Item.id).order_by(Item.id.desc()).limit(AHEAD)).all()
        now = datetime.now(UTC)
        if theirs:  # (an empty list would insert one row of defaults)
            s.execute(
                insert(Assignment),
                [
                    {
                        "project_id": project.id,
                        "item_id": item_id,
                        "annotator_id": ahead.id,
                        "status": "submitted",
                        "display_order": [],
                        "leased_at": now,
                        "lease_expires_at": now,
                    }
                    for item_id in theirs
                ],
            )
        s.execute(update(Item).where(Item.id.in_(theirs)).values(claims=1))
        for u in [*users, ahead]:
            tokens.append(create_api_token(s, user=u, scope="api", settings=settings)[1])
    with db.write_engine.connect() as conn:  # the planner's statistics, as autovacuum would gather them
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    db.dispose()
    return tokens


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if len(values) > 1 else values[0]


def main() -> None:
    tmp = tempfile.mkdtemp()
    url = os.environ.get("PREFSTUDIO_DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
    tokens = seed(url)
    port = _free_port()
    env = {
        **os.environ,
        "PREFSTUDIO_DATABASE_URL": url,
        "PREFSTUDIO_SECRET_KEY": SECRET,
        "PREFSTUDIO_ENVIRONMENT": "production",
    }
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
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        nxt: list[float] = []
        sub: list[float] = []
        ahead: list[float] = []
        with httpx.Client(base_url=base) as client:
            for r in range(ROUNDS):
                for n, token in enumerate(tokens):
                    h = {"Authorization": f"Bearer {token}"}
                    t0 = time.perf_counter()
                    a = client.post("/api/v1/projects/bench/next", headers=h).json()["assignment"]
                    (ahead if n == len(tokens) - 1 else nxt).append((time.perf_counter() - t0) * 1000)
                    first, last = a["candidates"][0]["id"], a["candidates"][-1]["id"]
                    body = {
                        "assignment_id": a["assignment_id"],
                        "submit_key": f"bench-{r}-{n}-{a['assignment_id']}",
                        "verdicts": {
                            d["key"]: {"kind": "preference", "chosen": first, "rejected": last} for d in a["dimensions"]
                        },
                    }
                    t0 = time.perf_counter()
                    resp = client.post("/api/v1/projects/bench/judgments", json=body, headers=h)
                    if n < len(tokens) - 1:
                        sub.append((time.perf_counter() - t0) * 1000)
                    assert resp.status_code == 201, resp.text
        backend = url.split(":", 1)[0]
        print(f"backend={backend} items={ITEMS} requests={len(nxt)} (sequential, one uvicorn process)")
        for name, values in (("next-item", nxt), ("submit", sub), (f"next-item, {AHEAD:,} items ahead", ahead)):
            print(
                f"{name:10s} p50 {pct(values, 50):6.1f} ms   p95 {pct(values, 95):6.1f} ms   p99 {pct(values, 99):6.1f} ms"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
