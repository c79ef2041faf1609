"""Arena figures — pure functions over vote arrays, no database.

The votes of one dimension are two arrays of shape (items, models, models): ``wins[i, a, b]`` counts the votes on
item i that put model a above model b, ``ties[i, a, b]`` (= ``ties[i, b, a]``) the votes that tied them. Intervals
come from a bootstrap over items (a seeded generator): an item's votes stay together, as they are not independent.

Win rate of a over b: (wins + ties / 2) / votes. Bradley–Terry: ``choix.ilsr_pairwise_dense`` (iterative Luce
spectral ranking, the maximum-likelihood estimate) on the matrix wins + ties / 2 — a tie is half a win each way —
with a small regularisation ``alpha`` so a model that never lost still has a finite strength. Ratings are the
log-strengths on the Elo scale: 1000 + 400 / ln 10 · (θ − mean θ), so 400 points mean 10 : 1 odds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

ALPHA = 0.01  # pseudo-count of the LSR chain: keeps an undefeated model's strength finite
BOOTSTRAP = 200
LEVEL = 0.95
ELO_SCALE = 400 / math.log(10)
ELO_CENTRE = 1000.0

Votes = NDArray[np.float64]


@dataclass(frozen=True)
class PairFigures:
    a: int
    b: int
    wins: float  # votes for a over b
    ties: float
    losses: float
    win_rate: float | None  # of a against b, ties half; None without votes
    low: float | None
    high: float | None

    @property
    def votes(self) -> float:
        return self.wins + self.ties + self.losses


@dataclass(frozen=True)
class Ratings:
    rating: list[float]
    low: list[float]
    high: list[float]


@dataclass(frozen=True)
class Decision:
    decided: bool
    votes_needed: int | None  # more votes on the top pair; None when decided or when no difference is seen
    hours_needed: float | None  # at the current vote rate; None without a rate


def resample_weights(n_items: int, *, rounds: int = BOOTSTRAP, seed: int = 0) -> NDArray[np.float64]:
    """(rounds, n_items): how often each item is drawn in each bootstrap resample (with replacement)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_items, size=(rounds, n_items))
    weights = np.zeros((rounds, n_items))
    np.add.at(weights, (np.repeat(np.arange(rounds), n_items), draws.ravel()), 1.0)
    return weights


def _resampled(votes: Votes, weights: NDArray[np.float64]) -> Votes:
    """(rounds, m, m): the votes summed over each resample's items."""
    n, m, _ = votes.shape
    return (weights @ votes.reshape(n, m * m)).reshape(-1, m, m)


def _interval(values: NDArray[np.float64], level: float = LEVEL) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def pair_table(wins: Votes, ties: Votes, *, rounds: int = BOOTSTRAP, seed: int = 0) -> list[PairFigures]:
    """Win/tie/loss and win rate (ties half) of every model pair a < b, with bootstrap percentile intervals."""
    n, m, _ = wins.shape
    total_w, total_t = wins.sum(axis=0), ties.sum(axis=0)
    weights = resample_weights(n, rounds=rounds, seed=seed) if n else np.zeros((0, 0))
    boot_w, boot_t = (_resampled(wins, weights), _resampled(ties, weights)) if n else (None, None)
    out = []
    for a in range(m):
        for b in range(a + 1, m):
            w, t, losses = float(total_w[a, b]), float(total_t[a, b]), float(total_w[b, a])
            votes = w + t + losses
            if votes == 0 or boot_w is None or boot_t is None:
                out.append(PairFigures(a, b, w, t, losses, None, None, None))
                continue
            bw, bt, bl = boot_w[:, a, b], boot_t[:, a, b], boot_w[:, b, a]
            bn = bw + bt + bl
            with np.errstate(invalid="ignore", divide="ignore"):
                rates = np.where(bn > 0, (bw + bt / 2) / np.where(bn > 0, bn, 1), np.nan)
            low, high = _interval(rates)
            out.append(PairFigures(a, b, w, t, losses, (w + t / 2) / votes, low, high))
    return out


def bradley_terry(
    comparisons: NDArray[np.float64], *, alpha: float = ALPHA, start: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """Log-strengths θ (mean 0) of the models from ``comparisons[a, b]`` = (possibly fractional) wins of a over b.
    ``start``: where the iteration begins (the full data's θ for a bootstrap resample: four times faster).
    choix brings SciPy: imported here, so a web process loads it only when a leaderboard is computed."""
    import choix

    params = choix.ilsr_pairwise_dense(comparisons.astype(float), alpha=alpha, initial_params=start, tol=1e-7)
    theta: NDArray[np.float64] = np.asarray(params, dtype=np.float64)
    return theta - float(theta.mean())


def to_elo(theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """Log-strengths on the Elo scale: centred at 1000, 400 points for odds of 10 to 1."""
    centred: NDArray[np.float64] = theta - float(theta.mean())
    return ELO_CENTRE + ELO_SCALE * centred


def ratings(
    wins: Votes, ties: Votes, *, alpha: float = ALPHA, rounds: int = BOOTSTRAP, seed: int = 0
) -> Ratings | None:
    """A Bradley–Terry rating per model (Elo scale) with bootstrap intervals; None without votes."""
    n, m, _ = wins.shape
    comparisons = wins + ties / 2
    if n == 0 or comparisons.sum() == 0:
        return None
    theta = bradley_terry(comparisons.sum(axis=0), alpha=alpha)
    boot = _resampled(comparisons, resample_weights(n, rounds=rounds, seed=seed))
    draws = np.array([to_elo(bradley_terry(c, alpha=alpha, start=theta)) for c in boot if c.sum() > 0])
    point = to_elo(theta)
    lows, highs = zip(*(_interval(draws[:, j]) for j in range(m)), strict=True)
    return Ratings(rating=point.tolist(), low=list(lows), high=list(highs))


def votes_per_hour(timestamps: list[float]) -> float | None:
    """Votes per hour between the first and the last of ``timestamps`` (seconds); None with fewer than two or no
    time between them."""
    if len(timestamps) < 2:
        return None
    span = max(timestamps) - min(timestamps)
    return (len(timestamps) - 1) / (span / 3600) if span > 0 else None


def decision(pair: PairFigures, *, votes_per_hour: float | None) -> Decision:
    """Decided when the pair's win-rate interval excludes 0.5. Otherwise the votes still needed for the interval's
    half-width w to shrink to the effect |p − 0.5| (width falls as 1/√n): n·(w/|p − 0.5|)² − n, and the hours
    they take at the current rate."""
    if pair.win_rate is None or pair.low is None or pair.high is None:
        return Decision(False, None, None)
    if pair.low > 0.5 or pair.high < 0.5:
        return Decision(True, None, None)
    effect = abs(pair.win_rate - 0.5)
    if effect == 0:
        return Decision(False, None, None)
    half_width = (pair.high - pair.low) / 2
    n = pair.votes
    needed = max(0, math.ceil(n * (half_width / effect) ** 2 - n))
    hours = needed / votes_per_hour if votes_per_hour else None
    return Decision(False, needed, hours)


def top_pair(table: list[PairFigures], rating: list[float]) -> PairFigures | None:
    """The figures of the two best-rated models."""
    if len(rating) < 2:
        return None
    first, second = (int(j) for j in np.argsort(rating)[::-1][:2])
    a, b = min(first, second), max(first, second)
    return next((p for p in table if (p.a, p.b) == (a, b)), None)
