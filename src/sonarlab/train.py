"""Cross-validation with per-fold Keras ``fit`` (the tutorial's protocol, made deterministic).

Pure with respect to disk and tracking: functions take arrays and configs and return
results; the ``cv`` stage decides what to log and write. Every fold is trained from
its own seed, derived from ``cv.seed``, the repeat and the fold, so a fold's result
does not depend on which folds ran before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import log_loss, roc_auc_score

from sonarlab import stats
from sonarlab.config import VariantConfig
from sonarlab.folds import Scaler, Split
from sonarlab.model import build_model

EPS = 1e-7  # Keras clips probabilities to [EPS, 1 - EPS] in binary cross-entropy
CURVE_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def derive_seed(seed: int, *path: int) -> int:
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0] % (2**31 - 1))


def fold_seed(seed: int, repeat: int, fold: int) -> int:
    return derive_seed(seed, 1, repeat, fold)


def final_seed(seed: int) -> int:
    return derive_seed(seed, 2)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def predict_proba(model: keras.Model, X: np.ndarray) -> np.ndarray:
    """P(mine) per row, inference mode (dropout off). A direct call: no retracing per shape."""
    return keras.ops.convert_to_numpy(model(X, training=False)).ravel()


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Accuracy at 0.5, ROC AUC and log loss of probabilities ``p`` for labels ``y``."""
    y = np.asarray(y).astype(int).ravel()
    p = np.clip(np.asarray(p, dtype=np.float64).ravel(), EPS, 1 - EPS)
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


@dataclass
class FinalResult:
    model: keras.Model
    curves: dict[str, list[float]]
    train_metrics: dict[str, float]
    seconds: float


class _EpochEnd(keras.callbacks.Callback):
    """Held-out loss/accuracy after every epoch (inference mode) and a progress tick."""

    def __init__(self, X: np.ndarray | None, y: np.ndarray | None, tick: Callable[[int], None]):
        super().__init__()
        self.X, self.y, self.tick = X, y, tick
        self.test_loss: list[float] = []
        self.test_accuracy: list[float] = []

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.X is not None:
            m = binary_metrics(self.y, predict_proba(self.model, self.X))
            self.test_loss.append(m["log_loss"])
            self.test_accuracy.append(m["accuracy"])
        self.tick(epoch)


def _fit(
    variant: VariantConfig,
    scaler: Scaler,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    held_out: tuple[np.ndarray, np.ndarray] | None,
    tick: Callable[[int], None],
) -> tuple[keras.Model, dict[str, list[float]]]:
    seed_everything(seed)
    model = build_model(variant, scaler, len(X))
    cb = _EpochEnd(*(held_out or (None, None)), tick)
    hist = model.fit(
        X,
        y,
        epochs=variant.epochs,
        batch_size=variant.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[cb],
    )
    curves = {
        "train_loss": [float(v) for v in hist.history["loss"]],
        "train_accuracy": [float(v) for v in hist.history["accuracy"]],
    }
    if held_out is not None:
        curves["test_loss"], curves["test_accuracy"] = cb.test_loss, cb.test_accuracy
    return model, curves


def train_fold(
    variant: VariantConfig,
    X: np.ndarray,
    y: np.ndarray,
    split: Split,
    scaler: Scaler,
    seed: int,
    tick: Callable[[int], None] = lambda epoch: None,
) -> FoldResult:
    """Train on ``split.train`` from ``fold_seed``, evaluate on ``split.test``."""
    t0 = time.perf_counter()
    Xtr, ytr, Xte, yte = X[split.train], y[split.train], X[split.test], y[split.test]
    model, curves = _fit(
        variant, scaler, Xtr, ytr, fold_seed(seed, split.repeat, split.fold), (Xte, yte), tick
    )
    p_test = predict_proba(model, Xte)
    return FoldResult(
        split=split,
        curves=curves,
        y_test=yte,
        p_test=p_test,
        train_metrics=binary_metrics(ytr, predict_proba(model, Xtr)),
        test_metrics=binary_metrics(yte, p_test),
        seconds=time.perf_counter() - t0,
    )


def train_final(
    variant: VariantConfig,
    X: np.ndarray,
    y: np.ndarray,
    scaler: Scaler,
    seed: int,
    tick: Callable[[int], None] = lambda epoch: None,
) -> FinalResult:
    """Train once on all rows (full-data statistics): the model that is shipped."""
    t0 = time.perf_counter()
    model, curves = _fit(variant, scaler, X, y, final_seed(seed), None, tick)
    return FinalResult(
        model=model,
        curves=curves,
        train_metrics=binary_metrics(y, predict_proba(model, X)),
        seconds=time.perf_counter() - t0,
    )


def summarize(folds: list[FoldResult]) -> dict[str, float]:
    """Across-fold mean, std (population std, as the tutorial's ``results.std()``) and
    95% interval (the corrected resampled t interval, ``stats.interval``)."""
    out: dict[str, float] = {}
    n_train = float(np.mean([len(f.split.train) for f in folds]))
    n_test = float(np.mean([len(f.split.test) for f in folds]))
    for name in ("accuracy", "roc_auc", "log_loss"):
        est = stats.interval([f.test_metrics[name] for f in folds], n_train, n_test)
        out[f"{name}_mean"], out[f"{name}_std"] = est.mean, est.std
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = est.low, est.high
    train_acc = np.array([f.train_metrics["accuracy"] for f in folds])
    test_acc = np.array([f.test_metrics["accuracy"] for f in folds])
    out["train_accuracy_mean"] = float(train_acc.mean())
    out["overfit_gap_mean"] = float((train_acc - test_acc).mean())
    out["n_folds"] = len(folds)
    return out


def mean_curves(folds: list[FoldResult]) -> dict[str, np.ndarray]:
    """Per-epoch mean and std across folds of each curve in ``CURVE_KEYS``."""
    out = {}
    for key in CURVE_KEYS:
        values = np.array([f.curves[key] for f in folds])
        out[f"{key}_mean"] = values.mean(axis=0)
        out[f"{key}_std"] = values.std(axis=0)
    return out
