"""Stage ``search@<name>``: an Optuna search over a variant's fields, its trials asked
for a block at a time and trained together as fused programs (``sonarlab.search``),
chosen by the one selection rule, summarized and logged to MLflow.

Reads: ``data/raw/sonar.csv``, ``data/prepared/{folds.csv,scalers.json}``; params
``cv.folds``, ``cv.repeats``, ``cv.seed``, ``mlflow``, ``searches.<name>`` and the
variant the search is based on.
Writes ``results/search/<name>/``: ``trials.csv`` (one row per trial: its values, how it
ended, the epochs of its last rung and its scores there, as a grid's ``trials.csv``),
``splits.csv`` (one row per trial and split, at its last rung), ``predictions.csv``
(the complete trials' out-of-fold probabilities), ``metrics.json`` (DVC metrics: the
no-skill reference, the rule's choice among the complete trials with its intervals and
bias-corrected estimates, the trials' fates and the model-epochs trained),
``study.journal`` (the study, for Optuna's own tools: ``search.journal``) and
``history.png``, ``importance.png``, ``slices.png`` (Optuna's plots).
MLflow: a parent run ``search@<name>`` and one child run per trial, named by its
values, in the experiment ``<experiment>-trials``.

The blocks run in this process, or on the Dask cluster that ``DASK_SCHEDULER_ADDRESS``
names; the outputs are the same bytes either way.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from typing import Any

from sonarlab.cli.command import CliParser, run_named
from sonarlab.cli.progress import Progress
from sonarlab.core import files
from sonarlab.core.errors import StageError
from sonarlab.core.params import load_protocol, load_section, read_params
from sonarlab.core.paths import SearchPaths, store_root, workspace_paths
from sonarlab.data import uci
from sonarlab.data.folds import prepared_for
from sonarlab.design import sizes
from sonarlab.design.searches import load_search
from sonarlab.grid import cluster
from sonarlab.results import tables
from sonarlab.results.figures import save_figure
from sonarlab.search import driver, journal
from sonarlab.search.figures import search_figures
from sonarlab.selection import rule
from sonarlab.tracking import runs
from sonarlab.training import engines

log = logging.getLogger(__name__)


def search_settings(params: Mapping[str, Any], name: str) -> tuple:
    """What ``search@<name>`` reads of params, validated: the search (with its base
    variant), the splits' protocol and the experiment's name."""
    protocol = load_protocol(params)
    return load_search(params, name, protocol), protocol, load_section(params, "mlflow").experiment


def search_stage(name: str) -> None:
    stage = f"search@{name}"
    paths = workspace_paths()
    params = read_params(paths.params)
    search, cv, experiment = search_settings(params, name)
    sonar = uci.read_local(paths.raw_data)
    prepared = prepared_for(cv, sonar, paths.folds, paths.scalers)
    outputs = paths.search(name)
    files.check_outputs(outputs.outputs)  # a blocked output is found now, not after training
    with cluster.executor() as runner:  # connects and checks the workers before training
        if isinstance(runner, cluster.InProcess):  # TensorFlow loads now, before the run
            engines.import_engine("fused")
        client, experiment_id, uri = runs.open_experiment(store_root(paths.root), experiment, stage)
        trials_id = runs.detail_experiment(client, experiment, runs.TRIALS_SUFFIX, uri)
        dataset = runs.sonar_dataset(sonar)
        size = driver.block_size(prepared)
        blocks = -(-search.trials // size)
        log.info(
            "%s: %d trials (%s sampler, rungs %s) in blocks of %d x %d splits, %s; store %s",
            stage, search.trials, search.sampler, list(search.rungs), size,
            len(prepared.splits), runner.where, uri,
        )  # fmt: skip
        progress = Progress(stage, blocks * len(search.rungs), every=0)

        def train(rung: driver.Rung, planned: list) -> list:
            try:
                results = runner.run(planned, lambda result: None)
            except StageError as exc:
                if not sizes.ran_out_of_memory(exc):
                    raise
                raise StageError(
                    f"out of memory training searches.{name} ({sizes.memory_error_name(exc)}); "
                    f"make variants.{search.variant}.model's layers or its batch_size smaller"
                ) from exc
            seconds = sum(r.seconds for r in results)
            progress.advance(
                1, f"{len(rung.trials)} trials x {rung.epochs} epochs ({seconds:.0f} s)"
            )
            return results

        with runs.stage_run(client, experiment_id, stage, stage, paths.root) as parent:
            runs.log_training_input(dataset)
            result = driver.run_search(
                params, search, sonar, prepared, cv.seed, train, workers=runner.workers
            )
            final = driver.judge_search(result, cv.seed)
            metrics = summarize_search(search, result, final, len(prepared.splits))
            write_search_outputs(outputs, search, result, final, metrics)
            runs.log_search_result(
                client, parent.info.run_id, trials_id, dataset, search, cv, result.trials,
                final.trials, metrics, outputs,
            )  # fmt: skip
    progress.close(chosen_line(metrics, search.axis_names))


def summarize_search(search, result: driver.SearchResult, final: driver.Final, splits: int) -> dict:
    assessment = final.assessment
    best = assessment.choice.chosen if assessment else None
    corrected = assessment and assessment.corrected and {
        m: c.as_dict() for m, c in assessment.corrected.items()
    }  # fmt: skip
    if assessment is None:  # no trial completed: the reference of the last rung trained
        reference = {k: float("nan") for k in ("accuracy", "roc_auc", "log_loss", rule.SCORE)}
    else:
        reference = assessment.reference_means()
    full = search.trials * splits * search.rungs[-1]
    return tables.search_metrics(
        final.trials, search.axis_names, best, reference, corrected, result.model_epochs, full
    )


def chosen_line(metrics: dict, axes: list[str]) -> str:
    """The stage's last line: the chosen trial, or that there is none."""
    best = metrics["best"]
    fates = f"{metrics['n_complete']} complete, {metrics['n_pruned']} pruned"
    if best is None:
        return f"{fates}; no trial beats the no-skill reference: none is chosen"
    corrected = metrics["best_corrected"]
    return (
        f"{fates}; chosen trial #{best['trial']} "
        + ", ".join(f"{a}={best[a]:.4g}" if best[a] is not None else f"{a}=None" for a in axes)
        + f": Brier {best['brier_mean']:.3f} (no-skill "
        f"{metrics['reference'][f'{rule.SCORE}_mean']:.3f}), accuracy "
        f"{100 * best['accuracy_mean']:.2f}%, bias-corrected "
        f"{100 * corrected['accuracy_mean']:.2f}%"
    )


def write_search_outputs(
    out: SearchPaths, search, result: driver.SearchResult, final: driver.Final, metrics: dict
) -> None:
    """Every output of ``search@<name>``, each written atomically."""
    axes = search.axis_names
    tables.search_trials_format(axes).write(out.trials, final.trials)
    tables.SEARCH_SPLITS.write(out.splits, final.splits)
    numbers = [t.number for t in result.complete]
    tables.trial_predictions_format(numbers).write(out.predictions, final.predictions)
    files.write_json(out.metrics, metrics)
    journal.write_journal(out.study, f"search@{search.name}", result.study.trials)
    figures = search_figures(result.study, f"search@{search.name}", search.seed)
    for key, figure in figures.items():
        save_figure(figure, out.figure(key))


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(
        prog="python -m sonarlab.stages.search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "search",
        nargs="?",
        help="a key of `searches` in params.yaml (under DVC: from $DVC_STAGE, search@<name>)",
    )
    args = parser.parse_args(argv)
    return run_named("search", "search", "searches", args.search, search_stage)


if __name__ == "__main__":
    raise SystemExit(main())
