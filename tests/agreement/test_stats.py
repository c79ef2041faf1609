"""Agreement statistics: textbook examples to 3 decimals, planted agreement, implied pairs."""

from __future__ import annotations

import numpy as np
import pytest

from app.agreement import stats
from app.agreement.stats import FIRST, SECOND, TIE

# Fleiss (1971) as reproduced in the standard worked example: 10 subjects, 14 raters, 5 categories.
FLEISS_TABLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units, nominal, gaps.
KRIPP = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
    ]
)


def test_fleiss_1971_worked_example() -> None:
    assert round(stats.fleiss_from_table(FLEISS_TABLE), 3) == 0.210


def test_cohen_textbook_example() -> None:
    # 50 proposals: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 → κ = 0.4.
    a = np.array([0] * 20 + [0] * 5 + [1] * 10 + [1] * 15, dtype=float)
    b = np.array([0] * 20 + [1] * 5 + [0] * 10 + [1] * 15, dtype=float)
    kappa, n = stats.cohen(a, b)
    assert n == 50 and round(kappa, 3) == 0.400


def test_krippendorff_nominal_with_missing_values() -> None:
    import krippendorff

    assert round(float(krippendorff.alpha(reliability_data=KRIPP, level_of_measurement="nominal")), 3) == 0.743
    # Our wrapper drops units with fewer than two ratings, which α ignores anyway: same value.
    assert round(stats.alpha(np.where(np.isnan(KRIPP), np.nan, KRIPP)), 3) == 0.743


def test_identical_raters_agree_perfectly() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 300).astype(float)
    data = np.vstack([truth, truth, truth])
    assert stats.fleiss(data)[0] == pytest.approx(1.0)
    assert stats.alpha(data) == pytest.approx(1.0)
    assert stats.cohen(data[0], data[1])[0] == pytest.approx(1.0)
    assert stats.percent_agreement(data) == 1.0


def test_random_raters_are_near_zero_within_the_interval() -> None:
    rng = np.random.default_rng(7)
    data = rng.integers(0, 3, (3, 2000)).astype(float)
    kappa, used = stats.fleiss(data)
    assert used == 2000 and abs(kappa) < 0.05
    interval = stats.bootstrap(data, lambda d: stats.fleiss(d)[0], resamples=200, seed=3)
    assert interval.low < 0 < interval.high
    assert abs(stats.alpha(data)) < 0.05


def test_fleiss_uses_only_units_with_the_full_number_of_ratings() -> None:
    data = np.array([[0, 1, 2, 0], [0, 1, 2, np.nan], [0, 1, 2, 1]], dtype=float)
    kappa, used = stats.fleiss(data)
    assert used == 3 and kappa == pytest.approx(1.0)


def test_implied_pairs() -> None:
    # k = 2: one pair.
    assert stats.implied_pairs("preference", 1, 0, 2) == {(0, 1): SECOND}
    assert stats.implied_pairs("tie", None, None, 2) == {(0, 1): TIE}
    assert stats.implied_pairs("na", None, None, 2) == {}
    # k = 4, best 2, worst 0: best ≻ every other, every other ≻ worst; (1, 3) is not implied.
    pairs = stats.implied_pairs("preference", 2, 0, 4)
    assert pairs == {(0, 2): SECOND, (1, 2): SECOND, (2, 3): FIRST, (0, 1): SECOND, (0, 3): SECOND}
    with pytest.raises(ValueError, match="two different"):
        stats.implied_pairs("preference", 1, 1, 3)


def test_landis_koch_bands() -> None:
    assert stats.landis_koch(-0.1).startswith("poor")
    assert stats.landis_koch(0.15) == "slight"
    assert stats.landis_koch(0.5) == "moderate"
    assert stats.landis_koch(0.9) == "almost perfect"
    assert stats.landis_koch(float("nan")) == "not enough data"


def test_fleiss_counting_matches_statsmodels_aggregate_raters() -> None:
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    rng = np.random.default_rng(11)
    truth = rng.integers(0, 3, 500)
    data = np.where(rng.random((4, 500)) < 0.7, truth, rng.integers(0, 3, (4, 500))).astype(float)
    table, _ = aggregate_raters(data.T.astype(int), n_cat=3)
    assert stats.fleiss(data, 4)[0] == pytest.approx(fleiss_kappa(table, method="fleiss"), abs=1e-12)


def test_grouped_bootstrap_keeps_groups_whole() -> None:
    seen: list[int] = []
    data = np.array([[0, 0, 1, 1, 2, 2]], dtype=float)
    groups = np.array([7, 7, 8, 8, 9, 9])

    def record(d: np.ndarray) -> float:
        seen.append(d.shape[1])
        # Within a resample, the two units of a group always come together with equal labels.
        assert all(d[0, i] == d[0, i + 1] for i in range(0, d.shape[1], 2))
        return 0.0

    stats.bootstrap(data, record, groups=groups, resamples=20, seed=1)
    assert set(seen) == {6}


def _noisy_matrix(seed: int, raters: int = 4, units: int = 400, missing: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, units)
    data = np.where(rng.random((raters, units)) < 0.7, truth, rng.integers(0, 3, (raters, units))).astype(float)
    data[rng.random((raters, units)) < missing] = np.nan
    return data


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weighted_formulas_match_the_libraries_on_resampled_data(seed: int) -> None:
    """The bootstrap's weighted statistics equal statsmodels' Fleiss and krippendorff's α (and the plain
    percent agreement) computed on the resample itself, units repeated as often as drawn."""
    import krippendorff
    from statsmodels.stats.inter_rater import fleiss_kappa

    data = _noisy_matrix(seed)
    counts = stats.category_counts(data)
    weights = np.random.default_rng(seed).integers(0, 4, data.shape[1]).astype(float)
    resample = np.repeat(data, weights.astype(int), axis=1)
    full = (~np.isnan(resample)).sum(axis=0) == 4
    table = stats.category_counts(resample[:, full])
    assert stats.fleiss_weighted(counts, weights, 4) == pytest.approx(fleiss_kappa(table, method="fleiss"), abs=1e-12)
    assert stats.alpha_weighted(counts, weights) == pytest.approx(
        krippendorff.alpha(reliability_data=resample, level_of_measurement="nominal"), abs=1e-12
    )
    assert stats.percent_agreement_weighted(counts, weights) == pytest.approx(
        stats.percent_agreement(resample), abs=1e-12
    )
    ones = np.ones(data.shape[1])
    assert stats.alpha_weighted(counts, ones) == pytest.approx(stats.alpha(data), abs=1e-12)
    assert stats.fleiss_weighted(counts, ones, 4) == pytest.approx(stats.fleiss(data, 4)[0], abs=1e-12)


def test_weighted_bootstrap_gives_the_library_bootstrap_interval() -> None:
    data = _noisy_matrix(4, units=300)
    groups = np.arange(300) // 3  # three pairs per item, resampled together
    counts = stats.category_counts(data)
    slow = stats.bootstrap(data, stats.alpha, groups=groups, resamples=60, seed=9)
    slow_kappa = stats.bootstrap(data, lambda d: stats.fleiss(d, 4)[0], groups=groups, resamples=60, seed=9)
    fast, fast_kappa = stats.bootstrap_weighted(
        [stats.alpha_statistic(counts), stats.fleiss_statistic(counts, 4)], groups=groups, resamples=60, seed=9
    )
    assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high), abs=1e-12)
    assert (fast_kappa.low, fast_kappa.high) == pytest.approx((slow_kappa.low, slow_kappa.high), abs=1e-12)
    assert fast.low < fast.high
    # One unit per group, groups in shuffled order: the weights must still follow the groups.
    shuffled = np.random.default_rng(1).permutation(300)
    slow = stats.bootstrap(data, stats.alpha, groups=shuffled, resamples=40, seed=2)
    (fast,) = stats.bootstrap_weighted([stats.alpha_statistic(counts)], groups=shuffled, resamples=40, seed=2)
    assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high), abs=1e-12)


def test_weighted_statistics_without_data_are_nan() -> None:
    empty = np.zeros((0, 3), dtype=np.int64)
    assert np.isnan(stats.fleiss_weighted(empty, np.ones(0), 3))
    assert np.isnan(stats.alpha_weighted(empty, np.ones(0)))
    one_label = np.array([[3, 0, 0], [2, 0, 0]])
    assert np.isnan(stats.alpha_weighted(one_label, np.ones(2)))


# --- rankings, strength, position bias, coverage -----------------------------------------------------------------


def test_kendall_w_worked_example_with_ties() -> None:
    """Three raters rank four objects, the second with a tie (mid-ranks 2.5, 2.5). By hand: rank sums
    R = (4, 5.5, 8.5, 12), mean 7.5, S = 3.5² + 2² + 1² + 4.5² = 37.5; m²(n³ − n) = 9 · 60 = 540; the tie gives
    T = 2³ − 2 = 6, m·ΣT = 18; W = 12 · 37.5 / (540 − 18) = 450 / 522 = 0.862069 (0.833333 uncorrected)."""
    ranks = np.array([[1, 2, 3, 4], [1, 2.5, 2.5, 4], [2, 1, 3, 4]], dtype=float)
    assert stats.kendall_w(ranks) == pytest.approx(450 / 522, abs=1e-12)
    assert stats.kendall_w(ranks) != pytest.approx(450 / 540, abs=1e-3)  # the correction is applied


def test_kendall_w_bounds() -> None:
    same = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3]], dtype=float)
    assert stats.kendall_w(same) == pytest.approx(1.0)
    # Two raters in opposite orders: the rank sums are all equal, W = 0.
    assert stats.kendall_w(np.array([[1, 2, 3], [3, 2, 1]], dtype=float)) == pytest.approx(0.0)
    # Identical rankings with the same ties are still perfect concordance.
    assert stats.kendall_w(np.array([[1.5, 1.5, 3], [1.5, 1.5, 3]])) == pytest.approx(1.0)
    assert np.isnan(stats.kendall_w(np.array([[2, 2, 2], [2, 2, 2]], dtype=float)))  # all tied: undefined


def _signs(ranks: list[float]) -> list[int]:
    # +1 when object i ranks better (lower) than j, in combinations order.
    k = len(ranks)
    return [int(np.sign(ranks[j] - ranks[i])) for i in range(k) for j in range(i + 1, k)]


def test_mid_ranks_from_pair_signs() -> None:
    signs = np.array([_signs([1, 2.5, 2.5, 4]), _signs([3, 1, 2, 4])])
    assert stats.mid_ranks(signs).tolist() == [[1, 2.5, 2.5, 4], [3, 1, 2, 4]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tau_b_equals_scipy(seed: int) -> None:
    from scipy.stats import kendalltau

    rng = np.random.default_rng(seed)
    for k in (3, 4):
        a_ranks = rng.integers(0, 3, (40, k)).astype(float)  # ties are common with three tiers
        b_ranks = rng.integers(0, 3, (40, k)).astype(float)
        a = np.array([_signs(list(r)) for r in a_ranks])
        b = np.array([_signs(list(r)) for r in b_ranks])
        ours = stats.tau_b(a, b)
        for row in range(40):
            expected = kendalltau(a_ranks[row], b_ranks[row], variant="b").statistic
            if np.isnan(expected):
                assert np.isnan(ours[row])
            else:
                assert ours[row] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("first", "n", "k", "flagged"),
    [
        (20, 40, 2, False),  # half the time first at k = 2: chance
        (20, 40, 4, True),  # the same half at k = 4, where chance is a quarter: biased
        (10, 40, 4, False),  # a quarter at k = 4: chance
        (40, 40, 2, True),  # always the left one
        (19, 19, 2, False),  # always left, but fewer than 20 choices: not yet
        (0, 40, 2, True),  # never the left one is a bias too
    ],
)
def test_position_bias_against_one_over_k(first: int, n: int, k: int, flagged: bool) -> None:
    from scipy.stats import binomtest

    p, flag = stats.position_bias(first, n, k)
    assert p == pytest.approx(binomtest(first, n, 1 / k).pvalue)
    assert flag is flagged


def test_position_bias_p_values_by_hand() -> None:
    # Always left in 20 choices at k = 2: two-sided p = 2 · 0.5²⁰; at k = 4 the one-sided tail 0.25²⁰ is all.
    assert stats.position_bias(20, 20, 2)[0] == pytest.approx(2 * 0.5**20)
    assert stats.position_bias(20, 20, 4)[0] == pytest.approx(0.25**20)
    assert stats.position_bias(0, 0, 2) == (None, False)


def test_fleiss_coverage_is_the_share_of_alpha_units_with_all_r() -> None:
    # Four units rated by 3, 3, 2 and 1 raters: α uses the first three, Fleiss' κ (r = 3) the first two.
    nan = np.nan
    data = np.array([[0, 1, 0, 2], [0, 1, 0, nan], [0, 1, nan, nan]], dtype=float)
    _, used = stats.fleiss(data, 3)
    units = int(((~np.isnan(data)).sum(axis=0) >= 2).sum())
    assert (used, units) == (2, 3)
    assert stats.coverage(used, units) == pytest.approx(2 / 3)
    assert stats.coverage(0, 0) is None


def test_cohen_statistic_matches_sklearn_and_weights_repeat_units() -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, 200)
    y = np.where(rng.random(200) < 0.7, x, rng.integers(0, 3, 200))
    kappa = stats.cohen_statistic(x, y)
    assert kappa(np.ones(200)) == pytest.approx(cohen_kappa_score(x, y, labels=[0, 1, 2]), abs=1e-12)
    weights = rng.integers(0, 3, 200)
    repeated = cohen_kappa_score(np.repeat(x, weights), np.repeat(y, weights), labels=[0, 1, 2])
    assert kappa(weights.astype(float)) == pytest.approx(repeated, abs=1e-12)


def test_exact_agreement_counts_rater_pairs_within_units() -> None:
    # Unit 1: answers a, a, b → 1 agreeing pair of 3; unit 2: c, c → 1 of 1; unit 3: one answer, left out.
    unit = np.array([1, 1, 1, 2, 2, 3])
    answer = np.array([5, 5, 6, 7, 7, 5])
    share, used = stats.exact_agreement(unit, answer)
    assert (share, used) == (pytest.approx(2 / 4), 2)


def test_interval_alpha_matches_krippendorff() -> None:
    import krippendorff

    data = np.array([[3, 2, -1, 0, np.nan], [2, 2, -2, 0, 1], [3, np.nan, -1, 1, 1]], dtype=float)
    expected = krippendorff.alpha(reliability_data=data[:, :5], level_of_measurement="interval")
    assert stats.interval_alpha(data) == pytest.approx(expected)
    assert np.isnan(stats.interval_alpha(np.array([[1, 1], [1, 1]], dtype=float)))  # one value: undefined
