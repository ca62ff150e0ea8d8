"""The B-test (Zaremba, Gretton, Blaschko 2013): its defining properties (models_graph_vision A2 (c))."""

import math

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from lstmviz.analysis.btest import (
    b_test,
    benjamini_hochberg,
    bh_adjust,
    block_statistics,
    median_bandwidth,
    mmd2_unbiased,
)


def _mmd2_loop(x, y, sigma):
    """Direct double loop over i != j of the paired h-function."""

    def k(a, b):
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * sigma * sigma))

    n = len(x)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += k(x[i], x[j]) + k(y[i], y[j]) - k(x[i], y[j]) - k(x[j], y[i])
    return total / (n * (n - 1))


def test_mmd2_unbiased_equals_the_double_loop():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 3))
    y = rng.normal(size=(9, 3)) + 0.5
    for sigma in (0.5, 1.0, 3.0):
        assert mmd2_unbiased(x, y, sigma) == pytest.approx(_mmd2_loop(x, y, sigma), rel=1e-12, abs=1e-14)


def test_block_statistics_equal_mmd2_per_block():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 2))
    y = rng.normal(size=(12, 2))
    eta = block_statistics(x, y, 4, 1.3)
    assert eta.shape == (3,)
    for b in range(3):
        sl = slice(4 * b, 4 * b + 4)
        assert eta[b] == pytest.approx(_mmd2_loop(x[sl], y[sl], 1.3), rel=1e-12, abs=1e-14)


def test_one_block_is_exactly_the_quadratic_time_mmd2():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 4))
    y = rng.normal(size=(60, 4)) + 0.2
    res = b_test(x, y, block_size=60)
    assert res.n_blocks == 1 and res.n == 60 and res.block_size == 60
    assert res.statistic == mmd2_unbiased(x, y, res.bandwidth)
    assert math.isnan(res.p_value) and math.isnan(res.std_error) and res.reject is False


def test_statistic_is_the_mean_of_block_values_and_se_their_spread():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(100, 3))
    y = rng.normal(size=(100, 3))
    res = b_test(x, y, block_size=10, bandwidth=1.0, seed=7)
    # reproduce the documented joint permutation to get the blocks
    rng2 = np.random.default_rng(7)
    perm = rng2.permutation(100)
    eta = block_statistics(x[perm], y[perm], 10, 1.0)
    assert res.statistic == pytest.approx(eta.mean(), rel=1e-12)
    assert res.std_error == pytest.approx(math.sqrt(np.var(eta, ddof=1) / 10), rel=1e-12)
    assert res.n_blocks == 10 and res.bandwidth == 1.0


def test_type_one_error_is_near_alpha():
    rejections = 0
    reps = 240
    for r in range(reps):
        rng = np.random.default_rng(1000 + r)
        x = rng.normal(size=(400, 5))
        y = rng.normal(size=(400, 5))
        rejections += b_test(x, y, block_size=20, seed=r).reject
    rate = rejections / reps
    assert 0.02 <= rate <= 0.09, rate


def _power(n, shift, reps=60):
    hits = 0
    for r in range(reps):
        rng = np.random.default_rng(5000 + r)
        x = rng.normal(size=(n, 5))
        y = rng.normal(size=(n, 5))
        y[:, 0] += shift
        hits += b_test(x, y, seed=r).reject
    return hits / reps


def test_power_rises_with_n_for_a_mean_shift():
    p100, p400, p1600 = _power(100, 0.3), _power(400, 0.3), _power(1600, 0.3)
    assert p100 < p400 < p1600
    assert p1600 >= 0.8


def test_trimming_pairs_the_shorter_sample_and_drops_the_remainder():
    rng = np.random.default_rng(5)
    res = b_test(rng.normal(size=(107, 2)), rng.normal(size=(53, 2)), block_size=10)
    assert res.n == 50 and res.n_blocks == 5 and res.block_size == 10
    res = b_test(rng.normal(size=(50, 2)), rng.normal(size=(50, 2)))
    assert res.block_size == 7 and res.n == 49


def test_same_seed_same_result_and_order_does_not_matter_in_distribution():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(200, 3))
    y = rng.normal(size=(300, 3)) + 0.5
    assert b_test(x, y, seed=3) == b_test(x, y, seed=3)
    assert b_test(x, y, seed=3).statistic != b_test(x, y, seed=4).statistic


def test_median_bandwidth():
    x = np.array([[0.0], [1.0], [3.0]])
    # pooled distances 1, 3, 2 -> median 2
    assert median_bandwidth(x) == 2.0
    assert median_bandwidth(np.zeros((5, 2))) == 1.0
    # mostly duplicates: median 0 -> mean of the non-zero distances
    z = np.array([[0.0]] * 4 + [[2.0]])
    assert median_bandwidth(z) == 2.0


@pytest.mark.parametrize(
    "kwargs, x, y, words",
    [
        ({}, np.zeros((10, 2)), np.zeros((10, 3)), "same dimension"),
        ({"block_size": 6}, np.zeros((10, 2)), np.zeros((10, 2)), "fewer than 2 blocks"),
        ({"block_size": 1}, np.zeros((10, 2)), np.zeros((10, 2)), "integer ≥ 2"),
        ({}, np.array([[np.nan, 0.0]] * 5), np.zeros((5, 2)), "non-finite"),
        ({}, np.zeros((1, 2)), np.zeros((5, 2)), "at least 2"),
        ({"alpha": 1.5}, np.zeros((10, 2)), np.zeros((10, 2)), "alpha"),
        ({"bandwidth": -1.0}, np.zeros((10, 2)), np.zeros((10, 2)), "bandwidth"),
    ],
)
def test_errors_are_stated_in_words(kwargs, x, y, words):
    with pytest.raises(ValueError, match=words):
        b_test(x, y, **kwargs)


def test_benjamini_hochberg_hand_worked_example():
    # m = 5, q = 0.05: thresholds k q / m = .01 .02 .03 .04 .05
    p = [0.01, 0.04, 0.03, 0.20, 0.005]
    # sorted: .005 (≤.01) .01 (≤.02) .03 (≤.03) .04 (>.04? no: .04 ≤ .04) .20 (>.05)
    # largest k with p_(k) ≤ k q / m is k = 4 -> reject the four smallest
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True, True, False, True]
    # adjusted: p_(k) m / k with running minimum from the top: .025 .025 .05 .05 .2  (sorted order)
    assert np.allclose(bh_adjust(p), [0.025, 0.05, 0.05, 0.2, 0.025])
    # a case where step-up matters: p_(1) alone fails its threshold but p_(2) passes
    assert benjamini_hochberg([0.03, 0.04], 0.05).tolist() == [True, True]
    assert benjamini_hochberg([0.03, 0.06], 0.05).tolist() == [False, False]


def test_bh_matches_scipy_and_ignores_nan():
    rng = np.random.default_rng(8)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, size=10)])
    assert np.allclose(bh_adjust(p), false_discovery_control(p, method="bh"))
    with_nan = np.array([0.01, np.nan, 0.02])
    adj = bh_adjust(with_nan)
    assert np.isnan(adj[1]) and np.allclose(adj[[0, 2]], [0.02, 0.02])
    assert benjamini_hochberg(with_nan).tolist() == [True, False, True]
