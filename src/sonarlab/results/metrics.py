"""What every model is scored on: held-out accuracy, ROC AUC, log loss and Brier score,
and the per-epoch curves. Engine-neutral (no TensorFlow): both engines and the report use it."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

EPS = 1e-7  # Keras clips probabilities to [EPS, 1 - EPS] in binary cross-entropy
METRICS = ("accuracy", "roc_auc", "log_loss", "brier")  # held-out scores of every split
CURVE_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")  # per epoch


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Accuracy at 0.5, ROC AUC, log loss and Brier score (the mean squared error of the
    probabilities) of probabilities ``p`` for labels ``y``.

    A model whose training diverged outputs NaN: it is scored as it is (no row above
    0.5, so accuracy is the share of rocks) with NaN ROC AUC, log loss and Brier, instead of
    failing the stage after all the other models' training."""
    y = np.asarray(y).astype(int).ravel()
    p = np.clip(np.asarray(p, dtype=np.float64).ravel(), EPS, 1 - EPS)
    if not np.isfinite(p).all():
        return {"accuracy": float(np.mean((p > 0.5) == y)), "roc_auc": float("nan"),
                "log_loss": float("nan"), "brier": float("nan")}  # fmt: skip
    return {
        "accuracy": float(np.mean((p > 0.5) == y)),
        "roc_auc": float(roc_auc_score(y, p)) if len(set(y)) == 2 else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p, pos_label=1)),
    }
