"""Figures whose unit is not one pair: item-level agreement for k ≥ 3 (the same best and worst; for rankings
Kendall's W per item and τ-b between annotators), the strength α, and the conflicts between dimensions."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.agreement import stats
from app.agreement.loading import NA, PREFERENCE, RANKING, TIE, Ratings
from app.agreement.units import Units, candidate_pairs, pair_labels


@dataclass
class ItemLevel:
    exact: float | None = None  # share of annotator pairs on an item with the same best and worst (or order)
    exact_items: int = 0
    kendall_w: float | None = None  # mean over items ranked by two or more annotators
    w_items: int = 0
    kendall_tau: float | None = None  # mean over annotator pairs of their mean τ-b on shared items
    tau_pairs: int = 0


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


def answer_codes(ratings: Ratings, k: int) -> NDArray[np.int64]:
    """One integer per verdict that two verdicts share exactly when they say the same: (best, worst), a tie,
    or the whole order of a ranking; -1 for n.a."""
    code = np.where(ratings.kind == PREFERENCE, ratings.chosen * k + ratings.rejected, -1)
    code = np.where(ratings.kind == TIE, k * k, code)
    if ratings.tiers is not None:
        order = (ratings.tiers * (k ** np.arange(k))).sum(axis=1)
        code = np.where(ratings.kind == RANKING, k * k + 1 + order, code)
    return np.where(ratings.kind == NA, -1, code)


def item_level(ratings: Ratings, *, k: int, dimension: int) -> ItemLevel:
    """Item-level agreement of one dimension (k ≥ 3): exact agreement always, W and τ-b where there are
    rankings."""
    mine = (ratings.dimension == dimension) & (answer_codes(ratings, k) >= 0)
    exact, exact_items = stats.exact_agreement(ratings.item[mine], answer_codes(ratings, k)[mine])
    out = ItemLevel(exact=_finite(exact), exact_items=exact_items)
    ranked = np.flatnonzero((ratings.dimension == dimension) & (ratings.kind == RANKING))
    if ratings.tiers is None or not len(ranked):
        return out
    signs = np.stack(
        [np.select([lab == stats.FIRST, lab == stats.SECOND], [1, -1], 0) for lab in _labels(ratings, k, ranked)],
        axis=1,
    )  # ranked verdicts × pairs
    ranks = stats.mid_ranks(signs)
    items, annotators = ratings.item[ranked], ratings.annotator[ranked]
    order = np.argsort(items, kind="stable")
    bounds = np.flatnonzero(np.diff(items[order])) + 1
    ws: list[float] = []
    taus: dict[tuple[int, int], list[float]] = defaultdict(list)
    for rows in np.split(order, bounds):
        if len(rows) < 2:
            continue
        w = stats.kendall_w(ranks[rows])
        if not math.isnan(w):
            ws.append(w)
        a, b = np.triu_indices(len(rows), 1)
        for x, y, tau in zip(a, b, stats.tau_b(signs[rows[a]], signs[rows[b]]), strict=True):
            if not math.isnan(tau):
                first, second = sorted((int(annotators[rows[x]]), int(annotators[rows[y]])))
                taus[(first, second)].append(float(tau))
    if ws:
        out.kendall_w, out.w_items = _finite(float(np.mean(ws))), len(ws)
    if taus:
        out.kendall_tau = _finite(float(np.mean([np.mean(v) for v in taus.values()])))
        out.tau_pairs = len(taus)
    return out


def _labels(ratings: Ratings, k: int, rows: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    return [pair_labels(ratings, i, j)[rows] for i, j in candidate_pairs(k)]


def strength_alpha(units: Units) -> tuple[float | None, int]:
    """Interval-metric α over the signed strengths (−3…3, a tie 0) and the units it uses (two or more)."""
    if units.strength is None:
        return None, 0
    used = int(((~np.isnan(units.strength)).sum(axis=0) >= 2).sum())
    return (_finite(stats.interval_alpha(units.strength)) if used else None), used


@dataclass
class Conflict:
    first: str
    second: str
    pairs: int  # pairs with a majority winner on both dimensions
    conflicts: int  # of them, pairs whose winner on one dimension loses on the other


def majority_winners(units: Units) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The keys of the units with a majority direction (more votes for one candidate than for the other) and
    that direction (FIRST or SECOND), as ``app.export.pairs.winner``."""
    first = (units.data == stats.FIRST).sum(axis=0)
    second = (units.data == stats.SECOND).sum(axis=0)
    decided = first != second
    return units.keys[decided], np.where(first > second, stats.FIRST, stats.SECOND)[decided]


def conflicts(names: list[str], per_dimension: list[Units]) -> list[Conflict]:
    """For every two dimensions, the pairs decided on both and how many of them the two decide differently."""
    winners = [majority_winners(units) for units in per_dimension]
    out = []
    for x in range(len(names)):
        for y in range(x + 1, len(names)):
            (keys_x, won_x), (keys_y, won_y) = winners[x], winners[y]
            _, at_x, at_y = np.intersect1d(keys_x, keys_y, assume_unique=True, return_indices=True)
            out.append(Conflict(names[x], names[y], len(at_x), int((won_x[at_x] != won_y[at_y]).sum())))
    return out
