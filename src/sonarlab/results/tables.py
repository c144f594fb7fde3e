"""The tables a variant's results are kept in: written by ``cv@<variant>``, read by the
report, each format declared once here and checked on every read.

- ``results/<variant>/folds.csv`` (``FOLDS``): one row per split, ``outcomes.per_split``;
- ``results/<variant>/curves.csv`` (``CURVES``): per-epoch mean and std over splits;
  each split's own curves (``FOLD_CURVES``) are its MLflow fold run's ``curves.csv``;
- ``results/<variant>/metrics.json``: ``summary.SUMMARY_KEYS`` plus ``EXTRA_METRICS``;
- ``reports/fold_accuracy.csv`` (``FOLD_ACCURACY``): every variant's held-out accuracy
  per split, for ``dvc plots``;
- ``results/<variant>/predictions.csv`` (``PREDICTIONS``): every held-out prediction,
  one row per repeat and data row: the standard (weight-scaled) pass ``p`` and the MC
  dropout mean ``p_mc`` (nan for a variant without dropout);
- ``results/grid/<name>/trials.csv`` (``trials_format``: one row per trial, its axis
  values and ``summary.SUMMARY_KEYS``), ``splits.csv`` (``GRID_SPLITS``: ``FOLDS`` per
  trial), ``predictions.csv`` (``grid_predictions_format``: every trial's out-of-fold
  probabilities) and ``metrics.json`` (``grid_metrics``: the best trial, if any).

A missing or extra column (or key) is a ``files.FormatError`` naming the file and it.
No table holds a wall time: a run's durations are facts about that run, kept in MLflow,
so that the same code, params and data give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
# One split's curves, the artifact ``curves.csv`` of its fold run: 9 digits keep the
# engines' float32 values exactly.
FOLD_CURVES = files.CsvFormat(
    {"epoch": "int64", **dict.fromkeys(CURVE_KEYS, "float64")}, index="epoch", float_format="%.9g"
)
# Out-of-fold predictions: each repeat holds out every row once. 9 digits keep the
# engines' float32 probabilities exactly.
PREDICTION_KEYS = {"repeat": "int64", "fold": "int64", "row": "int64", "label": "int64"}
PREDICTIONS = files.CsvFormat(
    {**PREDICTION_KEYS, "p": "float64", "p_mc": "float64"}, float_format="%.9g"
)
FOLD_ACCURACY = files.CsvFormat(
    {"variant": "str", "repeat": "int64", "fold": "int64", "accuracy": "float64"}
)
# metrics.json beside the summary: the expected calibration error of the pooled
# held-out predictions (``calibration``), and the final model's accuracy on every row
EXTRA_METRICS = ("ece", "final_train_accuracy")
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
# trials.csv beside each trial's summary: its test against the no-skill reference
# (``rule.Verdict``): mean Brier minus the reference's, the 95% interval's upper
# end, and whether that is below 0 (1) or not (0)
VERSUS_REFERENCE = {
    "brier_vs_reference": "float64",
    "brier_vs_reference_ci_high": "float64",
    "beats_reference": "int64",
}


def trials_format(axes: list[str]) -> files.CsvFormat:
    """``trials.csv`` of a grid with these axes (a missing value, MaxNorm none, is nan):
    each trial's summary, the expected calibration error of its pooled out-of-fold
    predictions (``calibration``), and its test against the no-skill reference."""
    summary = {k: ("int64" if k == "n_folds" else "float64") for k in SUMMARY_KEYS}
    return files.CsvFormat(
        {"trial": "int64", **dict.fromkeys(axes, "float64"), **summary, "ece": "float64",
         **VERSUS_REFERENCE}
    )  # fmt: skip


def grid_predictions_format(n_trials: int) -> files.CsvFormat:
    """``predictions.csv`` of a grid: ``PREDICTION_KEYS`` and each trial's held-out
    probability ``p_<trial>`` (the standard pass), the input of BBC-CV."""
    return trial_predictions_format(range(n_trials))


def trial_predictions_format(trials: Iterable[int]) -> files.CsvFormat:
    """``predictions.csv`` of these trials (a grid's, or a search's complete ones)."""
    columns = {f"p_{t}": "float64" for t in trials}
    return files.CsvFormat({**PREDICTION_KEYS, **columns}, float_format="%.9g")


def search_trials_format(axes: list[str]) -> files.CsvFormat:
    """``trials.csv`` of a search: a grid's columns (``trials_format``), with how each
    trial ended (``search.driver``: complete, pruned, failed) and the epochs of its last
    rung, whose scores its row holds."""
    grid = dict(trials_format(axes).columns)
    del grid["trial"]
    return files.CsvFormat({"trial": "int64", "state": "str", "epochs": "int64", **grid})


SEARCH_SPLITS = GRID_SPLITS  # every trial's splits at its last rung


def search_metrics(
    trials: pd.DataFrame,
    axes: list[str],
    best: int | None,
    reference: Mapping[str, float],
    corrected: Mapping[str, Mapping[str, float]] | None,
    model_epochs: int,
    full_model_epochs: int,
) -> dict:
    """A search's DVC metrics: a grid's (``grid_metrics``, the rule's choice among the
    complete trials), how many trials ended each way, and the model-epochs trained
    against those of every trial at the full budget (what successive halving saved)."""
    complete = trials[trials["state"] == "complete"]
    out = grid_metrics(complete, axes, best, reference, corrected)
    out["n_trials"] = len(trials)
    out.update(
        {f"n_{s}": int((trials["state"] == s).sum()) for s in ("complete", "pruned", "failed")}
    )
    out["model_epochs"] = int(model_epochs)
    out["model_epochs_full_budget"] = int(full_model_epochs)
    return out


SUMMARY_PARTS = ("mean", "ci_low", "ci_high")


def grid_metrics(
    trials: pd.DataFrame,
    axes: list[str],
    best: int | None,
    reference: Mapping[str, float],
    corrected: Mapping[str, Mapping[str, float]] | None,
) -> dict:
    """The grid's DVC metrics: how many trials, how many beat the no-skill reference
    (whose means are ``reference``), and the best trial by the selection rule with its
    intervals and its bias-corrected estimates (``best`` None: no trial beats it)."""
    out: dict = {
        "n_trials": len(trials),
        "n_beat_reference": int(trials["beats_reference"].sum()),
        "reference": {f"{m}_mean": float(v) for m, v in reference.items()},
        "best": None,
        "best_corrected": None,
    }
    if best is None:
        return out
    row = trials.set_index("trial").loc[best]
    keep = [f"{m}_{p}" for m in METRICS for p in SUMMARY_PARTS]
    values = {a: (None if pd.isna(row[a]) else float(row[a])) for a in axes}
    out["best"] = {"trial": int(best), **values, **{k: float(row[k]) for k in keep}}
    out["best_corrected"] = {
        f"{m}_{p}": float(v) for m, est in (corrected or {}).items() for p, v in est.items()
    }
    return out
