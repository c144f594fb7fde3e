"""Stage ``report``: every variant compared with the baseline, as a page, a summary and figures.

Reads, for each key of params ``variants``: ``results/<variant>/{folds.csv,metrics.json,
curves.csv,learning_curves.png}``; params ``report`` (the baseline) and ``mlflow``.
Writes ``reports/``:

- ``index.html``: self-contained (figures embedded, no external assets; opens offline);
- ``summary.md``: the same tables and findings, figures linked;
- ``fold_accuracy.png`` and ``fold_accuracy.csv``: every split's held-out accuracy;
- ``differences.png``: each variant minus the baseline, paired by split, with its CI;
- ``overfitting.png``: train vs held-out loss per epoch (mean ± std), all variants.

The same files go to MLflow as the artifacts of a run named ``report``, with the
comparison's numbers as its metrics.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
from pathlib import Path

import mlflow
import numpy as np

from sonarlab import comparison, files, plots, tracking
from sonarlab.comparison import Fold, VariantStats
from sonarlab.config import (
    ConfigError,
    flatten,
    load_section,
    load_variant,
    read_params,
    variant_names,
)
from sonarlab.data import DataError
from sonarlab.paths import Paths, store_root, workspace_paths
from sonarlab.stages._cli import main_without_arguments

log = logging.getLogger(__name__)

FIGURES = {  # file -> caption
    "fold_accuracy.png": "Held-out accuracy of every split (box: quartiles and median; "
    "triangle: mean; whiskers: 1.5 IQR).",
    "differences.png": "Each variant minus the baseline, paired split by split, with the "
    "corrected 95% interval. An interval that crosses zero is no evidence of a difference.",
    "overfitting.png": "Loss per epoch on the training rows (training mode, dropout on) and "
    "on the held-out fold: mean over splits ± one std. The distance between the two "
    "curves is the overfitting that one accuracy number hides.",
}
CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; white-space: normal; } div.table { overflow-x: auto; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; } img { max-width: 100%; } figcaption { color: #555; }
"""


def read_folds(path: Path) -> list[Fold]:
    with open(path, encoding="utf-8") as fh:
        return [Fold.from_row(row) for row in csv.DictReader(fh)]


def read_curves(path: Path) -> dict[str, np.ndarray]:
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k != "epoch"}


def protocol_sentence(rows: list[VariantStats]) -> str:
    r = rows[0]
    return (
        f"Every variant was trained and scored on the same {r.n_splits} splits "
        f"({r.repeats} repeats of stratified {r.n_splits // r.repeats}-fold CV), so each "
        "comparison is paired split by split. Accuracy is the mean (population std) over "
        "the held-out folds, the tutorial's format. Intervals are 95% corrected resampled "
        "t intervals (Nadeau & Bengio, 2003): the variance of a mean over k CV folds is "
        "taken as (1/k + n_test/n_train)·s², not s²/k, because the training sets overlap. "
        "p is the two-sided p-value of the corrected resampled t-test of the paired "
        "differences; in brackets, Holm-adjusted for testing every variant against the "
        'baseline at once. "train − held-out" is the final accuracy on the fold\'s training rows '
        "minus its held-out accuracy, both in inference mode. Time is each stage's wall time."
    )


def sections(rows, baseline: str, unlike) -> list[tuple[str, tuple | list[str]]]:
    """The report's text, in order: (heading, a table) or (heading, sentences)."""
    return [
        ("Variants", comparison.variants_table(rows, baseline)),
        (f"Paired against {baseline}", comparison.paired_table(rows, baseline)),
        ("The tutorial's published numbers", comparison.tutorial_table(rows, unlike)),
        ("Findings", comparison.findings(rows, baseline, unlike)),
    ]


def markdown_page(title: str, rows, baseline: str, names: list[str], unlike) -> str:
    parts = [f"# {title}\n", protocol_sentence(rows) + "\n"]
    for heading, content in sections(rows, baseline, unlike):
        parts.append(f"## {heading}\n")
        if isinstance(content, tuple):
            parts.append(comparison.markdown_table(content))
        else:
            parts.append("\n".join(f"- {s}" for s in content) + "\n")
    parts.append("## Figures\n")
    parts += [f"![{name}]({name})\n\n*{caption}*\n" for name, caption in FIGURES.items()]
    parts.append("## Learning curves per variant\n")
    parts += [f"![{n}](../results/{n}/learning_curves.png)\n" for n in names]
    return "\n".join(parts)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_page(
    title: str, rows, baseline: str, figures: dict[str, Path], curves: dict, unlike
) -> str:
    """The report as one HTML file: styles inline, figures as data: URIs."""
    e = html.escape
    body = [f"<h1>{e(title)}</h1>", f"<p>{e(protocol_sentence(rows))}</p>"]
    for heading, content in sections(rows, baseline, unlike):
        body.append(f"<h2>{e(heading)}</h2>")
        if isinstance(content, tuple):
            body.append(comparison.html_table(content))
        else:
            body.append("<ul>" + "".join(f"<li>{e(s)}</li>" for s in content) + "</ul>")
    body.append("<h2>Figures</h2>")
    for name, caption in FIGURES.items():
        body.append(
            f"<figure>{_img(figures[name], caption)}<figcaption>{e(caption)}</figcaption></figure>"
        )
    body.append("<h2>Learning curves per variant</h2>")
    body += [f"<figure>{_img(path, name)}</figure>" for name, path in curves.items()]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_figures(reports: Path, rows, folds, curves, baseline: str) -> dict[str, Path]:
    names = [r.name for r in rows]
    n = rows[0].n_splits
    out = {name: reports / name for name in FIGURES}
    fold_rows = [
        {"variant": v, "repeat": f.repeat, "fold": f.fold, "accuracy": f.accuracy}
        for v in names
        for f in folds[v]
    ]
    files.write_text(
        reports / "fold_accuracy.csv",
        files.csv_text(fold_rows, ("variant", "repeat", "fold", "accuracy")),
    )
    with files.atomic_path(out["fold_accuracy.png"]) as tmp:
        plots.fold_accuracies(
            {v: [f.accuracy for f in folds[v]] for v in names},
            f"Held-out accuracy per split ({n} splits per variant)",
            tmp,
        )
    others = [r for r in rows if r.versus is not None]
    with files.atomic_path(out["differences.png"]) as tmp:
        plots.differences(
            [r.name for r in others],
            [r.versus.mean for r in others],
            [r.versus.low for r in others],
            [r.versus.high for r in others],
            f"Accuracy minus {baseline}, paired over {n} splits (95% corrected CI)",
            tmp,
        )
    with files.atomic_path(out["overfitting.png"]) as tmp:
        title = f"Train vs held-out loss, mean ± std over {n} splits"
        plots.overfitting({v: curves[v] for v in names}, title, tmp)
    return out


def report_metrics(rows: list[VariantStats]) -> dict[str, float]:
    out = {}
    for r in rows:
        for m, est in r.estimates.items():
            out.update(
                {f"{r.name}.{m}_mean": est.mean, f"{r.name}.{m}_ci_low": est.low,
                 f"{r.name}.{m}_ci_high": est.high}
            )  # fmt: skip
        if r.versus is not None:
            ll = r.log_loss_versus
            out.update(
                {f"{r.name}.delta_accuracy": r.versus.mean, f"{r.name}.delta_ci_low": r.versus.low,
                 f"{r.name}.delta_ci_high": r.versus.high, f"{r.name}.p_value": r.versus.p,
                 f"{r.name}.p_value_holm": r.p_holm, f"{r.name}.delta_log_loss": ll.mean,
                 f"{r.name}.delta_log_loss_p_value_holm": r.log_loss_p_holm}
            )  # fmt: skip
    return out


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
    folds = {v: read_folds(paths.results(v) / "folds.csv") for v in names}
    seconds = {v: files.read_json(paths.results(v) / "metrics.json")["seconds"] for v in names}
    curves = {v: read_curves(paths.results(v) / "curves.csv") for v in names}
    try:
        rows = comparison.compare(folds, seconds, baseline)
    except ValueError as exc:  # results that cannot be paired: one line, exit 1
        raise DataError(str(exc)) from None
    folds_per_repeat = rows[0].n_splits // rows[0].repeats
    unlike = {v: comparison.unlike_tutorial(v, s, folds_per_repeat) for v, s in settings.items()}

    client, experiment_id, _ = tracking.open_experiment(store_root(paths.root), experiment)
    launch = tracking.take_launch()
    title = "Dropout on the Sonar data: repeated cross-validation, paired against the baseline"
    with (
        mlflow.start_run(
            **launch.start_args(client, experiment_id, "report"),
            tags={**tracking.run_tags("report", paths.root), **launch.tags()},
        ),
        tracking.closing_run_on_failure(),
    ):
        figures = write_figures(paths.reports, rows, folds, curves, baseline)
        learning = {v: paths.results(v) / "learning_curves.png" for v in names}
        files.write_text(
            paths.reports / "summary.md", markdown_page(title, rows, baseline, names, unlike)
        )
        files.write_text(
            paths.reports / "index.html",
            html_page(title, rows, baseline, figures, learning, unlike),
        )
        mlflow.log_params({"baseline": baseline, "variants": ",".join(names)})
        mlflow.log_metrics(report_metrics(rows))
        for name in ("index.html", "summary.md", "fold_accuracy.csv", *FIGURES):
            mlflow.log_artifact(str(paths.reports / name))
    log.info("report: %d variants -> %s", len(names), paths.reports / "index.html")


def main(argv: list[str] | None = None) -> int:
    return main_without_arguments("report", __doc__, build_report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
