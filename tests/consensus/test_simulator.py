"""The labels simulator at a small size, through the queue and submit services: the model against the majority."""

from __future__ import annotations

import pytest

from app.db import Database
from bench.labels import score, simulate


@pytest.mark.timeout(300)
def test_model_beats_majority_and_flags_the_planted_annotators_at_k4(db: Database) -> None:
    # k = 4 best/worst, r = 3: 60 items, 10 annotators (2 spammers, 1 always-first, 7 accurate), seeded.
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
    world = simulate(db, seed=2, k=2, mode="best_worst", items=80, annotators=8)
    result = score(db, world)
    assert result.auc >= 0.9
    assert result.flagged["first"] == (1, 1)
    assert result.flagged["spammer"][0] >= 1
    assert result.model_coverage == result.majority_coverage == 1.0  # odd r, no ties: both label every pair


@pytest.mark.timeout(300)
def test_rankings_are_read_and_weighed(db: Database) -> None:
    # k = 4 in rank mode: every verdict a ranking (stored JSON), every pair labelled by every annotator.
    world = simulate(db, seed=3, k=4, mode="rank", items=40, annotators=8)
    result = score(db, world)
    assert result.model_coverage == 1.0 and result.majority_coverage > 0.95
    assert result.model > result.majority
    assert result.auc >= 0.9
    assert result.flagged["first"] == (1, 1)
