"""The comparison of variants that the report shows: pure functions of per-split tables.

Every variant is scored on the same splits (``standardize`` makes them once), so a
variant is compared with the baseline split by split: the paired differences and the
corrected resampled t-test of ``stats``. Each variant's own numbers come from
``results.summarize_folds``, as in its ``metrics.json``. The tables are DataFrames of
display cells, rendered as Markdown and as HTML by the report.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sonarlab.results import stats
from sonarlab.results.metrics import METRICS
from sonarlab.results.summary import Summary, split_sizes, summarize_folds

# The columns that say which split a row is: equal in two tables, the rows are paired.
SPLIT_COLUMNS = ("repeat", "fold", "n_train", "n_test", "test_rows")
# Published in the tutorial: accuracy mean (std) over one stratified 10-fold CV.
PUBLISHED = {
    "baseline": (0.8604, 0.0458),
    "visible": (0.8352, 0.0768),
    "hidden": (0.8359, 0.0731),
}
# The tutorial's settings for those variants (dotted keys of a variant, as
# config.flatten gives them) and its CV: a published number is only compared with
# ours when the variant has exactly these settings (a DVC experiment's may not).
_MLP = {"model.kind": "mlp", "model.hidden": [60, 30], "schedule.kind": "constant",
        "epochs": 300, "batch_size": 16}  # fmt: skip
_DROPOUT = {**_MLP, "model.max_norm": 3.0, "optimizer.learning_rate": 0.1,
            "optimizer.momentum": 0.9}  # fmt: skip
TUTORIAL_SETTINGS = {
    "baseline": {**_MLP, "model.input_dropout": 0.0, "model.hidden_dropout": 0.0,
                 "model.max_norm": None, "optimizer.learning_rate": 0.01,
                 "optimizer.momentum": 0.8},
    "visible": {**_DROPOUT, "model.input_dropout": 0.2, "model.hidden_dropout": 0.0},
    "hidden": {**_DROPOUT, "model.input_dropout": 0.0, "model.hidden_dropout": 0.2},
}  # fmt: skip
TUTORIAL_FOLDS = 10
ALPHA = 1 - stats.CONFIDENCE


def unlike_tutorial(name: str, settings: Mapping[str, object], folds: int) -> list[str]:
    """How variant ``name`` (its flattened settings) and the CV differ from the tutorial's:
    e.g. ``["epochs 2 (tutorial 300)"]``; empty when the published number is comparable."""
    spec = {**TUTORIAL_SETTINGS.get(name, {}), "cv.folds": TUTORIAL_FOLDS}
    ours = {**settings, "cv.folds": folds}
    return [
        f"{key} {ours.get(key)!r} (tutorial {value!r})"
        for key, value in spec.items()
        if ours.get(key) != value
    ]


@dataclass(frozen=True)
class VariantStats:
    name: str
    summary: Summary  # mean, std and corrected 95% CI of each metric; the overfitting gap
    versus: stats.PairedTest | None  # accuracy minus the baseline's; None for the baseline
    p_holm: float | None = None  # versus.p adjusted (Holm) over all variants' comparisons
    log_loss_versus: stats.PairedTest | None = None  # log loss minus the baseline's
    log_loss_p_holm: float | None = None

    @property
    def accuracy(self) -> stats.Interval:
        return self.summary.estimates["accuracy"]


def compare(tables: Mapping[str, pd.DataFrame], baseline: str) -> list[VariantStats]:
    """Per-variant estimates and, for every other variant, the paired tests against
    ``baseline``, from each variant's per-split table (``tables.FOLDS``). Raises
    ``ValueError`` if a variant was not scored on the baseline's splits."""
    if baseline not in tables:
        raise ValueError(f"baseline variant {baseline!r} has no results")
    reference = tables[baseline]
    n_train, n_test = split_sizes(reference)
    splits = reference[list(SPLIT_COLUMNS)].reset_index(drop=True)
    out = []
    for name, table in tables.items():
        if not table[list(SPLIT_COLUMNS)].reset_index(drop=True).equals(splits):
            raise ValueError(
                f"{name} was not scored on the same splits as {baseline}; re-run "
                "`dvc repro` so that every variant uses data/prepared"
            )
        versus = log_loss_versus = None
        if name != baseline:
            versus, log_loss_versus = (
                stats.corrected_paired_ttest(
                    table[m].to_numpy(np.float64), reference[m].to_numpy(np.float64),
                    n_train, n_test,
                )
                for m in ("accuracy", "log_loss")
            )  # fmt: skip
        out.append(
            VariantStats(
                name=name,
                summary=summarize_folds(table),
                versus=versus,
                log_loss_versus=log_loss_versus,
            )
        )
    return _with_holm(out)


def _with_holm(rows: list[VariantStats]) -> list[VariantStats]:
    """Add Holm-adjusted p-values: k variants against one baseline are k tests at once."""
    tested = [r.name for r in rows if r.versus is not None]
    by_name = {r.name: r for r in rows}
    acc = stats.holm([by_name[n].versus.p for n in tested])
    ll = stats.holm([by_name[n].log_loss_versus.p for n in tested])
    acc, ll = dict(zip(tested, acc, strict=True)), dict(zip(tested, ll, strict=True))
    return [
        dataclasses.replace(r, p_holm=acc.get(r.name), log_loss_p_holm=ll.get(r.name)) for r in rows
    ]


# --- wording --------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def pp(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def ci(low: float, high: float, fmt=pct) -> str:
    return f"[{fmt(low)}, {fmt(high)}]"


def p_value(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def verdict(mean: float, p_holm: float, higher: str = "higher", lower: str = "lower") -> str:
    if p_holm < ALPHA:
        return higher if mean > 0 else lower
    return "not significant"


# --- tables: DataFrames of display cells ----------------------------------------------


def _table(header: list[str], body: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame(body, columns=header, dtype=object)


def variants_table(rows: Sequence[VariantStats], baseline: str) -> pd.DataFrame:
    header = [
        "variant", "accuracy mean (std)", "95% CI", "ROC AUC [95% CI]", "log loss [95% CI]",
        "train − held-out accuracy", f"Δ accuracy vs {baseline} [95% CI]", "p (Holm)", "folds",
    ]  # fmt: skip
    body = []
    for r in rows:
        acc, auc, ll = (r.summary.estimates[m] for m in METRICS)
        n, repeats = r.summary.n_splits, r.summary.repeats
        body.append(
            [
                r.name,
                f"{pct(acc.mean)} ({pct(acc.std)})",
                ci(acc.low, acc.high),
                f"{auc.mean:.3f} [{auc.low:.3f}, {auc.high:.3f}]",
                f"{ll.mean:.3f} [{ll.low:.3f}, {ll.high:.3f}]",
                pp(r.summary.gap),
                "—" if r.versus is None else f"{pp(r.versus.mean)} {ci(*r.versus.bounds, pp)}",
                "—" if r.versus is None else f"{p_value(r.versus.p)} ({p_value(r.p_holm)})",
                f"{n} ({repeats} × {n // repeats})",
            ]
        )  # fmt: skip
    return _table(header, body)


def paired_table(rows: Sequence[VariantStats], baseline: str) -> pd.DataFrame:
    """Each variant minus the baseline, split by split: accuracy and log loss."""
    header = [
        "variant", f"Δ accuracy vs {baseline} [95% CI]", "p", "p (Holm)",
        f"Δ log loss vs {baseline} [95% CI]", "p", "p (Holm)",
    ]  # fmt: skip
    body = []
    for r in rows:
        if r.versus is None:
            continue
        a, ll = r.versus, r.log_loss_versus
        body.append(
            [
                r.name,
                f"{pp(a.mean)} {ci(a.low, a.high, pp)}", p_value(a.p), p_value(r.p_holm),
                f"{ll.mean:+.3f} [{ll.low:+.3f}, {ll.high:+.3f}]", p_value(ll.p),
                p_value(r.log_loss_p_holm),
            ]
        )  # fmt: skip
    return _table(header, body)


def tutorial_table(
    rows: Sequence[VariantStats], unlike: Mapping[str, list[str]] | None = None
) -> pd.DataFrame:
    """The published numbers beside ours; ``unlike`` (``unlike_tutorial`` per variant)
    says which of ours were made with other settings and so are not comparable."""
    unlike = unlike or {}
    header = [
        "variant", "tutorial (one 10-fold run)", "ours: mean [95% CI]", "tutorial inside?",
        "same settings as the tutorial?",
    ]  # fmt: skip
    body = []
    for r in rows:
        if r.name in PUBLISHED:
            mean, std = PUBLISHED[r.name]
            acc = r.accuracy
            differs = unlike.get(r.name, [])
            body.append(
                [
                    r.name,
                    f"{pct(mean)} ({pct(std)})",
                    f"{pct(acc.mean)} {ci(acc.low, acc.high)}",
                    "yes" if acc.contains(mean) else "no",
                    "no: " + ", ".join(differs) if differs else "yes",
                ]
            )
    return _table(header, body)


def findings(
    rows: Sequence[VariantStats], baseline: str, unlike: Mapping[str, list[str]] | None = None
) -> list[str]:
    """Plain sentences: where the tutorial's numbers fall (for the variants made with
    its settings), and what the paired tests say."""
    unlike = unlike or {}
    by_name = {r.name: r for r in rows}
    out = []
    other = [n for n in PUBLISHED if n in by_name and unlike.get(n)]
    if other:
        listed = "; ".join(f"{n} ({', '.join(unlike[n])})" for n in other)
        out.append(f"Not compared with the tutorial, as their settings differ: {listed}.")
    published = [n for n in PUBLISHED if n in by_name and not unlike.get(n)]
    inside = [n for n in published if by_name[n].accuracy.contains(PUBLISHED[n][0])]
    outside = [n for n in published if n not in inside]
    if published:
        if not outside:
            out.append(
                f"Every published accuracy ({', '.join(published)}) lies inside our 95% "
                "interval for the same variant."
            )
        else:
            out.append(
                "Outside our 95% interval: "
                + ", ".join(
                    f"{n} (tutorial {pct(PUBLISHED[n][0])}, "
                    f"ours {ci(by_name[n].accuracy.low, by_name[n].accuracy.high)})"
                    for n in outside
                )
                + (f"; inside: {', '.join(inside)}." if inside else ".")
            )
    if baseline in published:
        for n in published:
            v = by_name[n].versus
            if v is None:
                continue
            claimed = PUBLISHED[n][0] - PUBLISHED[baseline][0]
            out.append(
                f"The tutorial's {n} scored {pp(claimed)} against its {baseline}; our paired "
                f"interval for that difference, {ci(v.low, v.high, pp)}, "
                f"{'contains' if v.low <= claimed <= v.high else 'excludes'} it."
            )
    for r in rows:
        if r.versus is not None:
            v, ll = r.versus, r.log_loss_versus
            out.append(
                f"{r.name} vs {baseline}: accuracy {pp(v.mean)} {ci(v.low, v.high, pp)}, "
                f"p = {p_value(v.p)}, Holm-adjusted {p_value(r.p_holm)}: "
                f"{verdict(v.mean, r.p_holm)}; log loss {ll.mean:+.3f} "
                f"[{ll.low:+.3f}, {ll.high:+.3f}], Holm-adjusted p {p_value(r.log_loss_p_holm)}: "
                f"{verdict(ll.mean, r.log_loss_p_holm, 'higher (worse)', 'lower (better)')}."
            )
    tested = [r for r in rows if r.versus is not None]
    if tested and all(r.p_holm >= ALPHA for r in tested):
        widest = max((r.versus.high - r.versus.low) / 2 for r in tested)
        out.append(
            f"No accuracy difference from {baseline} is significant at the {ALPHA:.0%} level "
            f"(corrected resampled t-test, {tested[0].versus.df} df, Holm-adjusted over "
            f"{len(tested)} comparisons). The intervals are wide (half-widths up to "
            f"{100 * widest:.1f} points), so differences of a few points are not ruled "
            "out either: this data cannot rank these variants by accuracy."
        )
    return out


def comparison_metrics(rows: Sequence[VariantStats]) -> dict[str, float]:
    """The comparison's numbers, as the report's MLflow run logs them."""
    out = {}
    for r in rows:
        for m, est in r.summary.estimates.items():
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


def champion(rows: Sequence[VariantStats]) -> VariantStats:
    """The variant whose model the report marks ``@champion``: the lowest mean held-out
    log loss over the splits (ties: the first in params order; a diverged model's NaN
    is never picked). A rule for which model to serve, not a significance claim.
    Raises ``ValueError`` if no variant has a finite mean log loss."""
    scored = [r for r in rows if math.isfinite(r.summary.estimates["log_loss"].mean)]
    if not scored:
        raise ValueError("no variant has a finite mean held-out log loss to pick a champion")
    return min(scored, key=lambda r: r.summary.estimates["log_loss"].mean)


def champion_sentences(rows: Sequence[VariantStats]) -> list[str]:
    """The report's words on the served model: which variant and by what rule."""
    best = champion(rows)
    loss = best.summary.estimates["log_loss"].mean
    return [
        f"The registered model's alias @champion names {best.name}'s final model: the "
        f"lowest mean held-out log loss ({loss:.3f}) over the {best.summary.n_splits} splits.",
        "This picks a model to serve; it is not a claim that it is better than the others "
        "(the paired tests above say how sure that would be).",
    ]


def grid_sentence(name: str, variant: str, axes: Sequence[str], trials: pd.DataFrame) -> str:
    """What a grid study shows, in one sentence with its intervals."""
    acc = trials["accuracy_mean"]
    low, high = trials.loc[acc.idxmin()], trials.loc[acc.idxmax()]
    losses = trials["log_loss_mean"]
    best = trials.loc[losses.idxmin() if losses.notna().any() else trials.index[0]]

    def at(row) -> str:
        return ", ".join(f"{a} {row[a]:g}" for a in axes)

    def acc_ci(row) -> str:
        return f"{pct(row['accuracy_mean'])} {ci(row['accuracy_ci_low'], row['accuracy_ci_high'])}"

    overlap = high["accuracy_ci_low"] <= low["accuracy_ci_high"]
    diverged = int(losses.isna().sum())
    return (
        f"Grid {name} ({len(trials)} trials of {variant}, varying {', '.join(axes)}): mean "
        f"held-out accuracy ranges from {acc_ci(low)} ({at(low)}) to {acc_ci(high)} "
        f"({at(high)}); the lowest log loss, {best['log_loss_mean']:.3f} "
        f"[{best['log_loss_ci_low']:.3f}, {best['log_loss_ci_high']:.3f}], is at {at(best)}. "
        + (
            "The intervals of the lowest and the highest accuracy overlap: within this "
            "grid, the data do not separate the settings by accuracy."
            if overlap
            else "The intervals of the lowest and the highest accuracy do not overlap."
        )
        + (f" {diverged} trials diverged in training (NaN log loss)." if diverged else "")
    )
