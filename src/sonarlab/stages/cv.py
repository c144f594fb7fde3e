"""Stage ``cv@<variant>``: cross-validate one variant, train its final model, log to MLflow.

Reads: ``data/raw/sonar.csv``, ``data/prepared/{folds.csv,scalers.json}``; params
``cv``, ``mlflow`` and ``variants.<variant>``.
Writes ``results/<variant>/``: ``metrics.json`` (DVC metrics), ``curves.csv`` (mean
per-epoch curves across folds, DVC plots), ``folds.csv`` (one row per fold),
``learning_curves.png`` and ``model.keras`` (the final model, raw rows in).
MLflow: one parent run named after the variant, one nested run per fold.

Run outside DVC, ``--set KEY=VALUE`` (and ``--epochs``/``--folds``) override
params.yaml for this run only; the folds are then made in memory if the CV
settings differ from what ``standardize`` wrote.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import infer_signature

from sonarlab import data, files, plots, tracking
from sonarlab.config import (
    apply_overrides,
    flatten,
    load_section,
    load_variant,
    read_params,
)
from sonarlab.folds import Prepared, prepare, protocol, read_prepared
from sonarlab.paths import Paths, store_root, workspace_paths
from sonarlab.progress import Progress
from sonarlab.stages._cli import run

log = logging.getLogger(__name__)

FOLD_COLUMNS = (
    "repeat", "fold", "n_train", "n_test", "test_rows", "accuracy", "roc_auc", "log_loss",
    "train_accuracy", "seconds",
)  # fmt: skip


def rows_digest(rows) -> str:
    """A short fingerprint of a split's held-out rows: the report pairs variants only
    when their splits hold out the very same rows."""
    text = ",".join(str(int(i)) for i in sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fold_rows(results) -> list[dict]:
    return [
        {
            "repeat": r.split.repeat,
            "fold": r.split.fold,
            "n_train": len(r.split.train),
            "n_test": len(r.split.test),
            "test_rows": rows_digest(r.split.test),
            **{k: r.test_metrics[k] for k in ("accuracy", "roc_auc", "log_loss")},
            "train_accuracy": r.train_metrics["accuracy"],
            "seconds": r.seconds,
        }
        for r in results
    ]


def curves_rows(mean: dict[str, np.ndarray]) -> list[dict]:
    keys = list(mean)
    return [
        {"epoch": i + 1, **{k: float(mean[k][i]) for k in keys}} for i in range(len(mean[keys[0]]))
    ]


def load_prepared(paths: Paths, sonar: data.Sonar, cv) -> Prepared:
    prepared = read_prepared(paths.folds.read_text(), files.read_json(paths.scalers))
    if prepared.protocol != protocol(cv):
        log.info(
            "cv (folds, repeats, seed) %s differ from data/prepared's %s: making folds in memory",
            protocol(cv),
            prepared.protocol,
        )
        prepared = prepare(sonar.X, sonar.y, cv)
    return prepared


def cross_validate(variant_name: str, overrides: list[str]) -> None:
    paths = workspace_paths()
    params = apply_overrides(read_params(paths.params), overrides)
    variant = load_variant(params, variant_name)
    cv = load_section(params, "cv")
    ml = load_section(params, "mlflow")
    sonar = data.read_local(paths.raw_data)
    prepared = load_prepared(paths, sonar, cv)

    # TensorFlow loads here, once the parameters and inputs are known to be good.
    from sonarlab import engines, train

    client, experiment_id, uri = tracking.open_experiment(store_root(paths.root), ml.experiment)
    # `mlflow run -e cv` hands us the run it made: the folds nest under it.
    launch = tracking.take_launch()
    stage = f"cv@{variant_name}"
    splits = prepared.splits
    progress = Progress(stage, engines.total_epochs(cv.engine, variant, len(splits)))
    t0 = time.perf_counter()
    log.info(
        "%s: %d folds x %d epochs, %s engine, store %s",
        stage, len(splits), variant.epochs, cv.engine, uri,
    )  # fmt: skip

    with (
        mlflow.start_run(
            **launch.start_args(client, experiment_id, variant_name),
            tags={**tracking.run_tags(stage, paths.root), **launch.tags()},
        ) as parent,
        tracking.closing_run_on_failure(),
    ):
        mlflow.log_params(
            {"variant": variant_name, **flatten(variant, "variant."), **flatten(cv, "cv.")}
        )
        results, final = engines.cross_validate(
            cv.engine, variant, sonar.X, sonar.y, splits, prepared.scalers, prepared.full,
            cv.seed, progress,
            on_fold=lambda result: _log_fold(client, experiment_id, variant_name, result),
        )  # fmt: skip
        summary = train.summarize(results)
        summary["final_train_accuracy"] = final.train_metrics["accuracy"]
        summary["seconds"] = time.perf_counter() - t0
        mean = train.mean_curves(results)
        mlflow.log_metrics(summary)
        tracking.log_series(
            client,
            parent.info.run_id,
            {f"epoch_{k}": v.tolist() for k, v in mean.items() if k.endswith("_mean")},
            int(time.time() * 1000),
        )
        outputs = _write_outputs(
            paths.results(variant_name), variant_name, results, mean, summary, final.model
        )
        for path in outputs:
            if path.suffix != ".keras":
                mlflow.log_artifact(str(path))
        mlflow.log_dict(
            {"variant": params["variants"][variant_name], "cv": params["cv"]}, "params.json"
        )
        signature = infer_signature(
            sonar.X[:5], train.predict_proba(final.model, sonar.X[:5]).reshape(-1, 1)
        )
        mlflow.keras.log_model(
            final.model,
            name="model",
            signature=signature,
            # Pinned from this environment: MLflow's own inference re-imports the
            # model in a subprocess, which costs more than the rest of a short stage.
            pip_requirements=tracking.model_requirements(),
        )
    progress.close(
        f"accuracy {100 * summary['accuracy_mean']:.2f}% ({100 * summary['accuracy_std']:.2f}%)"
    )


def _log_fold(client, experiment_id: str, variant: str, result) -> None:
    s = result.split
    with (
        mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"{variant} r{s.repeat} f{s.fold}",
            nested=True,
        ) as child,
        tracking.closing_run_on_failure(),
    ):
        mlflow.log_params(
            {"repeat": s.repeat, "fold": s.fold, "n_train": len(s.train), "n_test": len(s.test)}
        )
        mlflow.log_metrics(
            {**result.test_metrics, "train_accuracy": result.train_metrics["accuracy"],
             "seconds": result.seconds}
        )  # fmt: skip
        tracking.log_series(
            client,
            child.info.run_id,
            {f"epoch_{k}": v for k, v in result.curves.items()},
            int(time.time() * 1000),
        )


def _write_outputs(out: Path, variant: str, results, mean, summary, model) -> list[Path]:
    """Write every output of the stage atomically; return their paths."""
    paths = {
        "metrics": out / "metrics.json",
        "folds": out / "folds.csv",
        "curves": out / "curves.csv",
        "png": out / "learning_curves.png",
        "model": out / "model.keras",
    }
    files.write_json(paths["metrics"], summary)
    files.write_text(paths["folds"], files.csv_text(fold_rows(results), FOLD_COLUMNS))
    rows = curves_rows(mean)
    files.write_text(paths["curves"], files.csv_text(rows, rows[0].keys()))
    with files.atomic_path(paths["png"]) as tmp:
        plots.learning_curves(mean, f"{variant}: mean ± std over {len(results)} folds", tmp)
    with files.atomic_path(paths["model"]) as tmp:
        model.save(tmp)
    return list(paths.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sonarlab.stages.cv",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("variant", help="a key of `variants` in params.yaml")
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
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.epochs:
        overrides.append(f"variants.{args.variant}.epochs={args.epochs}")
    if args.folds:
        overrides.append(f"cv.folds={args.folds}")
    return run(f"cv@{args.variant}", lambda: cross_validate(args.variant, overrides))


if __name__ == "__main__":
    raise SystemExit(main())
