"""Stage ``cv@<variant>``: cross-validate one variant, train its final model, log to MLflow.

Reads: ``data/raw/sonar.csv``, ``data/prepared/{folds.csv,scalers.json}``; params
``cv`` (``cv.mc_samples``: the MC-dropout passes), ``mlflow`` and ``variants.<variant>``.
Writes ``results/<variant>/``: ``metrics.json`` (DVC metrics), ``curves.csv`` (mean
per-epoch curves across folds, DVC plots), ``folds.csv`` (one row per fold),
``predictions.csv`` (every held-out prediction: one row per repeat and data row, with
the standard pass ``p`` and, for a variant with dropout, the MC-dropout mean ``p_mc``
of ``cv.mc_samples`` passes of the same fold's model, each model's passes seeded from
its own seed; nan without dropout), ``learning_curves.png`` and ``model.keras`` (the
final model, raw rows in).
MLflow: one parent run named after the variant, with the data set as its input and
the final model registered as a version with the alias ``@<variant>``; on it too, MC
dropout against the standard pass (``mc_*`` metrics, ``tracking.evaluation``) and MLflow's
own evaluation of the pooled out-of-fold predictions (``pooled_*`` metrics, ROC,
precision-recall, calibration, lift and confusion-matrix images); one child run per fold
in the experiment ``<experiment>-folds`` (``tracking``).

Run outside DVC, ``--set KEY=VALUE`` (and ``--epochs``/``--folds``) override
params.yaml for this run only; the folds are then made in memory if the CV
settings differ from what ``standardize`` wrote. Such a run changes nothing DVC
owns and nothing in the registry: it writes the same files to ``scratch/cv/<variant>/``
(git- and DVC-ignored) and logs an MLflow run named ``<variant> (override)``, tagged
``sonarlab.overrides``, whose model is not registered (no alias moves).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from sonarlab.cli.command import CliParser, run_named
from sonarlab.cli.progress import Progress
from sonarlab.core import files
from sonarlab.core.errors import StageError
from sonarlab.core.params import apply_overrides, load_section, read_params
from sonarlab.core.paths import VariantPaths, store_root, workspace_paths
from sonarlab.data import uci
from sonarlab.data.folds import prepared_for
from sonarlab.design import sizes
from sonarlab.design.variants import load_variant
from sonarlab.results import tables
from sonarlab.results.calibration import expected_calibration_error
from sonarlab.results.figures import save_figure
from sonarlab.results.summary import summarize_folds
from sonarlab.tracking import evaluation, runs
from sonarlab.training.figures import learning_curves
from sonarlab.training.outcomes import mean_curves, out_of_fold, per_split
from sonarlab.training.saving import save_model

log = logging.getLogger(__name__)


def cv_settings(params: Mapping[str, Any], variant_name: str) -> tuple:
    """What ``cv@<variant>`` reads of params, validated: the variant, the ``cv`` section,
    the experiment's name, and the raw sections MLflow keeps with the run."""
    variant = load_variant(params, variant_name)
    cv = load_section(params, "cv")
    # too big to fit or to finish: refused now, before any data, TensorFlow or MLflow run
    sizes.check_cv(variant_name, variant, cv.folds, cv.repeats, cv.engine)
    experiment = load_section(params, "mlflow").experiment
    logged = {"variant": dict(params["variants"][variant_name]), "cv": dict(params["cv"])}
    return variant, cv, experiment, logged


def cv_stage(variant_name: str, overrides: list[str]) -> None:
    stage = f"cv@{variant_name}"
    paths = workspace_paths()
    params = apply_overrides(read_params(paths.params), overrides)
    variant, cv, experiment, settings = cv_settings(params, variant_name)
    sonar = uci.read_local(paths.raw_data)
    prepared = prepared_for(cv, sonar, paths.folds, paths.scalers)
    outputs = paths.scratch_variant(variant_name) if overrides else paths.variant(variant_name)
    if overrides:
        log.info(
            "%s: overrides (%s): results go to %s/ and MLflow only; "
            "no registered model or alias changes",
            stage, ", ".join(overrides), outputs.root.relative_to(paths.root).as_posix(),
        )  # fmt: skip
    files.check_outputs(outputs.outputs)  # a blocked output is found now, not after training
    # TensorFlow loads here, once the parameters and inputs are known to be good, and
    # before the MLflow run starts.
    from sonarlab.training import engines

    engines.import_engine(cv.engine)

    client, experiment_id, uri = runs.open_experiment(store_root(paths.root), experiment, stage)
    folds_id = runs.detail_experiment(client, experiment, runs.FOLDS_SUFFIX, uri)
    progress = Progress(stage, engines.total_epochs(cv.engine, variant, len(prepared.scalers)))
    log.info(
        "%s: %d folds x %d epochs, %s engine, store %s",
        stage, len(prepared.scalers), variant.epochs, cv.engine, uri,
    )  # fmt: skip
    t0 = time.perf_counter()
    with runs.stage_run(
        client, experiment_id, variant_name, stage, paths.root, overrides
    ) as parent:
        runs.log_cv_config(variant_name, variant, cv)
        runs.log_training_input(runs.sonar_dataset(sonar))
        try:
            result = engines.cross_validate(
                cv.engine, variant, sonar, prepared, progress,
                on_fold=lambda fold: runs.log_fold(folds_id, variant_name, fold),
            )  # fmt: skip
        except Exception as exc:
            if not sizes.ran_out_of_memory(exc):
                raise
            key = f"variants.{variant_name}"
            raise StageError(
                f"out of memory training {len(prepared.scalers) + 1} models of {key} "
                f"({type(exc).__name__}); make {key}.model's layers smaller or its "
                "batch_size smaller"
            ) from exc
        predictions, mc_seconds = held_out_predictions(stage, variant, cv, sonar, prepared, result)
        table = per_split(result.folds)
        metrics = {
            **summarize_folds(table).metrics(),
            "ece": pooled_ece(predictions),
            "final_train_accuracy": result.final.train_metrics["accuracy"],
        }
        curves = mean_curves(result.folds)
        # the wall time is a fact about this run: MLflow keeps it, no DVC output does
        runs.log_cv_result(
            client, parent.info.run_id, settings, {**metrics, "seconds": time.perf_counter() - t0},
            curves, result.final.model, runs.registered_model_name(experiment), variant_name,
            register=not overrides,
        )  # fmt: skip
        evaluation.log_mc_dropout(predictions, mc_seconds)
        evaluation.evaluate_out_of_fold(
            predictions, outputs.predictions.relative_to(paths.root).as_posix()
        )
        write_variant_outputs(
            outputs, f"{variant_name}: mean ± std over {len(table)} folds",
            table, predictions, curves, metrics, result.final.model,
        )  # fmt: skip
        runs.log_outputs([outputs.metrics, outputs.folds, outputs.predictions, outputs.curves,
                          outputs.learning_curves])  # fmt: skip
    progress.close(
        f"accuracy {100 * metrics['accuracy_mean']:.2f}% ({100 * metrics['accuracy_std']:.2f}%)"
    )


def pooled_ece(predictions) -> float:
    """The expected calibration error of every held-out prediction pooled (the standard
    pass; nan if training diverged)."""
    p = predictions["p"].to_numpy(np.float64)
    if not np.isfinite(p).all():
        return float("nan")
    return expected_calibration_error(p, predictions["label"].to_numpy())


def held_out_predictions(stage: str, variant, cv, sonar, prepared, result) -> tuple:
    """Every held-out prediction (``outcomes.out_of_fold``) and the seconds MC dropout took:
    for a variant with dropout, each fold's model gives its held-out rows' mean over
    ``cv.mc_samples`` passes with dropout on (``sampling.held_out_mc_means``); without
    dropout that is the standard pass itself, so ``p_mc`` is nan and no time is spent."""
    from sonarlab.training.sampling import held_out_mc_means, uses_dropout

    if not uses_dropout(variant):
        return out_of_fold(result.folds), None
    t0 = time.perf_counter()
    progress = Progress(f"{stage}: MC dropout", len(result.folds))
    p_mc = held_out_mc_means(variant, prepared, sonar.X, result.folds, cv.mc_samples, progress)
    progress.close(f"{len(result.folds)} folds x {cv.mc_samples} passes")
    return out_of_fold(result.folds, p_mc), time.perf_counter() - t0


def write_variant_outputs(
    out: VariantPaths,
    title: str,
    table,
    predictions,
    curves,
    metrics: dict[str, float],
    model,
) -> None:
    """Every output of ``cv@<variant>``, each written atomically: the metrics, the
    per-split table, the held-out predictions, the mean curves and their figure, and the
    final model."""
    tables.write_metrics(out.metrics, metrics)
    tables.FOLDS.write(out.folds, table)
    tables.PREDICTIONS.write(out.predictions, predictions)
    tables.CURVES.write(out.curves, curves)
    save_figure(learning_curves(curves, title), out.learning_curves)
    save_model(model, out.model)


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
