"""The two CV engines behind one call: ``keras`` (a ``fit`` per fold) and ``fused``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sonarlab import train
from sonarlab.config import VariantConfig
from sonarlab.folds import Scaler, Split
from sonarlab.progress import Progress

ENGINES = ("fused", "keras")


def cross_validate(
    engine: str,
    variant: VariantConfig,
    X: np.ndarray,
    y: np.ndarray,
    splits: list[Split],
    scalers: list[Scaler],
    full: Scaler,
    seed: int,
    progress: Progress | None = None,
    on_fold: Callable[[train.FoldResult], None] = lambda result: None,
) -> tuple[list[train.FoldResult], train.FinalResult]:
    """Every fold's result and the final model. ``on_fold`` sees each fold as it is done
    (keras: one at a time; fused: all together at the end). ``progress`` counts epochs:
    (folds + 1) x epochs for keras, epochs for fused (all models move together)."""
    epochs = variant.epochs

    def advance(where: str) -> Callable[[int], None]:
        return lambda e: progress and progress.advance(1, f"{where} epoch {e + 1}/{epochs}")

    if engine == "fused":
        from sonarlab import fused

        def update(done: int) -> None:
            if progress:
                progress.update(done, f"{len(splits)} folds + final model, epoch {done}/{epochs}")

        results, final = fused.cross_validate(
            variant, X, y, splits, scalers, full, seed, tick=update
        )
        for result in results:
            on_fold(result)
        return results, final
    if engine != "keras":
        raise ValueError(f"unknown engine {engine!r}; one of {ENGINES}")  # validated in config
    results = []
    for i, (split, scaler) in enumerate(zip(splits, scalers, strict=True), 1):
        result = train.train_fold(
            variant, X, y, split, scaler, seed, tick=advance(f"fold {i}/{len(splits)}")
        )
        on_fold(result)
        results.append(result)
    final = train.train_final(variant, X, y, full, seed, tick=advance("final model"))
    return results, final


def total_epochs(engine: str, variant: VariantConfig, n_splits: int) -> int:
    """What ``progress`` counts to for ``cross_validate``."""
    return variant.epochs if engine == "fused" else (n_splits + 1) * variant.epochs
