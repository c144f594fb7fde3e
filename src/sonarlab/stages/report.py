"""Stage ``report``: every variant compared with the baseline, as a page, a summary and figures.

Reads, for each key of params ``variants``: ``results/<variant>/{folds.csv,metrics.json,
curves.csv,learning_curves.png}``; for each key of ``grids``:
``results/grid/<name>/{trials.csv,grid.png}``; params ``report`` (the baseline),
``mlflow``, ``variants`` and ``grids``.
Writes ``reports/``:

- ``index.html``: self-contained (figures embedded, no external assets; opens offline);
- ``summary.md``: the same tables and findings, figures linked;
- for each grid study, a sentence on what it shows, with its figure;
- ``fold_accuracy.png`` and ``fold_accuracy.csv``: every split's held-out accuracy;
- ``differences.png``: each variant minus the baseline, paired by split, with its CI;
- ``overfitting.png``: train vs held-out loss per epoch (mean ± std), all variants.

The same files go to MLflow as the artifacts of a run named ``report``, with the
comparison's numbers as the table ``comparison.json`` (one row per variant; not as
metrics, which would add a chart per number to the experiment's chart view). The
registered model's alias ``@champion`` is set to the version ``@<variant>`` names for
the variant with the lowest mean held-out log loss (``comparison.champion``).
"""

from __future__ import annotations

import logging

import mlflow

from sonarlab import comparison, files, report_page, result_files, tracking
from sonarlab.config import (
    ConfigError,
    flatten,
    grid_names,
    load_grid,
    load_section,
    load_variant,
    read_params,
    variant_names,
)
from sonarlab.data import DataError
from sonarlab.paths import Paths, store_root, workspace_paths
from sonarlab.stages._cli import main_without_arguments

log = logging.getLogger(__name__)


def build_report() -> None:
    paths: Paths = workspace_paths()
    params = read_params(paths.params)
    names = variant_names(params)
    baseline = load_section(params, "report").baseline
    experiment = load_section(params, "mlflow").experiment
    if baseline not in names:
        raise ConfigError(
            f"report.baseline: got {baseline!r}; allowed: a variant ({', '.join(names)})"
        )
    # what the published numbers are compared with (validated before any reading)
    settings = {v: flatten(load_variant(params, v)) for v in names if v in comparison.PUBLISHED}
    variants = {v: paths.variant(v) for v in names}
    tables = {v: result_files.FOLDS.read(p.folds) for v, p in variants.items()}
    seconds = {v: result_files.read_metrics(p.metrics)["seconds"] for v, p in variants.items()}
    curves = {v: result_files.CURVES.read(p.curves) for v, p in variants.items()}
    grids = []
    for name in grid_names(params):
        study = load_grid(params, name)
        trials = result_files.trials_format(study.axis_names).read(paths.grid(name).trials)
        sentence = comparison.grid_sentence(name, study.variant, study.axis_names, trials)
        grids.append((name, sentence, paths.grid(name).figure))
    try:
        rows = comparison.compare(tables, seconds, baseline)
    except ValueError as exc:  # results that cannot be paired: one line, exit 1
        raise DataError(str(exc)) from None
    folds_per_repeat = rows[0].summary.n_splits // rows[0].summary.repeats
    unlike = {v: comparison.unlike_tutorial(v, s, folds_per_repeat) for v, s in settings.items()}
    try:
        champion = comparison.champion(rows).name
    except ValueError as exc:
        raise DataError(str(exc)) from None

    written = ("index.html", "summary.md", "fold_accuracy.csv", *report_page.FIGURES)
    files.check_outputs([paths.reports / name for name in written])
    client, experiment_id, _ = tracking.open_experiment(
        store_root(paths.root), experiment, "report"
    )
    with tracking.stage_run(client, experiment_id, "report", "report", paths.root):
        figures = report_page.write_figures(paths.reports, rows, tables, curves, baseline)
        learning = {v: p.learning_curves for v, p in variants.items()}
        files.write_text(
            paths.reports / "summary.md",
            report_page.markdown_page(rows, baseline, names, unlike, [g[:2] for g in grids]),
        )
        files.write_text(
            paths.reports / "index.html",
            report_page.html_page(rows, baseline, figures, learning, unlike, grids),
        )
        mlflow.log_params({"baseline": baseline, "variants": ",".join(names)})
        tracking.log_comparison(comparison.comparison_metrics(rows))
        mlflow.set_tag("champion", champion)
        tracking.log_outputs([paths.reports / name for name in written])
        registered = tracking.registered_model_name(experiment)
        try:
            version = tracking.set_champion(client, registered, champion)
        except LookupError as exc:  # its cv stage logged elsewhere (outputs from DVC's cache)
            version = None
            log.warning("report: @champion not set: %s", exc)
    log.info("report: %d variants -> %s", len(names), paths.reports / "index.html")
    if version is not None:
        log.info("report: %s@champion = version %s (%s)", registered, version, champion)


def main(argv: list[str] | None = None) -> int:
    return main_without_arguments("report", __doc__, build_report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
