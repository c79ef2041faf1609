"""The agreement figures the worker keeps, and what the pages read from them.

The worker ``refresh``es a project's row in ``agreement_cache`` whenever the ``fingerprint`` of what the figures
depend on moves; ``current`` / ``current_version`` give a page the figures to show: the row when fresh, computed
on the spot for a small project, otherwise the stale row while the worker catches up. Two process-local caches
(the parsed row, a large project's recent fingerprint) spare each page view the work of the last one.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Text, cast, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.agreement.schemas import AgreementOut, CachedAgreementOut
from app.agreement.service import RESAMPLES, compute
from app.db import serial_plan
from app.kit.cache import Cache
from app.models import (
    IS_GOLD,
    AgreementCache,
    AnnotatorTally,
    Item,
    Judgment,
    Project,
    ProjectMember,
    Suggestion,
    User,
    utcnow,
)

# Projects with at most this many judgments are computed on the spot when the cache is missing or stale
# (tens of milliseconds); bigger ones wait for the worker.
INLINE_JUDGMENTS = 2000
# Bump when the figures change meaning or shape: every cache becomes stale.
FIGURES_VERSION = 4  # 4: the judge section and judge rows
FINGERPRINT_TTL = 5.0  # seconds a large project's fingerprint serves the page views of a process


@dataclass
class Fingerprint:
    """What the figures depend on, in a few cheap aggregate queries; a different ``source`` means stale."""

    source: str
    judgments: int


def fingerprint(session: Session, *, project: Project) -> Fingerprint:
    """Judgments (count, newest change: a submit or an edit), items (count, sum of candidate rounds: a
    regeneration raises it), gold answers, the judges' suggestions (count, newest id), members (paused, names,
    roles) and the project's settings — what ``compute`` reads. Adjudication decisions are not in it: they
    change exports, not agreement."""
    # The count from the annotators' tallies (kept in each submit's transaction: exact), the newest change from
    # the end of an index: counting a million judgments took 70 ms of both CPUs (a parallel plan) each time.
    n = (
        session.scalar(
            select(func.coalesce(func.sum(AnnotatorTally.judged), 0)).where(AnnotatorTally.project_id == project.id)
        )
        or 0
    )
    last_change = session.scalar(select(func.max(Judgment.updated_at)).where(Judgment.project_id == project.id))
    # Items are counted from an index only (migration 0006); on PostgreSQL by this process alone, not in a
    # parallel plan that would take every CPU from the annotators' requests for its duration.
    with serial_plan(session):
        items, rounds = session.execute(
            select(func.count(), func.coalesce(func.sum(Item.round), 0)).where(Item.project_id == project.id)
        ).one()
    gold = session.execute(  # as stored: the text changes when the answer does, and is not decoded (1,200: 5 ms)
        select(Item.id, cast(Item.gold, Text)).where(Item.project_id == project.id, IS_GOLD).order_by(Item.id)
    ).all()
    # Suggestions are only ever added (a judge job) or deleted with their item or round: count and newest id.
    suggestions = list(
        session.execute(select(func.count(), func.max(Suggestion.id)).where(Suggestion.project_id == project.id)).one()
    )
    members = session.execute(
        select(ProjectMember.user_id, ProjectMember.paused, User.username, User.role)
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == project.id)
        .order_by(ProjectMember.user_id)
    ).all()
    parts = [
        FIGURES_VERSION,
        [n, str(last_change), items, int(rounds or 0)],
        [[i, g] for i, g in gold],
        suggestions,
        [list(m) for m in members],
        [
            project.slug,
            project.k,
            project.overlap,
            project.dimension_keys,
            project.gold_min_accuracy,
            project.cohen_min_items,
            project.judge,  # which judge is the primary
        ],
    ]
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]
    return Fingerprint(source=f"v{FIGURES_VERSION} judgments={n} {digest}", judgments=int(n))


def store(session: Session, *, project_id: int, figures: AgreementOut, source: str, compute_ms: float) -> None:
    """Write (or replace) a project's cached figures; concurrent writers do not collide."""
    values = {
        "project_id": project_id,
        "figures": figures.model_dump(mode="json"),
        "source": source,
        "compute_ms": round(compute_ms, 1),
        "computed_at": utcnow(),
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(AgreementCache).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[AgreementCache.project_id],
            set_={k: statement.excluded[k] for k in values if k != "project_id"},
        )
    )
    cached = session.get(AgreementCache, project_id)
    if cached is not None:
        session.expire(cached)


def stale_mark(session: Session, *, project: Project) -> Fingerprint | None:
    """The fingerprint to store with new figures if the cache is missing or stale; None if it is fresh."""
    mark = fingerprint(session, project=project)
    source = session.scalar(select(AgreementCache.source).where(AgreementCache.project_id == project.id))
    return None if source == mark.source else mark


def timed_compute(session: Session, *, project: Project, resamples: int = RESAMPLES) -> tuple[AgreementOut, float]:
    """``compute`` and how long it took (ms)."""
    started = time.perf_counter()
    figures = compute(session, project=project, resamples=resamples)
    return figures, (time.perf_counter() - started) * 1000


def refresh(session: Session, *, project: Project, force: bool = False, resamples: int = RESAMPLES) -> bool:
    """Recompute and store the figures if what they depend on changed (or ``force``); True if recomputed."""
    # The fingerprint is taken before computing: a judgment that lands meanwhile leaves the cache stale.
    mark = stale_mark(session, project=project) if not force else fingerprint(session, project=project)
    if mark is None:
        return False
    figures, ms = timed_compute(session, project=project, resamples=resamples)
    store(session, project_id=project.id, figures=figures, source=mark.source, compute_ms=ms)
    return True


# A version of a project's cache row: (project id, computed_at, source). ``store`` always sets a new
# ``computed_at``, so a version is never reused for other figures.
CacheVersion = tuple[int, datetime, str]

# The cache rows' figures as parsed (about 1 MB for 50 annotators): parsing them took ~15 ms a view. Keyed by
# the row's version; 16 entries, least recently used out, no TTL. An entry never goes stale: new figures are a
# new version, and the stale flag is set on a copy at each view.
PARSED_FIGURES: Cache[CacheVersion, CachedAgreementOut] = Cache("agreement.parsed_figures", 16)


@dataclass(frozen=True)
class Current:
    """The figures to show and, when they come from the cache row, its version (None: computed now)."""

    figures: CachedAgreementOut | None
    version: CacheVersion | None


def _fingerprint_life(mark: Fingerprint) -> float:
    """Seconds a fingerprint is kept: ``FINGERPRINT_TTL`` for a project too large to compute inline, else none."""
    return FINGERPRINT_TTL if mark.judgments > INLINE_JUDGMENTS else 0.0


# A large project's fingerprint, for the page views of this process (its counts read a million index entries;
# an admin refreshing the dashboard paid them on every view). Keyed by (database URL, project id, the project's
# creation time: ids restart in a recreated database); 1,000 entries, least recently used out; each lives
# ``FINGERPRINT_TTL`` seconds, a small project's not at all. It goes stale with the next judgment, item, member
# or setting change, so for those few seconds a page may call stale figures fresh — the worker takes that long
# to notice anyway.
RECENT_FINGERPRINTS: Cache[tuple[str, int, datetime], Fingerprint] = Cache(
    "agreement.fingerprints", 1000, ttl=_fingerprint_life
)


def _recent_fingerprint(session: Session, *, project: Project) -> Fingerprint:
    """The project's fingerprint: from ``RECENT_FINGERPRINTS`` while it lives there, else taken now."""
    key = (str(session.get_bind().engine.url), project.id, project.created_at)
    mark = RECENT_FINGERPRINTS.get(key)
    if mark is None:
        mark = fingerprint(session, project=project)
        RECENT_FINGERPRINTS.put(key, mark)
    return mark


def current_version(session: Session, *, project: Project) -> Current:
    """``current`` and the version of the cache row the figures come from, for caches keyed by it.

    The figures read from the cache row are shared between the requests of this process: do not mutate them."""
    mark = _recent_fingerprint(session, project=project)
    head = session.execute(
        select(AgreementCache.computed_at, AgreementCache.source).where(AgreementCache.project_id == project.id)
    ).one_or_none()
    fresh = head is not None and head.source == mark.source
    if not fresh and mark.judgments <= INLINE_JUDGMENTS:
        figures, ms = timed_compute(session, project=project)
        now = CachedAgreementOut(**figures.model_dump(), computed_at=utcnow(), compute_ms=round(ms, 1), stale=False)
        return Current(now, None)
    if head is None:
        return Current(None, None)
    version: CacheVersion = (project.id, head.computed_at, head.source)
    parsed = PARSED_FIGURES.get(version)
    if parsed is None:
        cached = session.get(AgreementCache, project.id, populate_existing=True)
        if cached is None:  # deleted meanwhile
            return Current(None, None)
        # Keyed by the row as read now: a worker may have replaced it since ``head``.
        version = (project.id, cached.computed_at, cached.source)
        parsed = CachedAgreementOut(
            **cached.figures, computed_at=cached.computed_at, compute_ms=cached.compute_ms, stale=False
        )
        PARSED_FIGURES.put(version, parsed)
    # A shallow copy: only ``stale`` differs between views of one version.
    return Current(parsed.model_copy(update={"stale": version[2] != mark.source}), version)


def current(session: Session, *, project: Project) -> CachedAgreementOut | None:
    """The figures to show: the cache when fresh; computed now for a small project whose cache is missing or
    stale; otherwise the stale cache (``stale``: the worker is recomputing), or None if there is none yet."""
    return current_version(session, project=project).figures
