"""The tables a variant's results are kept in: written by ``cv@<variant>``, read by the
report, each format declared once here and checked on every read.

- ``results/<variant>/folds.csv`` (``FOLDS``): one row per split, ``results.per_split``;
- ``results/<variant>/curves.csv`` (``CURVES``): per-epoch mean and std over splits;
- ``results/<variant>/metrics.json``: ``results.SUMMARY_KEYS`` plus ``EXTRA_METRICS``;
- ``reports/fold_accuracy.csv`` (``FOLD_ACCURACY``): every variant's held-out accuracy
  per split, for ``dvc plots``;
- ``results/grid/<name>/trials.csv`` (``trials_format``: one row per trial, its axis
  values and ``results.SUMMARY_KEYS``), ``splits.csv`` (``GRID_SPLITS``: ``FOLDS`` per
  trial) and ``metrics.json`` (``grid_metrics``: the best trial).

A missing or extra column (or key) is a ``files.FormatError`` naming the file and it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from sonarlab import files, plots
from sonarlab.paths import GridPaths, VariantPaths
from sonarlab.results import CURVE_KEYS, METRICS, SUMMARY_KEYS

FOLDS = files.CsvFormat(
    {
        "repeat": "int64",
        "fold": "int64",
        "n_train": "int64",
        "n_test": "int64",
        "test_rows": "str",  # results.rows_digest of the held-out rows
        **dict.fromkeys(METRICS, "float64"),
        "train_accuracy": "float64",
        "seconds": "float64",
    }
)
CURVES = files.CsvFormat(
    {"epoch": "int64", **{f"{k}_{s}": "float64" for k in CURVE_KEYS for s in ("mean", "std")}},
    index="epoch",
)
FOLD_ACCURACY = files.CsvFormat(
    {"variant": "str", "repeat": "int64", "fold": "int64", "accuracy": "float64"}
)
# metrics.json beside the summary: the final model's accuracy on every row, and the
# stage's wall time (the one number that differs between two identical runs)
EXTRA_METRICS = ("final_train_accuracy", "seconds")
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


def write_variant(
    out: VariantPaths,
    title: str,
    table: pd.DataFrame,
    curves: pd.DataFrame,
    metrics: Mapping[str, float],
    model,
) -> None:
    """Every output of ``cv@<variant>``, each written atomically: the metrics, the
    per-split table, the mean curves and their figure, and the final model."""
    write_metrics(out.metrics, metrics)
    FOLDS.write(out.folds, table)
    CURVES.write(out.curves, curves)
    plots.save(plots.learning_curves(curves, title), out.learning_curves)
    with files.atomic_path(out.model) as tmp:
        model.save(tmp)


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


def write_grid(
    out: GridPaths, axes: list[str], trials: pd.DataFrame, splits: pd.DataFrame,
    metrics: Mapping, figure,
) -> None:  # fmt: skip
    """Every output of ``grid@<name>``, each written atomically."""
    trials_format(axes).write(out.trials, trials)
    GRID_SPLITS.write(out.splits, splits)
    files.write_json(out.metrics, dict(metrics))
    plots.save(figure, out.figure)
