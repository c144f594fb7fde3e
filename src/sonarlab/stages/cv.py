"""Stage ``cv@<variant>``: cross-validate one variant, train its final model, log to MLflow.

Reads: ``data/raw/sonar.csv``, ``data/prepared/{folds.csv,scalers.json}``; params
``cv``, ``mlflow`` and ``variants.<variant>``.
Writes ``results/<variant>/``: ``metrics.json`` (DVC metrics), ``curves.csv`` (mean
per-epoch curves across folds, DVC plots), ``folds.csv`` (one row per fold),
``learning_curves.png`` and ``model.keras`` (the final model, raw rows in).
MLflow: one parent run named after the variant, with the data set as its input and
the final model registered as a version with the alias ``@<variant>``; one child run
per fold in the experiment ``<experiment>-folds`` (``tracking``).

Run outside DVC, ``--set KEY=VALUE`` (and ``--epochs``/``--folds``) override
params.yaml for this run only; the folds are then made in memory if the CV
settings differ from what ``standardize`` wrote.
"""

from __future__ import annotations

import argparse
import logging
import time

from sonarlab import data, files, result_files, tracking
from sonarlab.config import apply_overrides, load_section, load_variant, read_params
from sonarlab.folds import prepared_for
from sonarlab.paths import store_root, workspace_paths
from sonarlab.progress import Progress
from sonarlab.results import mean_curves, per_split, summarize_folds
from sonarlab.stages._cli import CliParser, run_named

log = logging.getLogger(__name__)


def cv_stage(variant_name: str, overrides: list[str]) -> None:
    stage = f"cv@{variant_name}"
    paths = workspace_paths()
    params = apply_overrides(read_params(paths.params), overrides)
    variant = load_variant(params, variant_name)
    cv = load_section(params, "cv")
    experiment = load_section(params, "mlflow").experiment
    sonar = data.read_local(paths.raw_data)
    prepared = prepared_for(cv, sonar, paths.folds, paths.scalers)
    outputs = paths.variant(variant_name)
    files.check_outputs(outputs.outputs)  # a blocked output is found now, not after training
    # TensorFlow loads here, once the parameters and inputs are known to be good, and
    # before the MLflow run starts.
    from sonarlab import engines

    engines.import_engine(cv.engine)

    client, experiment_id, uri = tracking.open_experiment(store_root(paths.root), experiment, stage)
    folds_id = tracking.detail_experiment(client, experiment, tracking.FOLDS_SUFFIX, uri)
    progress = Progress(stage, engines.total_epochs(cv.engine, variant, len(prepared.scalers)))
    log.info(
        "%s: %d folds x %d epochs, %s engine, store %s",
        stage, len(prepared.scalers), variant.epochs, cv.engine, uri,
    )  # fmt: skip
    t0 = time.perf_counter()
    with tracking.stage_run(client, experiment_id, variant_name, stage, paths.root) as parent:
        tracking.log_cv_config(variant_name, variant, cv)
        tracking.log_training_input(tracking.sonar_dataset(sonar))
        result = engines.cross_validate(
            cv.engine, variant, sonar, prepared, progress,
            on_fold=lambda fold: tracking.log_fold(client, folds_id, variant_name, fold),
        )  # fmt: skip
        table = per_split(result.folds)
        metrics = {
            **summarize_folds(table).metrics(),
            "final_train_accuracy": result.final.train_metrics["accuracy"],
            "seconds": time.perf_counter() - t0,
        }
        curves = mean_curves(result.folds)
        settings = {"variant": params["variants"][variant_name], "cv": params["cv"]}
        tracking.log_cv_result(
            client, parent.info.run_id, settings, metrics, curves, result.final.model,
            tracking.registered_model_name(experiment), variant_name,
        )  # fmt: skip
        result_files.write_variant(
            outputs, f"{variant_name}: mean ± std over {len(table)} folds",
            table, curves, metrics, result.final.model,
        )  # fmt: skip
        tracking.log_outputs(
            [outputs.metrics, outputs.folds, outputs.curves, outputs.learning_curves]
        )
    progress.close(
        f"accuracy {100 * metrics['accuracy_mean']:.2f}% ({100 * metrics['accuracy_std']:.2f}%)"
    )


def cv_parser() -> argparse.ArgumentParser:
    """The CLI's arguments (``MLproject``'s ``cv`` entry point passes the same, typed alike)."""
    parser = CliParser(
        prog="python -m sonarlab.stages.cv",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "variant",
        nargs="?",
        help="a key of `variants` in params.yaml (under DVC: taken from $DVC_STAGE, cv@<variant>)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter, e.g. cv.folds=5",
    )
    parser.add_argument(
        "--epochs", type=int, default=0, help="override the variant's epochs (0: keep params.yaml)"
    )
    parser.add_argument("--folds", type=int, default=0, help="override cv.folds (0: keep)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = cv_parser().parse_args(argv)

    def body(variant: str) -> None:
        overrides = list(args.overrides)
        if args.epochs:
            overrides.append(f"variants.{variant}.epochs={args.epochs}")
        if args.folds:
            overrides.append(f"cv.folds={args.folds}")
        cv_stage(variant, overrides)

    return run_named("cv", "variant", "variants", args.variant, body)


if __name__ == "__main__":
    raise SystemExit(main())
