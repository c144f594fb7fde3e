"""Stage ``report``: one table and one figure comparing every variant.

Reads: ``results/<variant>/{metrics.json,folds.csv}`` for each key of params
``variants``. Writes: ``reports/summary.md`` (the comparison table, the tutorial's
published numbers beside ours), ``reports/fold_accuracy.png`` and
``reports/fold_accuracy.csv`` (every fold's held-out accuracy, DVC plots).
"""

from __future__ import annotations

import csv
import logging

from sonarlab import files, plots
from sonarlab.config import read_params, variant_names
from sonarlab.paths import workspace_paths
from sonarlab.stages._cli import main_without_arguments

log = logging.getLogger(__name__)

# Published in the tutorial (accuracy mean (std) over one stratified 10-fold CV).
PUBLISHED = {
    "baseline": (0.8604, 0.0458),
    "visible": (0.8352, 0.0768),
    "hidden": (0.8359, 0.0731),
}


def pct(mean: float, std: float) -> str:
    return f"{100 * mean:.2f}% ({100 * std:.2f}%)"


def summary_table(metrics: dict[str, dict]) -> str:
    """Markdown table, one row per variant, the tutorial's format for accuracy."""
    head = (
        "| variant | accuracy mean (std) | tutorial | ROC AUC | log loss "
        "| train − held-out accuracy | folds | time |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, m in metrics.items():
        published = pct(*PUBLISHED[name]) if name in PUBLISHED else "—"
        rows.append(
            f"| {name} | {pct(m['accuracy_mean'], m['accuracy_std'])} | {published} "
            f"| {m['roc_auc_mean']:.3f} ({m['roc_auc_std']:.3f}) "
            f"| {m['log_loss_mean']:.3f} ({m['log_loss_std']:.3f}) "
            f"| {100 * m['overfit_gap_mean']:+.2f} pp | {int(m['n_folds'])} "
            f"| {m['seconds']:.0f} s |"
        )
    return head + "\n".join(rows) + "\n"


def build_report() -> None:
    paths = workspace_paths()
    names = variant_names(read_params(paths.params))
    metrics, per_fold = {}, {}
    for name in names:
        out = paths.results(name)
        metrics[name] = files.read_json(out / "metrics.json")
        with open(out / "folds.csv", encoding="utf-8") as fh:
            per_fold[name] = [float(row["accuracy"]) for row in csv.DictReader(fh)]
    n_folds = {int(m["n_folds"]) for m in metrics.values()}
    text = (
        "# Dropout on the Sonar data: cross-validated comparison\n\n"
        "Accuracy is the mean (population std) over held-out folds, the tutorial's format; "
        "ROC AUC and log loss likewise. *train − held-out* is the mean, over folds, of the "
        "final model's accuracy on its training rows minus its held-out accuracy "
        "(both in inference mode). Time is the stage's wall time.\n\n"
        + summary_table(metrics)
        + "\nThe tutorial's numbers come from a single 10-fold run each; its results vary "
        "from run to run, so a difference smaller than the fold spread is not evidence.\n\n"
        "![per-fold accuracy](fold_accuracy.png)\n"
    )
    files.write_text(paths.reports / "summary.md", text)
    rows = [{"variant": n, "fold": i, "accuracy": a} for n in names
            for i, a in enumerate(per_fold[n])]  # fmt: skip
    files.write_text(
        paths.reports / "fold_accuracy.csv", files.csv_text(rows, ("variant", "fold", "accuracy"))
    )
    with files.atomic_path(paths.reports / "fold_accuracy.png") as tmp:
        plots.fold_accuracies(
            per_fold, f"Held-out accuracy per fold ({'/'.join(map(str, n_folds))} folds)", tmp
        )
    log.info("report: %d variants -> %s", len(names), paths.reports / "summary.md")


def main(argv: list[str] | None = None) -> int:
    return main_without_arguments("report", __doc__, build_report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
