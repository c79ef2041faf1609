"""Pairs implied by verdicts, consensus, and the split — pure functions."""

from __future__ import annotations

import pytest

from app.export.pairs import FIRST, SECOND, TIE, count, loses_on, pairs_of, ranked_of, split_of, strengths_of, winner


def test_k2_preference_gives_one_pair() -> None:
    assert pairs_of("preference", 1, 0, None, 2, "implied") == {(0, 1): SECOND}
    assert pairs_of("preference", 0, 1, None, 2, "best_worst") == {(0, 1): FIRST}


def test_k4_implied_and_best_worst() -> None:
    # best 2, worst 0: 2 ≻ 0, 2 ≻ 1, 2 ≻ 3, 1 ≻ 0, 3 ≻ 0 — the middle pair (1, 3) is not implied
    assert pairs_of("preference", 2, 0, None, 4, "implied") == {
        (0, 2): SECOND,
        (1, 2): SECOND,
        (2, 3): FIRST,
        (0, 1): SECOND,
        (0, 3): SECOND,
    }
    assert pairs_of("preference", 2, 0, None, 4, "best_worst") == {(0, 2): SECOND}


def test_tie_and_na() -> None:
    assert pairs_of("tie", None, None, None, 3, "best_worst") == {(0, 1): TIE, (0, 2): TIE, (1, 2): TIE}
    assert pairs_of("na", None, None, None, 3, "implied") == {}
    with pytest.raises(ValueError, match="two different"):
        pairs_of("preference", 1, 1, None, 3, "best_worst")


def test_votes_per_pair_direction_and_vetoes() -> None:
    # k = 3 best/worst verdicts of three annotators and a tie: 0 ≻ 2 ≻ 1, 0 ≻ 1 ≻ 2, 2 ≻ 1 ≻ 0, all tied.
    votes = count(
        (("preference", 0, 1, None), ("preference", 0, 2, None), ("preference", 2, 0, None), ("tie", None, None, None)),
        3,
        "implied",
    )
    assert votes == {(0, 1): (2, 1, 1), (0, 2): (2, 1, 1), (1, 2): (1, 2, 1)}
    assert winner(votes[(0, 1)]) == FIRST and winner(votes[(1, 2)]) == SECOND
    assert winner((1, 1, 3)) is None
    assert count((("preference", 0, 1, None), ("na", None, None, None)), 3, "best_worst") == {(0, 1): (1, 0, 0)}
    assert count((), 2, "implied") == {}
    # 2 ≻ 1 by the votes: choosing 1 over 2 loses on this dimension, choosing 2 over 1 does not; level never loses.
    assert loses_on(votes[(1, 2)], (1, 2), 1, 2) is True
    assert loses_on(votes[(1, 2)], (1, 2), 2, 1) is False
    assert loses_on(votes[(0, 1)], (0, 1), 1, 0) is True
    assert loses_on((1, 1, 0), (0, 1), 1, 0) is False
    assert loses_on(None, (0, 1), 1, 0) is False


def test_split_is_deterministic_and_near_the_share() -> None:
    splits = [split_of("p", i, 0.2) for i in range(5000)]
    assert splits == [split_of("p", i, 0.2) for i in range(5000)]
    share = splits.count("test") / len(splits)
    assert 0.17 < share < 0.23
    assert all(split_of("p", i, 0.0) == "train" for i in range(100))


def test_a_ranking_implies_every_pair_and_ties_within_a_tier() -> None:
    # Positions 0..3 ranked C > A = D > B: tiers (1, 2, 0, 1).
    ranked = ((1, 2, 0, 1), ())
    assert pairs_of("ranking", None, None, ranked, 4, "implied") == {
        (0, 1): FIRST,
        (0, 2): SECOND,
        (0, 3): TIE,
        (1, 2): SECOND,
        (1, 3): SECOND,
        (2, 3): FIRST,
    }
    # best_worst: only the top tier against the bottom one.
    assert pairs_of("ranking", None, None, ranked, 4, "best_worst") == {(1, 2): SECOND}
    # One tier holding everything is a tie on every pair, in both modes.
    everything = ((0, 0, 0), ())
    assert pairs_of("ranking", None, None, everything, 3, "best_worst") == {(0, 1): TIE, (0, 2): TIE, (1, 2): TIE}
    with pytest.raises(ValueError, match="tier of every candidate"):
        pairs_of("ranking", None, None, ((0, 1), ()), 3, "implied")


def test_a_ranking_counts_like_any_verdict() -> None:
    ranked = ((0, 1, 2), ())
    votes = count((("ranking", None, None, ranked), ("preference", 2, 0, None)), 3, "implied")
    assert votes == {(0, 1): (1, 1, 0), (0, 2): (1, 1, 0), (1, 2): (1, 1, 0)}


def test_strengths() -> None:
    assert strengths_of("preference", 1, 0, None, 2, 3) == {(0, 1): 3}
    assert strengths_of("preference", 1, 0, None, 2, None) == {}
    assert strengths_of("tie", None, None, None, 2, None) == {(0, 1): 0}
    assert strengths_of("na", None, None, None, 2, None) == {}
    # A ≫ B > C = D: the gap after the first tier is "much better".
    ranked = ((0, 1, 2, 2), (0,))
    assert strengths_of("ranking", None, None, ranked, 4, None) == {(0, 1): 3, (0, 2): 3, (0, 3): 3, (2, 3): 0}


def test_a_stored_ranking_in_positions() -> None:
    stored = {"tiers": [[12], [10, 13], [11]], "much": [1]}
    assert ranked_of(stored, {10: 0, 11: 1, 12: 2, 13: 3}) == ((1, 2, 0, 1), (1,))
    assert ranked_of(None, {}) is None
