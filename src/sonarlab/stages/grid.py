"""Stage ``grid@<name>``: every trial of a grid study, cross-validated on the pipeline's
splits, trained together as fused programs, summarized and logged to MLflow.

Reads: ``data/raw/sonar.csv``, ``data/prepared/{folds.csv,scalers.json}``; params
``cv.folds``, ``cv.repeats``, ``cv.seed``, ``mlflow``, ``grids.<name>`` and the
variant the grid is based on.
Writes ``results/grid/<name>/``: ``trials.csv`` (one row per trial: its axis values,
accuracy, ROC AUC and log loss as mean, std and 95% corrected interval, the train −
held-out gap), ``splits.csv`` (one row per trial and split), ``metrics.json`` (DVC
metrics: the best trial, by mean held-out log loss, with its intervals) and
``grid.png`` (DVC plots).
MLflow: a parent run ``grid@<name>`` and one child run per trial, in the experiment
``<experiment>-trials`` (``tracking``); both have the data set as their input.

The shards run in this process, or on the Dask cluster that ``DASK_SCHEDULER_ADDRESS``
names (``sonarlab.cluster``); the results are the same either way.
"""

from __future__ import annotations

import argparse
import logging

from sonarlab import cluster, data, engines, files, grid, plots, result_files, tracking
from sonarlab.config import load_grid, load_section, read_params
from sonarlab.folds import prepared_for
from sonarlab.paths import store_root, workspace_paths
from sonarlab.progress import Progress
from sonarlab.stages._cli import CliParser, run_named

log = logging.getLogger(__name__)


def grid_stage(name: str) -> None:
    stage = f"grid@{name}"
    paths = workspace_paths()
    params = read_params(paths.params)
    study = load_grid(params, name)
    cv = load_section(params, "cv")
    experiment = load_section(params, "mlflow").experiment
    sonar = data.read_local(paths.raw_data)
    prepared = prepared_for(cv, sonar, paths.folds, paths.scalers)
    outputs = paths.grid(name)
    files.check_outputs(outputs.outputs)  # a blocked output is found now, not after training
    runner = cluster.executor()  # connects and checks the workers before any training
    if isinstance(runner, cluster.InProcess):  # TensorFlow loads now, before the run starts
        engines.import_engine("fused")
    shards = grid.plan(study, sonar, prepared, workers=runner.workers)
    client, experiment_id, uri = tracking.open_experiment(store_root(paths.root), experiment, stage)
    trials_id = tracking.detail_experiment(client, experiment, tracking.TRIALS_SUFFIX, uri)
    dataset = tracking.sonar_dataset(sonar)
    log.info(
        "%s: %d trials x %d splits in %d shard(s), %s; store %s",
        stage, len(study.trials), len(prepared.splits), len(shards), runner.where, uri,
    )  # fmt: skip
    progress = Progress(stage, len(shards), every=0)  # a line per shard: there are few

    def done(result: grid.ShardResult) -> None:
        shard = shards[result.shard]
        size = f"{len(shard.trials)} trials, {len(shard.members)} models, {result.seconds:.0f} s"
        progress.advance(1, f"shard {shard.index + 1} of {len(shards)} done ({size})")

    with tracking.stage_run(client, experiment_id, stage, stage, paths.root) as parent:
        tracking.log_training_input(dataset)
        results = runner.run(shards, done)
        trials, splits = grid.tables(study, grid.trial_folds(shards, results, prepared))
        axes = study.axis_names
        metrics = result_files.grid_metrics(grid.best_trial(trials), axes, len(trials))
        figure = plots.grid(trials, axes, f"{stage}: {len(prepared.splits)} splits per trial")
        result_files.write_grid(outputs, axes, trials, splits, metrics, figure)
        tracking.log_grid_result(
            client, parent.info.run_id, trials_id, dataset, study, cv, trials, metrics, outputs
        )
    best = metrics["best"]
    progress.close(
        f"best trial #{best['trial']} "
        + ", ".join(f"{a}={best[a]}" for a in axes)
        + f": log loss {best['log_loss_mean']:.3f}, accuracy {100 * best['accuracy_mean']:.2f}%"
    )


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
