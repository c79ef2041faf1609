"""The progress shown beside each item: the annotator's judged count and fair share, the project's finished items.

The project-wide counts read every item row of the project, so each server process keeps them for a few seconds
(``counts_ttl``) and, once they lapse, serves them on while one background thread counts them again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, Engine, Select, func, or_, select
from sqlalchemy.orm import Session

from app.annotation.overlap import complete_clause, target_clause
from app.annotation.tallies import judged_count
from app.db import Database, serial_plan
from app.kit.cache import Cache
from app.models import AnnotatorTally, Item, Project, ProjectMember, User

log = logging.getLogger(__name__)

# Project-wide counts on the annotation page may lag this many seconds: 5, or one per 10,000 items in larger
# projects (at most a minute), so that each server process spends about 1% of a CPU recounting whatever the size
# (the count reads every item row: 100 ms at 370k items, and requests that arrive meanwhile share the CPUs).
_COUNTS_TTL = 5.0
_COUNTS_TTL_ITEMS = 10_000
_COUNTS_TTL_MAX = 60.0


@dataclass
class Progress:
    judged_by_me: int
    my_target: int
    items_done: int
    items_total: int


class ProjectCounts(NamedTuple):
    items: int  # ready items
    finished: int  # ready items with the judgments they want (r, or their target with adaptive overlap)
    members: int  # members who share the work (``_annotating_members``)
    wanted: int = 0  # the judgments the ready items want in all


class KeptCounts(NamedTuple):
    counts: ProjectCounts
    fresh_until: float  # time.monotonic() after which a request has them counted again


CountsKey = tuple[str, int, datetime]

# Keyed by (database URL, project id, project creation time): the URL and the creation time tell apart projects
# of the same id in different databases, or deleted and made again (tests do both). At most 1,000 projects, the
# least recently used pushed out. An entry is never dropped for being stale: past ``fresh_until`` it is still
# served, and the first request to find it so queues a recount that replaces it (``project_counts``).
project_counts_cache: Cache[CountsKey, KeptCounts] = Cache("annotation.project_counts", 1000)
_recounting: set[CountsKey] = set()  # keys whose recount is queued or running
_recounting_lock = threading.Lock()
# Lapsed counts are recounted here, off the request: one thread, so a process never counts a project twice at once.
_recount_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="project-counts")


def counts_ttl(items: int) -> float:
    """Seconds a project's counts are served before they are counted again."""
    return min(_COUNTS_TTL_MAX, max(_COUNTS_TTL, items / _COUNTS_TTL_ITEMS))


# A project's overlap r and r_min (None: every item wants r), which say when an item is finished.
Overlap = tuple[int, int | None]


def _count_project(conn: Connection, project_id: int, wants: Overlap) -> ProjectCounts:
    with serial_plan(conn):  # a scan of the project's items, every few seconds per process
        totals = conn.execute(
            select(
                func.count(),
                func.count().filter(complete_clause(*wants)),
                func.coalesce(func.sum(target_clause(*wants)), 0),
            ).where(Item.project_id == project_id, Item.status == "ready")
        ).one()
    members = int(conn.scalar(_annotating_members(project_id)) or 0)
    return ProjectCounts(int(totals[0]), int(totals[1]), members, int(totals[2]))


def _annotating_members(project_id: int) -> Select[tuple[int]]:
    """The members who share the project's work: its annotators, and an admin member only once they have judged
    one of its items (an admin who only runs the project would otherwise shrink everybody's fair share)."""
    has_judged = (
        select(AnnotatorTally.annotator_id)
        .where(
            AnnotatorTally.project_id == project_id,
            AnnotatorTally.annotator_id == ProjectMember.user_id,
            AnnotatorTally.judged > 0,
        )
        .exists()
    )
    return (
        select(func.count())
        .select_from(ProjectMember)
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == project_id, or_(User.role == "annotator", has_judged))
    )


def _keep(key: CountsKey, counts: ProjectCounts) -> None:
    project_counts_cache.put(key, KeptCounts(counts, time.monotonic() + counts_ttl(counts.items)))


def warm_counts(db: Database, *, projects: int = 20) -> int:
    """Count the newest ``projects`` projects into this process's cache (before a server takes requests, so
    that the first next-item of each does not count hundreds of thousands of items); returns how many."""
    with db.read_engine.connect() as conn:
        rows = conn.execute(
            select(Project.id, Project.overlap, Project.overlap_min, Project.created_at)
            .order_by(Project.id.desc())
            .limit(projects)
        ).all()
        url = str(db.write_engine.url)
        for project_id, overlap, overlap_min, created_at in rows:
            _keep((url, project_id, created_at), _count_project(conn, project_id, (overlap, overlap_min)))
    return len(rows)


def _recount(engine: Engine, key: CountsKey, project_id: int, wants: Overlap) -> None:
    try:
        with engine.connect() as conn:
            _keep(key, _count_project(conn, project_id, wants))
    except Exception:  # the lapsed counts stay; the next request that finds them lapsed tries again
        log.exception("recounting project %s", project_id)
    finally:
        with _recounting_lock:
            _recounting.discard(key)


def project_counts(session: Session, project: Project) -> ProjectCounts:
    """(ready items, finished items, members, judgments wanted): counted at most every few seconds per project,
    so that pulling the next item stays cheap in a project of 100k items.

    Only the first request of a process counts; later, lapsed counts are served while a background thread
    recounts them. (A request that recounted itself paid a scan of the project's items — 100 ms and more with
    400k items — and one next-item in fifty did, which was the whole of its p99.)
    """
    key = (str(session.get_bind().engine.url), project.id, project.created_at)
    kept = project_counts_cache.get(key)
    if kept is not None:
        with _recounting_lock:
            if kept.fresh_until <= time.monotonic() and key not in _recounting:
                _recounting.add(key)
                engine = session.info.get("read_engine") or session.get_bind().engine
                _recount_pool.submit(_recount, engine, key, project.id, (project.overlap, project.overlap_min))
        return kept.counts
    counts = _count_project(session.connection(), project.id, (project.overlap, project.overlap_min))
    _keep(key, counts)
    return counts


def progress(session: Session, *, project: Project, annotator: User) -> Progress:
    """My judged count, my fair share of the project's work, and the project's finished items."""
    judged = judged_count(session, project=project, annotator=annotator)
    items_total, items_done, members, wanted = project_counts(session, project)
    # Each annotator judges an item at most once: with fewer members than an item wants, everybody judges all.
    share = math.ceil(wanted / max(members, 1))
    return Progress(
        judged_by_me=judged,
        my_target=min(items_total, share),
        items_done=items_done,
        items_total=items_total,
    )
