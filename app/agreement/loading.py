"""Reading a project's judgments into numpy arrays, fast: packed integer columns, decoded per backend, and the
reads fanned out to threads that the database serves at the same time.

What is read is the current candidate round of ordinary (not gold) items; ``service`` computes the figures
from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import BigInteger, Connection, Select, case, cast, false, func, select
from sqlalchemy.orm import Session

from app.agreement.schemas import TimeBucket
from app.db import driver_statement, export_snapshot, import_snapshot
from app.export.pairs import ranked_of
from app.models import OVERALL, Assignment, Candidate, Item, Judgment, Project, Verdict

T = TypeVar("T")

PREFERENCE, TIE, NA, RANKING = 0, 1, 2, 3  # verdict kinds as loaded
TIMELINE_DAYS = 90


@dataclass
class Ratings:
    """The verdicts of a project's current round (gold items left out), as parallel numpy arrays."""

    item: NDArray[np.int64]
    annotator: NDArray[np.int64]
    dimension: NDArray[np.int64]  # index into [overall, *dimensions]; -1 for a dimension no longer configured
    kind: NDArray[np.int64]  # PREFERENCE, TIE, NA, RANKING
    chosen: NDArray[np.int64]  # canonical positions; -1 without a preference
    rejected: NDArray[np.int64]
    strength: NDArray[np.int64]  # 1–3 on a k = 2 preference that says how much better, else 0
    # Rankings (read only when there are any): the tier of each canonical position (0 best) per verdict, -1 on
    # other kinds; and the "much better" gaps as a bit mask (bit g: the gap between tier g and g + 1).
    tiers: NDArray[np.int64] | None = None
    much: NDArray[np.int64] | None = None


@dataclass
class Judgments:
    """One entry per judgment of the current round (gold items left out), for the per-annotator figures."""

    annotator: NDArray[np.int64]
    seconds: NDArray[np.float64]  # active seconds on task, else wall-clock seconds; NaN when not recorded
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
class Loaded:
    """What ``load`` read: the ratings, the judgments and, when asked for, the judgments over time."""

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


def _packed_queries(session: Session, project: Project) -> list[Select[Any]]:
    """The judgments, the candidate positions and the verdicts (in parts, see ``_verdicts_of``) as all-integer
    queries: each row's integers packed into one or two int8 values in SQL (fewer values to move is what counts).

    The verdicts are read by judgment id only: no join to items or candidates, whose hash joins over every
    verdict would cost more than the rest together; candidate ids become canonical positions by lookup."""
    dims = [OVERALL, *project.dimension_keys][:62]
    # Judgments of the current candidate round of ordinary (not gold) items.
    # An imported judgment's order shown is unknown (its assignment holds the canonical one): 0, no order.
    first_shown = case(
        (Judgment.imported.is_(True), 0), else_=func.coalesce(Assignment.display_order[0].as_integer(), 0)
    )
    # Time on task: the active seconds where the page measured them, else the wall-clock seconds (older rows).
    on_task = func.coalesce(Judgment.active_seconds, Judgment.seconds)
    milliseconds = func.coalesce(_big(func.round(on_task * 1000)) + 1, 0)  # 0: not recorded
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
        _big(Verdict.judgment_id) * 1024
        + func.coalesce(Verdict.strength, 0) * 256
        + case({d: i + 1 for i, d in enumerate(dims)}, value=Verdict.dimension, else_=0) * 4
        + case({"preference": PREFERENCE, "tie": TIE, "ranking": RANKING}, value=Verdict.kind, else_=NA),
        _big(func.coalesce(Verdict.chosen_candidate_id, 0)) * (1 << 32)
        + func.coalesce(Verdict.rejected_candidate_id, 0),
    )
    verdict_queries = [select(*verdict_columns).where(*part) for part in _verdicts_of(session, project)]
    candidates_query = (
        select(_big(Candidate.id) * 4 + Candidate.position)
        .join(Item, (Item.id == Candidate.item_id) & (Item.round == Candidate.round))
        .where(Item.project_id == project.id)
    )
    return [judgments_query, candidates_query, *verdict_queries]


def load(session: Session, *, project: Project, timeline: bool = False) -> Loaded:
    """Ratings and judgments in three lean queries — judgments, verdicts, candidate positions — read at the
    same time and joined in numpy."""
    queries = _packed_queries(session, project)
    tasks: list[Callable[[Session], Any]] = [partial(int_columns, query=query) for query in queries]
    if timeline:
        tasks.append(partial(judgments_over_time, project=project))
    results = at_once(session, tasks)
    (id_first, item_annotator, ms_bad), (id_position,) = results[0], results[1]
    parts = results[2 : len(queries)]
    judgment_code, candidates = (np.concatenate([part[i] for part in parts]) for i in range(2))
    order = np.argsort(id_first)
    j_id, j_first = np.divmod(id_first[order], 1 << 32)
    j_item, j_annotator = np.divmod(item_annotator[order], 1 << 24)
    j_ms, j_bad = np.divmod(ms_bad[order], 2)
    v_judgment, code = np.divmod(judgment_code, 1024)
    v_chosen, v_rejected = np.divmod(candidates, 1 << 32)
    at = _lookup(j_id, np.arange(len(j_id)), v_judgment)
    keep = at >= 0  # verdicts of judgments that count (current round, not gold)
    at, code, v_chosen, v_rejected = at[keep], code[keep], v_chosen[keep], v_rejected[keep]
    c_id, c_position = np.divmod(np.sort(id_position), 4)

    def position(ids: NDArray[np.int64]) -> NDArray[np.int64]:
        return _lookup(c_id, c_position, ids)

    strength, code = np.divmod(code, 256)
    dimension, kind = np.divmod(code, 4)
    dimension -= 1  # -1: a dimension the project no longer has
    ratings = Ratings(
        item=j_item[at],
        annotator=j_annotator[at],
        dimension=dimension,
        kind=kind,
        chosen=position(v_chosen),
        rejected=position(v_rejected),
        strength=strength,
    )
    overall = dimension == 0  # a judgment's figures come with its overall verdict
    rows = at[overall]
    left = np.where(
        (kind[overall] == PREFERENCE) & (j_first[rows] > 0), (v_chosen[overall] == j_first[rows]).astype(np.int64), -1
    )
    if (kind == RANKING).any():  # a second read, only for a project that has rankings: k = 2 never pays it
        first_shown = position(j_first[rows])
        _add_rankings(session, project, ratings, j_id[at], position)
        assert ratings.tiers is not None
        top = ratings.tiers[overall]
        alone = (top == 0).sum(axis=1) == 1  # one best candidate: did the annotator put the first shown there?
        shown_first_tier = np.take_along_axis(top, np.clip(first_shown, 0, None)[:, None], axis=1)[:, 0]
        ranked_left = np.where(alone & (first_shown >= 0), (shown_first_tier == 0).astype(np.int64), -1)
        left = np.where(kind[overall] == RANKING, ranked_left, left)
    judgments = Judgments(
        annotator=j_annotator[rows],
        seconds=np.where(j_ms[rows] > 0, (j_ms[rows] - 1) / 1000, np.nan),
        all_bad=j_bad[rows] == 1,
        overall=kind[overall],
        left=left,
    )
    return Loaded(ratings, judgments, results[-1] if timeline else None)


def _add_rankings(
    session: Session,
    project: Project,
    ratings: Ratings,
    v_judgment: NDArray[np.int64],
    position: Callable[[NDArray[np.int64]], NDArray[np.int64]],
) -> None:
    """Read the project's stored rankings into ``ratings.tiers`` and ``ratings.much``, in canonical positions
    (``app.export.pairs.ranked_of``, as the export reads them)."""
    dims = [OVERALL, *project.dimension_keys]
    ranked_rows = np.flatnonzero(ratings.kind == RANKING)
    row_of = {
        (int(v_judgment[r]), dims[ratings.dimension[r]]): int(r) for r in ranked_rows if ratings.dimension[r] >= 0
    }
    tiers = np.full((len(ratings.kind), project.k), -1, dtype=np.int64)
    much = np.zeros(len(ratings.kind), dtype=np.int64)
    query = select(Verdict.judgment_id, Verdict.dimension, Verdict.ranking).where(
        Verdict.kind == "ranking",
        Verdict.judgment_id.in_(select(Judgment.id).where(Judgment.project_id == project.id)),
    )
    for judgment_id, dimension, stored in session.execute(query):
        row = row_of.get((judgment_id, dimension))
        if row is None:  # an old round, a gold item or a dimension no longer configured
            continue
        ids = np.array(sorted({cid for tier in stored["tiers"] for cid in tier}), dtype=np.int64)
        ranked = ranked_of(stored, dict(zip(ids.tolist(), position(ids).tolist(), strict=True)))
        if ranked is None or len(ranked[0]) != project.k:
            continue
        tiers[row] = ranked[0]
        much[row] = sum(1 << gap for gap in ranked[1])
    ratings.tiers, ratings.much = tiers, much


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
