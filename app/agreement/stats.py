"""Agreement statistics over preference pairs — pure functions over arrays, no database.

The unit of agreement is a preference pair (SPEC): for an item, a dimension, and two candidates i < j in
canonical order, each annotator's judgment implies a label — FIRST (i better), SECOND (j better) or TIE —
or nothing ("n.a.", or a pair the judgment does not imply). Missing is missing, never a category.

Library code does the statistics: statsmodels (Fleiss), scikit-learn (Cohen), krippendorff (α). They are
imported where they are used: together with pandas and SciPy they are 190 MB of memory and a second of start-up,
which a web server process, serving figures the worker stored, never needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# The pair rules are the export's: one definition of what a verdict implies, for figures and for training data.
from app.export.pairs import FIRST as FIRST
from app.export.pairs import SECOND as SECOND
from app.export.pairs import TIE as TIE
from app.export.pairs import Pair as Pair
from app.export.pairs import implied_pairs as implied_pairs

CATEGORIES = (FIRST, SECOND, TIE)


def percent_agreement(data: NDArray[np.float64]) -> float:
    """Share of agreeing rater pairs within units, over all units with at least two ratings."""
    present = ~np.isnan(data)
    n = present.sum(axis=0)
    counts = np.stack([(data == c).sum(axis=0) for c in CATEGORIES])  # categories × units
    agreeing = (counts * (counts - 1) // 2).sum(axis=0)
    pairs = n * (n - 1) // 2
    usable = n >= 2
    total = int(pairs[usable].sum())
    return float(agreeing[usable].sum() / total) if total else float("nan")


def fleiss(data: NDArray[np.float64], r: int | None = None) -> tuple[float, int]:
    """Fleiss' κ over the units rated by exactly ``r`` raters (default: the most common count).

    Fleiss' κ assumes the same number of ratings per unit, so units with fewer (or more) are left out;
    returns (κ, units used).
    """
    counts = (~np.isnan(data)).sum(axis=0)
    if r is None:
        values, freq = np.unique(counts[counts >= 2], return_counts=True)
        if not len(values):
            return float("nan"), 0
        r = int(values[np.argmax(freq)])
    full = data[:, counts == r]
    if full.shape[1] == 0:
        return float("nan"), 0
    # units × categories counts (rater identity does not matter to Fleiss), then statsmodels' κ.
    table = np.stack([(full == c).sum(axis=0) for c in CATEGORIES], axis=1)
    return fleiss_from_table(table), int(full.shape[1])


def fleiss_from_table(table: NDArray[np.int64]) -> float:
    """Fleiss' κ from a units × categories count table (each row sums to the same r)."""
    # Imported on first use: a server process that only serves stored figures never loads it.
    from statsmodels.stats.inter_rater import fleiss_kappa

    return float(fleiss_kappa(np.asarray(table), method="fleiss"))


def cohen(a: NDArray[np.float64], b: NDArray[np.float64]) -> tuple[float, int]:
    """Cohen's κ of two raters over the units both rated; returns (κ, shared units)."""
    both = ~np.isnan(a) & ~np.isnan(b)
    n = int(both.sum())
    if n == 0:
        return float("nan"), 0
    x, y = a[both].astype(int), b[both].astype(int)
    if len(set(x) | set(y)) == 1:  # one label only: agreement is perfect but κ is undefined
        return float("nan"), n
    # Imported on first use: a server process that only serves stored figures never loads it.
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(x, y, labels=list(CATEGORIES))), n


def alpha(data: NDArray[np.float64]) -> float:
    """Krippendorff's α (nominal), which handles missing ratings."""
    usable = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
    if usable.shape[1] == 0 or len(np.unique(usable[~np.isnan(usable)])) < 2:
        return float("nan")
    # Imported on first use: a server process that only serves stored figures never loads it.
    import krippendorff

    return float(krippendorff.alpha(reliability_data=usable, level_of_measurement="nominal"))


@dataclass
class Interval:
    low: float
    high: float


def bootstrap(
    data: NDArray[np.float64],
    statistic: Callable[[NDArray[np.float64]], float],
    *,
    groups: NDArray[np.int64] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Percentile bootstrap interval of ``statistic``, resampling with replacement.

    With ``groups`` (one group id per unit column, e.g. the item a pair belongs to) whole groups are
    resampled — the pairs of one item are not independent; without, single units.
    """
    if groups is None:
        groups = np.arange(data.shape[1])
    _, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    n = len(sizes)
    if n < 2:
        return Interval(float("nan"), float("nan"))
    order = np.argsort(inverse, kind="stable")  # units grouped, group by group
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        chosen = rng.integers(0, n, n)
        # The units of the chosen groups: each group's start repeated over its size, plus 0..size-1.
        lengths = sizes[chosen]
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        value = statistic(data[:, order[np.repeat(starts[chosen], lengths) + offsets]])
        if not np.isnan(value):
            values.append(value)
    if not values:
        return Interval(float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high))


def category_counts(data: NDArray[np.float64]) -> NDArray[np.int64]:
    """units × categories: how many raters gave each label to each unit."""
    return np.stack([(data == c).sum(axis=0) for c in CATEGORIES], axis=1).astype(np.int64)


# Weighted forms of the three statistics over a units × categories count table. A weight is how many times
# a unit is drawn in a bootstrap resample, so one resample costs a few dot products over the units, with no
# copy of the data. With all weights 1 they are the textbook formulas; tests check them against statsmodels
# and krippendorff on the resampled data itself. ``*_statistic`` does the per-unit work once and returns the
# function of the weights.

Weighted = Callable[[NDArray[np.float64]], float]


def fleiss_statistic(counts: NDArray[np.int64], r: int) -> Weighted:
    """Fleiss' κ of the units rated by exactly ``r`` raters, as a function of the unit weights."""
    full = counts.sum(axis=1) == r
    n = counts[full].astype(float)
    p_unit = ((n * n).sum(axis=1) - r) / (r * (r - 1)) if r >= 2 else np.zeros(len(n))

    def kappa(weights: NDArray[np.float64]) -> float:
        w = weights[full]
        total = float(w.sum())
        if total == 0 or r < 2:
            return float("nan")
        p_bar = float(w @ p_unit) / total
        p_cat = (w @ n) / (r * total)
        p_e = float((p_cat * p_cat).sum())
        return float("nan") if p_e >= 1 else (p_bar - p_e) / (1 - p_e)

    return kappa


def alpha_statistic(counts: NDArray[np.int64]) -> Weighted:
    """Krippendorff's nominal α from the coincidence matrix, as a function of the unit weights."""
    m = counts.sum(axis=1)
    usable = m >= 2
    n, m = counts[usable].astype(float), m[usable].astype(float)
    matching = (n * (n - 1)).sum(axis=1) / (m - 1) if len(m) else np.zeros(0)  # each unit's Σ_c o_cc

    def alpha(weights: NDArray[np.float64]) -> float:
        w = weights[usable]
        per_category = w @ n  # n_c: pairable values of each category
        total = float(per_category.sum())
        expected = total * total - float((per_category * per_category).sum())  # Σ_{c≠k} n_c n_k
        if total <= 1 or expected == 0:
            return float("nan")
        return 1 - (total - 1) * (total - float(w @ matching)) / expected

    return alpha


def percent_agreement_statistic(counts: NDArray[np.int64]) -> Weighted:
    """Share of agreeing rater pairs within units (two or more ratings), as a function of the unit weights."""
    m = counts.sum(axis=1)
    pairs = m * (m - 1) / 2
    agreeing = (counts * (counts - 1) / 2).sum(axis=1)

    def agreement(weights: NDArray[np.float64]) -> float:
        total = float(weights @ pairs)
        return float(weights @ agreeing) / total if total else float("nan")

    return agreement


def fleiss_weighted(counts: NDArray[np.int64], weights: NDArray[np.float64], r: int) -> float:
    return fleiss_statistic(counts, r)(weights)


def alpha_weighted(counts: NDArray[np.int64], weights: NDArray[np.float64]) -> float:
    return alpha_statistic(counts)(weights)


def percent_agreement_weighted(counts: NDArray[np.int64], weights: NDArray[np.float64]) -> float:
    return percent_agreement_statistic(counts)(weights)


def bootstrap_weighted(
    statistics: Sequence[Weighted],
    *,
    groups: NDArray[np.int64],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[Interval]:
    """For each statistic, the interval ``bootstrap`` gives with the same seed (the same draws of groups),
    each resample passed as unit weights; every statistic sees the same resamples."""
    _, inverse = np.unique(groups, return_inverse=True)
    n = int(inverse.max()) + 1 if len(inverse) else 0
    nan = Interval(float("nan"), float("nan"))
    if n < 2:
        return [nan for _ in statistics]
    one_unit_each = n == len(inverse) and bool((inverse == np.arange(n)).all())  # weights need no gather
    rng = np.random.default_rng(seed)
    values: list[list[float]] = [[] for _ in statistics]
    for _ in range(resamples):
        drawn = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        weights = drawn if one_unit_each else drawn[inverse]
        for out, statistic in zip(values, statistics, strict=True):
            value = statistic(weights)
            if not np.isnan(value):
                out.append(value)
    tail = (1 - level) / 2 * 100
    intervals = []
    for out in values:
        if out:
            low, high = np.percentile(out, [tail, 100 - tail])
            intervals.append(Interval(float(low), float(high)))
        else:
            intervals.append(nan)
    return intervals


LANDIS_KOCH = [
    (0.0, "poor (no better than chance)"),
    (0.20, "slight"),
    (0.40, "fair"),
    (0.60, "moderate"),
    (0.80, "substantial"),
    (1.01, "almost perfect"),
]


def landis_koch(kappa: float) -> str:
    """The Landis–Koch band of a κ or α value."""
    if np.isnan(kappa):
        return "not enough data"
    if kappa < 0:
        return "poor (worse than chance)"
    for upper, label in LANDIS_KOCH[1:]:
        if kappa <= upper:
            return label
    return "almost perfect"


# --- added with rankings and strength: coverage, Cohen's κ with its interval, item-level figures -----------------


def coverage(used: int, units: int) -> float | None:
    """The share of the units α uses (two or more ratings) that Fleiss' κ uses too (exactly r ratings)."""
    return used / units if units else None


def cohen_statistic(x: NDArray[np.int64], y: NDArray[np.int64]) -> Weighted:
    """Cohen's κ of two raters' labels on the same units, as a function of the unit weights (the textbook
    formula over the weighted confusion table; with all weights 1 it is scikit-learn's ``cohen_kappa_score``)."""
    size = len(CATEGORIES)
    cell = x * size + y  # each unit's cell of the confusion table

    def kappa(weights: NDArray[np.float64]) -> float:
        # A weighted bincount: 15 times faster than a product with a one-hot matrix (200 resamples of 100k units).
        table = np.bincount(cell, weights=weights, minlength=size * size).reshape(size, size)
        total = float(table.sum())
        if total == 0:
            return float("nan")
        observed = float(np.trace(table)) / total
        expected = float(table.sum(axis=1) @ table.sum(axis=0)) / (total * total)
        return float("nan") if expected >= 1 else (observed - expected) / (1 - expected)

    return kappa


POSITION_BIAS_P = 0.01  # flagged below this p …
POSITION_BIAS_MIN = 20  # … once there are this many choices with a known display order


def position_bias(first_chosen: int, judgments: int, k: int) -> tuple[float | None, bool]:
    """Two-sided binomial test of choosing the candidate shown first ``first_chosen`` times in ``judgments``
    against chance 1/k (not 1/2: at k = 4 a quarter of choices land first by chance); returns (p, flagged):
    flagged when p < ``POSITION_BIAS_P`` after ``POSITION_BIAS_MIN`` or more choices."""
    if judgments == 0:
        return None, False
    from scipy.stats import binomtest

    p = float(binomtest(first_chosen, judgments, 1 / k).pvalue)
    return p, judgments >= POSITION_BIAS_MIN and p < POSITION_BIAS_P


def exact_agreement(unit: NDArray[np.int64], category: NDArray[np.int64]) -> tuple[float, int]:
    """Share of rater pairs within a unit who gave exactly the same answer, over units with two or more answers;
    returns (share, units used). Units and categories are arbitrary integer codes, one entry per rating."""
    if not len(unit):
        return float("nan"), 0
    _, per_unit = np.unique(unit, return_counts=True)
    _, per_answer = np.unique(np.stack([unit, category]), axis=1, return_counts=True)
    pairs = int((per_unit * (per_unit - 1) // 2).sum())
    agreeing = int((per_answer * (per_answer - 1) // 2).sum())
    return (agreeing / pairs if pairs else float("nan")), int((per_unit >= 2).sum())


def kendall_w(ranks: NDArray[np.float64]) -> float:
    """Kendall's coefficient of concordance W of m raters (rows) ranking the same n objects (columns), ties as
    mid-ranks, with the tie correction (Kendall & Babington Smith; Siegel & Castellan, Nonparametric Statistics,
    2nd ed., eq. 9.16):

        W = 12 S / (m² (n³ − n) − m Σ_j T_j),  S = Σ_i (R_i − R̄)²,  T_j = Σ_g (t_g³ − t_g)

    R_i the rank sum of object i, t_g the size of each group of ties of rater j. NaN when every rater ties all."""
    m, n = ranks.shape
    if m < 2 or n < 2:
        return float("nan")
    sums = ranks.sum(axis=0)
    s = float(((sums - sums.mean()) ** 2).sum())
    ties = 0.0
    for row in ranks:
        _, sizes = np.unique(row, return_counts=True)
        ties += float((sizes**3 - sizes).sum())
    denominator = m * m * (n**3 - n) - m * ties
    return 12 * s / denominator if denominator > 0 else float("nan")


def mid_ranks(signs: NDArray[np.int64]) -> NDArray[np.float64]:
    """Mid-ranks (1 best) of k objects from the signs of every pair (i, j), i < j, in ``combinations`` order:
    +1 i better, −1 j better, 0 tied; one row per ranking. An object's rank is 1 + the objects better than it
    + half the objects tied with it."""
    rows, k = signs.shape[0], _objects(signs.shape[1])
    beaten_by = np.zeros((rows, k))
    for column, (i, j) in enumerate(_pairs(k)):
        s = signs[:, column]
        beaten_by[:, j] += (s > 0) + 0.5 * (s == 0)
        beaten_by[:, i] += (s < 0) + 0.5 * (s == 0)
    return 1 + beaten_by


def tau_b(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float64]:
    """Kendall's τ-b of two rankings of the same objects, row by row, from the signs of every pair (as
    ``mid_ranks``): Σ a·b / √(untied pairs of a × untied pairs of b) — equal to ``scipy.stats.kendalltau``
    (variant "b") on the ranks; NaN where either ranking ties everything."""
    concordance = (a * b).sum(axis=1).astype(float)
    untied = (a != 0).sum(axis=1) * (b != 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(untied > 0, concordance / np.sqrt(untied), np.nan)


def _pairs(k: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def _objects(pairs: int) -> int:
    return {1: 2, 3: 3, 6: 4, 10: 5}[pairs]


def interval_alpha(data: NDArray[np.float64]) -> float:
    """Krippendorff's α with the interval metric (signed strength −3…3, a tie 0), which handles missing ratings."""
    usable = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
    if usable.shape[1] == 0 or len(np.unique(usable[~np.isnan(usable)])) < 2:
        return float("nan")
    import krippendorff

    return float(krippendorff.alpha(reliability_data=usable, level_of_measurement="interval"))
