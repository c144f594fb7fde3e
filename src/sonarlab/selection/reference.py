"""The no-skill reference: what a model that has learnt nothing from the bands scores.

On each split it predicts, for every held-out row, the share of mines among that
split's training rows: the best constant a model can learn from the labels alone. It
is scored like a variant, on the same splits and with the same intervals, so "better
than chance" is a paired test against it (``selection.rule``). On these data the training
share of mines is about 111/208 = 53.4%, so the reference answers "mine" for every
row: accuracy about 53%, ROC AUC 0.5, log loss about 0.69 and Brier about 0.249.

Pure pandas: it needs only the labels and the splits, as a table of out-of-fold
predictions (``results.tables.PREDICTIONS``) gives them.
"""

from __future__ import annotations

import pandas as pd

NAME = "no-skill"  # its name in tables and figures
KEYS = ["repeat", "fold", "row", "label"]


def no_skill(predictions: pd.DataFrame) -> pd.DataFrame:
    """``predictions``' rows (its ``KEYS``) with ``p`` the share of mines among each
    split's training rows: the rows of the same repeat in the other folds."""
    table = predictions[KEYS].copy()
    by_repeat = table.groupby("repeat")["label"].agg(["sum", "size"])
    by_split = table.groupby(["repeat", "fold"])["label"].agg(["sum", "size"])
    repeat = by_repeat.loc[by_split.index.get_level_values("repeat")].to_numpy()
    rate = (repeat[:, 0] - by_split["sum"].to_numpy()) / (
        repeat[:, 1] - by_split["size"].to_numpy()
    )
    rates = pd.Series(rate, index=by_split.index, name="p")
    return table.join(rates, on=["repeat", "fold"])
