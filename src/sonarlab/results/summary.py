"""A variant's per-split scores summarized: mean, std and corrected 95% interval of each
metric (``summarize_folds``), from a ``per_split`` table or the ``folds.csv`` it was
written to. The cv stage, the grids and the report all summarize with this one function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sonarlab.results import stats
from sonarlab.results.metrics import METRICS


@dataclass(frozen=True)
class Summary:
    """A variant's held-out scores over its splits."""

    estimates: dict[str, stats.Interval]  # METRICS -> mean, population std, corrected 95% CI
    train_accuracy: float  # mean over splits, final weights on the training rows
    gap: float  # mean over splits of (training-rows accuracy − held-out accuracy)
    n_splits: int
    repeats: int

    def metrics(self) -> dict[str, float]:
        """The summary under the names of ``SUMMARY_KEYS`` (as ``metrics.json`` has it)."""
        values = [getattr(self.estimates[m], part) for m in METRICS for part in _INTERVAL_PARTS]
        values += [self.train_accuracy, self.gap, self.n_splits]
        return dict(zip(SUMMARY_KEYS, values, strict=True))


_INTERVAL_PARTS = ("mean", "std", "low", "high")
SUMMARY_KEYS = (
    *(f"{m}_{name}" for m in METRICS for name in ("mean", "std", "ci_low", "ci_high")),
    "train_accuracy_mean",
    "overfit_gap_mean",
    "n_folds",
)


def split_sizes(table: pd.DataFrame) -> tuple[float, float]:
    """Mean training and held-out rows per split: the sizes the corrected tests use."""
    return float(np.mean(table["n_train"])), float(np.mean(table["n_test"]))


def summarize_folds(table: pd.DataFrame) -> Summary:
    """Across-split mean, std (population std, as the tutorial's ``results.std()``) and 95%
    interval (the corrected resampled t interval, ``stats.interval``) of every metric,
    from a ``per_split`` table (or the ``folds.csv`` it was written to)."""
    n_train, n_test = split_sizes(table)
    train_acc = table["train_accuracy"].to_numpy(np.float64)
    test_acc = table["accuracy"].to_numpy(np.float64)
    return Summary(
        estimates={
            m: stats.interval(table[m].to_numpy(np.float64), n_train, n_test) for m in METRICS
        },
        train_accuracy=float(train_acc.mean()),
        gap=float((train_acc - test_acc).mean()),
        n_splits=len(table),
        repeats=int(table["repeat"].nunique()),
    )
