"""Agreement figures at scale, from the database: 100k items × 3 raters × 6 dimensions (k = 2).

Fills a project (once; reused while it matches) with 100k items, 3 annotators who each judge every item on
overall + 5 dimensions (a planted truth, each rater right 80% of the time, 5% n.a. off overall), then prints:

- the figures without bootstrap (load from the database + Fleiss' κ, α, percent agreement per dimension,
  Cohen's κ per rater pair, per-annotator figures, gold accuracy, timeline) — target < 2 s — with where the
  time goes;
- the same with 200 bootstrap resamples (the worker's setting), and the bootstrap's share;
- the cache refresh (fingerprint + compute + store) and the fingerprint alone (what a page view pays);
- the dashboard page and the JSON endpoint over HTTP (`prefstudio serve`'s app under uvicorn) against the
  filled cache — target < 200 ms.

    PREFSTUDIO_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/agreement.py
    python bench/agreement.py                 # a SQLite file under /tmp (kept for the next run)
    python bench/agreement.py --refill        # fill again from scratch
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402

from app.agreement import cache, loading, service, stats, units  # noqa: E402
from app.auth.service import create_api_token  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import Database, make_database  # noqa: E402
from app.kit.security import hash_password  # noqa: E402
from app.models import DEFAULT_DIMENSIONS, AgreementCache, Judgment, Project, User  # noqa: E402
from bench.common import (  # noqa: E402
    ASSIGNMENT_COLUMNS,
    ITEM_COLUMNS,
    JUDGMENT_COLUMNS,
    VERDICT_COLUMNS,
    alembic_config,
    bulk,
    finish_fill,
    stamp,
)

RATERS = 3
SLUG = "agreement-bench"
SECRET = "bench-secret-key-0123456789-0123456789"
DIMS = ["overall", *(d["key"] for d in DEFAULT_DIMENSIONS)]


def fill(db: Database, items: int) -> None:
    rng = np.random.default_rng(1)
    now = datetime.now(UTC)
    with db.session() as s:
        pw = hash_password("bench-password")
        users = [User(username=f"rater{i}", password_hash=pw) for i in range(RATERS)]
        s.add_all([*users, User(username="bench-admin", password_hash=pw, role="admin")])
        s.flush()
        project = Project(slug=SLUG, name="Agreement bench", k=2, overlap=RATERS)
        s.add(project)
        s.flush()
        s.execute(
            text("INSERT INTO project_member (project_id, user_id, paused, created_at) VALUES (:p, :u, :f, :t)"),
            [{"p": project.id, "u": u.id, "f": False, "t": stamp(db, now)} for u in users],
        )
        project_id, user_ids = project.id, [u.id for u in users]
    now_stamp = stamp(db, now)
    bulk(
        db,
        "item",
        ITEM_COLUMNS,
        [
            (
                i,
                project_id,
                json.dumps(f"bench prompt {i}"),
                f"{i:064x}",
                "{}",
                False,
                "ready",
                0,
                RATERS,
                RATERS,
                now_stamp,
            )
            for i in range(1, items + 1)
        ],
    )
    bulk(
        db,
        "candidate",
        ["id", "item_id", "round", "position", "text", "params", "created_at"],
        [(2 * i - 1 + p, i, 0, p, f"answer {p}", "{}", now_stamp) for i in range(1, items + 1) for p in (0, 1)],
    )
    # Each rater judges every item; judgments spread over the last 14 days (the page's timeline).
    n = items * RATERS
    item_of = np.repeat(np.arange(1, items + 1), RATERS)
    rater_of = np.tile(np.arange(RATERS), items)
    flipped = rng.random(n) < 0.5  # display order shown
    seconds = rng.gamma(4.0, 5.0, n).round(1)
    ages = np.sort(rng.random(n))[::-1] * 14 * 86400
    assignments, judgments = [], []
    for j in range(n):
        item, first = int(item_of[j]), 2 * int(item_of[j]) - 1
        at = stamp(db, now - timedelta(seconds=float(ages[j])))
        order = json.dumps([first + 1, first] if flipped[j] else [first, first + 1])
        assignments.append((j + 1, project_id, item, user_ids[rater_of[j]], 0, "submitted", order, at, at, at))
        judgments.append(
            (
                j + 1,
                project_id,
                item,
                user_ids[rater_of[j]],
                j + 1,
                0,
                "",
                False,
                False,
                float(seconds[j]),
                f"bench-{j}",
                1,
                at,
                at,
            )
        )
    bulk(
        db,
        "assignment",
        ASSIGNMENT_COLUMNS,
        assignments,
    )
    bulk(
        db,
        "judgment",
        JUDGMENT_COLUMNS,
        judgments,
    )
    verdicts = []
    vid = 0
    for dim in DIMS:
        truth = np.repeat(rng.integers(0, 3, items), RATERS)  # 0: first better, 1: second better, 2: tie
        label = np.where(rng.random(n) < 0.8, truth, rng.integers(0, 3, n))
        na = (rng.random(n) < 0.05) if dim != "overall" else np.zeros(n, dtype=bool)
        for j in range(n):
            vid += 1
            first = 2 * int(item_of[j]) - 1
            if na[j]:
                verdicts.append((vid, j + 1, dim, "na", None, None))
            elif label[j] == 2:
                verdicts.append((vid, j + 1, dim, "tie", None, None))
            else:
                win = first + int(label[j])
                verdicts.append((vid, j + 1, dim, "preference", win, first + 1 - int(label[j])))
    bulk(
        db,
        "verdict",
        VERDICT_COLUMNS,
        verdicts,
    )
    finish_fill(db, project_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def library_versus_counts(ratings: loading.Ratings) -> tuple[float, float, float]:
    """Fleiss' κ and Krippendorff's α of every dimension by statsmodels and krippendorff, and from the category
    counts as the app computes them: (library seconds, counts seconds, largest difference)."""
    annotators = np.unique(ratings.annotator)
    columns = np.searchsorted(annotators, ratings.annotator)
    matrices = [u.data for u in units.matrices(ratings, k=2, dimensions=len(DIMS), columns=columns)]
    t0 = time.perf_counter()
    library = [(stats.fleiss(data, RATERS)[0], stats.alpha(data)) for data in matrices]
    t1 = time.perf_counter()
    counted = []
    for data in matrices:
        counts = stats.category_counts(data)
        ones = np.ones(data.shape[1])
        counted.append((stats.fleiss_weighted(counts, ones, RATERS), stats.alpha_weighted(counts, ones)))
    t2 = time.perf_counter()
    gap = max(abs(a - b) for pair in zip(library, counted, strict=True) for a, b in zip(*pair, strict=True))
    return t1 - t0, t2 - t1, gap


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=service.RESAMPLES)
    parser.add_argument("--refill", action="store_true", help="drop everything and fill again")
    parser.add_argument("--requests", type=int, default=20, help="page GETs to time")
    args = parser.parse_args()
    url = os.environ.get("PREFSTUDIO_DATABASE_URL") or "sqlite:////tmp/prefstudio-agreement-bench.db"
    settings = Settings(environment="dev", database_url=url, secret_key=SECRET)
    command.upgrade(alembic_config(url), "head")  # a kept database gets new migrations (indexes) too
    db = make_database(settings)
    with db.session(write=False) as s:
        try:
            have = s.scalar(select(func.count()).select_from(Judgment).join(Project).where(Project.slug == SLUG))
        except Exception:
            have = None
    if args.refill or have != args.items * RATERS:
        db.dispose()
        command.downgrade(alembic_config(url), "base")
        command.upgrade(alembic_config(url), "head")
        db = make_database(settings)
        t0 = time.perf_counter()
        fill(db, args.items)
        print(
            f"filled {args.items} items × {RATERS} raters × {len(DIMS)} dimensions in {time.perf_counter() - t0:.0f} s"
        )
    backend = "postgresql" if db.is_postgres else "sqlite"

    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == SLUG))
        assert project is not None
        s.execute(AgreementCache.__table__.delete())
        load_s, loaded = _timed(lambda: loading.load(s, project=project), repeat=3)
        ratings = loaded.ratings
        library_s, counts_s, gap = library_versus_counts(ratings)
        plain_s, figures = _timed(lambda: service.compute(s, project=project, resamples=0), repeat=3)
        boot_s, booted = _timed(lambda: service.compute(s, project=project, resamples=args.resamples))
        fp_s, _ = _timed(lambda: cache.fingerprint(s, project=project), repeat=5)
        refresh_s, _ = _timed(lambda: cache.refresh(s, project=project))
        admin = s.scalar(select(User).where(User.username == "bench-admin"))
        assert admin is not None
        token = create_api_token(s, user=admin, scope="api", settings=settings)[1]
    db.dispose()

    print(
        f"backend={backend} items={args.items} raters={RATERS} dimensions={len(DIMS)} verdicts={len(ratings.item)} k=2"
    )
    for d in booted.dimensions:
        ci = d.fleiss_ci
        print(
            f"  {d.dimension:9s} pairs {d.units:6d}  Fleiss κ {d.fleiss_kappa:.3f} "
            f"[{ci.low:.3f}, {ci.high:.3f}]  α {d.alpha:.3f}  agreement {d.percent_agreement:.3f}"
            if ci
            and ci.low is not None
            and d.fleiss_kappa is not None
            and d.alpha is not None
            and d.percent_agreement is not None
            else f"  {d.dimension:9s} pairs {d.units}"
        )
    for p in booted.pairs:
        ci = f" [{p.kappa_ci.low:.3f}, {p.kappa_ci.high:.3f}]" if p.kappa_ci and p.kappa_ci.low is not None else ""
        print(f"  Cohen κ {p.a}–{p.b}: {p.kappa:.3f}{ci} over {p.shared_items} items ({p.shared_units} pairs)")
    for a in figures.annotators:
        print(f"  {a.annotator}: first shown chosen {a.left_choice_rate}, binomial p {a.position_p}")
    print(f"all figures, no bootstrap, load included (best of 3): {plain_s:.2f} s (target < 2 s)")
    print(f"  of which loading (packed-integer queries at once, into numpy arrays): {load_s:.2f} s")
    print(
        f"  Fleiss' κ and α of the {len(DIMS)} dimensions: statsmodels + krippendorff {library_s:.2f} s, from "
        f"category counts (what the app uses) {counts_s:.2f} s; largest difference {gap:.1e}"
    )
    print(
        f"with {args.resamples} bootstrap resamples (κ and α, every dimension): {boot_s:.2f} s "
        f"(bootstrap {boot_s - plain_s:.2f} s)"
    )
    print(f"fingerprint (a page view's staleness check): {fp_s * 1000:.0f} ms; worker refresh: {refresh_s:.2f} s")

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
        h = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=h, timeout=60) as client:
            for path in (f"/projects/{SLUG}/agreement", f"/api/v1/projects/{SLUG}/agreement"):
                times = []
                for _ in range(args.requests + 2):
                    t0 = time.perf_counter()
                    r = client.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, r.text[:500]
                    assert "refreshing" not in r.text and "not computed yet" not in r.text
                times = times[2:]  # warm-up
                print(
                    f"GET {path} from the cache: median {statistics.median(times):.0f} ms, "
                    f"max {max(times):.0f} ms over {len(times)} (target < 200 ms)"
                )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
