"""Uncertainty of cross-validated scores: intervals and paired tests that respect CV.

Fold scores from k-fold CV are not independent: any two training sets share most of
their rows. A plain t interval over folds (variance s²/k) is therefore too narrow and a
plain paired t-test finds differences that are not there. Nadeau & Bengio (2003,
"Inference for the generalization error", Machine Learning 52) inflate the variance
of the mean of k resampled scores from s²/k to (1/k + n_test/n_train)·s²; the
*corrected resampled t-test* uses that variance with k − 1 degrees of freedom. With
repeated CV (r repeats × f folds), k = r·f. Bouckaert & Frank (2004) recommend exactly
this for repeated 10-fold CV.

Pure functions of arrays; scipy supplies the t distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over resampled scores with its corrected confidence interval."""

    mean: float
    std: float  # population std over the scores (the tutorial's ``results.std()``)
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class PairedTest:
    """Variant minus reference, paired split by split, with the corrected t-test."""

    mean: float  # mean paired difference
    low: float
    high: float
    t: float
    p: float  # two-sided
    df: int

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)


def correction(k: int, n_train: float, n_test: float) -> float:
    """The factor multiplying the sample variance s² of k scores: 1/k + n_test/n_train."""
    if k < 2:
        raise ValueError(f"need at least 2 resampled scores, got {k}")
    if not (n_train > 0 and n_test > 0):
        raise ValueError(f"train and test sizes must be > 0, got {n_train} and {n_test}")
    return 1.0 / k + n_test / n_train


def _standard_error(values: np.ndarray, n_train: float, n_test: float) -> float:
    return math.sqrt(correction(len(values), n_train, n_test) * float(np.var(values, ddof=1)))


def interval(
    values: Sequence[float], n_train: float, n_test: float, confidence: float = CONFIDENCE
) -> Interval:
    """Mean of resampled scores and its corrected (Nadeau–Bengio) t interval."""
    values = np.asarray(values, dtype=np.float64)
    se = _standard_error(values, n_train, n_test)
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * se
    mean = float(values.mean())
    return Interval(mean, float(values.std()), mean - half, mean + half)


def corrected_paired_ttest(
    a: Sequence[float],
    b: Sequence[float],
    n_train: float,
    n_test: float,
    confidence: float = CONFIDENCE,
) -> PairedTest:
    """Corrected resampled t-test of mean(a − b) = 0; ``a[i]`` and ``b[i]`` come from
    the same split (same training and test rows)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must have the same shape, got {a.shape} and {b.shape}")
    d = a - b
    df = len(d) - 1
    se = _standard_error(d, n_train, n_test)
    mean = float(d.mean())
    if se == 0.0:  # every split gave the same difference
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0.0 else 0.0
    else:
        t = mean / se
        p = float(2 * _scipy_stats.t.sf(abs(t), df))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    return PairedTest(mean, mean - half, mean + half, float(t), p, df)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values for testing them all at once: the
    family-wise error rate stays at the level each adjusted p is compared with."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
