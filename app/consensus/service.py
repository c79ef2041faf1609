"""Consensus beyond the majority: a Dawid–Skene fit per project and dimension, kept in ``consensus_fit``.

The worker refreshes fits whose fingerprint moved (``tasks``); ``posteriors`` reads one (fitting it on the spot
when missing or stale, if asked); ``annotator_reliability`` only ever reads.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.agreement.cache import INLINE_JUDGMENTS
from app.consensus import pool, stats
from app.consensus.loading import Labels, load_labels, pair_index
from app.consensus.schemas import AnnotatorReliability, ConsensusOut, DimensionFit
from app.db import serial_plan
from app.kit.cache import Cache
from app.models import IS_GOLD, OVERALL, AnnotatorTally, ConsensusFit, Item, Judgment, Project, User, utcnow

# Bump when the fit changes meaning: every stored fit becomes stale.
MODEL_VERSION = 1


@dataclass
class Posteriors:
    """One project × dimension fit: each annotator's reliability and each voted pair's posterior."""

    source: str  # fingerprint of the judgments it saw
    reliability: dict[int, float]  # annotator id → reliability 0..1
    items: NDArray[np.int64] = field(repr=False)  # sorted by (item, pair)
    pairs: NDArray[np.int64] = field(repr=False)  # index into pair_index(k)
    p: NDArray[np.float32] = field(repr=False)  # P(i ≻ j), P(j ≻ i), P(tie)
    k: int = 2
    labels: dict[int, int] = field(default_factory=dict)  # annotator id → pair labels their reliability rests on
    fitted_at: datetime | None = None
    fit_ms: float = 0.0
    keys: NDArray[np.int64] = field(init=False, repr=False)  # item * 8 + pair, sorted

    def __post_init__(self) -> None:
        self.keys = self.items * 8 + self.pairs
        self._pair_at = {pair: n for n, pair in enumerate(pair_index(self.k))}

    def of(self, item_id: int, pair: tuple[int, int]) -> tuple[float, float, float] | None:
        """(P(i≻j), P(j≻i), P(tie)) for canonical positions i < j of the item's current round; None: no votes."""
        n = self._pair_at.get(pair)
        if n is None:
            return None
        key = item_id * 8 + n
        at = int(np.searchsorted(self.keys, key))
        if at >= len(self.keys) or self.keys[at] != key:
            return None
        a, b, c = (float(x) for x in self.p[at])
        return a, b, c


def fingerprint(session: Session, *, project: Project) -> str:
    """What a fit depends on, in a few cheap aggregate queries: judgments (count, newest change), items (count,
    sum of candidate rounds), which items are gold, and the settings that decide the pairs."""
    n = session.scalar(
        select(func.coalesce(func.sum(AnnotatorTally.judged), 0)).where(AnnotatorTally.project_id == project.id)
    )
    last_change = session.scalar(select(func.max(Judgment.updated_at)).where(Judgment.project_id == project.id))
    with serial_plan(session):
        items, rounds = session.execute(
            select(func.count(), func.coalesce(func.sum(Item.round), 0)).where(Item.project_id == project.id)
        ).one()
    gold = list(session.scalars(select(Item.id).where(Item.project_id == project.id, IS_GOLD).order_by(Item.id)))
    parts = [MODEL_VERSION, [n, str(last_change), items, int(rounds or 0)], gold, [project.k, project.dimension_keys]]
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:40]
    return f"v{MODEL_VERSION} judgments={n} {digest}"


def _judged(session: Session, *, project: Project) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(AnnotatorTally.judged), 0)).where(AnnotatorTally.project_id == project.id)
        )
        or 0
    )


def _dimensions(project: Project) -> list[str]:
    return [OVERALL, *project.dimension_keys]


def _job(labels: Labels, dimension: int) -> tuple[NDArray[np.int64], pool.Job]:
    """One dimension's DS input (task = (item, pair); worker = (annotator, orientation)) and its task keys."""
    mine = labels.dimension == dimension
    keys, task = np.unique(labels.item[mine] * 8 + labels.pair[mine], return_inverse=True)
    worker = stats.worker_codes(labels.annotator[mine], labels.shown_first[mine])
    return keys, (task.astype(np.int64), worker, labels.label[mine], len(keys))


def _posteriors(keys: NDArray[np.int64], fit: stats.Fit, *, source: str, k: int, ms: float) -> Posteriors:
    items, pairs = np.divmod(keys, 8)
    return Posteriors(
        source=source,
        reliability={int(a): float(r) for a, r in zip(fit.annotators, fit.reliability, strict=True)},
        labels={int(a): int(n) for a, n in zip(fit.annotators, fit.labels, strict=True)},
        items=items,
        pairs=pairs,
        p=fit.posterior.astype(np.float32),
        k=k,
        fitted_at=utcnow(),
        fit_ms=ms,
    )


def fit_dimension(labels: Labels, dimension: int, *, source: str, k: int) -> Posteriors:
    """Fit DS on one dimension's labels."""
    started = time.perf_counter()
    keys, job = _job(labels, dimension)
    fit = stats.dawid_skene(*job)
    return _posteriors(keys, fit, source=source, k=k, ms=(time.perf_counter() - started) * 1000)


def fit_labels(labels: Labels, dimensions: list[str], *, source: str, k: int) -> dict[str, Posteriors]:
    """Fit every dimension (at the same time when big enough: ``pool``); each ``fit_ms`` is the wall time shared
    out by label count."""
    started = time.perf_counter()
    prepared = [_job(labels, n) for n in range(len(dimensions))]
    fits = pool.fit_all([job for _, job in prepared])
    ms = (time.perf_counter() - started) * 1000
    total = max(1, len(labels.label))
    return {
        d: _posteriors(keys, fit, source=source, k=k, ms=ms * len(job[0]) / total)
        for d, (keys, job), fit in zip(dimensions, prepared, fits, strict=True)
    }


def fit_project(session: Session, *, project: Project, source: str) -> dict[str, Posteriors]:
    """Read the project's labels once and fit every dimension; ``fit_ms`` includes each one's share of the read."""
    started = time.perf_counter()
    labels = load_labels(session, project=project)
    load_ms = (time.perf_counter() - started) * 1000
    dims = _dimensions(project)
    fits = fit_labels(labels, dims, source=source, k=project.k)
    total = max(1, len(labels.label))
    for fit in fits.values():
        fit.fit_ms += load_ms * sum(fit.labels.values()) / total
    return fits


def _encoded(fit: Posteriors) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, item=fit.items, pair=fit.pairs.astype(np.int8), p=fit.p)
    return buffer.getvalue()


def _decoded(row: ConsensusFit, k: int) -> Posteriors:
    with np.load(io.BytesIO(row.posteriors)) as arrays:
        items, pairs, p = arrays["item"], arrays["pair"].astype(np.int64), arrays["p"]
    return Posteriors(
        source=row.source,
        reliability={int(a): float(v[0]) for a, v in row.reliability.items()},
        labels={int(a): int(v[1]) for a, v in row.reliability.items()},
        items=items,
        pairs=pairs,
        p=p,
        k=k,
        fitted_at=row.fitted_at,
        fit_ms=row.fit_ms,
    )


def store(session: Session, *, project_id: int, dimension: str, fit: Posteriors) -> None:
    """Write (or replace) one stored fit; concurrent writers do not collide."""
    values = {
        "project_id": project_id,
        "dimension": dimension,
        "source": fit.source,
        "reliability": {str(a): [round(r, 6), fit.labels.get(a, 0)] for a, r in fit.reliability.items()},
        "posteriors": _encoded(fit),
        "labels": int(sum(fit.labels.values())),
        "fit_ms": round(fit.fit_ms, 1),
        "fitted_at": fit.fitted_at or utcnow(),
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(ConsensusFit).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[ConsensusFit.project_id, ConsensusFit.dimension],
            set_={c: statement.excluded[c] for c in values if c not in ("project_id", "dimension")},
        )
    )
    row = session.get(ConsensusFit, (project_id, dimension))
    if row is not None:
        session.expire(row)


def store_all(session: Session, *, project_id: int, fits: dict[str, Posteriors]) -> None:
    """Store a project's fits and drop those of dimensions it no longer has."""
    for dimension, fit in fits.items():
        store(session, project_id=project_id, dimension=dimension, fit=fit)
    session.execute(
        delete(ConsensusFit).where(ConsensusFit.project_id == project_id, ConsensusFit.dimension.not_in(list(fits)))
    )


def stored_sources(session: Session, *, project: Project) -> dict[str, str]:
    """Dimension → the fingerprint its stored fit saw."""
    query = select(ConsensusFit.dimension, ConsensusFit.source).where(ConsensusFit.project_id == project.id)
    return dict(session.execute(query).tuples().all())


def is_stale(session: Session, *, project: Project, source: str | None = None) -> bool:
    """True when some dimension's stored fit is missing or saw other judgments than there are now."""
    source = source or fingerprint(session, project=project)
    stored = stored_sources(session, project=project)
    return any(stored.get(d) != source for d in _dimensions(project))


def refresh(session: Session, *, project: Project, force: bool = False) -> dict[str, Posteriors] | None:
    """Fit and store every dimension if the judgments moved (or ``force``); the fits, or None when fresh."""
    source = fingerprint(session, project=project)
    if not force and not is_stale(session, project=project, source=source):
        return None
    fits = fit_project(session, project=project, source=source)
    store_all(session, project_id=project.id, fits=fits)
    return fits


# Decoded fits, keyed by (database URL, project id, dimension, fitted_at, source): a stored row with the same
# key holds the same arrays, so an entry never goes stale (a new fit is a new key). 32 entries, least recently
# used out: decoding a million pairs' posteriors took tens of milliseconds a read.
DECODED: Cache[tuple[str, int, str, datetime, str], Posteriors] = Cache("consensus.decoded_fits", 32)


def _stored(session: Session, *, project: Project, dimension: str) -> Posteriors | None:
    head = session.execute(
        select(ConsensusFit.fitted_at, ConsensusFit.source).where(
            ConsensusFit.project_id == project.id, ConsensusFit.dimension == dimension
        )
    ).one_or_none()
    if head is None:
        return None
    key = (str(session.get_bind().engine.url), project.id, dimension, head.fitted_at, head.source)
    found = DECODED.get(key)
    if found is None:
        row = session.get(ConsensusFit, (project.id, dimension), populate_existing=True)
        if row is None:
            return None
        found = _decoded(row, project.k)
        DECODED.put((*key[:3], row.fitted_at, row.source), found)
    return found


def posteriors(session: Session, *, project: Project, dimension: str, fit: bool = True) -> Posteriors | None:
    """The cached fit; when missing or stale and fit=True, fit now (and store it); None when fit=False and missing.

    With fit=False a stale fit is returned as it is (its ``source`` tells which judgments it saw)."""
    if dimension not in _dimensions(project):
        return None
    stored = _stored(session, project=project, dimension=dimension)
    if not fit:
        return stored
    source = fingerprint(session, project=project)
    if stored is not None and stored.source == source:
        return stored
    fits = fit_project(session, project=project, source=source)
    store_all(session, project_id=project.id, fits=fits)
    return fits[dimension]


def annotator_reliability(session: Session, *, project: Project) -> dict[int, float] | None:
    """Reliability on "overall" per annotator from the cached fit, None when not fitted (never fits)."""
    found = _stored(session, project=project, dimension=OVERALL)
    return None if found is None else dict(found.reliability)


MODEL = "Dawid–Skene (crowd-kit) on pair labels; one confusion matrix per annotator and display orientation"


def summary(session: Session, *, project: Project, live: bool = False) -> ConsensusOut | None:
    """Per dimension, the fit's figures and each annotator's reliability; with ``live``, or when nothing is stored
    for a project of at most ``INLINE_JUDGMENTS`` judgments, every dimension is fitted now and nothing is stored;
    None when nothing is stored for a bigger one."""
    source = fingerprint(session, project=project)
    fits: dict[str, Posteriors | None] = {}
    if not live:
        fits = {d: _stored(session, project=project, dimension=d) for d in _dimensions(project)}
        if all(fit is None for fit in fits.values()):
            if _judged(session, project=project) > INLINE_JUDGMENTS:
                return None
            live = True  # a small project never fitted: fitted now (tens of milliseconds), as agreement does
    if live:
        fits = dict(fit_project(session, project=project, source=source))
    ids = {a for fit in fits.values() if fit is not None for a in fit.reliability}
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_(ids))).tuples().all())
    dimensions = []
    for dimension, fit in fits.items():
        if fit is None:
            continue
        annotators = [
            AnnotatorReliability(
                annotator_id=a,
                annotator=names.get(a, str(a)),
                reliability=round(r, 4),
                labels=fit.labels.get(a, 0),
                flagged=stats.flagged(r, fit.labels.get(a, 0)),
            )
            for a, r in sorted(fit.reliability.items(), key=lambda entry: (entry[1], entry[0]))
        ]
        dimensions.append(
            DimensionFit(
                dimension=dimension,
                fitted_at=fit.fitted_at,
                source=fit.source,
                stale=fit.source != source,
                fit_ms=round(fit.fit_ms, 1),
                pairs=len(fit.keys),
                labels=int(sum(fit.labels.values())),
                annotators=annotators,
            )
        )
    return ConsensusOut(
        project=project.slug,
        model=MODEL,
        flag_below=stats.FLAG_BELOW,
        min_labels=stats.MIN_LABELS,
        dimensions=dimensions,
    )
