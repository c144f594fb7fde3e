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
from collections.abc import Mapping
from typing import Any

import mlflow

from sonarlab.cli.command import main_without_arguments
from sonarlab.core import files
from sonarlab.core.errors import DataError
from sonarlab.core.params import ConfigError, flatten, load_section, read_params
from sonarlab.core.paths import Paths, store_root, workspace_paths
from sonarlab.design.grids import grid_names, load_grid
from sonarlab.design.variants import load_variant, variant_names
from sonarlab.report import comparison, page
from sonarlab.results import tables
from sonarlab.tracking import runs

log = logging.getLogger(__name__)


def report_settings(params: Mapping[str, Any]) -> tuple:
    """What ``report`` reads of params, validated before any results are read: every
    variant (by name, in params order), the baseline, the experiment's name, and every
    grid study."""
    variants = {v: load_variant(params, v) for v in variant_names(params)}
    baseline = load_section(params, "report").baseline
    experiment = load_section(params, "mlflow").experiment
    if baseline not in variants:
        raise ConfigError(
            f"report.baseline: got {baseline!r}; allowed: a variant ({', '.join(variants)})"
        )
    studies = [load_grid(params, name) for name in grid_names(params)]
    return variants, baseline, experiment, studies


def build_report() -> None:
    paths: Paths = workspace_paths()
    loaded, baseline, experiment, studies = report_settings(read_params(paths.params))
    names = list(loaded)
    # what the published numbers are compared with
    settings = {v: flatten(c) for v, c in loaded.items() if v in comparison.PUBLISHED}
    variants = {v: paths.variant(v) for v in names}
    folds = {v: tables.FOLDS.read(p.folds) for v, p in variants.items()}
    curves = {v: tables.CURVES.read(p.curves) for v, p in variants.items()}
    grids = []
    for study in studies:
        name = study.name
        trials = tables.trials_format(study.axis_names).read(paths.grid(name).trials)
        sentence = comparison.grid_sentence(name, study.variant, study.axis_names, trials)
        grids.append((name, sentence, paths.grid(name).figure))
    try:
        rows = comparison.compare(folds, baseline)
    except ValueError as exc:  # results that cannot be paired: one line, exit 1
        raise DataError(str(exc)) from None
    folds_per_repeat = rows[0].summary.n_splits // rows[0].summary.repeats
    unlike = {v: comparison.unlike_tutorial(v, s, folds_per_repeat) for v, s in settings.items()}
    try:
        champion = comparison.champion(rows).name
    except ValueError as exc:
        raise DataError(str(exc)) from None

    written = ("index.html", "summary.md", "fold_accuracy.csv", *page.FIGURES)
    files.check_outputs([paths.reports / name for name in written])
    client, experiment_id, _ = runs.open_experiment(store_root(paths.root), experiment, "report")
    with runs.stage_run(client, experiment_id, "report", "report", paths.root):
        figures = page.write_figures(paths.reports, rows, folds, curves, baseline)
        learning = {v: p.learning_curves for v, p in variants.items()}
        files.write_text(
            paths.reports / "summary.md",
            page.markdown_page(rows, baseline, names, unlike, [g[:2] for g in grids]),
        )
        files.write_text(
            paths.reports / "index.html",
            page.html_page(rows, baseline, figures, learning, unlike, grids),
        )
        mlflow.log_params({"baseline": baseline, "variants": ",".join(names)})
        runs.log_comparison(comparison.comparison_metrics(rows))
        mlflow.set_tag("champion", champion)
        runs.log_outputs([paths.reports / name for name in written])
        registered = runs.registered_model_name(experiment)
        try:
            version = runs.set_champion(client, registered, champion)
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
