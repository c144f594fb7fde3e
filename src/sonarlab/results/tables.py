"""The tables a variant's results are kept in: written by ``cv@<variant>``, read by the
report, each format declared once here and checked on every read.

- ``results/<variant>/folds.csv`` (``FOLDS``): one row per split, ``outcomes.per_split``;
- ``results/<variant>/curves.csv`` (``CURVES``): per-epoch mean and std over splits;
- ``results/<variant>/metrics.json``: ``summary.SUMMARY_KEYS`` plus ``EXTRA_METRICS``;
- ``reports/fold_accuracy.csv`` (``FOLD_ACCURACY``): every variant's held-out accuracy
  per split, for ``dvc plots``;
- ``results/grid/<name>/trials.csv`` (``trials_format``: one row per trial, its axis
  values and ``summary.SUMMARY_KEYS``), ``splits.csv`` (``GRID_SPLITS``: ``FOLDS`` per
  trial) and ``metrics.json`` (``grid_metrics``: the best trial).

A missing or extra column (or key) is a ``files.FormatError`` naming the file and it.
No table holds a wall time: a run's durations are facts about that run, kept in MLflow,
so that the same code, params and data give the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from sonarlab.core import files
from sonarlab.results.metrics import CURVE_KEYS, METRICS
from sonarlab.results.summary import SUMMARY_KEYS

FOLDS = files.CsvFormat(
    {
        "repeat": "int64",
        "fold": "int64",
        "n_train": "int64",
        "n_test": "int64",
        "test_rows": "str",  # results.rows_digest of the held-out rows
        **dict.fromkeys(METRICS, "float64"),
        "train_accuracy": "float64",
    }
)
CURVES = files.CsvFormat(
    {"epoch": "int64", **{f"{k}_{s}": "float64" for k in CURVE_KEYS for s in ("mean", "std")}},
    index="epoch",
)
FOLD_ACCURACY = files.CsvFormat(
    {"variant": "str", "repeat": "int64", "fold": "int64", "accuracy": "float64"}
)
# metrics.json beside the summary: the final model's accuracy on every row
EXTRA_METRICS = ("final_train_accuracy",)
METRICS_KEYS = (*SUMMARY_KEYS, *EXTRA_METRICS)


def write_metrics(path: Path, metrics: Mapping[str, float]) -> None:
    _check_keys(path, metrics)
    files.write_json(path, dict(metrics))


def read_metrics(path: Path) -> dict[str, float]:
    metrics = files.read_json(path)
    if not isinstance(metrics, dict):
        raise files.FormatError(f"{path}: expected a JSON object of metrics")
    _check_keys(path, metrics)
    return metrics


def _check_keys(path: Path, metrics: Mapping[str, float]) -> None:
    for key in METRICS_KEYS:
        if key not in metrics:
            raise files.FormatError(f"{path}: no metric {key!r}")
    for key in metrics:
        if key not in METRICS_KEYS:
            raise files.FormatError(f"{path}: unexpected metric {key!r}")


def fold_accuracy(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every variant's per-split held-out accuracy, stacked (``FOLD_ACCURACY``'s rows)."""
    return pd.concat(
        [t[["repeat", "fold", "accuracy"]].assign(variant=v) for v, t in tables.items()],
        ignore_index=True,
    )


GRID_SPLITS = files.CsvFormat({"trial": "int64", **FOLDS.columns})


def trials_format(axes: list[str]) -> files.CsvFormat:
    """``trials.csv`` of a grid with these axes (a missing value, MaxNorm none, is nan)."""
    summary = {k: ("int64" if k == "n_folds" else "float64") for k in SUMMARY_KEYS}
    return files.CsvFormat({"trial": "int64", **dict.fromkeys(axes, "float64"), **summary})


def grid_metrics(best: Mapping, axes: list[str], n_trials: int) -> dict:
    """The grid's DVC metrics: how many trials, and the best one with its intervals."""
    keep = [f"{m}_{p}" for m in METRICS for p in ("mean", "ci_low", "ci_high")]
    values = {a: (None if pd.isna(best[a]) else float(best[a])) for a in axes}
    return {
        "n_trials": n_trials,
        "best": {"trial": int(best["trial"]), **values, **{k: float(best[k]) for k in keep}},
    }
