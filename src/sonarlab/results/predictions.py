"""Scores from out-of-fold predictions (``tables.PREDICTIONS``): every row of the data
held out once per repeat, with its split (repeat, fold), its label and a model's
probability.

From such a table the per-split scores of any column of probabilities follow
(``split_scores``), as ``outcomes.per_split`` gives them at training time, so that
two passes of the same models (the standard weight-scaled pass and MC dropout) are
compared split by split with the corrected paired test (``paired``). Pure pandas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sonarlab.results import stats
from sonarlab.results.metrics import METRICS, binary_metrics
from sonarlab.results.summary import split_sizes

SPLIT = ["repeat", "fold"]


def split_scores(predictions: pd.DataFrame, column: str = "p") -> pd.DataFrame:
    """One row per split (``repeat``, ``fold``, ``n_train``, ``n_test`` and ``METRICS``)
    of the probabilities in ``column``. A repeat holds out every row once, so a split
    trains on the repeat's other rows: ``n_train`` is the repeat's rows minus its own."""
    rows_per_repeat = predictions.groupby("repeat")["row"].size()
    out = []
    for (repeat, fold), held in predictions.groupby(SPLIT, sort=True):
        scores = binary_metrics(held["label"].to_numpy(), held[column].to_numpy(np.float64))
        n_test = len(held)
        out.append(
            {"repeat": repeat, "fold": fold, "n_train": int(rows_per_repeat[repeat]) - n_test,
             "n_test": n_test, **scores}
        )  # fmt: skip
    return pd.DataFrame(out)


def paired(
    a: pd.DataFrame, b: pd.DataFrame, metrics: Sequence[str] = METRICS
) -> dict[str, stats.PairedTest]:
    """``a`` minus ``b`` per metric, split by split, with the corrected resampled t-test:
    two ``split_scores`` tables (or ``per_split`` tables) of the same splits."""
    keys = ["repeat", "fold", "n_train", "n_test"]
    if not a[keys].reset_index(drop=True).equals(b[keys].reset_index(drop=True)):
        raise ValueError("paired scores must come from the same splits")
    n_train, n_test = split_sizes(a)
    return {
        m: stats.corrected_paired_ttest(
            a[m].to_numpy(np.float64), b[m].to_numpy(np.float64), n_train, n_test
        )
        for m in metrics
    }


def has_mc(predictions: pd.DataFrame) -> bool:
    """Whether the table holds MC-dropout predictions (a variant with dropout)."""
    return bool(predictions["p_mc"].notna().all())
