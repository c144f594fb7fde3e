"""The keras engine: cross-validation with one Keras ``fit`` per fold (the reference path).

The tutorial's protocol, made deterministic: every fold is trained from its own seed
(``seeds.fold_seed``), so a fold's result does not depend on which folds ran before
it. Pure with respect to disk and tracking: arrays and configs in, ``results`` out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
import numpy as np

from sonarlab.data.folds import Prepared, Scaler, Split
from sonarlab.data.seeds import final_seed, fold_seed
from sonarlab.data.uci import Sonar
from sonarlab.design.variants import VariantConfig
from sonarlab.results.metrics import binary_metrics
from sonarlab.training.model import build_model, predict_proba, seed_everything
from sonarlab.training.outcomes import CVResult, FinalResult, FoldResult

Tick = Callable[[int], None]  # called with the epoch (from 0) after each epoch


class _EpochEnd(keras.callbacks.Callback):
    """Held-out loss/accuracy after every epoch (inference mode) and a progress tick."""

    def __init__(self, X: np.ndarray | None, y: np.ndarray | None, tick: Tick):
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
    tick: Tick,
) -> tuple[keras.Model, dict[str, list[float]]]:
    seed_everything(seed)
    model = build_model(variant, scaler, len(X), seed)
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
    tick: Tick = lambda epoch: None,
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
        weights=[w.numpy() for w in model.trainable_weights],
    )


def train_final(
    variant: VariantConfig,
    X: np.ndarray,
    y: np.ndarray,
    scaler: Scaler,
    seed: int,
    tick: Tick = lambda epoch: None,
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


def cross_validate_per_fold(
    variant: VariantConfig,
    sonar: Sonar,
    prepared: Prepared,
    on_fold: Callable[[FoldResult], None],
    tick: Callable[[str], Tick],
) -> CVResult:
    """Every split trained by its own ``fit``, then the final model. ``on_fold`` sees each
    fold as it is done; ``tick(where)`` gives the per-epoch progress callback of a fit."""
    splits = prepared.splits
    folds = []
    for i, (split, scaler) in enumerate(zip(splits, prepared.scalers, strict=True), 1):
        result = train_fold(
            variant, sonar.X, sonar.y, split, scaler, prepared.seed,
            tick=tick(f"fold {i}/{len(splits)}"),
        )  # fmt: skip
        on_fold(result)
        folds.append(result)
    final = train_final(
        variant, sonar.X, sonar.y, prepared.full, prepared.seed, tick=tick("final model")
    )
    return CVResult(folds, final)
