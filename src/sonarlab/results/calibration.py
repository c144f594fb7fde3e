"""Calibration of out-of-fold probabilities: do rows given P(mine) = 0.8 turn out to be
mines 80% of the time?

``reliability`` bins the pooled out-of-fold predictions (every repeat's) by quantile,
so each bin holds the same number of predictions (fixed-width bins of overconfident
networks leave the middle bins nearly empty); ``expected_calibration_error`` is the
bins' gap between mean probability and observed share of mines, weighted by their size
(Naeini, Cooper & Hauskrecht 2015; Guo et al. 2017). Pure NumPy and pandas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BINS = 10


def reliability(p: np.ndarray, y: np.ndarray, bins: int = BINS) -> pd.DataFrame:
    """One row per quantile bin: ``n``, ``p_mean`` (mean predicted probability),
    ``y_mean`` (observed share of mines), ``p_low``/``p_high`` (the bin's range).

    Predictions are sorted by probability (ties by position, so the bins are
    reproducible) and cut into ``bins`` runs of equal size (sizes differ by at most
    one)."""
    p = np.asarray(p, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(p) != len(y) or len(p) < bins:
        raise ValueError(f"need at least {bins} predictions with labels, got {len(p)}, {len(y)}")
    order = np.argsort(p, kind="stable")
    rows = []
    for i, part in enumerate(np.array_split(order, bins)):
        rows.append(
            {"bin": i, "n": len(part), "p_mean": p[part].mean(), "y_mean": y[part].mean(),
             "p_low": p[part].min(), "p_high": p[part].max()}
        )  # fmt: skip
    return pd.DataFrame(rows)


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = BINS) -> float:
    """Σ_b (n_b / n) · |mean(y_b) − mean(p_b)| over ``reliability``'s quantile bins."""
    return binned_error(reliability(p, y, bins))


def binned_error(table: pd.DataFrame) -> float:
    """The expected calibration error of a ``reliability`` table already made."""
    weights = table["n"] / table["n"].sum()
    return float((weights * (table["y_mean"] - table["p_mean"]).abs()).sum())
