"""The labels simulator at a small size, through the queue and submit services: the model against the majority."""

from __future__ import annotations

import pytest

from app.db import Database
from app.export.pairs import FIRST, SECOND
from bench.labels import MAJORITY, MODEL, exported, score, simulate


@pytest.mark.timeout(300)
def test_model_beats_majority_and_flags_the_planted_annotators_at_k4(db: Database) -> None:
    # k = 4 best/worst, r = 3: 60 items, 10 annotators (2 random clickers, 1 always-first, 7 accurate), seeded.
    world = simulate(db, seed=1, k=4, mode="best_worst", items=60, annotators=10)
    result = score(db, world)
    # The majority leaves every pair whose votes are level unlabelled (counted wrong); the model weighs them.
    assert result.model >= result.majority + 0.05
    assert result.model_coverage > result.majority_coverage
    assert result.auc >= 0.9
    assert result.flagged["first"] == (1, 1)
    assert result.flagged["spammer"] == (2, 2)
    assert result.flagged["good"][0] == 0


@pytest.mark.timeout(300)
def test_at_k2_reliabilities_separate_the_planted_annotators(db: Database) -> None:
    world = simulate(db, seed=2, k=2, mode="best_worst", items=80, annotators=8, spammers="preference")
    result = score(db, world)
    assert result.auc >= 0.9
    assert result.flagged["first"] == (1, 1)
    assert result.flagged["spammer"][0] >= 1
    assert result.model_coverage == result.majority_coverage == 1.0  # odd r, no ties: both label every pair


@pytest.mark.timeout(300)
def test_random_clickers_press_tie_and_the_majority_drops_those_pairs(db: Database) -> None:
    # Spammers click anything the page offers at k = 2: A, B or T. A tie vote as strong as the winner drops the
    # pair from the export (drop_ties), a level vote leaves it unlabelled.
    world = simulate(db, seed=2, k=2, mode="best_worst", items=80, annotators=8, spammers="any")
    result = score(db, world)
    assert result.majority_dropped.get("tie", 0.0) > 0
    assert result.majority_dropped.get("no_majority", 0.0) > 0
    assert result.majority_coverage < 1.0
    assert result.model >= result.majority
    assert result.auc >= 0.9
    assert result.flagged["first"] == (1, 1)
    assert result.flagged["spammer"] == (2, 2)


@pytest.mark.timeout(300)
def test_rankings_are_read_and_weighed(db: Database) -> None:
    # k = 4 in rank mode: every verdict a strict ranking (stored JSON), every pair labelled by every annotator.
    world = simulate(db, seed=3, k=4, mode="rank", items=40, annotators=8, spammers="preference")
    result = score(db, world)
    assert result.model_coverage == 1.0 and result.majority_coverage > 0.95
    assert result.model > result.majority
    assert result.auc >= 0.9
    assert result.flagged["first"] == (1, 1)


def test_the_baseline_is_the_exports_default_rule() -> None:
    # Votes (for 0, for 1, ties) on the pair (0, 1) of a k = 2 item, three judgments each.
    def no_posterior(_pair: tuple[int, int]) -> None:
        return None

    kept, dropped = exported(MAJORITY, 2, 3, {(0, 1): (2, 1, 0)}, no_posterior)
    assert kept == {(0, 1): FIRST} and not dropped
    assert exported(MAJORITY, 2, 3, {(0, 1): (1, 1, 1)}, no_posterior) == ({}, {"no_majority": 1})
    assert exported(MAJORITY, 2, 3, {(0, 1): (0, 1, 2)}, no_posterior) == ({}, {"tie": 1})  # ties ≥ winner
    assert exported(MAJORITY, 2, 4, {(0, 1): (0, 2, 1)}, no_posterior)[0] == {(0, 1): SECOND}
    # label=model: the more probable direction, none when a tie is the most probable.
    assert exported(MODEL, 2, 3, {(0, 1): (1, 2, 0)}, lambda _p: (0.7, 0.2, 0.1))[0] == {(0, 1): FIRST}
    assert exported(MODEL, 2, 3, {(0, 1): (2, 1, 0)}, lambda _p: (0.3, 0.2, 0.5)) == ({}, {"tie": 1})
