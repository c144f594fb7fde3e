"""The CV engines behind one call, ``cross_validate``.

- ``keras`` (``engines.keras``): one Keras ``fit`` per fold, the reference path;
- ``fused`` (``engines.fused``): every fold and the final model in one XLA program.

The two are siblings over the engine-neutral layer (``training.outcomes``,
``data.seeds``, ``training.model``): neither imports the other, and nothing outside
this package imports either. An engine module loads TensorFlow, so each is imported
only when it is asked for.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable
from typing import Protocol

from sonarlab.core.params import Engine
from sonarlab.data.folds import Prepared
from sonarlab.data.uci import Sonar
from sonarlab.design.variants import VariantConfig
from sonarlab.training.members import Member, Outcome
from sonarlab.training.outcomes import CVResult, FoldResult

ENGINES: tuple[str, ...] = typing.get_args(Engine)


class EpochReporter(Protocol):
    """What the engines report their epochs to (``cli.progress.Progress`` is one)."""

    def update(self, done: int, where: str = "") -> None: ...

    def advance(self, n: int = 1, where: str = "") -> None: ...


def import_engine(engine: Engine) -> None:
    """Import ``engine`` and TensorFlow (several seconds) now: a stage does it before it
    starts its MLflow run, so that the run covers training alone and an interrupt lands
    where the stage handles it."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; one of {ENGINES}")  # validated in config
    importlib.import_module(f"{__name__}.{engine}")


def cross_validate(
    engine: Engine,
    variant: VariantConfig,
    sonar: Sonar,
    prepared: Prepared,
    progress: EpochReporter | None = None,
    on_fold: Callable[[FoldResult], None] = lambda result: None,
) -> CVResult:
    """Every split's result and the final model of ``variant`` on ``prepared``'s splits.

    ``on_fold`` sees each fold as it is done (keras: one at a time; fused: all together
    at the end). ``progress`` counts ``total_epochs``."""
    epochs = variant.epochs
    if engine == "fused":
        from sonarlab.training.engines.fused import cross_validate_fused

        def update(done: int) -> None:
            if progress:
                n = len(prepared.scalers)
                progress.update(done, f"{n} folds + final model, epoch {done}/{epochs}")

        result = cross_validate_fused(variant, sonar, prepared, tick=update)
        for fold in result.folds:
            on_fold(fold)
        return result
    if engine == "keras":
        from sonarlab.training.engines.keras import cross_validate_per_fold

        def tick(where: str) -> Callable[[int], None]:
            return lambda e: progress and progress.advance(1, f"{where} epoch {e + 1}/{epochs}")

        return cross_validate_per_fold(variant, sonar, prepared, on_fold, tick)
    raise ValueError(f"unknown engine {engine!r}; one of {ENGINES}")  # validated in config


def total_epochs(engine: Engine, variant: VariantConfig, n_splits: int) -> int:
    """What ``progress`` counts to for ``cross_validate``: all models move together in the
    fused engine; the keras engine trains the splits and the final model one by one."""
    return variant.epochs if engine == "fused" else (n_splits + 1) * variant.epochs


def train_members(
    members: list[Member], X, y, tick: Callable[[int], None] = lambda done: None
) -> list[Outcome]:
    """Train any members at once (a grid's shard): the fused engine, which groups them
    into programs by ``members.shape_key``. Each outcome depends on its member alone."""
    from sonarlab.training.engines.fused import train_stacked

    return train_stacked(members, X, y, tick)
