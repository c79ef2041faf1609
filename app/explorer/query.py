"""The explorer's query: filters → one SELECT over the project's items, sorted, a keyset page at a time.

Sorts and their keys (the keyset cursor ``after`` is "<key>:<id>", or "<id>" for the id sorts):
``id`` (ascending), ``newest`` (id descending), ``judgments`` (judgment count descending, then id descending),
``margin`` (overall vote margin ascending — most split first — then id; items without votes last).
The margin is computed by a query over the current round's overall verdicts (no stored column).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Float, Select, String, and_, case, cast, exists, func, or_, select, text
from sqlalchemy.orm import Session

from app.adjudication.service import DEFAULT_MARGIN
from app.explorer.schemas import Filters, Page, Row
from app.explorer.search import text_condition
from app.kit.errors import Invalid
from app.models import OVERALL, Assignment, Candidate, Item, Judgment, Project, User, Verdict

NO_VOTES = 2.0  # the margin sort key of an item without overall votes (after every real margin, 0–1)


def margin_rows(*scope: Any) -> Select[Any]:
    """(item_id, margin) for each item in ``scope`` with overall votes in its current round: (top − runner-up) /
    voters, where a vote is "best is candidate X", "tie" or "not applicable" — as the adjudication queue counts."""
    key = case((Verdict.kind == "preference", cast(Verdict.chosen_candidate_id, String)), else_=Verdict.kind)
    votes = (
        select(Judgment.item_id.label("item_id"), func.count().label("n"))
        .join(Verdict, Verdict.judgment_id == Judgment.id)
        .join(Item, and_(Item.id == Judgment.item_id, Item.round == Judgment.round))
        .where(*scope, Verdict.dimension == OVERALL)
        .group_by(Judgment.item_id, key)
        .subquery()
    )
    rn = func.row_number().over(partition_by=votes.c.item_id, order_by=votes.c.n.desc()).label("rn")
    ranked = select(votes.c.item_id, votes.c.n, rn).subquery()
    top = func.sum(case((ranked.c.rn == 1, ranked.c.n), else_=0))
    second = func.sum(case((ranked.c.rn == 2, ranked.c.n), else_=0))
    margin = cast(top - second, Float) / cast(func.sum(ranked.c.n), Float)
    return select(ranked.c.item_id, margin.label("margin")).group_by(ranked.c.item_id)


def _current_judgment(*conditions: Any) -> Any:
    return exists().where(Judgment.item_id == Item.id, Judgment.round == Item.round, *conditions)


def _filtered(session: Session, project: Project, f: Filters, id_range: tuple[int, int] | None = None) -> list[Any]:
    dialect = session.get_bind().dialect.name
    where: list[Any] = [Item.project_id == project.id]
    if id_range is not None:
        where.append(Item.id.between(*id_range))
    if f.q and f.q.strip():
        where.append(text_condition(dialect, project.id, f.q.strip(), f.match, id_range))
    if f.status:
        where.append(Item.status == f.status)
    if f.gold is not None:
        where.append(Item.is_gold.is_(f.gold))
    if f.excluded is not None:
        where.append(Item.excluded_from_export.is_(f.excluded))
    if f.review is not None:
        where.append(Item.review_requested.is_(f.review))
    if f.round is not None:
        where.append(Item.round == f.round)
    if f.batch is not None:
        where.append(Item.import_batch_id == f.batch)
    if f.flag:
        flags = {
            "all_bad": Judgment.flag_all_bad.is_(True),
            "problematic": Judgment.flag_problematic.is_(True),
            "any": or_(Judgment.flag_all_bad.is_(True), Judgment.flag_problematic.is_(True)),
        }
        where.append(_current_judgment(flags[f.flag]))
    if f.annotator:
        user_id = session.scalar(select(User.id).where(User.username == f.annotator))
        where.append(_current_judgment(Judgment.annotator_id == (user_id or -1)))
    if f.skipped is not None or f.skip_reason:
        skip = [Assignment.item_id == Item.id, Assignment.round == Item.round, Assignment.status == "skipped"]
        if f.skip_reason:
            skip.append(Assignment.skip_reason.contains(f.skip_reason, autoescape=True))
        found = exists().where(*skip)
        where.append(~found if f.skipped is False and not f.skip_reason else found)
    if f.model:
        where.append(
            exists().where(Candidate.item_id == Item.id, Candidate.round == Item.round, Candidate.model == f.model)
        )
    return where


def _cursor(after: str | None) -> tuple[float | None, int]:
    if not after:
        return None, 0
    key, _, last = after.rpartition(":")
    try:
        return (float(key) if key else None), int(last)
    except ValueError as exc:
        raise Invalid("after: not a cursor from this list") from exc


FIRST_WINDOW = 50_000  # item ids: a text search in id order reads the newest (oldest) ids first, then 8× more


def _select(
    session: Session, project: Project, filters: Filters, limit: int, id_range: tuple[int, int] | None = None
) -> list[Any]:
    """The rows (item, sort key) of one page, in order, within ``id_range`` if given."""
    where = _filtered(session, project, filters, id_range)
    key_value, last_id = _cursor(filters.after)
    margin_col: Any = None
    if filters.sort == "margin" or filters.split or filters.margin_max is not None:
        m = margin_rows(Judgment.project_id == project.id).subquery()
        margin_col = func.coalesce(m.c.margin, NO_VOTES)
        query: Select[Any] = select(Item, margin_col).outerjoin(m, m.c.item_id == Item.id)
        if filters.margin_max is not None:
            where.append(margin_col <= filters.margin_max)
        if filters.split:
            where += [Item.judgment_count >= 2, margin_col < DEFAULT_MARGIN]
    else:
        query = select(Item, Item.judgment_count)
    sort = filters.sort
    if sort == "id":
        order: list[Any] = [Item.id]
        if last_id:
            where.append(Item.id > last_id)
    elif sort == "newest":
        order = [Item.id.desc()]
        if last_id:
            where.append(Item.id < last_id)
    elif sort == "judgments":
        order = [Item.judgment_count.desc(), Item.id.desc()]
        if filters.after:
            n = int(key_value or 0)
            where.append(or_(Item.judgment_count < n, and_(Item.judgment_count == n, Item.id < last_id)))
    else:
        order = [margin_col, Item.id]
        if filters.after:
            v = NO_VOTES if key_value is None else key_value
            where.append(or_(margin_col > v, and_(margin_col == v, Item.id > last_id)))
    return list(session.execute(query.where(*where).order_by(*order).limit(limit)).all())


def _windowed(session: Session, project: Project, filters: Filters, limit: int) -> list[Any]:
    """A text search in id order, a window of ids at a time: the text indexes give every match unordered, so
    reading them all to keep the first 50 costs as much as the matches; within a window the planner combines the
    text index with the id range (BitmapAnd) and reads only the matches inside it (docs/explorer.md)."""
    low, high = session.execute(select(func.min(Item.id), func.max(Item.id)).where(Item.project_id == project.id)).one()
    if low is None:
        return []
    _, last_id = _cursor(filters.after)
    rows: list[Any] = []
    size = FIRST_WINDOW
    if filters.sort == "newest":
        hi = min(high, last_id - 1) if last_id else high
        while hi >= low and len(rows) < limit:
            lo = max(low, hi - size + 1)
            rows += _select(session, project, filters, limit - len(rows), (lo, hi))
            hi, size = lo - 1, size * 8
    else:
        lo = max(low, last_id + 1)
        while lo <= high and len(rows) < limit:
            hi = min(high, lo + size - 1)
            rows += _select(session, project, filters, limit - len(rows), (lo, hi))
            lo, size = hi + 1, size * 8
    return rows


def explore(session: Session, *, project: Project, filters: Filters, limit: int = 50) -> Page:
    """One page of the project's items that match ``filters``, with the cursor of the next page."""
    if session.get_bind().dialect.name == "postgresql":
        # psycopg prepares a statement run 5 times, and PostgreSQL may then plan it once for any words: a generic
        # plan cannot tell a rare word from a common one (two words: 170 ms instead of 30). Plan each search.
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    if filters.q and filters.q.strip() and filters.sort in ("id", "newest"):
        result = _windowed(session, project, filters, limit + 1)
    else:
        result = _select(session, project, filters, limit + 1)
    items = [r[0] for r in result]
    more = len(items) > limit
    items = items[:limit]
    shown = page_margins(session, [i.id for i in items])
    models, counts = page_candidates(session, items)
    rows = [
        Row.model_validate(i).model_copy(
            update={"margin": shown.get(i.id), "models": models.get(i.id, []), "candidate_count": counts[i.id]}
        )
        for i in items
    ]
    nxt = None
    if more and items:
        last = items[-1]
        if filters.sort in ("id", "newest"):
            nxt = str(last.id)
        elif filters.sort == "judgments":
            nxt = f"{last.judgment_count}:{last.id}"
        else:
            nxt = f"{result[limit - 1][1]!r}:{last.id}"
    return Page(items=rows, next=nxt)


def page_margins(session: Session, item_ids: list[int]) -> dict[int, float]:
    """The overall margin of each of these items' current round (items without votes absent)."""
    if not item_ids:
        return {}
    rows = session.execute(margin_rows(Judgment.item_id.in_(item_ids))).tuples()
    return {int(i): round(float(v), 3) for i, v in rows}


def page_candidates(session: Session, items: list[Item]) -> tuple[dict[int, list[str]], dict[int, int]]:
    """The models of each item's current candidates, and how many current candidates it has."""
    models: dict[int, set[str]] = defaultdict(set)
    counts: dict[int, int] = defaultdict(int)
    if items:
        rows = session.execute(
            select(Candidate.item_id, Candidate.model)
            .join(Item, and_(Item.id == Candidate.item_id, Item.round == Candidate.round))
            .where(Candidate.item_id.in_([i.id for i in items]))
        ).tuples()
        for item_id, model in rows:
            counts[item_id] += 1
            if model:
                models[item_id].add(str(model))
    return {k: sorted(v) for k, v in models.items()}, counts
