"""Stratified fold assignment and in-fold standardization statistics.

The tutorial wraps StandardScaler and the network in one scikit-learn Pipeline, so
each fold's scaler is fitted on that fold's training rows only. We keep exactly
that: the statistics of fold k come from the rows outside fold k, and the
held-out rows never influence the scaling they are evaluated with.

This module writes and reads what ``standardize`` hands every variant:
``data/prepared/folds.csv`` (``FOLDS``) and ``data/prepared/scalers.json``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sonarlab.core import files
from sonarlab.core.params import ConfigError, CVConfig
from sonarlab.data.seeds import split_shuffle_seed

log = logging.getLogger(__name__)

# data/prepared/folds.csv: the fold that holds each row out, per repeat
FOLDS = files.CsvFormat({"row": "int64", "repeat": "int64", "fold": "int64"})


@dataclass(frozen=True)
class Split:
    repeat: int
    fold: int
    train: np.ndarray  # row indices
    test: np.ndarray


@dataclass(frozen=True)
class Scaler:
    mean: np.ndarray
    std: np.ndarray  # population std (ddof=0), 1 where a band is constant, as StandardScaler

    @classmethod
    def fit(cls, X: np.ndarray) -> Scaler:
        X = np.asarray(X, dtype=np.float64)
        std = X.std(axis=0)
        return cls(mean=X.mean(axis=0), std=np.where(std == 0.0, 1.0, std))

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> Scaler:
        return cls(mean=np.asarray(data["mean"]), std=np.asarray(data["std"]))


def assign_folds(y: np.ndarray, folds: int, repeats: int, seed: int) -> np.ndarray:
    """Fold id of every row for every repeat: an int array of shape (repeats, n).

    Stratified: each fold keeps the class proportions. Every row is held out
    exactly once per repeat.
    """
    y = np.asarray(y)
    smallest = int(np.bincount(y.astype(int)).min()) if len(y) else 0
    if folds > smallest:
        raise ConfigError(
            f"cv.folds: got {folds}; allowed: at most {smallest} (the smaller class's row count)"
        )
    # scikit-learn takes ~2 s to import: only the stages that make folds pay for it
    from sklearn.model_selection import StratifiedKFold

    out = np.empty((repeats, len(y)), dtype=np.int64)
    for r in range(repeats):
        skf = StratifiedKFold(
            n_splits=folds, shuffle=True, random_state=split_shuffle_seed(seed, r)
        )
        for k, (_, test) in enumerate(skf.split(np.zeros(len(y)), y)):
            out[r, test] = k
    return out


def splits(assignment: np.ndarray) -> list[Split]:
    """The (train, test) row indices of every fold of every repeat, in order."""
    out = []
    for r, row in enumerate(assignment):
        for k in range(int(row.max()) + 1):
            out.append(Split(r, k, np.flatnonzero(row != k), np.flatnonzero(row == k)))
    return out


def fold_scalers(X: np.ndarray, assignment: np.ndarray) -> list[Scaler]:
    """One scaler per split, fitted on that split's training rows only."""
    return [Scaler.fit(X[s.train]) for s in splits(assignment)]


@dataclass(frozen=True)
class Prepared:
    """What ``standardize`` hands every ``cv@<variant>``: the same splits for all of them."""

    protocol: tuple[int, int, int]  # (folds, repeats, seed) the splits were made with
    assignment: np.ndarray  # (repeats, n) fold id per row
    splits: list[Split]  # ``splits(assignment)``
    scalers: list[Scaler]  # one per split, in that order
    full: Scaler  # all rows: for the final model

    def first(self, n: int) -> Prepared:
        """Only the first ``n`` splits (reduced work, as in the benchmark)."""
        return dataclasses.replace(self, splits=self.splits[:n], scalers=self.scalers[:n])

    @property
    def seed(self) -> int:
        """``cv.seed``: every model's seeds derive from it (``seeds``)."""
        return self.protocol[2]


def prepare(X: np.ndarray, y: np.ndarray, cv: CVConfig) -> Prepared:
    assignment = assign_folds(y, cv.folds, cv.repeats, cv.seed)
    return Prepared(
        protocol(cv), assignment, splits(assignment), fold_scalers(X, assignment), Scaler.fit(X)
    )


def protocol(cv: CVConfig) -> tuple[int, int, int]:
    """The settings that decide the splits (the engine does not)."""
    return (cv.folds, cv.repeats, cv.seed)


def write_prepared(prepared: Prepared, folds_csv: Path, scalers_json: Path) -> None:
    repeats, n = prepared.assignment.shape
    FOLDS.write(
        folds_csv,
        pd.DataFrame(
            {
                "row": np.tile(np.arange(n), repeats),
                "repeat": np.repeat(np.arange(repeats), n),
                "fold": prepared.assignment.ravel(),
            }
        ),
    )
    files.write_json(scalers_json, scalers_document(prepared))


def scalers_document(prepared: Prepared) -> dict:
    return {
        "split": dict(zip(("folds", "repeats", "seed"), prepared.protocol, strict=True)),
        "splits": [
            {"repeat": s.repeat, "fold": s.fold, **sc.to_json()}
            for s, sc in zip(prepared.splits, prepared.scalers, strict=True)
        ],
        "full": prepared.full.to_json(),
    }


def prepared_for(cv: CVConfig, sonar, folds_csv: Path, scalers_json: Path) -> Prepared:
    """The splits ``standardize`` wrote, or new ones, made in memory, if ``cv`` asks for
    other splits (a stage run outside DVC with overrides)."""
    prepared = read_prepared(folds_csv, scalers_json)
    if prepared.protocol != protocol(cv):
        log.info(
            "cv (folds, repeats, seed) %s differ from data/prepared's %s: making folds in memory",
            protocol(cv),
            prepared.protocol,
        )
        prepared = prepare(sonar.X, sonar.y, cv)
    return prepared


def read_prepared(folds_csv: Path, scalers_json: Path) -> Prepared:
    table = FOLDS.read(folds_csv)
    scalers = files.read_json(scalers_json)
    split = scalers["split"]
    assignment = np.empty((split["repeats"], int(table["row"].max()) + 1), dtype=np.int64)
    assignment[table["repeat"].to_numpy(), table["row"].to_numpy()] = table["fold"].to_numpy()
    return Prepared(
        protocol=(split["folds"], split["repeats"], split["seed"]),
        assignment=assignment,
        splits=splits(assignment),
        scalers=[Scaler.from_json(s) for s in scalers["splits"]],
        full=Scaler.from_json(scalers["full"]),
    )
