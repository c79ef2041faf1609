"""From loaded verdicts to the units of agreement: the label (and strength) each verdict implies on each pair
of candidates, vectorized — the same pairs as ``app.export.pairs.pairs_of`` / ``strengths_of`` ("implied"
mode), which tests/agreement/test_units.py checks verdict by verdict — and the raters × units matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.agreement import stats
from app.agreement.loading import PREFERENCE, RANKING, TIE, Ratings


def candidate_pairs(k: int) -> list[tuple[int, int]]:
    """The pairs (i, j), i < j, of k candidates, in ``itertools.combinations`` order."""
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def pair_labels(ratings: Ratings, i: int, j: int) -> NDArray[np.int64]:
    """The label each verdict implies on the pair (i, j), i < j — FIRST, SECOND or TIE — or -1 for none."""
    c, w = ratings.chosen, ratings.rejected
    label = np.select(
        [c == i, c == j, w == i, w == j],
        [stats.FIRST, stats.SECOND, stats.SECOND, stats.FIRST],
        default=-1,
    )
    label = np.where(ratings.kind == PREFERENCE, label, -1)
    label = np.where(ratings.kind == TIE, stats.TIE, label)
    if ratings.tiers is not None:
        ti, tj = ratings.tiers[:, i], ratings.tiers[:, j]
        ranked = np.select([ti < tj, ti > tj], [stats.FIRST, stats.SECOND], default=stats.TIE)
        label = np.where(ratings.kind == RANKING, ranked, label)
    return label


def pair_strengths(ratings: Ratings, i: int, j: int, labels: NDArray[np.int64]) -> NDArray[np.int64]:
    """How much better the preferred candidate of the pair (i, j) is where the verdict says (1–3; 0 on a tie),
    -1 where it does not — as ``app.export.pairs.strengths_of``."""
    out = np.where((ratings.kind == PREFERENCE) & (labels >= 0) & (ratings.strength > 0), ratings.strength, -1)
    out = np.where(ratings.kind == TIE, 0, out)
    if ratings.tiers is not None and ratings.much is not None:
        low = np.minimum(ratings.tiers[:, i], ratings.tiers[:, j])
        high = np.maximum(ratings.tiers[:, i], ratings.tiers[:, j])
        # A "much better" gap g with low ≤ g < high: the bits from low up to high - 1.
        span = (np.left_shift(1, high) - np.left_shift(1, low)) & ratings.much
        ranked = np.where(low == high, 0, np.where(span != 0, 3, -1))
        out = np.where(ratings.kind == RANKING, ranked, out)
    return out


def signed(labels: NDArray[np.int64], strengths: NDArray[np.int64]) -> NDArray[np.float64]:
    """HelpSteer2's −3…3 scale on a pair: + for the first candidate, − for the second, 0 a tie; NaN unknown."""
    sign = np.select([labels == stats.FIRST, labels == stats.SECOND], [1.0, -1.0], default=0.0)
    return np.where((strengths >= 0) & (labels >= 0), sign * strengths, np.nan)


@dataclass
class Units:
    """One dimension's units (pairs with two or more ratings): raters × units labels (NaN missing), the item
    of each unit (the bootstrap's group), its key (item × pairs + pair index) and, where verdicts say how much
    better, the signed strengths (raters × units, NaN missing)."""

    data: NDArray[np.float64]
    groups: NDArray[np.int64]
    keys: NDArray[np.int64]
    strength: NDArray[np.float64] | None = None


def matrices(ratings: Ratings, *, k: int, dimensions: int, columns: NDArray[np.int64]) -> list[Units]:
    """Per dimension, the units of agreement (see ``Units``); ``columns`` is each verdict's rater row."""
    pairs = candidate_pairs(k)
    labels = np.stack([pair_labels(ratings, i, j) for i, j in pairs])  # pairs × verdicts
    has_strength = bool((ratings.strength > 0).any()) or (ratings.much is not None and bool(ratings.much.any()))
    signs = (
        np.stack([signed(labels[p], pair_strengths(ratings, i, j, labels[p])) for p, (i, j) in enumerate(pairs)])
        if has_strength
        else None
    )
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
        at = (columns[verdicts[rows]], new_index[inverse[rows]])
        data[at] = labels[p_idx[rows], verdicts[rows]]
        strength = None
        if signs is not None:
            strength = np.full(data.shape, np.nan)
            strength[at] = signs[p_idx[rows], verdicts[rows]]
        out.append(Units(data, keys[keep] // len(pairs), keys[keep], strength))
    return out
