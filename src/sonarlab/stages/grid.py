"""Stage ``grid@<name>``: every trial of a grid study, cross-validated on the pipeline's
splits, trained together as fused programs, summarized and logged to MLflow.

Reads: ``data/raw/sonar.csv``, ``data/prepared/{folds.csv,scalers.json}``; params
``cv.folds``, ``cv.repeats``, ``cv.seed``, ``mlflow``, ``grids.<name>`` and the
variant the grid is based on.
Writes ``results/grid/<name>/``: ``trials.csv`` (one row per trial: its axis values,
accuracy, ROC AUC, log loss and Brier score as mean, std and 95% corrected interval,
the train − held-out gap, and its test against the no-skill reference),
``splits.csv`` (one row per trial and split), ``predictions.csv`` (every trial's
out-of-fold probabilities), ``metrics.json`` (DVC metrics: the no-skill reference,
and the best trial by the selection rule of ``selection.rule`` with its intervals
and its bias-corrected (BBC-CV) estimates; ``best`` is null when no trial beats the
reference) and ``grid.png`` (DVC plots).
MLflow: a parent run ``grid@<name>`` and one child run per trial, in the experiment
``<experiment>-trials`` (``tracking``); both have the data set as their input.

The shards run in this process, or on the Dask cluster that ``DASK_SCHEDULER_ADDRESS``
names (``sonarlab.grid.cluster``); the results are the same either way.
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
from sonarlab.core.paths import GridPaths, store_root, workspace_paths
from sonarlab.data import uci
from sonarlab.data.folds import prepared_for
from sonarlab.design import sizes
from sonarlab.design.grids import load_grid
from sonarlab.grid import cluster, shards
from sonarlab.grid.figures import grid_trials
from sonarlab.results import tables
from sonarlab.results.figures import save_figure
from sonarlab.selection import rule
from sonarlab.tracking import runs
from sonarlab.training import engines

log = logging.getLogger(__name__)


def grid_settings(params: Mapping[str, Any], name: str) -> tuple:
    """What ``grid@<name>`` reads of params, validated: the grid (with its base
    variant), the splits' protocol and the experiment's name."""
    protocol = load_protocol(params)
    # a grid too big to fit or to finish is refused before its trials are even built
    grid = load_grid(params, name, protocol)
    return grid, protocol, load_section(params, "mlflow").experiment


def grid_stage(name: str) -> None:
    stage = f"grid@{name}"
    paths = workspace_paths()
    study, cv, experiment = grid_settings(read_params(paths.params), name)
    sonar = uci.read_local(paths.raw_data)
    prepared = prepared_for(cv, sonar, paths.folds, paths.scalers)
    outputs = paths.grid(name)
    files.check_outputs(outputs.outputs)  # a blocked output is found now, not after training
    with cluster.executor() as runner:  # connects and checks the workers before training
        if isinstance(runner, cluster.InProcess):  # TensorFlow loads now, before the run starts
            engines.import_engine("fused")
        planned = shards.plan(study, sonar, prepared, workers=runner.workers)
        client, experiment_id, uri = runs.open_experiment(store_root(paths.root), experiment, stage)
        trials_id = runs.detail_experiment(client, experiment, runs.TRIALS_SUFFIX, uri)
        dataset = runs.sonar_dataset(sonar)
        log.info(
            "%s: %d trials x %d splits in %d shard(s), %s; store %s",
            stage, len(study.trials), len(prepared.splits), len(planned), runner.where, uri,
        )  # fmt: skip
        progress = Progress(stage, len(planned), every=0)  # a line per shard: there are few

        def done(result: shards.ShardResult) -> None:
            shard = planned[result.shard]
            size = (
                f"{len(shard.trials)} trials, {len(shard.members)} models, {result.seconds:.0f} s"
            )
            progress.advance(1, f"shard {shard.index + 1} of {len(planned)} done ({size})")

        with runs.stage_run(client, experiment_id, stage, stage, paths.root) as parent:
            runs.log_training_input(dataset)
            try:
                results = runner.run(planned, done)
            except StageError as exc:
                if not sizes.ran_out_of_memory(exc):
                    raise
                raise StageError(
                    f"out of memory training grids.{name} ({sizes.memory_error_name(exc)}); make "
                    f"variants.{study.variant}.model's layers smaller or its batch_size smaller"
                ) from exc
            out = shards.judged(study, planned, results, prepared, cv.seed)
            trials, splits, oof, assessment = (
                out.trials,
                out.splits,
                out.predictions,
                out.assessment,
            )
            axes = study.axis_names
            best = assessment.choice.chosen
            corrected = assessment.corrected and {
                m: c.as_dict() for m, c in assessment.corrected.items()
            }
            reference = assessment.reference_means()
            metrics = tables.grid_metrics(trials, axes, best, reference, corrected)
            figure = grid_trials(
                trials, axes, f"{stage}: {len(prepared.splits)} splits per trial", reference
            )
            write_grid_outputs(outputs, axes, trials, splits, oof, metrics, figure)
            runs.log_grid_result(
                client, parent.info.run_id, trials_id, dataset, study, cv, trials, metrics, outputs
            )
    progress.close(best_line(metrics, axes))


def best_line(metrics: dict, axes: list[str]) -> str:
    """The stage's last line: the best trial by the selection rule, or that there is none."""
    reference = metrics["reference"][f"{rule.SCORE}_mean"]
    best = metrics["best"]
    if best is None:
        return f"no trial beats the no-skill reference (Brier {reference:.3f}): none is called best"
    corrected = metrics["best_corrected"]
    return (
        f"best trial #{best['trial']} "
        + ", ".join(f"{a}={best[a]}" for a in axes)
        + f": Brier {best['brier_mean']:.3f} (no-skill {reference:.3f}), accuracy "
        f"{100 * best['accuracy_mean']:.2f}%, bias-corrected "
        f"{100 * corrected['accuracy_mean']:.2f}%"
    )


def write_grid_outputs(
    out: GridPaths, axes: list[str], trials, splits, oof, metrics: dict, figure
) -> None:
    """Every output of ``grid@<name>``, each written atomically."""
    tables.trials_format(axes).write(out.trials, trials)
    tables.GRID_SPLITS.write(out.splits, splits)
    tables.grid_predictions_format(len(trials)).write(out.predictions, oof)
    files.write_json(out.metrics, metrics)
    save_figure(figure, out.figure)


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(
        prog="python -m sonarlab.stages.grid",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "grid",
        nargs="?",
        help="a key of `grids` in params.yaml (under DVC: taken from $DVC_STAGE, grid@<name>)",
    )
    args = parser.parse_args(argv)
    return run_named("grid", "grid", "grids", args.grid, grid_stage)


if __name__ == "__main__":
    raise SystemExit(main())
