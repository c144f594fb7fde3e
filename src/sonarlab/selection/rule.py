"""The one selection rule, and an honest estimate of what it chose.

**The rule** (``choose``). Among candidates scored on the same splits (the variants,
a grid's trials, a search's trials):

1. *Only candidates with skill.* A candidate is eligible when it beats the no-skill
   reference (``reference``) on the Brier score: the corrected resampled t-test of
   its per-split Brier minus the reference's (``stats.corrected_paired_ttest``) has
   a 95% interval entirely below zero (one-sided p < 0.025). A candidate whose
   training diverged (a NaN score) is never eligible.
2. *The lowest mean held-out Brier score* among the eligible wins.
3. *Ties* (equal mean Brier) go to the lower mean log loss, then to the candidate
   that comes first (params order, trial number).

If no candidate is eligible, nothing is chosen: no "best", no ``@champion``.

Why the Brier score and not log loss: both are proper scoring rules (they reward
calibrated probabilities, not only the side of 0.5), but log loss is unbounded, and
on these data every trained network is confidently wrong on a few held-out rows: one
such row costs up to 16 nats, so a fold's log loss swings between 0.2 and 3 and the
lowest mean log loss goes to a network that predicts nearly the base rate for every
row (a grid once "chose" one with ROC AUC 0.525). The Brier score is bounded (a row
costs at most 1), is a proper score, and ranks a network that is right on 85% of the
rows above one that answers the base rate.

**The estimate** (``bbc``). The chosen candidate's own CV score is optimistic: it is
the best of many noisy scores. BBC-CV (Tsamardinos, Greasidou & Borboudakis, "Bootstrapping
the out-of-sample predictions for efficient and accurate cross-validation", Machine
Learning 107, 2018) corrects it with no extra training: bootstrap the rows of the
out-of-fold predictions, choose a candidate on the in-bag rows by the rule's score, and
score that choice on the out-of-bag rows. The mean over bootstraps is the estimate, and
its 2.5 and 97.5 percentiles the interval. The selection inside a bootstrap uses the
rule's score (pooled Brier over the in-bag rows, ties to the first candidate) among the
candidates the rule considered; the skill test is not repeated inside.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sonarlab.data.seeds import bootstrap_seed
from sonarlab.results import stats
from sonarlab.results.metrics import EPS
from sonarlab.results.predictions import split_scores
from sonarlab.results.summary import split_sizes
from sonarlab.selection import reference

SCORE = "brier"  # the proper scoring rule the rule minimizes (lower is better)
TIE_BREAK = "log_loss"
BOOTSTRAPS = 1000  # BBC-CV's bootstrap samples (the paper uses 1000)
BBC_METRICS = ("accuracy", "brier", "log_loss")


@dataclass(frozen=True)
class Verdict:
    """One candidate against the no-skill reference, by the rule's score."""

    name: Hashable  # a variant's name, or a grid's or search's trial number
    score: float  # mean held-out SCORE over the splits (nan: diverged)
    tie_break: float  # mean held-out TIE_BREAK
    versus_reference: stats.PairedTest | None  # SCORE minus the reference's; None if nan

    @property
    def beats_reference(self) -> bool:
        return self.versus_reference is not None and self.versus_reference.high < 0


@dataclass(frozen=True)
class Choice:
    """What the rule chose (``None``: no candidate beats the reference), with every
    candidate's verdict in the order given."""

    chosen: Hashable | None
    verdicts: tuple[Verdict, ...]

    def verdict(self, name: Hashable) -> Verdict:
        return next(v for v in self.verdicts if v.name == name)

    @property
    def eligible(self) -> list[Hashable]:
        return [v.name for v in self.verdicts if v.beats_reference]


def _mean(table: pd.DataFrame, metric: str) -> float:
    values = table[metric].to_numpy(np.float64)
    return float(values.mean()) if np.isfinite(values).all() else math.nan


def against_reference(name: Hashable, scores: pd.DataFrame, reference: pd.DataFrame) -> Verdict:
    """``name``'s per-split scores against the reference's on the same splits."""
    keys = ["repeat", "fold"]
    if not scores[keys].reset_index(drop=True).equals(reference[keys].reset_index(drop=True)):
        raise ValueError(f"{name} was not scored on the same splits as the no-skill reference")
    score, tie = _mean(scores, SCORE), _mean(scores, TIE_BREAK)
    test = None
    if math.isfinite(score):
        n_train, n_test = split_sizes(scores)
        test = stats.corrected_paired_ttest(
            scores[SCORE].to_numpy(np.float64), reference[SCORE].to_numpy(np.float64),
            n_train, n_test,
        )  # fmt: skip
    return Verdict(name, score, tie, test)


def choose(candidates: Mapping[str, pd.DataFrame], reference: pd.DataFrame) -> Choice:
    """The rule: each candidate's per-split scores (``outcomes.per_split`` or
    ``predictions.split_scores`` tables), in order, against the reference's."""
    verdicts = tuple(against_reference(n, table, reference) for n, table in candidates.items())
    order = ranking(verdicts)
    return Choice(order[0] if order else None, verdicts)


def ranking(verdicts: Sequence[Verdict], *, eligible_only: bool = True) -> list[Hashable]:
    """The candidates in the rule's order, best first: those that beat the reference, by
    mean score, then tie-break, then their order; with ``eligible_only=False``, the rest
    after them in the same order (a diverged one never). ``choose`` takes the first;
    successive halving (``search.driver``) keeps the first few of all at each rung."""
    ranked = sorted(
        (not v.beats_reference, v.score, v.tie_break if math.isfinite(v.tie_break) else math.inf, i)
        for i, v in enumerate(verdicts)
        if math.isfinite(v.score) and (v.beats_reference or not eligible_only)
    )
    return [verdicts[r[-1]].name for r in ranked]


# --- BBC-CV ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Corrected:
    """A bootstrap bias-corrected estimate of the chosen candidate's held-out score."""

    mean: float
    low: float  # 2.5th percentile over bootstraps
    high: float  # 97.5th percentile

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high}


def row_losses(p: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row scores of probabilities ``p`` (``(rows,)`` or ``(rows, candidates)``) of rows
    labelled ``y``: correct at 0.5 (1/0), squared error, and cross-entropy (clipped as
    ``metrics.binary_metrics`` clips)."""
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(y, dtype=np.float64).reshape(-1, *([1] * (q.ndim - 1)))
    return {
        "accuracy": ((q > 0.5) == (y > 0.5)).astype(np.float64),
        "brier": (q - y) ** 2,
        "log_loss": -(y * np.log(q) + (1 - y) * np.log(1 - q)),
    }


def bootstrap_counts(n_rows: int, bootstraps: int, seed: int) -> np.ndarray:
    """(bootstraps, n_rows): how often each row is drawn into each bootstrap sample."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_rows, size=(bootstraps, n_rows))
    return np.stack([np.bincount(d, minlength=n_rows) for d in draws])


def bbc(probabilities: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> dict[str, Corrected]:
    """BBC-CV from out-of-fold probabilities ``(repeats, rows, candidates)`` of rows
    labelled ``labels`` (``(rows,)``), for bootstrap samples ``counts`` (``(bootstraps,
    rows)``, ``bootstrap_counts``; the same samples serve every repeat).

    In each bootstrap, the candidate with the lowest in-bag Brier score summed over the
    repeats (each row weighted by its count; ties: the first; NaN: never) is chosen, as
    the rule chooses on every split at once, and scored on the out-of-bag rows (count 0)
    of every repeat. A bootstrap's value is the mean of that over repeats; the estimate
    is the mean over bootstraps and the interval their 2.5 and 97.5 percentiles. A
    bootstrap with no out-of-bag row (possible only for a handful of rows) is skipped.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 3:
        shape = probabilities.shape
        raise ValueError(f"need (repeats, rows, candidates) probabilities, got {shape}")
    counts = np.asarray(counts, dtype=np.float64)
    out_of_bag = (counts == 0).astype(np.float64)
    n_out = out_of_bag.sum(axis=1)
    keep = n_out > 0
    losses = [row_losses(p, labels) for p in probabilities]
    # in-bag score summed over repeats, as the rule scores over every split; a diverged
    # candidate (NaN) is never chosen
    in_bag = sum(counts @ r[SCORE] for r in losses)  # (bootstraps, candidates)
    chosen = np.argmin(np.where(np.isnan(in_bag), np.inf, in_bag), axis=1)  # first of equals
    out = {}
    for m in BBC_METRICS:
        values = np.zeros(len(counts))
        for r in losses:
            picked = r[m][:, chosen].T  # (bootstraps, rows): the chosen one's per-row scores
            values += (picked * out_of_bag).sum(axis=1) / np.where(keep, n_out, 1)
        v = values[keep] / len(losses)
        out[m] = Corrected(float(v.mean()), *(float(x) for x in np.percentile(v, [2.5, 97.5])))
    return out


def probability_matrix(
    predictions: pd.DataFrame, columns: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``(repeats, rows, candidates)`` probabilities and the rows' labels, from a table of
    out-of-fold predictions (``tables.PREDICTIONS`` keys) with one column per candidate.
    Every repeat must hold out the same rows, each once."""
    ordered = predictions.sort_values(["repeat", "row"], kind="stable")
    repeats = ordered["repeat"].unique()
    rows = ordered.loc[ordered["repeat"] == repeats[0], "row"].to_numpy()
    for r in repeats:
        if not np.array_equal(ordered.loc[ordered["repeat"] == r, "row"].to_numpy(), rows):
            raise ValueError(f"repeat {r} does not hold out every row once")
    labels = ordered.loc[ordered["repeat"] == repeats[0], "label"].to_numpy()
    matrix = ordered[list(columns)].to_numpy(np.float64).reshape(len(repeats), len(rows), -1)
    return matrix, labels


# --- the rule and its estimate together ------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    """A set of candidates judged: the rule's choice, the no-skill reference's per-split
    scores, and BBC-CV of the rule over the candidates that beat the reference (None
    when none does)."""

    choice: Choice
    reference: pd.DataFrame  # predictions.split_scores of the no-skill reference
    corrected: dict[str, Corrected] | None

    def reference_means(self) -> dict[str, float]:
        metrics = ("accuracy", "roc_auc", "log_loss", SCORE)
        return {m: float(self.reference[m].mean()) for m in metrics}


def assess(
    candidates: Mapping[str, pd.DataFrame],
    predictions: pd.DataFrame,
    columns: Mapping[str, str],
    seed: int,
    bootstraps: int = BOOTSTRAPS,
) -> Assessment:
    """Judge ``candidates`` (name -> per-split scores, in order) by the rule, against the
    no-skill reference of ``predictions``' splits, and correct the choice by BBC-CV from
    ``predictions``' out-of-fold probabilities (``columns``: name -> its column), with
    bootstrap samples fixed by ``seed`` (``cv.seed``)."""
    ref = split_scores(reference.no_skill(predictions))
    choice = choose(candidates, ref)
    corrected = None
    if choice.chosen is not None:
        matrix, labels = probability_matrix(predictions, [columns[n] for n in choice.eligible])
        counts = bootstrap_counts(len(labels), bootstraps, bootstrap_seed(seed))
        corrected = bbc(matrix, labels, counts)
    return Assessment(choice, ref, corrected)
