"""Dawid–Skene glue on toys with a known answer, the orientation correction, and the pairs loading implies."""

from __future__ import annotations

from itertools import combinations, permutations

import numpy as np
import pytest

from app.consensus import pool, stats
from app.consensus.loading import NA, PREFERENCE, RANKING, TIE_KIND, _implied, pair_index
from app.export.pairs import FIRST, SECOND, TIE, pairs_of


def _fit(rows: list[tuple[int, int, bool, int]], n_tasks: int) -> stats.Fit:
    """rows: (task, annotator, shown_first, label)."""
    task, annotator, shown, label = (np.array(c) for c in zip(*rows, strict=True))
    return stats.dawid_skene(task, stats.worker_codes(annotator, shown.astype(bool)), label, n_tasks)


def test_two_right_and_one_always_wrong() -> None:
    # Six pairs, the truth alternating; annotators 1 and 2 always right, 3 always wrong. The majority starts EM at
    # the truth; the M-step then gives 1 and 2 the identity confusion matrix and 3 the swapped one, so every label
    # — 3's included — points at the truth: posteriors 1 (to the clipping of crowd-kit's 1e-10) and
    # reliabilities 1, 1 and 0.
    truth = [FIRST, SECOND] * 3
    rows = []
    for t, right in enumerate(truth):
        wrong = SECOND if right == FIRST else FIRST
        rows += [(t, 1, True, right), (t, 2, True, right), (t, 3, True, wrong)]
    fit = _fit(rows, len(truth))
    assert stats.decided(fit.posterior).tolist() == truth
    assert fit.posterior[np.arange(6), truth] == pytest.approx(1.0, abs=1e-6)
    assert fit.annotators.tolist() == [1, 2, 3]
    assert fit.reliability == pytest.approx([1.0, 1.0, 0.0], abs=1e-6)
    assert fit.labels.tolist() == [6, 6, 6]


def test_majority_is_the_exports_rule() -> None:
    label = np.array([FIRST, FIRST, SECOND, FIRST, SECOND, TIE, TIE])
    task = np.array([0, 0, 0, 1, 1, 2, 2])
    assert stats.majority(label, task, 4).tolist() == [FIRST, -1, -1, -1]


def test_an_always_first_clicker_is_uninformative_and_flips_nothing() -> None:
    # 40 pairs, truth alternating. Annotator 1 is always right; 2 is right on 4 of 5; 9 picks whatever is shown
    # first, and is shown the better candidate first half the time. On pairs 0–19 all three vote; on 20–39 only
    # 9 and (on the even ones) 2.
    rng = np.random.default_rng(0)
    truth = [FIRST if t % 2 == 0 else SECOND for t in range(40)]
    rows = []
    for t, right in enumerate(truth):
        wrong = SECOND if right == FIRST else FIRST
        shown = bool(rng.integers(2))
        rows.append((t, 9, shown, FIRST if shown else SECOND))
        if t < 20:
            rows.append((t, 1, not shown, right))
        if t < 20 or t % 2 == 0:
            rows.append((t, 2, shown, right if t % 5 else wrong))
    fit = _fit(rows, len(truth))
    reliability = dict(zip(fit.annotators.tolist(), fit.reliability.tolist(), strict=True))
    assert reliability[9] < stats.FLAG_BELOW < min(reliability[1], reliability[2])
    assert stats.flagged(reliability[9], 40) and not stats.flagged(reliability[2], 30)
    decided = stats.decided(fit.posterior)
    # Where 1 and 2 agree (0–19), the truth whatever 9 says; with 2 and 9 alone (20–38, even), 2's label — even
    # where 2 errs (30): 9 never outweighs a real vote.
    for t in range(20):
        if t % 5:
            assert decided[t] == truth[t], t
    for t in range(20, 40, 2):
        assert decided[t] == (truth[t] if t % 5 else 1 - truth[t]), t
    # Where 9 voted alone, the posterior barely moves from the prior (about even): their vote carries nothing.
    alone = [t for t in range(20, 40) if t % 2 == 1]
    assert np.abs(fit.posterior[alone, FIRST] - fit.posterior[alone, SECOND]).max() < 0.3


def _reference(k: int) -> list[tuple[str, int | None, int | None, tuple[int, ...] | None]]:
    verdicts: list[tuple[str, int | None, int | None, tuple[int, ...] | None]] = [
        ("tie", None, None, None),
        ("na", None, None, None),
    ]
    verdicts += [("preference", c, r, None) for c, r in permutations(range(k), 2)]
    if k >= 3:
        tier_choices = {tuple(sorted(set(t)).index(x) for x in t) for t in np.ndindex(*([k] * k))}
        verdicts += [("ranking", None, None, tiers) for tiers in sorted(tier_choices)]
    return verdicts


@pytest.mark.parametrize("k", [2, 3, 4])
def test_loading_implies_the_pairs_export_does(k: int) -> None:
    verdicts = _reference(k)
    codes = {"preference": PREFERENCE, "tie": TIE_KIND, "na": NA, "ranking": RANKING}
    kind = np.array([codes[v[0]] for v in verdicts])
    chosen = np.array([-1 if v[1] is None else v[1] for v in verdicts])
    rejected = np.array([-1 if v[2] is None else v[2] for v in verdicts])
    tiers = np.array([v[3] if v[3] is not None else (0,) * k for v in verdicts])
    n = len(verdicts)
    # Shown in reverse canonical order: the first candidate of every pair was shown after the second.
    shown_at = np.tile(np.arange(k)[::-1], (n, 1))
    per_judgment = {"item": np.arange(n), "annotator": np.ones(n, np.int64), "shown_at": shown_at}
    labels = _implied(
        k, kind, chosen, rejected, tiers if k > 2 else None, dimension=np.zeros(n, np.int64), judgment=np.arange(n),
        **per_judgment,
    )  # fmt: skip
    rows = zip(labels.item, labels.pair, labels.label, strict=True)
    got = {(int(v), pair_index(k)[p]): int(lab) for v, p, lab in rows}
    expected = {}
    for v, (kind_name, c, r, t) in enumerate(verdicts):
        ranked = (t, ()) if t is not None else None
        for pair, label in pairs_of(kind_name, c, r, ranked, k, "implied").items():
            expected[(v, pair)] = label
    assert got == expected
    assert not labels.shown_first.any()
    assert set(pair_index(k)) == set(combinations(range(k), 2))


def test_fits_in_processes_equal_fits_in_turn() -> None:
    rng = np.random.default_rng(3)
    jobs = []
    for _ in range(3):
        task = np.repeat(np.arange(50), 3)
        worker = rng.integers(0, 8, len(task))
        label = rng.integers(0, 2, len(task))
        jobs.append((task, worker, label, 50))
    in_turn = pool.fit_all(jobs, parallel=False)
    at_once = pool.fit_all(jobs, parallel=True)
    for a, b in zip(in_turn, at_once, strict=True):
        assert np.array_equal(a.posterior, b.posterior)
        assert np.array_equal(a.reliability, b.reliability) and np.array_equal(a.annotators, b.annotators)
