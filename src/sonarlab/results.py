"""What a cross-validation produces, whichever engine ran it, and its per-variant summary.

Engine-neutral: both engines return ``FoldResult``s and a ``FinalResult``; the cv stage
and the report summarize a variant's per-split scores with the one function here,
``summarize_folds``. No TensorFlow: this module sits below the engines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from sonarlab import stats
from sonarlab.folds import Split
from sonarlab.members import Outcome

EPS = 1e-7  # Keras clips probabilities to [EPS, 1 - EPS] in binary cross-entropy
METRICS = ("accuracy", "roc_auc", "log_loss")  # held-out scores of every split
CURVE_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")  # per epoch


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Accuracy at 0.5, ROC AUC and log loss of probabilities ``p`` for labels ``y``.

    A model whose training diverged outputs NaN: it is scored as it is (no row above
    0.5, so accuracy is the share of rocks) with NaN ROC AUC and log loss, instead of
    failing the stage after all the other models' training."""
    y = np.asarray(y).astype(int).ravel()
    p = np.clip(np.asarray(p, dtype=np.float64).ravel(), EPS, 1 - EPS)
    if not np.isfinite(p).all():
        return {"accuracy": float(np.mean((p > 0.5) == y)), "roc_auc": float("nan"),
                "log_loss": float("nan")}  # fmt: skip
    return {
        "accuracy": float(np.mean((p > 0.5) == y)),
        "roc_auc": float(roc_auc_score(y, p)) if len(set(y)) == 2 else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
    }


@dataclass
class FoldResult:
    split: Split
    curves: dict[str, list[float]]  # CURVE_KEYS -> one value per epoch
    y_test: np.ndarray
    p_test: np.ndarray
    train_metrics: dict[str, float]  # final weights, inference mode, training rows
    test_metrics: dict[str, float]
    seconds: float


def curve_columns(per_epoch: np.ndarray) -> dict[str, list[float]]:
    """Named curves from an (epochs, 4) array whose columns are in ``CURVE_KEYS`` order."""
    return {k: per_epoch[:, j].astype(float).tolist() for j, k in enumerate(CURVE_KEYS)}


def fold_result(split: Split, outcome: Outcome, y: np.ndarray, seconds: float) -> FoldResult:
    """A split's result from the outcome of the member trained on it."""
    return FoldResult(
        split=split,
        curves=curve_columns(outcome.curves),
        y_test=y[split.test],
        p_test=outcome.p_test,
        train_metrics=binary_metrics(y[split.train], outcome.p_train),
        test_metrics=binary_metrics(y[split.test], outcome.p_test),
        seconds=seconds,
    )


@dataclass
class FinalResult:
    model: Any  # a keras.Model: raw 60-band rows in, P(mine) out
    curves: dict[str, list[float]]  # the training curves only: no rows are held out
    train_metrics: dict[str, float]
    seconds: float


@dataclass
class CVResult:
    """A variant's cross-validation: every split's result and the final model."""

    folds: list[FoldResult]
    final: FinalResult


def per_split(folds: list[FoldResult]) -> pd.DataFrame:
    """One row per split: its identity, sizes and scores, in full precision."""
    return pd.DataFrame(
        {
            "repeat": [r.split.repeat for r in folds],
            "fold": [r.split.fold for r in folds],
            "n_train": [len(r.split.train) for r in folds],
            "n_test": [len(r.split.test) for r in folds],
            "test_rows": [rows_digest(r.split.test) for r in folds],
            **{m: [r.test_metrics[m] for r in folds] for m in METRICS},
            "train_accuracy": [r.train_metrics["accuracy"] for r in folds],
            "seconds": [r.seconds for r in folds],
        }
    )


def rows_digest(rows: Any) -> str:
    """A short fingerprint of a split's held-out rows: variants are paired only when their
    splits hold out the very same rows."""
    text = ",".join(str(int(i)) for i in sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def mean_curves(folds: list[FoldResult]) -> pd.DataFrame:
    """Per-epoch mean and std across splits of each curve in ``CURVE_KEYS``: columns
    ``<key>_mean`` and ``<key>_std``, one row per epoch (the index, from 1)."""
    out = {}
    for key in CURVE_KEYS:
        values = np.array([f.curves[key] for f in folds])
        out[f"{key}_mean"] = values.mean(axis=0)
        out[f"{key}_std"] = values.std(axis=0)
    table = pd.DataFrame(out)
    table.index = pd.RangeIndex(1, len(table) + 1, name="epoch")
    return table
