"""Arena statistics on textbook data: Bradley–Terry against an independent MLE, bootstrap win rates on planted data,
and the stop-when-decided rule both ways."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from app.arena import stats


def _bt_mle(comparisons: np.ndarray) -> np.ndarray:
    """The Bradley–Terry MLE by direct minimisation of the negative log-likelihood (θ_0 fixed at 0)."""
    m = comparisons.shape[0]

    def nll(free: np.ndarray) -> float:
        theta = np.concatenate([[0.0], free])
        total = 0.0
        for a in range(m):
            for b in range(m):
                if a != b and comparisons[a, b]:
                    total -= comparisons[a, b] * (theta[a] - np.logaddexp(theta[a], theta[b]))
        return total

    theta = np.concatenate([[0.0], minimize(nll, np.zeros(m - 1), method="BFGS", options={"gtol": 1e-10}).x])
    return theta - theta.mean()


def test_two_players_closed_form() -> None:
    # A beats B 7 times, B beats A 3 times: θ_A − θ_B = ln(7/3).
    comparisons = np.array([[0.0, 7.0], [3.0, 0.0]])
    theta = stats.bradley_terry(comparisons, alpha=0.0)
    assert theta[0] - theta[1] == pytest.approx(math.log(7 / 3), abs=1e-6)
    elo = stats.to_elo(theta)
    assert elo.mean() == pytest.approx(1000.0)
    assert elo[0] - elo[1] == pytest.approx(400 * math.log10(7 / 3), abs=1e-4)


def test_three_players_match_an_independent_mle() -> None:
    comparisons = np.array([[0.0, 6.0, 8.0], [4.0, 0.0, 5.5], [2.0, 4.5, 0.0]])  # fractional: ties as halves
    theta = stats.bradley_terry(comparisons, alpha=0.0)
    np.testing.assert_allclose(theta, _bt_mle(comparisons), atol=1e-5)
    assert list(np.argsort(-theta)) == [0, 1, 2]
    # The small default regularisation moves the estimate very little.
    np.testing.assert_allclose(stats.bradley_terry(comparisons), theta, atol=0.02)


def _planted(n_items: int, p_win: float, p_tie: float, *, seed: int, votes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Two models; each vote prefers model 0 with p_win, ties with p_tie, else prefers model 1."""
    rng = np.random.default_rng(seed)
    wins, ties = np.zeros((n_items, 2, 2)), np.zeros((n_items, 2, 2))
    for i in range(n_items):
        for u in rng.random(votes):
            if u < p_win:
                wins[i, 0, 1] += 1
            elif u < p_win + p_tie:
                ties[i, 0, 1] += 1
                ties[i, 1, 0] += 1
            else:
                wins[i, 1, 0] += 1
    return wins, ties


def test_win_rate_counts_ties_half_and_its_interval_covers_the_truth() -> None:
    wins, ties = _planted(400, 0.5, 0.2, seed=1)  # true win rate 0.5 + 0.2 / 2 = 0.6
    (pair,) = stats.pair_table(wins, ties, seed=3)
    assert pair.wins + pair.ties + pair.losses == 1200
    assert pair.win_rate == pytest.approx((pair.wins + pair.ties / 2) / 1200)
    assert pair.low is not None and pair.high is not None
    assert pair.low < 0.6 < pair.high
    assert pair.low < pair.win_rate < pair.high
    # The same seed gives the same interval; the width is about 2 × 1.96 × the standard error.
    assert stats.pair_table(wins, ties, seed=3)[0] == pair
    assert 0.03 < pair.high - pair.low < 0.09


def test_ratings_order_and_intervals() -> None:
    wins, ties = _planted(300, 0.65, 0.1, seed=2)
    rated = stats.ratings(wins, ties, rounds=100)
    assert rated is not None
    assert rated.rating[0] > rated.rating[1]
    assert rated.low[0] <= rated.rating[0] <= rated.high[0]
    assert rated.low[0] > rated.high[1]  # clearly apart
    assert stats.ratings(np.zeros((0, 2, 2)), np.zeros((0, 2, 2))) is None


def test_decided_when_the_interval_excludes_a_tie() -> None:
    wins, ties = _planted(400, 0.7, 0.1, seed=4)
    (pair,) = stats.pair_table(wins, ties)
    decided = stats.decision(pair, votes_per_hour=100.0)
    assert decided.decided and decided.votes_needed is None


def test_undecided_estimates_the_votes_and_hours_needed() -> None:
    pair = stats.PairFigures(0, 1, wins=27, ties=6, losses=27 - 6, win_rate=0.55, low=0.45, high=0.65)
    # n = 54 votes, half-width 0.1, effect 0.05: 54 · (0.1 / 0.05)² − 54 = 162 more votes.
    decided = stats.decision(pair, votes_per_hour=20.0)
    assert not decided.decided
    assert decided.votes_needed == 162
    assert decided.hours_needed == pytest.approx(162 / 20)
    assert stats.decision(pair, votes_per_hour=None).hours_needed is None
    level = stats.PairFigures(0, 1, 10, 0, 10, 0.5, 0.3, 0.7)
    assert stats.decision(level, votes_per_hour=5).votes_needed is None  # no difference seen: no estimate


def test_votes_per_hour_and_top_pair() -> None:
    assert stats.votes_per_hour([0.0, 1800.0, 3600.0]) == pytest.approx(2.0)
    assert stats.votes_per_hour([5.0]) is None
    table = [
        stats.PairFigures(0, 1, 1, 0, 0, 1, 1, 1),
        stats.PairFigures(0, 2, 1, 0, 0, 1, 1, 1),
        stats.PairFigures(1, 2, 1, 0, 0, 1, 1, 1),
    ]
    top = stats.top_pair(table, [900.0, 1100.0, 1000.0])
    assert top is not None and (top.a, top.b) == (1, 2)
