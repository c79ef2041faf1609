"""The data explorer at scale: text searches and filtered pages over 1M items, sequential, p50 / p95.

Fills a project once (reused while its item count matches; ``--refill`` to start again) with N items: a prompt of
12 words and two answers of 20 words each drawn from a 5,000-word made-up vocabulary (so a word is in about 1% of
items), answers from four models; every 10th item judged by 3 annotators (overall only, 1 in 20 judgments flagged),
every 200th skipped once with a reason. Then runs, through the explorer's query (``app.explorer.query.explore``,
one session, as the page and the API call it), N=50 of each:

- words: one random vocabulary word (full-text: tsvector GIN / FTS5), newest first;
- substring: six letters from inside a random word (pg_trgm / FTS5 trigram), newest first;
- filtered page: ready, model m2, flagged, judged by a given annotator, newest first, from a random keyset cursor;
- split (extra, 10 runs): split votes sorted by margin — the margin is computed over every judged item.

    PREFSTUDIO_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_explorer python bench/explorer.py
    python bench/explorer.py --sqlite            # /tmp/prefstudio-explorer-bench.db
    python bench/explorer.py --items 200000 --refill
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import Database, make_database  # noqa: E402
from app.explorer.query import explore  # noqa: E402
from app.explorer.schemas import Filters  # noqa: E402
from app.kit.security import hash_password  # noqa: E402
from app.models import Item, Project, User  # noqa: E402
from bench.common import (  # noqa: E402
    ASSIGNMENT_COLUMNS,
    JUDGMENT_COLUMNS,
    VERDICT_COLUMNS,
    alembic_config,
    copy_rows,
    finish_fill,
    stamp,
)

SLUG = "explorer-bench"
SECRET = "bench-secret-key-0123456789-0123456789"
RATERS = 3
MODELS = ["m1", "m2", "m3", "m4"]
ITEM_COLUMNS = [
    "id",
    "project_id",
    "prompt",
    "prompt_hash",
    "meta",
    "status",
    "round",
    "claims",
    "judgment_count",
    "created_at",
]
CANDIDATE_COLUMNS = ["id", "item_id", "round", "position", "text", "model", "params", "created_at"]
RUNS = 50


def vocabulary(n: int = 5000) -> list[str]:
    rng = random.Random(7)
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(3, 5))))
    return sorted(words)


def fill(db: Database, items: int) -> None:
    words = vocabulary()
    rng = random.Random(1)
    now = datetime.now(UTC)
    with db.session() as s:
        pw = hash_password("bench-password")
        users = [User(username=f"explorer-rater{i}", password_hash=pw) for i in range(RATERS)]
        s.add_all(users)
        project = Project(slug=SLUG, name="Explorer bench", k=2, overlap=RATERS)
        s.add(project)
        s.flush()
        project_id, user_ids = project.id, [u.id for u in users]
        base = {
            t: int(s.scalar(text(f"SELECT coalesce(max(id), 0) FROM {t}")) or 0)
            for t in ("item", "candidate", "assignment", "judgment", "verdict")
        }

    def sentence(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    def item_rows() -> Iterator[tuple[Any, ...]]:
        for i in range(1, items + 1):
            prompt = sentence(12) + f" #{i}"
            judged = i % 10 == 0
            yield (
                base["item"] + i,
                project_id,
                json.dumps(prompt),
                hashlib.sha256(prompt.encode()).hexdigest(),
                "{}",
                "ready",
                0,
                RATERS if judged else 0,
                RATERS if judged else 0,
                at,
            )

    def candidate_rows() -> Iterator[tuple[Any, ...]]:
        for i in range(1, items + 1):
            for position in (0, 1):
                cid = base["candidate"] + 2 * (i - 1) + position + 1
                yield cid, base["item"] + i, 0, position, sentence(20), MODELS[(i + position) % 4], "{}", at

    at = stamp(db, now)
    t0 = time.perf_counter()
    copy_rows(db, "item", ITEM_COLUMNS, item_rows())
    copy_rows(db, "candidate", CANDIDATE_COLUMNS, candidate_rows())
    print(f"  items and candidates: {time.perf_counter() - t0:.0f} s", flush=True)
    assignments, judgments, verdicts = [], [], []
    n = 0
    for i in range(10, items + 1, 10):
        item_id = base["item"] + i
        c0 = base["candidate"] + 2 * (i - 1) + 1
        for r, user_id in enumerate(user_ids):
            n += 1
            aid, jid = base["assignment"] + n, base["judgment"] + n
            best = c0 if (i // 10 + r) % 3 else c0 + 1  # two against one on some items, unanimous on others
            assignments.append(
                (aid, project_id, item_id, user_id, 0, "submitted", json.dumps([c0, c0 + 1]), at, at, at)
            )
            judgments.append(
                (jid, project_id, item_id, user_id, aid, 0, "", n % 20 == 0, False, 10.0, f"eb-{n}", 1, at, at)
            )
            verdicts.append((base["verdict"] + n, jid, "overall", "preference", best, c0 + 1 if best == c0 else c0))
    for i in range(7, items + 1, 200):
        n += 1
        aid = base["assignment"] + n
        assignments.append((aid, project_id, base["item"] + i, user_ids[0], 0, "skipped", "[]", at, at, at))
    copy_rows(db, "assignment", ASSIGNMENT_COLUMNS, iter(assignments))
    copy_rows(db, "judgment", JUDGMENT_COLUMNS, iter(judgments))
    copy_rows(db, "verdict", VERDICT_COLUMNS, iter(verdicts))
    with db.write_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE assignment SET skip_reason = 'I do not know this topic' WHERE status = 'skipped' "
                "AND project_id = :p"
            ),
            {"p": project_id},
        )
    finish_fill(db, project_id, sqlite_analyze=True)


def report(name: str, times: list[float], found: list[int]) -> None:
    times.sort()
    p95 = times[max(0, math.ceil(len(times) * 0.95) - 1)]  # nearest rank
    print(
        f"{name:<16} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms   max {times[-1]:7.1f} ms"
        f"   (rows a page: median {statistics.median(found):.0f})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file under /tmp instead")
    parser.add_argument("--refill", action="store_true")
    args = parser.parse_args()
    if args.sqlite:
        url = "sqlite:////tmp/prefstudio-explorer-bench.db"
    else:
        url = os.environ.get("PREFSTUDIO_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench_explorer")
        admin = create_engine(
            url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            name = url.rsplit("/", 1)[1]
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    if args.refill and args.sqlite:
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    command.upgrade(alembic_config(url), "head")
    db = make_database(Settings(environment="dev", database_url=url, secret_key=SECRET))
    with db.session(write=False) as s:
        have = s.scalar(select(func.count()).select_from(Item).join(Project).where(Project.slug == SLUG)) or 0
    if have != args.items:
        with db.session() as s:  # a partial fill too
            s.execute(text("DELETE FROM project WHERE slug = :s"), {"s": SLUG})
            s.execute(text("DELETE FROM \"user\" WHERE username LIKE 'explorer-rater%'"))
        t0 = time.perf_counter()
        print(f"filling {args.items:,} items…", flush=True)
        fill(db, args.items)
        print(f"filled in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"database: {url.split('@')[-1]}, {args.items:,} items, {RUNS} runs each, sequential")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other work shares them)")
    words = vocabulary()
    rng = random.Random(3)
    with db.session(write=False) as s:
        project = s.scalar(select(Project).where(Project.slug == SLUG))
        assert project is not None
        top = int(s.scalar(select(func.max(Item.id)).where(Item.project_id == project.id)) or 0)

        def run(name: str, make: Callable[[], Filters], runs: int = RUNS) -> None:
            explore(s, project=project, filters=make(), limit=50)  # warm
            times, found = [], []
            for _ in range(runs):
                filters = make()
                t0 = time.perf_counter()
                page = explore(s, project=project, filters=filters, limit=50)
                times.append((time.perf_counter() - t0) * 1000)
                found.append(len(page.items))
            report(name, times, found)

        def substring() -> Filters:
            word = rng.choice([w for w in words if len(w) >= 8])
            start = rng.randint(0, len(word) - 6)
            return Filters(q=word[start : start + 6], match="substring", sort="newest")

        run("words", lambda: Filters(q=rng.choice(words), sort="newest"))
        run("two words", lambda: Filters(q=f"{rng.choice(words)} {rng.choice(words)}", sort="newest"))
        run("substring", substring)
        run(
            "filtered page",
            lambda: Filters(
                status="ready",
                model="m2",
                flag="any",
                annotator="explorer-rater1",
                sort="newest",
                after=str(rng.randint(top // 2, top)),
            ),
        )
        run("skip reason", lambda: Filters(skip_reason="this topic", sort="newest", after=str(rng.randint(1, top))))
        run("split by margin", lambda: Filters(split=True, sort="margin"), runs=10)
    db.dispose()


if __name__ == "__main__":
    main()
