"""A project's pair labels as numpy arrays, read fast: packed integer columns (``app.agreement.loading``), the
pairs each verdict implies worked out in numpy for all verdicts at once.

What is read is the current candidate round of ordinary (not gold) items, as for the agreement figures. Labels
follow ``app.export.pairs.pairs_of`` in "implied" mode: best ≻ each other and each other ≻ worst, every pair of
a ranking, every pair tied by a tie, nothing from "n.a.".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import combinations
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from sqlalchemy import BigInteger, Select, case, cast, func, select
from sqlalchemy.orm import Session

from app.agreement.loading import at_once, int_columns
from app.export.pairs import FIRST, SECOND, TIE
from app.models import OVERALL, Assignment, Candidate, Item, Judgment, Project, Verdict

PREFERENCE, TIE_KIND, NA, RANKING = 0, 1, 2, 3  # verdict kinds as loaded


def pair_index(k: int) -> list[tuple[int, int]]:
    """The pairs (i < j) of k candidates; a pair is stored as its place in this list."""
    return list(combinations(range(k), 2))


@dataclass
class Labels:
    """One entry per implied pair label of a project's current round (gold items left out)."""

    dimension: NDArray[np.int64]  # index into [overall, *dimensions]
    item: NDArray[np.int64]
    pair: NDArray[np.int64]  # index into ``pair_index(k)``
    annotator: NDArray[np.int64]
    shown_first: NDArray[np.bool_]  # the pair's first candidate was shown before its second
    label: NDArray[np.int64]  # FIRST, SECOND, TIE


def _big(column: Any) -> Any:
    return cast(column, BigInteger)


def _queries(session: Session, project: Project) -> tuple[list[Select[Any]], Select[Any] | None]:
    """Judgments (with the display order), candidates, verdicts (two halves of the project's judgment id range,
    read at the same time; other projects' rows in it are dropped in numpy) and, for k ≥ 3, the rankings."""
    dims = [OVERALL, *project.dimension_keys]
    # The first k - 1 candidates shown (the last is the one left); judgment and item ids packed with the first
    # two of them (fewer values to move is what counts): ids < 2^31, annotator ids < 2^24.
    shown = [_big(func.coalesce(Assignment.display_order[n].as_integer(), 0)) for n in range(project.k - 1)]
    judgments = (
        select(
            _big(Judgment.id) * (1 << 32) + shown[0],
            _big(Judgment.item_id) * (1 << 24) + Judgment.annotator_id,
            *shown[1:],
        )
        .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
        .join(Assignment, Assignment.id == Judgment.assignment_id)
        .where(Judgment.project_id == project.id, Item.is_gold.is_(False))
    )
    candidates = (
        select(_big(Candidate.id) * 4 + Candidate.position)
        .join(Item, (Item.id == Candidate.item_id) & (Item.round == Candidate.round))
        .where(Item.project_id == project.id)
    )
    low, high = session.execute(
        select(func.min(Judgment.id), func.max(Judgment.id)).where(Judgment.project_id == project.id)
    ).one()
    low, high = low or 0, high or -1
    middle = (low + high) // 2
    code = (
        _big(Verdict.judgment_id) * 256
        + case({d: i for i, d in enumerate(dims)}, value=Verdict.dimension, else_=63) * 4
        + case({"preference": PREFERENCE, "tie": TIE_KIND, "ranking": RANKING}, value=Verdict.kind, else_=NA)
    )
    ids = _big(func.coalesce(Verdict.chosen_candidate_id, 0)) * (1 << 32) + func.coalesce(
        Verdict.rejected_candidate_id, 0
    )
    verdicts = [
        select(code, ids).where(Verdict.judgment_id.between(a, b)) for a, b in ((low, middle), (middle + 1, high))
    ]
    rankings = None
    if project.k >= 3:
        rankings = select(Verdict.judgment_id, Verdict.dimension, Verdict.ranking).where(
            Verdict.judgment_id.between(low, high), Verdict.kind == "ranking"
        )
    return [judgments, candidates, *verdicts], rankings


def _ranking_rows(session: Session, query: Select[Any]) -> list[Any]:
    return list(session.execute(query).all())


def _lookup(keys: NDArray[np.int64], values: NDArray[np.int64], wanted: NDArray[np.int64]) -> NDArray[np.int64]:
    """``values`` at the place of each ``wanted`` key in ``keys`` (sorted, unique, positive), -1 where absent.

    A dense table indexed by key when the keys span a modest range (one gather: ids of one project mostly do),
    else a binary search."""
    if not len(keys):
        return np.full(len(wanted), -1, dtype=np.int64)
    low, high = int(keys[0]), int(keys[-1])
    if high - low <= max(8 * len(keys), 1 << 20):
        table = np.full(high - low + 2, -1, dtype=np.int64)  # the last slot: every key outside the range
        table[keys - low] = values
        at = wanted - low
        at[(at < 0) | (at > high - low)] = high - low + 1
        return table[at]
    found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[found] == wanted, values[found], -1)


def load_labels(session: Session, *, project: Project) -> Labels:
    """Every pair label of the project's current round, in four to five reads made at the same time."""
    queries, rankings_query = _queries(session, project)
    tasks: list[Callable[[Session], Any]] = [partial(int_columns, query=q) for q in queries]
    if rankings_query is not None:
        tasks.append(partial(_ranking_rows, query=rankings_query))
    results = at_once(session, tasks)
    judgment_columns, (id_position,) = results[0], results[1]
    parts = results[2:4]
    k = project.k
    order = np.argsort(judgment_columns[0])
    j_id, first_shown = np.divmod(judgment_columns[0][order], 1 << 32)
    j_item, j_annotator = np.divmod(judgment_columns[1][order], 1 << 24)
    c_id, c_position = np.divmod(np.sort(id_position), 4)
    # Where each canonical position was shown (0 = first) in each judgment; the one not named was shown last.
    shown_at = np.full((len(j_id), k), k - 1, dtype=np.int64)
    for slot, column in enumerate([first_shown, *(c[order] for c in judgment_columns[2:])]):
        position = _lookup(c_id, c_position, column)
        known = position >= 0
        shown_at[np.flatnonzero(known), position[known]] = slot
    code, ids = (np.concatenate([part[n] for part in parts]) for n in range(2))
    v_judgment, rest = np.divmod(code, 256)
    dimension, kind = np.divmod(rest, 4)
    at = _lookup(j_id, np.arange(len(j_id)), v_judgment)
    keep = (at >= 0) & (dimension < 63) & (kind != NA) & (kind != RANKING)
    chosen, rejected = (_lookup(c_id, c_position, side) for side in np.divmod(ids[keep], 1 << 32))
    verdict_at, verdict_dim, verdict_kind = at[keep], dimension[keep], kind[keep]
    tiers = None
    if rankings_query is not None and results[-1]:
        extra = _rankings(results[-1], project, j_id, c_id, c_position)
        n = len(verdict_at)
        verdict_at = np.concatenate([verdict_at, extra[0]])
        verdict_dim = np.concatenate([verdict_dim, extra[1]])
        verdict_kind = np.concatenate([verdict_kind, np.full(len(extra[0]), RANKING)])
        chosen = np.concatenate([chosen, np.full(len(extra[0]), -1)])
        rejected = np.concatenate([rejected, np.full(len(extra[0]), -1)])
        tiers = np.concatenate([np.zeros((n, k), dtype=np.int64), extra[2]])
    return _implied(
        k,
        verdict_kind,
        chosen,
        rejected,
        tiers,
        dimension=verdict_dim,
        judgment=verdict_at,
        item=j_item,
        annotator=j_annotator,
        shown_at=shown_at,
    )


def _rankings(
    rows: list[Any], project: Project, j_id: NDArray[np.int64], c_id: NDArray[np.int64], c_pos: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The ranking verdicts that count: (judgment row, dimension index, tier of each canonical position)."""
    dims = {d: i for i, d in enumerate([OVERALL, *project.dimension_keys])}
    at_list, dim_list, tier_list = [], [], []
    for judgment_id, dimension, ranking in rows:
        if dimension not in dims:
            continue
        data = orjson.loads(ranking) if isinstance(ranking, str | bytes) else ranking
        tiers = np.zeros(project.k, dtype=np.int64)
        for tier, members in enumerate(data["tiers"]):
            tiers[_lookup(c_id, c_pos, np.array(members, dtype=np.int64))] = tier
        at_list.append(judgment_id)
        dim_list.append(dims[dimension])
        tier_list.append(tiers)
    at = _lookup(j_id, np.arange(len(j_id)), np.array(at_list, dtype=np.int64))
    keep = at >= 0
    tiers_array = np.array(tier_list, dtype=np.int64).reshape(-1, project.k)
    return at[keep], np.array(dim_list, dtype=np.int64)[keep], tiers_array[keep]


def _implied(
    k: int,
    kind: NDArray[np.int64],
    chosen: NDArray[np.int64],
    rejected: NDArray[np.int64],
    tiers: NDArray[np.int64] | None,
    *,
    dimension: NDArray[np.int64],
    judgment: NDArray[np.int64],
    item: NDArray[np.int64],
    annotator: NDArray[np.int64],
    shown_at: NDArray[np.int64],
) -> Labels:
    """The pairs each verdict implies (as ``pairs_of(..., "implied")``), for all verdicts at once.

    Per verdict: ``kind``, ``chosen`` / ``rejected`` (canonical positions, -1 for none), ``tiers`` (a ranking's
    tier of each position; None when there are no rankings), ``dimension`` and ``judgment`` (a row of ``item``,
    ``annotator`` and ``shown_at``: where each canonical position was shown, per judgment)."""
    parts: dict[str, list[NDArray[Any]]] = {name: [] for name in Labels.__dataclass_fields__}
    preference, tie = kind == PREFERENCE, kind == TIE_KIND
    for p, (i, j) in enumerate(pair_index(k)):
        label = np.full(len(kind), -1, dtype=np.int64)
        # best ≻ every other; every other ≻ worst
        middle = preference & (chosen != i) & (chosen != j)
        label[middle & (rejected == j)] = FIRST
        label[middle & (rejected == i)] = SECOND
        label[preference & (chosen == i)] = FIRST
        label[preference & (chosen == j)] = SECOND
        label[tie] = TIE
        if tiers is not None:
            ranked = kind == RANKING
            ti, tj = tiers[ranked, i], tiers[ranked, j]
            label[ranked] = np.where(ti < tj, FIRST, np.where(ti > tj, SECOND, TIE))
        has = np.flatnonzero(label >= 0)
        rows = judgment[has]
        parts["label"].append(label[has])
        parts["pair"].append(np.full(len(has), p, dtype=np.int64))
        parts["shown_first"].append((shown_at[:, i] < shown_at[:, j])[rows])
        parts["dimension"].append(dimension[has])
        parts["item"].append(item[rows])
        parts["annotator"].append(annotator[rows])
    if k == 2:
        return Labels(**{name: values[0] for name, values in parts.items()})
    return Labels(**{name: np.concatenate(values) for name, values in parts.items()})
