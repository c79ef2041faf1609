"""Pairs implied by verdicts, consensus, and the split — pure functions."""

from __future__ import annotations

import pytest

from app.export.pairs import FIRST, SECOND, TIE, pairs_of, split_of, tally


def test_k2_preference_gives_one_pair() -> None:
    assert pairs_of("preference", 1, 0, 2, "implied") == {(0, 1): SECOND}
    assert pairs_of("preference", 0, 1, 2, "best_worst") == {(0, 1): FIRST}


def test_k4_implied_and_best_worst() -> None:
    # best 2, worst 0: 2 ≻ 0, 2 ≻ 1, 2 ≻ 3, 1 ≻ 0, 3 ≻ 0 — the middle pair (1, 3) is not implied
    assert pairs_of("preference", 2, 0, 4, "implied") == {
        (0, 2): SECOND,
        (1, 2): SECOND,
        (2, 3): FIRST,
        (0, 1): SECOND,
        (0, 3): SECOND,
    }
    assert pairs_of("preference", 2, 0, 4, "best_worst") == {(0, 2): SECOND}


def test_tie_and_na() -> None:
    assert pairs_of("tie", None, None, 3, "best_worst") == {(0, 1): TIE, (0, 2): TIE, (1, 2): TIE}
    assert pairs_of("na", None, None, 3, "implied") == {}
    with pytest.raises(ValueError, match="two different"):
        pairs_of("preference", 1, 1, 3, "best_worst")


def test_consensus_counts_margin_share_and_direction() -> None:
    votes = tally([(1, {(0, 1): SECOND}), (2, {(0, 1): SECOND}), (3, {(0, 1): FIRST}), (4, {(0, 1): TIE})])
    c = votes[(0, 1)]
    assert (c.first, c.second, c.ties, c.total) == (1, 2, 1, 4)
    assert c.winner == SECOND and c.oriented() == (1, 0)
    assert c.margin == 1 and c.share == pytest.approx(0.5)
    assert c.voters[SECOND] == [1, 2]
    level = tally([(1, {(0, 1): FIRST}), (2, {(0, 1): SECOND})])[(0, 1)]
    assert level.winner is None


def test_split_is_deterministic_and_near_the_share() -> None:
    splits = [split_of("p", i, 0.2) for i in range(5000)]
    assert splits == [split_of("p", i, 0.2) for i in range(5000)]
    share = splits.count("test") / len(splits)
    assert 0.17 < share < 0.23
    assert all(split_of("p", i, 0.0) == "train" for i in range(100))
