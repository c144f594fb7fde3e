"""A search's driver: one Optuna study, asked for a block of trials at a time, each block
trained together through the grid's shards (in this process or on the Dask cluster),
judged by the one selection rule, and told back in trial order.

A block holds as many trials as a shard (``grid.shards.MAX_MEMBERS`` models over the
pipeline's splits). With successive halving, a block's trials all train the first rung's
epochs; the first ``1 / reduction`` of them in the rule's order (``rule.ranking``: those
that beat the no-skill reference first, by mean Brier score, then the rest) train the next
rung's epochs from scratch, and so on. A
trial trained to a rung is exactly that trial trained to that length directly (it is
the same member with that many epochs), so where a trial stopped never changes its
numbers. The rest are told to Optuna as pruned, with their last rung's score as an
intermediate value; the others as complete, with their mean held-out Brier score (the
objective, minimized). A trial whose training diverged is told as failed.

Everything is a function of the params: the sampler is seeded, a block is asked for only
after the previous one is told, and a model's numbers never depend on its neighbours,
its shard or its process. No files and no MLflow here: the stage writes and logs.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sonarlab.data.folds import Prepared
from sonarlab.data.uci import Sonar
from sonarlab.design.grids import Trial
from sonarlab.design.searches import SearchConfig, trial_variant
from sonarlab.grid import shards
from sonarlab.results import tables
from sonarlab.selection import rule
from sonarlab.training.outcomes import FoldResult

log = logging.getLogger(__name__)

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"


@dataclass(frozen=True)
class Rung:
    """Trials of one block trained together to one rung's epochs (a ``TrialSet``)."""

    trials: tuple[Trial, ...]
    epochs: int


@dataclass
class SearchTrial:
    """One trial of a search: its values, the last rung it trained and how it ended."""

    number: int
    trial: Trial  # its values, and its variant at its last rung
    epochs: int
    state: str
    folds: list[FoldResult]
    row: dict[str, Any]  # its row of the judged table at its last rung


@dataclass
class SearchResult:
    trials: list[SearchTrial]
    study: Any  # the optuna.Study, in memory
    model_epochs: int  # models x epochs trained, every rung counted

    @property
    def complete(self) -> list[SearchTrial]:
        """The trials that trained every rung to the end without diverging."""
        return [t for t in self.trials if t.state == COMPLETE]


def block_size(prepared: Prepared) -> int:
    """Trials a block holds: as many as one shard (``shards.MAX_MEMBERS`` models)."""
    return max(1, shards.MAX_MEMBERS // len(prepared.splits))


def make_sampler(search: SearchConfig) -> Any:
    """The search's Optuna sampler, seeded by ``searches.<name>.seed``, with the settings
    whose defaults changed between Optuna's majors given here (Optuna is pinned too)."""
    import optuna

    seed = search.seed
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "qmc":
        return optuna.samplers.QMCSampler(
            qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False,
            warn_asynchronous_seeding=False,
        )  # fmt: skip
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=10, n_ei_candidates=24, multivariate=False,
        constant_liar=True,
    )  # fmt: skip


def new_study(search: SearchConfig, storage: Any = None) -> Any:
    """An empty study of the search (in memory unless ``storage`` is given)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the stage says what happens
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.create_study(
            study_name=f"search@{search.name}", direction="minimize", storage=storage,
            sampler=make_sampler(search),
        )  # fmt: skip


TrainRung = Callable[[Rung, list[shards.Shard]], list[shards.ShardResult]]


def run_search(
    params: Mapping[str, Any],
    search: SearchConfig,
    sonar: Sonar,
    prepared: Prepared,
    seed: int,
    train: TrainRung,
    workers: int = 1,
) -> SearchResult:
    """Run ``search``: ``train`` runs a rung's shards (``cluster.InProcess.run`` or the
    Dask cluster's) and returns their results; ``seed`` is ``cv.seed`` (the rule's
    bootstrap samples)."""
    import optuna

    study = new_study(search)
    distributions = {d.key: d.optuna() for d in search.space}
    size = block_size(prepared)
    out: list[SearchTrial] = []
    model_epochs = blocks = 0
    while len(out) < search.trials:
        asked = [study.ask(distributions) for _ in range(min(size, search.trials - len(out)))]
        alive = list(asked)
        ended: dict[int, SearchTrial] = {}
        for r, epochs in enumerate(search.rungs):
            trials = tuple(
                Trial(t.number, dict(t.params), trial_variant(params, search, t.params, epochs), 0)
                for t in alive
            )
            rung = Rung(trials, epochs)
            planned = shards.plan(rung, sonar, prepared, workers=workers)
            results = train(rung, planned)
            model_epochs += epochs * sum(len(s.members) for s in planned)
            folds = shards.trial_folds(planned, results, prepared)
            judged = shards.judged_folds(rung, folds, seed)
            rows = {int(row["trial"]): row for row in judged.trials.to_dict("records")}
            last = r == len(search.rungs) - 1
            kept = set() if last else _promoted(judged.assessment, search, len(alive))
            for t, trial in zip(alive, trials, strict=True):
                row = rows[t.number]
                t.report(row[f"{rule.SCORE}_mean"], step=epochs)
                if t.number in kept:
                    continue
                if not math.isfinite(row[f"{rule.SCORE}_mean"]):
                    state = FAILED
                else:
                    state = COMPLETE if last else PRUNED
                ended[t.number] = SearchTrial(t.number, trial, epochs, state, folds[t.number], row)
            alive = [t for t in alive if t.number in kept]
            if not alive:
                break
        for t in asked:  # told in trial order, whatever order they ended in
            done = ended[t.number]
            if done.state == COMPLETE:
                study.tell(t, done.row[f"{rule.SCORE}_mean"])
            else:
                state = optuna.trial.TrialState.PRUNED if done.state == PRUNED else None
                study.tell(t, state=state or optuna.trial.TrialState.FAIL)
            out.append(done)
        blocks += 1
        log.info("search@%s: block %d told (%d of %d trials)", search.name, blocks, len(out),
                 search.trials)  # fmt: skip
    return SearchResult(out, study, model_epochs)


def _promoted(assessment: rule.Assessment, search: SearchConfig, n: int) -> set[int]:
    """Trials of a rung that go on: the first ``halving.kept(n)`` in the rule's order
    (those that beat the no-skill reference first; the rule chooses at the last rung)."""
    assert search.halving is not None
    order = rule.ranking(assessment.choice.verdicts, eligible_only=False)
    return set(order[: search.halving.kept(n)])


@dataclass
class Final:
    """The complete trials judged together (the rule's choice among them) and every
    trial's row: the complete ones' from that judgement, the pruned ones' from their
    last rung's."""

    trials: pd.DataFrame
    splits: pd.DataFrame
    predictions: pd.DataFrame
    assessment: rule.Assessment | None


def judge_search(result: SearchResult, seed: int) -> Final:
    """The search's tables and the rule's choice among the trials that reached the last
    rung (all of them scored on the same splits at the same length). ``predictions``
    holds those trials' out-of-fold probabilities (the keys alone if there are none)."""
    complete = result.complete
    everyone = Rung(tuple(t.trial for t in result.trials), 0)
    all_folds = {t.number: t.folds for t in result.trials}
    final_rows: dict[int, dict] = {}
    assessment = None
    if complete:
        chosen = Rung(tuple(t.trial for t in complete), complete[0].epochs)
        judged = shards.judged_folds(chosen, {t.number: t.folds for t in complete}, seed)
        predictions, assessment = judged.predictions, judged.assessment
        final_rows = {int(row["trial"]): row for row in judged.trials.to_dict("records")}
    else:
        predictions = shards.predictions(everyone, all_folds)[list(tables.PREDICTION_KEYS)]
    rows = [
        {**final_rows.get(t.number, t.row), "state": t.state, "epochs": t.epochs}
        for t in result.trials
    ]
    _, splits = shards.tables(everyone, all_folds)  # every trial at its last rung
    return Final(pd.DataFrame(rows), splits, predictions, assessment)
