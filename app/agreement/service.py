"""Agreement figures of a project, from its judgments (current candidate round), per dimension and overall.

``compute`` recomputes everything from the database; the dashboard and the JSON endpoint read the figures the
worker keeps in ``agreement_cache`` (``refresh``), which are stale as soon as the ``fingerprint`` of what they
depend on moves.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import BigInteger, Connection, Select, Text, case, cast, false, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased
from threadpoolctl import threadpool_limits

from app.agreement import stats
from app.agreement.schemas import (
    AgreementOut,
    AnnotatorFigures,
    CachedAgreementOut,
    DimensionFigures,
    IntervalOut,
    PairKappa,
    TimeBucket,
)
from app.db import driver_statement, export_snapshot, import_snapshot, serial_plan
from app.models import (
    IS_GOLD,
    OVERALL,
    AgreementCache,
    AnnotatorTally,
    Assignment,
    Candidate,
    Item,
    Judgment,
    Project,
    ProjectMember,
    User,
    Verdict,
    utcnow,
)

T = TypeVar("T")

MIN_SHARED_FOR_COHEN = 10
OUTLIER_GAP = 0.2
RESAMPLES = 200  # bootstrap resamples behind the cached intervals
# Projects with at most this many judgments are computed on the spot when the cache is missing or stale
# (tens of milliseconds); bigger ones wait for the worker.
INLINE_JUDGMENTS = 2000
# Bump when the figures change meaning or shape: every cache becomes stale.
FIGURES_VERSION = 2
TIMELINE_DAYS = 90
LABEL_NAMES = {stats.FIRST: "first", stats.SECOND: "second", stats.TIE: "tie"}
NOTE = (
    "Unit: a preference pair (two candidates of one item) on one dimension. n.a. is missing, not a category. "
    "Fleiss' κ uses only pairs rated by exactly r annotators; Krippendorff's α uses every pair with two or more "
    "ratings. 95% intervals resample items (bootstrap)."
)
PREFERENCE, TIE, NA = 0, 1, 2  # verdict kinds as loaded


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def _interval(interval: stats.Interval | None) -> IntervalOut | None:
    return None if interval is None else IntervalOut(low=_finite(interval.low), high=_finite(interval.high))


@dataclass
class Ratings:
    """The verdicts of a project's current round (gold items left out), as parallel numpy arrays."""

    item: NDArray[np.int64]
    annotator: NDArray[np.int64]
    dimension: NDArray[np.int64]  # index into [overall, *dimensions]; -1 for a dimension no longer configured
    kind: NDArray[np.int64]  # PREFERENCE, TIE, NA
    chosen: NDArray[np.int64]  # canonical positions; -1 without a preference
    rejected: NDArray[np.int64]


@dataclass
class Judgments:
    """One entry per judgment of the current round (gold items left out), for the per-annotator figures."""

    annotator: NDArray[np.int64]
    seconds: NDArray[np.float64]  # NaN when not recorded
    all_bad: NDArray[np.bool_]
    overall: NDArray[np.int64]  # the overall verdict's kind
    left: NDArray[np.int64]  # 1: chose the candidate shown first, 0: another one, -1: no preference or order


def _packed(dialect: str, query: Select[Any]) -> Select[Any]:
    """One row: each column of ``query`` aggregated into one value (see ``int_columns``)."""
    inner = query.subquery()
    if dialect == "postgresql":
        return select(*[func.array_send(func.array_agg(cast(column, BigInteger))) for column in inner.c])
    return select(*[func.group_concat(column) for column in inner.c])


def _unpacked(dialect: str, row: Any, width: int) -> list[NDArray[np.int64]]:
    if row[0] is None:  # no rows
        return [np.empty(0, dtype=np.int64) for _ in range(width)]
    if dialect == "postgresql":
        # array_send: ndim, flags, element type, then (size, lower bound) — 20 bytes for one dimension — and
        # each element as its length (always 8 here) and a big-endian int8.
        element = np.dtype([("length", ">i4"), ("value", ">i8")])
        return [np.frombuffer(bytes(buf), dtype=element, offset=20)["value"].astype(np.int64) for buf in row]
    return [np.array(np.fromstring(text, dtype=np.int64, sep=","), dtype=np.int64) for text in row]


def int_columns(session: Session | Connection, query: Select[Any]) -> list[NDArray[np.int64]]:
    """The columns of an all-integer (non-null) query as numpy arrays, with no Python object per row.

    PostgreSQL aggregates each column into one binary int8 array (``array_send(array_agg(...))``) that numpy
    reads in place; SQLite joins each column's values into one text (``group_concat``) that numpy parses —
    both several times faster than fetching rows. The aggregates of one query see the rows in the same order,
    so the columns stay aligned.
    """
    conn = session.connection() if isinstance(session, Session) else session
    dialect = conn.dialect.name
    packed = _packed(dialect, query)
    if dialect == "postgresql":  # bytea in the binary protocol: as text it would travel hex-encoded, twice the size
        sql, params = driver_statement(packed, conn.dialect)
        with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            row = cursor.execute(sql, params).fetchone()
    else:
        row = conn.execute(packed).one()
    return _unpacked(dialect, row, len(query.selected_columns))


def at_once(session: Session, tasks: Sequence[Callable[[Session], T]]) -> list[T]:
    """Run each task with a session on a connection of its own, in a thread of its own, so that the database
    works on them at the same time (on PostgreSQL each query is one backend's work; SQLite's driver lets go of
    the interpreter lock while it steps).

    On PostgreSQL all of them read the snapshot of this session's transaction (``pg_export_snapshot``), so they
    see the same data. On SQLite each reads (on the read engine: a transaction that never takes the write lock)
    the latest committed state, so a judgment written meanwhile may be seen by one read and not another; the
    figures are computed under the fingerprint taken before, so such a change marks them stale and they are
    computed again.
    """
    bind = session.get_bind()
    engine = session.info.get("read_engine") or (bind.engine if isinstance(bind, Connection) else bind)
    snapshot = export_snapshot(session) if engine.dialect.name == "postgresql" else None

    def run(task: Callable[[Session], T]) -> T:
        with engine.connect() as conn:
            if snapshot is not None:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                conn.begin()
                import_snapshot(conn, snapshot)
            with Session(bind=conn) as own:
                return task(own)

    with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="agreement-load") as pool:
        return list(pool.map(run, tasks))


@dataclass
class _Loaded:
    ratings: Ratings
    judgments: Judgments
    timeline: tuple[str, list[TimeBucket]] | None = None  # read alongside when asked for


def _lookup(keys: NDArray[np.int64], values: NDArray[np.int64], wanted: NDArray[np.int64]) -> NDArray[np.int64]:
    """``values`` at the place of each ``wanted`` key in ``keys`` (sorted, unique, positive), -1 where absent.

    A dense table indexed by key when the keys span a modest range (one gather), else a binary search."""
    if not len(keys):
        return np.full(len(wanted), -1, dtype=np.int64)
    low, high = int(keys[0]), int(keys[-1])
    if high - low <= max(8 * len(keys), 1 << 20):
        table = np.full(high - low + 1, -1, dtype=np.int64)
        table[keys - low] = values
        inside = (wanted >= low) & (wanted <= high)
        return np.where(inside, table[np.clip(wanted - low, 0, high - low)], -1)
    found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[found] == wanted, values[found], -1)


def _verdicts_of(session: Session, project: Project) -> list[list[Any]]:
    """Which verdicts to read, in two halves of the judgments' id range (read at the same time): when the
    project's judgments fill most of their id range (one project annotated at a time — the usual case), that
    range of judgment ids, which needs no join (the rows of other judgments in it are dropped in numpy); else
    the project's judgments, by a join."""
    low, high, count = session.execute(
        select(func.min(Judgment.id), func.max(Judgment.id), func.count()).where(Judgment.project_id == project.id)
    ).one()
    if not count:
        return [[false()]]
    middle = (low + high) // 2
    judgment_id: Any = Verdict.judgment_id
    if session.get_bind().dialect.name == "sqlite" and count * 2 >= (
        session.scalar(select(func.max(Judgment.id))) or 0
    ):
        # Most of the table is this project's: SQLite reads it faster whole than through the (judgment,
        # dimension) index, which fetches each row by rowid (0.6 s a half instead of 1.0 s at 1.8M verdicts).
        # An expression on the column keeps its planner off the index; PostgreSQL's chooses by itself.
        judgment_id = Verdict.judgment_id + 0
    halves = [judgment_id.between(low, middle), judgment_id.between(middle + 1, high)]
    if count * 2 >= high - low + 1:
        return [[half] for half in halves]
    mine = Verdict.judgment_id.in_(select(Judgment.id).where(Judgment.project_id == project.id))
    return [[mine, half] for half in halves]


def _big(column: Any) -> Any:
    return cast(column, BigInteger)


def load(session: Session, *, project: Project, timeline: bool = False) -> _Loaded:
    """Ratings and judgments in three lean queries — judgments, verdicts, candidate positions — joined in numpy.

    Each row's integers are packed into one or two int8 values in SQL (fewer values to move is what counts),
    and the verdicts are read by judgment id only: no join to items or candidates, whose hash joins over every
    verdict would cost more than the rest together; candidate ids become canonical positions by lookup."""
    dims = [OVERALL, *project.dimension_keys][:62]
    # Judgments of the current candidate round of ordinary (not gold) items.
    first_shown = func.coalesce(Assignment.display_order[0].as_integer(), 0)
    milliseconds = func.coalesce(_big(func.round(Judgment.seconds * 1000)) + 1, 0)  # 0: not recorded
    judgments_query = (
        select(
            _big(Judgment.id) * (1 << 32) + first_shown,
            _big(Judgment.item_id) * (1 << 24) + Judgment.annotator_id,
            milliseconds * 2 + case((Judgment.flag_all_bad.is_(True), 1), else_=0),
        )
        .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
        .join(Assignment, Assignment.id == Judgment.assignment_id)
        .where(Judgment.project_id == project.id, Item.is_gold.is_(False))
    )
    verdict_columns = (
        _big(Verdict.judgment_id) * 256
        + case({d: i + 1 for i, d in enumerate(dims)}, value=Verdict.dimension, else_=0) * 4
        + case({"preference": PREFERENCE, "tie": TIE}, value=Verdict.kind, else_=NA),
        _big(func.coalesce(Verdict.chosen_candidate_id, 0)) * (1 << 32)
        + func.coalesce(Verdict.rejected_candidate_id, 0),
    )
    verdict_queries = [select(*verdict_columns).where(*part) for part in _verdicts_of(session, project)]
    candidates_query = (
        select(_big(Candidate.id) * 4 + Candidate.position)
        .join(Item, (Item.id == Candidate.item_id) & (Item.round == Candidate.round))
        .where(Item.project_id == project.id)
    )
    tasks: list[Callable[[Session], Any]] = [
        partial(int_columns, query=q) for q in [judgments_query, candidates_query, *verdict_queries]
    ]
    if timeline:
        tasks.append(partial(judgments_over_time, project=project))
    results = at_once(session, tasks)
    (id_first, item_annotator, ms_bad), (id_position,) = results[0], results[1]
    parts = results[2 : 2 + len(verdict_queries)]
    judgment_code, candidates = (np.concatenate([part[i] for part in parts]) for i in range(2))
    order = np.argsort(id_first)
    j_id, j_first = np.divmod(id_first[order], 1 << 32)
    j_item, j_annotator = np.divmod(item_annotator[order], 1 << 24)
    j_ms, j_bad = np.divmod(ms_bad[order], 2)
    v_judgment, code = np.divmod(judgment_code, 256)
    v_chosen, v_rejected = np.divmod(candidates, 1 << 32)
    at = _lookup(j_id, np.arange(len(j_id)), v_judgment)
    keep = at >= 0  # verdicts of judgments that count (current round, not gold)
    at, code, v_chosen, v_rejected = at[keep], code[keep], v_chosen[keep], v_rejected[keep]
    c_id, c_position = np.divmod(np.sort(id_position), 4)

    def position(ids: NDArray[np.int64]) -> NDArray[np.int64]:
        return _lookup(c_id, c_position, ids)

    dimension, kind = np.divmod(code, 4)
    dimension -= 1  # -1: a dimension the project no longer has
    ratings = Ratings(
        item=j_item[at],
        annotator=j_annotator[at],
        dimension=dimension,
        kind=kind,
        chosen=position(v_chosen),
        rejected=position(v_rejected),
    )
    overall = dimension == 0  # a judgment's figures come with its overall verdict
    rows = at[overall]
    left = np.where(
        (kind[overall] == PREFERENCE) & (j_first[rows] > 0), (v_chosen[overall] == j_first[rows]).astype(np.int64), -1
    )
    judgments = Judgments(
        annotator=j_annotator[rows],
        seconds=np.where(j_ms[rows] > 0, (j_ms[rows] - 1) / 1000, np.nan),
        all_bad=j_bad[rows] == 1,
        overall=kind[overall],
        left=left,
    )
    return _Loaded(ratings, judgments, results[-1] if timeline else None)


def load_ratings(session: Session, *, project: Project) -> Ratings:
    """Every verdict of the current round (gold items left out) as integer arrays."""
    return load(session, project=project).ratings


def _pair_labels(ratings: Ratings, i: int, j: int) -> NDArray[np.int64]:
    """The label each verdict implies on the pair (i, j), i < j, or -1 (as ``stats.implied_pairs``)."""
    c, w = ratings.chosen, ratings.rejected
    label = np.select(
        [c == i, c == j, w == i, w == j],
        [stats.FIRST, stats.SECOND, stats.SECOND, stats.FIRST],
        default=-1,
    )
    label = np.where(ratings.kind == PREFERENCE, label, -1)
    return np.where(ratings.kind == TIE, stats.TIE, label)


def _matrices(
    ratings: Ratings, *, k: int, dimensions: int, columns: NDArray[np.int64]
) -> list[tuple[NDArray[np.float64], NDArray[np.int64]]]:
    """Per dimension: the raters × units matrix (NaN missing) over units with two or more ratings, and the
    item of each unit (the bootstrap's group)."""
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    labels = np.stack([_pair_labels(ratings, i, j) for i, j in pairs])  # pairs × verdicts
    raters = int(columns.max()) + 1 if len(columns) else 0
    out = []
    for dim in range(dimensions):
        mine = ratings.dimension == dim
        p_idx, v_idx = np.nonzero(labels[:, mine] >= 0)
        verdicts = np.flatnonzero(mine)[v_idx]
        unit = ratings.item[verdicts] * len(pairs) + p_idx
        keys, inverse, sizes = np.unique(unit, return_inverse=True, return_counts=True)
        keep = sizes >= 2
        new_index = np.cumsum(keep) - 1
        rows = keep[inverse]
        data = np.full((raters, int(keep.sum())), np.nan)
        data[columns[verdicts[rows]], new_index[inverse[rows]]] = labels[p_idx[rows], verdicts[rows]]
        out.append((data, keys[keep] // len(pairs)))
    return out


def compute(session: Session, *, project: Project, resamples: int = RESAMPLES, seed: int = 0) -> AgreementOut:
    """Every figure of the agreement page, computed now."""
    # One BLAS thread: the products here are small, and threads fighting the web server and the database
    # for two cores made the bootstrap several times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        return _compute(session, project=project, resamples=resamples, seed=seed)


def _compute(session: Session, *, project: Project, resamples: int, seed: int) -> AgreementOut:
    loaded = load(session, project=project, timeline=True)
    ratings, judgments = loaded.ratings, loaded.judgments
    names = dict(session.execute(select(User.id, User.username)).tuples().all())
    annotators = [int(a) for a in np.unique(ratings.annotator)]
    column_of = np.searchsorted(np.array(annotators, dtype=np.int64), ratings.annotator)
    dims = [OVERALL, *project.dimension_keys]
    matrices = _matrices(ratings, k=project.k, dimensions=len(dims), columns=column_of)

    figures = []
    for dim, (data, groups) in zip(dims, matrices, strict=True):
        units = data.shape[1]
        # κ and α from the units × categories counts: the same values as statsmodels' and krippendorff's (to
        # 1e-12, tests/agreement/test_stats.py) in a fraction of the time (bench/agreement.py prints both).
        counts = stats.category_counts(data)
        fleiss_of, alpha_of = stats.fleiss_statistic(counts, project.overlap), stats.alpha_statistic(counts)
        used = int((counts.sum(axis=1) == project.overlap).sum()) if project.overlap >= 2 else 0
        ones = np.ones(units)
        kappa = fleiss_of(ones) if used else float("nan")
        alpha = alpha_of(ones) if units else float("nan")
        fleiss_ci = alpha_ci = None
        if units and resamples > 0 and len(np.unique(groups)) >= 2:
            wanted = [alpha_of]
            if used:
                wanted.append(fleiss_of)
            intervals = stats.bootstrap_weighted(wanted, groups=groups, resamples=resamples, seed=seed)
            alpha_ci = intervals[0]
            fleiss_ci = intervals[1] if used else None
        totals = counts.sum(axis=0)
        figures.append(
            DimensionFigures(
                dimension=dim,
                units=units,
                fleiss_kappa=_finite(kappa),
                fleiss_units=used,
                fleiss_ci=_interval(fleiss_ci),
                alpha=_finite(alpha),
                alpha_ci=_interval(alpha_ci),
                percent_agreement=_finite(stats.percent_agreement(data)) if units else None,
                meaning=stats.landis_koch(kappa if not math.isnan(kappa) else alpha),
                labels={LABEL_NAMES[c]: int(totals[c]) if units else 0 for c in stats.CATEGORIES},
            )
        )

    overall = matrices[0][0]
    pairs = []
    for x, a in enumerate(annotators):
        for y in range(x + 1, len(annotators)):
            kappa, shared = stats.cohen(overall[x], overall[y])
            if shared >= MIN_SHARED_FOR_COHEN:
                b = annotators[y]
                pairs.append(
                    PairKappa(a=names.get(a, str(a)), b=names.get(b, str(b)), kappa=_finite(kappa), shared_units=shared)
                )

    people = _annotator_figures(judgments, overall, annotators, names)
    _add_members_and_gold(session, project=project, people=people, annotators=annotators, names=names)
    assert loaded.timeline is not None
    unit, timeline = loaded.timeline
    return AgreementOut(
        project=project.slug,
        overlap=project.overlap,
        dimensions=figures,
        pairs=pairs,
        annotators=people,
        note=NOTE,
        resamples=resamples,
        timeline_unit=unit,
        timeline=timeline,
    )


def _add_members_and_gold(
    session: Session, *, project: Project, people: list[AnnotatorFigures], annotators: list[int], names: dict[int, str]
) -> None:
    """Members with no judgment yet get a row — except admins (a project's creator is made a member), who
    appear once they judge; every row gets gold accuracy and the paused flag."""
    gold = gold_accuracy(session, project=project)
    rows = session.execute(
        select(ProjectMember.user_id, ProjectMember.paused, User.role)
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == project.id)
    ).all()
    members = {user_id: paused for user_id, paused, _ in rows}
    admins = {user_id for user_id, _, role in rows if role == "admin"}
    known = {p.annotator for p in people}
    for user_id in sorted(set(gold) | set(members)):
        if user_id in admins and user_id not in gold:
            continue
        if names.get(user_id, str(user_id)) not in known:  # no (non-gold) judgment yet
            people.append(
                AnnotatorFigures(
                    annotator=names.get(user_id, str(user_id)),
                    judgments=0,
                    median_seconds=None,
                    majority_agreement=None,
                    tie_rate=0.0,
                    all_bad_rate=0.0,
                    left_choice_rate=None,
                    outlier=False,
                )
            )
    by_name = {names.get(u, str(u)): u for u in set(annotators) | set(gold) | set(members)}
    for person in people:
        member_id = by_name.get(person.annotator)
        if member_id is not None and member_id in gold:
            n, accuracy = gold[member_id]
            person.gold_judgments = n
            person.gold_accuracy = _finite(accuracy) if accuracy is not None else None
            person.below_gold_threshold = accuracy is not None and accuracy < project.gold_min_accuracy
        person.paused = bool(members.get(member_id, False)) if member_id is not None else False
        person.user_id = member_id


def judgments_over_time(session: Session, *, project: Project) -> tuple[str, list[TimeBucket]]:
    """Judgments per hour (span of two days or less) or per day (the last 90 days), every judgment of the
    project by when it was first submitted, UTC; empty buckets included."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:  # truncating is cheaper than formatting every row
        hour: Any = func.date_trunc("hour", func.timezone("UTC", Judgment.created_at))
    else:
        hour = func.strftime("%Y-%m-%dT%H", Judgment.created_at)
    rows = session.execute(
        select(hour, func.count()).where(Judgment.project_id == project.id).group_by(hour).order_by(hour)
    ).all()
    counts = {
        (h.replace(tzinfo=UTC) if postgres else datetime.strptime(h, "%Y-%m-%dT%H").replace(tzinfo=UTC)): int(n)
        for h, n in rows
        if h
    }
    if not counts:
        return "day", []
    first, last = min(counts), max(counts)
    if last - first <= timedelta(hours=48):
        hours = int((last - first) / timedelta(hours=1)) + 1
        slots = [first + timedelta(hours=h) for h in range(hours)]
        return "hour", [TimeBucket(start=f"{s:%Y-%m-%dT%H}", judgments=counts.get(s, 0)) for s in slots]
    per_day: dict[str, int] = {}
    for moment, n in counts.items():
        per_day[f"{moment:%Y-%m-%d}"] = per_day.get(f"{moment:%Y-%m-%d}", 0) + n
    end = last.date()
    start = max(first.date(), end - timedelta(days=TIMELINE_DAYS - 1))
    days = [start + timedelta(days=d) for d in range((end - start).days + 1)]
    return "day", [TimeBucket(start=f"{d:%Y-%m-%d}", judgments=per_day.get(f"{d:%Y-%m-%d}", 0)) for d in days]


def gold_accuracy(session: Session, *, project: Project) -> dict[int, tuple[int, float | None]]:
    """Per annotator: (gold judgments, share of expected answers matched). Positions are canonical."""
    chosen, rejected = aliased(Candidate), aliased(Candidate)
    rows = session.execute(
        select(
            Judgment.id,
            Judgment.annotator_id,
            Item.gold,
            Verdict.dimension,
            Verdict.kind,
            chosen.position,
            rejected.position,
        )
        .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
        .join(Verdict, Verdict.judgment_id == Judgment.id)
        .outerjoin(chosen, chosen.id == Verdict.chosen_candidate_id)
        .outerjoin(rejected, rejected.id == Verdict.rejected_candidate_id)
        .where(Judgment.project_id == project.id, IS_GOLD)
    ).all()
    judged: dict[int, set[int]] = defaultdict(set)
    hits: dict[int, list[bool]] = defaultdict(list)
    for judgment_id, annotator, expected, dimension, kind, chosen_pos, rejected_pos in rows:
        judged[annotator].add(judgment_id)
        want = (expected or {}).get(dimension)
        if not want or want["kind"] == "either":
            continue
        if want["kind"] == "tie":
            hits[annotator].append(kind == "tie")
        elif project.k == 2:
            hits[annotator].append(kind == "preference" and chosen_pos == want["chosen"])
        else:
            hits[annotator].append(
                kind == "preference" and (chosen_pos, rejected_pos) == (want["chosen"], want["rejected"])
            )
    return {a: (len(judged[a]), (sum(hits[a]) / len(hits[a])) if hits[a] else None) for a in judged}


def _annotator_figures(
    judgments: Judgments, overall: NDArray[np.float64], annotators: list[int], names: dict[int, str]
) -> list[AnnotatorFigures]:
    counts = stats.category_counts(overall)  # units × categories
    agreements: dict[int, float | None] = {}
    for row, a in enumerate(annotators):
        rated = np.flatnonzero(~np.isnan(overall[row]))
        mine = overall[row, rated].astype(np.int64)
        others = counts[rated].copy()
        others[np.arange(len(rated)), mine] -= 1  # leave this annotator out
        top = others.max(axis=1)
        # A majority needs other votes and one label ahead of the rest.
        clear = (top > 0) & ((others == top[:, None]).sum(axis=1) == 1)
        total = int(clear.sum())
        agree = int((others.argmax(axis=1) == mine)[clear].sum())
        agreements[a] = agree / total if total else None
    known = [v for v in agreements.values() if v is not None]
    typical = float(np.median(known)) if known else 0.0
    out = []
    for a in annotators:
        mine = judgments.annotator == a
        n = int(mine.sum())
        seconds = judgments.seconds[mine]
        seconds = seconds[~np.isnan(seconds)]
        left = judgments.left[mine]
        left = left[left >= 0]
        value = agreements[a]
        out.append(
            AnnotatorFigures(
                annotator=names.get(a, str(a)),
                judgments=n,
                median_seconds=round(float(np.median(seconds)), 1) if len(seconds) else None,
                majority_agreement=_finite(value) if value is not None else None,
                tie_rate=round(float((judgments.overall[mine] == TIE).sum()) / n, 4) if n else 0.0,
                all_bad_rate=round(float(judgments.all_bad[mine].sum()) / n, 4) if n else 0.0,
                left_choice_rate=round(float(left.mean()), 4) if len(left) else None,
                # Flagged: agrees with the others' majority clearly less often than the typical annotator.
                outlier=value is not None and len(known) >= 3 and value < typical - OUTLIER_GAP,
            )
        )
    return out


# --- the cache -------------------------------------------------------------------------------------------


@dataclass
class Fingerprint:
    """What the figures depend on, in a few cheap aggregate queries; a different ``source`` means stale."""

    source: str
    judgments: int


def fingerprint(session: Session, *, project: Project) -> Fingerprint:
    """Judgments (count, newest change: a submit or an edit), items (count, sum of candidate rounds: a
    regeneration raises it), gold answers, members (paused, names, roles) and the project's settings — what
    ``compute`` reads. Adjudication decisions are not in it: they change exports, not agreement."""
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
        [list(m) for m in members],
        [project.slug, project.k, project.overlap, project.dimension_keys, project.gold_min_accuracy],
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


K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """A small process-local LRU map, safe across the threads of one worker process; counts hits and misses."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


# A version of a project's cache row: (project id, computed_at, source). ``store`` always sets a new
# ``computed_at``, so a version is never reused for other figures.
CacheVersion = tuple[int, datetime, str]
# The cache rows' figures as parsed (about 1 MB for 50 annotators): parsing them took ~15 ms a view.
PARSED: Memo[CacheVersion, CachedAgreementOut] = Memo(16)


@dataclass(frozen=True)
class Current:
    """The figures to show and, when they come from the cache row, its version (None: computed now)."""

    figures: CachedAgreementOut | None
    version: CacheVersion | None


FINGERPRINT_TTL = 5.0  # seconds a large project's fingerprint serves the page views of a process
# (database, project id, its creation time: ids restart in a recreated database) → (taken at, fingerprint)
_fingerprints: dict[tuple[str, int, datetime], tuple[float, Fingerprint]] = {}
_fingerprints_lock = threading.Lock()


def _recent_fingerprint(session: Session, *, project: Project) -> Fingerprint:
    """The project's fingerprint, taken at most every ``FINGERPRINT_TTL`` seconds per process for a project too
    large to compute inline (its counts read a million index entries; an admin refreshing the dashboard paid
    them on every view): a page may call such a cache fresh for a few seconds after it went stale, as the
    worker takes that long to notice anyway. A small project's is taken on every view."""
    key = (str(session.get_bind().engine.url), project.id, project.created_at)
    now = time.monotonic()
    with _fingerprints_lock:
        hit = _fingerprints.get(key)
    if hit is not None and now - hit[0] < FINGERPRINT_TTL and hit[1].judgments > INLINE_JUDGMENTS:
        return hit[1]
    mark = fingerprint(session, project=project)
    with _fingerprints_lock:
        if len(_fingerprints) > 1000:
            _fingerprints.clear()
        _fingerprints[key] = (now, mark)
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
    parsed = PARSED.get(version)
    if parsed is None:
        cached = session.get(AgreementCache, project.id, populate_existing=True)
        if cached is None:  # deleted meanwhile
            return Current(None, None)
        # Keyed by the row as read now: a worker may have replaced it since ``head``.
        version = (project.id, cached.computed_at, cached.source)
        parsed = CachedAgreementOut(
            **cached.figures, computed_at=cached.computed_at, compute_ms=cached.compute_ms, stale=False
        )
        PARSED.put(version, parsed)
    # A shallow copy: only ``stale`` differs between views of one version.
    return Current(parsed.model_copy(update={"stale": version[2] != mark.source}), version)


def current(session: Session, *, project: Project) -> CachedAgreementOut | None:
    """The figures to show: the cache when fresh; computed now for a small project whose cache is missing or
    stale; otherwise the stale cache (``stale``: the worker is recomputing), or None if there is none yet."""
    return current_version(session, project=project).figures
