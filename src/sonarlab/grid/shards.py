"""Grid studies: every trial of a grid cross-validated on the pipeline's splits, the
trials' models trained together in shards of fused programs.

A trial is a configuration of the grid's base variant (``config.Trial``); its members
are one model per split, seeded as the pipeline seeds that split's model (replicate 0)
or with another training seed (``seeds.fold_seed``'s ``replicate``). A shard is at most
``MAX_MEMBERS`` members of one network shape with the rows they need, so memory stays
flat at any grid size; ``run_shard`` is a pure function of it (data, splits,
configurations and seeds in; per-model outcomes out; no files, no MLflow), so a shard
may run in this process or in another. The stage alone writes outputs and logs runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sonarlab.data.folds import Prepared
from sonarlab.data.uci import Sonar
from sonarlab.design.grids import Trial, TrialSet
from sonarlab.results.calibration import expected_calibration_error
from sonarlab.results.summary import summarize_folds
from sonarlab.selection import rule
from sonarlab.training.members import Member, Outcome, shape_key, split_members
from sonarlab.training.outcomes import FoldResult, fold_result, per_split

# Members per shard: 16 trials of 30 splits. Bounds a shard's memory (about 0.3 GB of
# stacked rows, weights and per-row held-out arrays) whatever the grid's size.
MAX_MEMBERS = 480


@dataclass(frozen=True)
class Shard:
    index: int
    trials: tuple[int, ...]  # indices into the grid's trials
    labels: tuple[str, ...]  # each trial's axis values, for messages
    members: tuple[Member, ...]  # len(trials) x splits, trial by trial
    X: np.ndarray  # the rows the members index: a shard carries its own data
    y: np.ndarray


def plan(
    grid: TrialSet,
    sonar: Sonar,
    prepared: Prepared,
    max_members: int = MAX_MEMBERS,
    workers: int = 1,
) -> list[Shard]:
    """The grid's trials in shards: trials of one network shape together, at most
    ``max_members`` models a shard and, with several workers, at least one shard of each
    shape per worker where the trials allow; shards of a shape of equal size where
    possible (a program compiled for one serves the others)."""
    per_trial = len(prepared.splits)
    by_shape: dict[tuple, list[Trial]] = {}
    for trial in grid.trials:
        by_shape.setdefault(shape_key(trial.variant), []).append(trial)
    shards: list[Shard] = []
    for trials in by_shape.values():
        fits = max(1, min(max_members // per_trial, math.ceil(len(trials) / workers)))
        size = math.ceil(len(trials) / math.ceil(len(trials) / fits))
        for start in range(0, len(trials), size):
            chunk = trials[start : start + size]
            members = tuple(
                m for t in chunk for m in split_members(t.variant, prepared, t.replicate)
            )
            index = tuple(t.index for t in chunk)
            labels = tuple(", ".join(f"{k}={v}" for k, v in t.values.items()) for t in chunk)
            shards.append(Shard(len(shards), index, labels, members, sonar.X, sonar.y))
    return shards


@dataclass
class ShardResult:
    shard: int
    outcomes: list[Outcome]
    seconds: float


def run_shard(shard: Shard, tick: Callable[[int], None] = lambda done: None) -> ShardResult:
    """Train every member of ``shard`` (TensorFlow loads on first use). A trial's tables
    need its members' probabilities only: their weights and per-epoch curves are let go
    here, so that what a grid keeps per trial is a few KB (its memory stays flat in the
    number of trials) and a shard's result crosses the network small."""
    from sonarlab.training import engines

    t0 = time.perf_counter()
    trained = engines.train_members(list(shard.members), shard.X, shard.y, tick)
    outcomes = [slim(o) for o in trained]
    return ShardResult(shard.index, outcomes, time.perf_counter() - t0)


def slim(outcome: Outcome) -> Outcome:
    """``outcome`` with its probabilities only (no weights, no curves)."""
    # copies: a slice of an array would keep all of it alive
    return Outcome([], outcome.curves[:0].copy(), outcome.p_train.copy(), outcome.p_test.copy())


def trial_folds(
    shards: Sequence[Shard], results: Sequence[ShardResult], prepared: Prepared
) -> dict[int, list[FoldResult]]:
    """Each trial's per-split results, from the shards' outcomes (in any order)."""
    splits = prepared.splits
    out: dict[int, list[FoldResult]] = {}
    for result in results:
        shard = shards[result.shard]
        share = result.seconds / len(shard.members)
        for i, trial in enumerate(shard.trials):
            outcomes = result.outcomes[i * len(splits) : (i + 1) * len(splits)]
            out[trial] = [
                fold_result(s, o, shard.y, share) for s, o in zip(splits, outcomes, strict=True)
            ]
    return out


def tables(grid: TrialSet, folds: dict[int, list[FoldResult]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per trial: its axis values and summary; one row per trial and split)."""
    rows, splits = [], []
    for trial in grid.trials:
        table = per_split(folds[trial.index])
        rows.append({"trial": trial.index, **trial.values, **summarize_folds(table).metrics()})
        splits.append(table.assign(trial=trial.index))
    return pd.DataFrame(rows), pd.concat(splits, ignore_index=True)


def predictions(grid: TrialSet, folds: dict[int, list[FoldResult]]) -> pd.DataFrame:
    """Every trial's out-of-fold probabilities (``tables.grid_predictions_format``): one
    row per repeat and held-out data row, one column ``p_<trial>`` per trial."""
    first = folds[grid.trials[0].index]
    keys = pd.concat(
        [pd.DataFrame({"repeat": f.split.repeat, "fold": f.split.fold, "row": f.split.test,
                       "label": f.y_test.astype(np.int64)}) for f in first],
        ignore_index=True,
    )  # fmt: skip
    columns = {
        f"p_{t.index}": np.concatenate([f.p_test for f in folds[t.index]]).astype(np.float64)
        for t in grid.trials
    }
    table = pd.concat([keys.astype("int64"), pd.DataFrame(columns)], axis=1)
    return table.sort_values(["repeat", "fold", "row"], kind="stable", ignore_index=True)


def judge(
    grid: TrialSet, trials: pd.DataFrame, splits: pd.DataFrame, oof: pd.DataFrame, seed: int
) -> tuple[pd.DataFrame, rule.Assessment]:
    """The trials judged by the one selection rule (``selection.rule``): ``trials``
    with each one's test against the no-skill reference (``tables.VERSUS_REFERENCE``),
    and the assessment (the best trial, if any, and its bias-corrected estimates)."""
    candidates = {t.index: splits[splits["trial"] == t.index] for t in grid.trials}
    assessment = rule.assess(candidates, oof, {t.index: f"p_{t.index}" for t in grid.trials}, seed)
    verdicts = [assessment.choice.verdict(t.index) for t in grid.trials]
    nan = float("nan")
    labels = oof["label"].to_numpy()
    judged = trials.assign(
        ece=[
            expected_calibration_error(oof[f"p_{t.index}"].to_numpy(np.float64), labels)
            if np.isfinite(oof[f"p_{t.index}"]).all()
            else float("nan")
            for t in grid.trials
        ],
        brier_vs_reference=[
            v.versus_reference.mean if v.versus_reference else nan for v in verdicts
        ],
        brier_vs_reference_ci_high=[
            v.versus_reference.high if v.versus_reference else nan for v in verdicts
        ],
        beats_reference=[int(v.beats_reference) for v in verdicts],
    )
    return judged, assessment


@dataclass
class Judged:
    """A grid's results, ready to write: ``tables``' two tables (trials judged by
    ``judge``), every trial's out-of-fold predictions, and the rule's assessment."""

    trials: pd.DataFrame
    splits: pd.DataFrame
    predictions: pd.DataFrame
    assessment: rule.Assessment


def judged(
    grid: TrialSet,
    planned: Sequence[Shard],
    results: Sequence[ShardResult],
    prepared: Prepared,
    seed: int,
) -> Judged:
    """Everything the grid's outputs hold, from its shards' results (in any order)."""
    return judged_folds(grid, trial_folds(planned, results, prepared), seed)


def judged_folds(grid: TrialSet, folds: dict[int, list[FoldResult]], seed: int) -> Judged:
    """``judged`` from each trial's per-split results (``trial_folds``)."""
    trials, splits = tables(grid, folds)
    oof = predictions(grid, folds)
    trials, assessment = judge(grid, trials, splits, oof, seed)
    return Judged(trials, splits, oof, assessment)
