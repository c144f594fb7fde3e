"""What training a variant produces, whichever engine ran it: each split's
``FoldResult`` and the ``FinalResult``, and the tables made from them (``per_split``,
``mean_curves``, ``out_of_fold``). Engine-neutral: no TensorFlow here, the engines
import it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sonarlab.data.folds import Split
from sonarlab.results.metrics import CURVE_KEYS, METRICS, binary_metrics
from sonarlab.training.members import Outcome


@dataclass
class FoldResult:
    split: Split
    curves: dict[str, list[float]]  # CURVE_KEYS -> one value per epoch
    y_test: np.ndarray
    p_test: np.ndarray
    train_metrics: dict[str, float]  # final weights, inference mode, training rows
    test_metrics: dict[str, float]
    seconds: float
    weights: list[np.ndarray]  # trained, in Keras' ``trainable_weights`` order


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
        weights=outcome.weights,
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
    """One row per split: its identity, sizes and scores, in full precision (no wall
    time: ``FoldResult.seconds`` goes to MLflow, not into a DVC output)."""
    return pd.DataFrame(
        {
            "repeat": [r.split.repeat for r in folds],
            "fold": [r.split.fold for r in folds],
            "n_train": [len(r.split.train) for r in folds],
            "n_test": [len(r.split.test) for r in folds],
            "test_rows": [rows_digest(r.split.test) for r in folds],
            **{m: [r.test_metrics[m] for r in folds] for m in METRICS},
            "train_accuracy": [r.train_metrics["accuracy"] for r in folds],
        }
    )


def rows_digest(rows: Any) -> str:
    """A short fingerprint of a split's held-out rows: variants are paired only when their
    splits hold out the very same rows."""
    text = ",".join(str(int(i)) for i in sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def epoch_table(columns: dict) -> pd.DataFrame:
    """Per-epoch columns as a table indexed by epoch, from 1."""
    table = pd.DataFrame(columns)
    table.index = pd.RangeIndex(1, len(table) + 1, name="epoch")
    return table


def mean_curves(folds: list[FoldResult]) -> pd.DataFrame:
    """Per-epoch mean and std across splits of each curve in ``CURVE_KEYS``: columns
    ``<key>_mean`` and ``<key>_std``, one row per epoch (the index, from 1)."""
    out = {}
    for key in CURVE_KEYS:
        values = np.array([f.curves[key] for f in folds])
        out[f"{key}_mean"] = values.mean(axis=0)
        out[f"{key}_std"] = values.std(axis=0)
    return epoch_table(out)


def out_of_fold(folds: list[FoldResult], p_mc: list[np.ndarray] | None = None) -> pd.DataFrame:
    """Every held-out prediction (``tables.PREDICTIONS``' rows), sorted by repeat, fold
    and row: each split's rows with their label (mine 1), the standard pass ``p``
    (inference mode, the engine's own) and ``p_mc``, the MC-dropout mean of each fold
    (``p_mc[i]`` for ``folds[i]``, in its ``split.test`` order; nan without it)."""
    if p_mc is not None and len(p_mc) != len(folds):
        raise ValueError(f"{len(p_mc)} MC-dropout arrays for {len(folds)} folds")
    parts = []
    for i, f in enumerate(folds):
        n = len(f.split.test)
        parts.append(
            pd.DataFrame(
                {
                    "repeat": np.full(n, f.split.repeat, dtype=np.int64),
                    "fold": np.full(n, f.split.fold, dtype=np.int64),
                    "row": np.asarray(f.split.test, dtype=np.int64),
                    "label": np.asarray(f.y_test).astype(np.int64),
                    "p": np.asarray(f.p_test, dtype=np.float64),
                    "p_mc": np.full(n, np.nan) if p_mc is None else np.asarray(p_mc[i], np.float64),
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["repeat", "fold", "row"], kind="stable", ignore_index=True)
