"""The corrected resampled t statistics, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sonarlab.results.stats import corrected_paired_ttest, correction, holm, interval

T_975_DF3 = 3.182446305284263  # Student t table: 97.5% quantile, 3 degrees of freedom


def t_cdf_df3(t: float) -> float:
    """Closed form of Student's t CDF with 3 degrees of freedom."""
    theta = math.atan(t / math.sqrt(3))
    return 0.5 + (theta + math.sin(theta) * math.cos(theta)) / math.pi


def test_correction_is_one_over_k_plus_the_test_train_ratio():
    assert correction(30, 187.2, 20.8) == pytest.approx(1 / 30 + 20.8 / 187.2)
    with pytest.raises(ValueError, match="at least 2"):
        correction(1, 10, 2)
    with pytest.raises(ValueError, match="> 0"):
        correction(5, 0, 2)


def test_paired_test_by_hand():
    # d = a - b = [1, 2, 3, 4]: mean 2.5, s² = 5/3; k = 4, n_test/n_train = 1/3
    # corrected variance (1/4 + 1/3) * 5/3 = 35/36, so se = sqrt(35)/6 and t = 15/sqrt(35).
    a, b = [3.0, 5.0, 4.0, 9.0], [2.0, 3.0, 1.0, 5.0]
    r = corrected_paired_ttest(a, b, n_train=3, n_test=1)
    se = math.sqrt(35) / 6
    assert r.mean == pytest.approx(2.5)
    assert r.df == 3
    assert r.t == pytest.approx(15 / math.sqrt(35))
    assert r.p == pytest.approx(2 * (1 - t_cdf_df3(15 / math.sqrt(35))))
    assert r.p == pytest.approx(0.0850, abs=5e-4)
    assert (r.low, r.high) == pytest.approx((2.5 - T_975_DF3 * se, 2.5 + T_975_DF3 * se))
    flipped = corrected_paired_ttest(b, a, n_train=3, n_test=1)
    assert (flipped.mean, flipped.t, flipped.p) == pytest.approx((-2.5, -r.t, r.p))


def test_interval_by_hand():
    # scores [0.8, 0.9, 0.85, 0.95]: mean 0.875, s² = 0.0041667 (ddof 1), std 0.0559 (ddof 0)
    # k = 4, n_test/n_train = 1/4: variance (1/4 + 1/4) * s² = 0.0020833
    r = interval([0.8, 0.9, 0.85, 0.95], n_train=4, n_test=1)
    half = T_975_DF3 * math.sqrt(0.5 * 0.0125 / 3)
    assert r.mean == pytest.approx(0.875)
    assert r.std == pytest.approx(math.sqrt(0.003125))
    assert (r.low, r.high) == pytest.approx((0.875 - half, 0.875 + half))
    assert r.contains(0.73) and not r.contains(0.72)


def test_without_overlap_the_paired_test_is_the_ordinary_one():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.85, 0.05, 30), rng.normal(0.83, 0.05, 30)
    ours = corrected_paired_ttest(a, b, n_train=1e12, n_test=1e-3)
    plain = scipy_stats.ttest_rel(a, b)
    assert ours.t == pytest.approx(plain.statistic, rel=1e-9)
    assert ours.p == pytest.approx(plain.pvalue, rel=1e-9)


def test_the_correction_widens_the_interval_by_the_expected_factor():
    values = np.random.default_rng(1).normal(0.85, 0.05, 30)
    naive = interval(values, n_train=1e12, n_test=1e-3)
    corrected = interval(values, n_train=188, n_test=21)
    factor = math.sqrt(1 + 30 * 21 / 188)  # sqrt((1/k + n2/n1) / (1/k))
    assert (corrected.high - corrected.low) / (naive.high - naive.low) == pytest.approx(factor)


def test_identical_differences_have_no_spread():
    same = corrected_paired_ttest([0.8, 0.9], [0.8, 0.9], n_train=9, n_test=1)
    assert (same.mean, same.t, same.p, same.low, same.high) == (0.0, 0.0, 1.0, 0.0, 0.0)
    shifted = corrected_paired_ttest([0.9, 1.0], [0.8, 0.9], n_train=9, n_test=1)
    assert shifted.t == math.inf and shifted.p == 0.0


def test_unpaired_shapes_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        corrected_paired_ttest([1.0, 2.0, 3.0], [1.0, 2.0], n_train=9, n_test=1)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1 = 0.04, 0.09, 0.08, 0.5; then made
    # non-decreasing (0.08 -> 0.09), capped at 1, and put back in the input's order
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.6, 0.9]) == [1.0, 1.0]
    assert holm([0.02]) == [0.02] and holm([]) == []
