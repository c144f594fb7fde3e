"""Stage ``report``: every variant compared with the baseline, as a page, a summary and figures.

Reads, for each key of params ``variants``: ``results/<variant>/{folds.csv,metrics.json,
curves.csv,predictions.csv,learning_curves.png}``; for each key of ``grids``:
``results/grid/<name>/{trials.csv,metrics.json,grid.png}``; for each key of
``searches``: ``results/search/<name>/{trials.csv,metrics.json,history.png,
importance.png,slices.png}``; params ``report`` (the baseline), ``mlflow``,
``variants``, ``grids``, ``searches``, ``cv.seed`` (the bootstrap samples of BBC-CV)
and ``cv.mc_samples``.
Writes ``reports/``:

- ``index.html``: self-contained (figures embedded, no external assets; opens offline);
- ``summary.md``: the same tables and findings, figures linked;
- for each grid study, a sentence on what it shows, with its figure;
- for each search, sentences on what it trained and chose, with its three figures;
- ``fold_accuracy.png`` and ``fold_accuracy.csv``: every split's held-out accuracy;
- ``differences.png``: each variant minus the baseline, paired by split, with its CI;
- ``overfitting.png``: train vs held-out loss per epoch (mean ± std), all variants;
- ``reliability.png``: reliability diagrams of the pooled out-of-fold predictions.

The page shows the no-skill reference beside the variants, every choice's naive and
bias-corrected (BBC-CV) estimates, calibration (Brier, ECE) and MC dropout against the
standard pass.

The same files go to MLflow as the artifacts of a run named ``report``, with the
comparison's numbers as the table ``comparison.json`` (one row per variant; not as
metrics, which would add a chart per number to the experiment's chart view). The
registered model's alias ``@champion`` is set to the version ``@<variant>`` names for
the variant the one selection rule chooses (``selection.rule``: the lowest mean
held-out Brier score among the variants that beat the no-skill reference), or removed
when none beats it.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from sonarlab.cli.command import main_without_arguments
from sonarlab.core import files
from sonarlab.core.errors import DataError
from sonarlab.core.params import ConfigError, flatten, load_cv_keys, load_section, read_params
from sonarlab.core.paths import Paths, store_root, workspace_paths
from sonarlab.design.grids import grid_names, load_grid
from sonarlab.design.searches import SearchConfig, load_search, search_names
from sonarlab.design.variants import load_variant, variant_names
from sonarlab.report import comparison, page
from sonarlab.results import calibration, tables
from sonarlab.results import predictions as result_predictions
from sonarlab.selection import reference, rule
from sonarlab.tracking import runs

log = logging.getLogger(__name__)


def report_settings(params: Mapping[str, Any]) -> tuple:
    """What ``report`` reads of params, validated before any results are read: every
    variant (by name, in params order), the baseline, the experiment's name, every grid
    study, every search, and the ``cv`` section (its seed fixes the bootstrap samples;
    ``mc_samples`` says how many MC-dropout passes the cv stages made)."""
    variants = {v: load_variant(params, v) for v in variant_names(params)}
    baseline = load_section(params, "report").baseline
    experiment = load_section(params, "mlflow").experiment
    if baseline not in variants:
        raise ConfigError(
            f"report.baseline: got {baseline!r}; allowed: a variant ({', '.join(variants)})"
        )
    studies = [load_grid(params, name) for name in grid_names(params)]
    searches = [load_search(params, name) for name in search_names(params)]
    cv = load_cv_keys(params, ("seed", "mc_samples"))
    return variants, baseline, experiment, studies, searches, cv


# what a search's metrics.json must hold for the report (``tables.search_metrics``)
SEARCH_METRICS_KEYS = (
    "best", "best_corrected", "reference", "n_trials", "n_beat_reference", "n_complete",
    "n_pruned", "n_failed", "model_epochs", "model_epochs_full_budget",
)  # fmt: skip


def search_conclusions(
    paths: Paths, searches: Sequence[SearchConfig]
) -> list[comparison.SearchConclusion]:
    """Each search's outputs as the report shows them, read and checked before the page
    is written: a missing file (a figure too) is a ``FileNotFoundError`` naming it."""
    out = []
    for search in searches:
        where = paths.search(search.name)
        trials = tables.search_trials_format(search.axis_names).read(where.trials)
        metrics = files.read_json(where.metrics)
        if not isinstance(metrics, dict):
            raise files.FormatError(f"{where.metrics}: expected a JSON object of metrics")
        for key in SEARCH_METRICS_KEYS:
            if key not in metrics:
                raise files.FormatError(f"{where.metrics}: no key {key!r}; re-run `dvc repro`")
        for png in (where.figure(key) for key in page.SEARCH_FIGURES):
            if not png.is_file():
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(png))
        halving = search.halving
        out.append(
            comparison.SearchConclusion(
                search.name, search.variant, search.sampler, tuple(search.axis_names),
                search.rungs, halving.reduction if halving else None, trials, metrics,
            )
        )  # fmt: skip
    return out


def paired_predictions(predictions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every variant's out-of-fold probabilities side by side (one column per variant),
    on the rows and splits they share; ``DataError`` if any variant's differ."""
    names = list(predictions)
    keys = predictions[names[0]][list(tables.PREDICTION_KEYS)].reset_index(drop=True)
    for name in names[1:]:
        if not predictions[name][list(tables.PREDICTION_KEYS)].reset_index(drop=True).equals(keys):
            raise DataError(
                f"results/{name}/predictions.csv holds other rows or splits than "
                f"results/{names[0]}/predictions.csv; re-run `dvc repro`"
            )
    columns = {n: predictions[n]["p"].reset_index(drop=True) for n in names}
    return pd.concat([keys, pd.DataFrame(columns)], axis=1)


def calibration_of(pred: pd.DataFrame, column: str) -> tuple[float, pd.DataFrame]:
    table = calibration.reliability(pred[column].to_numpy(np.float64), pred["label"].to_numpy())
    return calibration.binned_error(table), table


def conclusions(rows, baseline, unlike, folds, predictions, cv, grids, searches=()) -> page.Content:
    """The page's content: the variants judged by the selection rule, their calibration
    and, for those with dropout, MC dropout against the standard pass."""
    side_by_side = paired_predictions(predictions)
    names = list(predictions)
    try:
        assessment = rule.assess(folds, side_by_side, {n: n for n in names}, cv.seed)
    except ValueError as exc:  # results that cannot be paired: one line, exit 1
        raise DataError(str(exc)) from None
    ece, bins, mc, mc_bins, mc_ece = {}, {}, {}, {}, {}
    for name, pred in predictions.items():
        ece[name], bins[name] = calibration_of(pred, "p")
        if result_predictions.has_mc(pred):
            mc_ece[name], mc_bins[name] = calibration_of(pred, "p_mc")
            mc[name] = result_predictions.paired(
                result_predictions.split_scores(pred, "p_mc"),
                result_predictions.split_scores(pred, "p"),
                comparison.MC_METRICS,
            )
    ece[reference.NAME], _ = calibration_of(reference.no_skill(side_by_side), "p")
    return page.Content(
        rows,
        baseline,
        unlike,
        assessment,
        ece,
        bins,
        mc,
        mc_bins,
        mc_ece,
        cv.mc_samples,
        grids,
        searches,
    )


def build_report() -> None:
    paths: Paths = workspace_paths()
    loaded, baseline, experiment, studies, configs, cv = report_settings(read_params(paths.params))
    names = list(loaded)
    # what the published numbers are compared with
    settings = {v: flatten(c) for v, c in loaded.items() if v in comparison.PUBLISHED}
    variants = {v: paths.variant(v) for v in names}
    folds = {v: tables.FOLDS.read(p.folds) for v, p in variants.items()}
    curves = {v: tables.CURVES.read(p.curves) for v, p in variants.items()}
    predictions = {v: tables.PREDICTIONS.read(p.predictions) for v, p in variants.items()}
    grids = [
        comparison.GridConclusion(
            study.name, study.variant, tuple(study.axis_names),
            tables.trials_format(study.axis_names).read(paths.grid(study.name).trials),
            files.read_json(paths.grid(study.name).metrics),
        )
        for study in studies
    ]  # fmt: skip
    searches = search_conclusions(paths, configs)
    try:
        rows = comparison.compare(folds, baseline)
    except ValueError as exc:  # results that cannot be paired: one line, exit 1
        raise DataError(str(exc)) from None
    folds_per_repeat = rows[0].summary.n_splits // rows[0].summary.repeats
    unlike = {v: comparison.unlike_tutorial(v, s, folds_per_repeat) for v, s in settings.items()}
    content = conclusions(rows, baseline, unlike, folds, predictions, cv, grids, searches)
    champion = content.assessment.choice.chosen

    written = ("index.html", "summary.md", "fold_accuracy.csv", *page.FIGURES)
    files.check_outputs([paths.reports / name for name in written])
    client, experiment_id, _ = runs.open_experiment(store_root(paths.root), experiment, "report")
    with runs.stage_run(client, experiment_id, "report", "report", paths.root):
        figures = page.write_figures(paths.reports, content, folds, curves)
        learning = {v: p.learning_curves for v, p in variants.items()}
        files.write_text(paths.reports / "summary.md", page.markdown_page(content))
        grid_figures = {g.name: paths.grid(g.name).figure for g in grids}
        search_pngs = {
            s.name: {key: paths.search(s.name).figure(key) for key in page.SEARCH_FIGURES}
            for s in searches
        }
        files.write_text(
            paths.reports / "index.html",
            page.html_page(content, figures, learning, grid_figures, search_pngs),
        )
        mlflow.log_params({"baseline": baseline, "variants": ",".join(names)})
        conclusions_logged = comparison.conclusion_metrics(
            content.assessment, content.ece, content.mc, content.mc_ece
        )
        runs.log_comparison({**comparison.comparison_metrics(rows), **conclusions_logged})
        mlflow.set_tag("champion", champion or "none")
        runs.log_outputs([paths.reports / name for name in written])
        registered = runs.registered_model_name(experiment)
        version = None
        if champion is None:
            if runs.clear_champion(client, registered):
                log.warning("report: no variant beats the no-skill reference: @champion removed")
            else:
                log.warning("report: no variant beats the no-skill reference: no @champion")
        else:
            try:
                version = runs.set_champion(client, registered, champion)
            except LookupError as exc:  # its cv stage logged elsewhere (outputs from DVC's cache)
                log.warning("report: @champion not set: %s", exc)
    log.info("report: %d variants -> %s", len(names), paths.reports / "index.html")
    if version is not None:
        log.info("report: %s@champion = version %s (%s)", registered, version, champion)


def main(argv: list[str] | None = None) -> int:
    return main_without_arguments("report", __doc__, build_report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
