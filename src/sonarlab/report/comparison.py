"""The comparison of variants that the report shows: pure functions of per-split tables.

Every variant is scored on the same splits (``standardize`` makes them once), so a
variant is compared with the baseline split by split: the paired differences and the
corrected resampled t-test of ``stats``. Each variant's own numbers come from
``results.summarize_folds``, as in its ``metrics.json``. The tables are DataFrames of
display cells, rendered as Markdown and as HTML by the report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sonarlab.results import stats
from sonarlab.results.metrics import METRICS
from sonarlab.results.summary import Summary, split_sizes, summarize_folds
from sonarlab.selection import reference, rule

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
    brier_versus: stats.PairedTest | None = None  # Brier score minus the baseline's
    brier_p_holm: float | None = None

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
        versus = log_loss_versus = brier_versus = None
        if name != baseline:
            versus, log_loss_versus, brier_versus = (
                stats.corrected_paired_ttest(
                    table[m].to_numpy(np.float64), reference[m].to_numpy(np.float64),
                    n_train, n_test,
                )
                for m in ("accuracy", "log_loss", "brier")
            )  # fmt: skip
        out.append(
            VariantStats(
                name=name,
                summary=summarize_folds(table),
                versus=versus,
                log_loss_versus=log_loss_versus,
                brier_versus=brier_versus,
            )
        )
    return _with_holm(out)


def _with_holm(rows: list[VariantStats]) -> list[VariantStats]:
    """Add Holm-adjusted p-values: k variants against one baseline are k tests at once."""
    tested = [r.name for r in rows if r.versus is not None]
    by_name = {r.name: r for r in rows}
    adjusted = {
        field: dict(zip(tested, stats.holm([getattr(by_name[n], field).p for n in tested]),
                        strict=True))
        for field in ("versus", "log_loss_versus", "brier_versus")
    }  # fmt: skip
    return [
        dataclasses.replace(
            r, p_holm=adjusted["versus"].get(r.name),
            log_loss_p_holm=adjusted["log_loss_versus"].get(r.name),
            brier_p_holm=adjusted["brier_versus"].get(r.name),
        )
        for r in rows
    ]  # fmt: skip


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


def _estimate(est: stats.Interval, digits: int = 3) -> str:
    return f"{est.mean:.{digits}f} [{est.low:.{digits}f}, {est.high:.{digits}f}]"


def _score(values: Mapping, metric: str) -> str:
    """``<metric>_mean`` with ``_ci_low``/``_ci_high`` of a metrics mapping, as a cell."""
    mean, low, high = (values[f"{metric}_{p}"] for p in ("mean", "ci_low", "ci_high"))
    if metric == "accuracy":
        return f"{pct(mean)} {ci(low, high)}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _corrected(c: Mapping[str, rule.Corrected]) -> dict[str, float]:
    """BBC-CV estimates under the names of a metrics mapping (``_score`` reads them)."""
    return {f"{m}_{k}": v for m, est in c.items() for k, v in est.as_dict().items()}


def _signed(test: stats.PairedTest) -> str:
    return f"{test.mean:+.3f} [{test.low:+.3f}, {test.high:+.3f}]"


def skill_cell(verdict: rule.Verdict) -> str:
    """A candidate against the no-skill reference, by the rule's Brier test."""
    if verdict.versus_reference is None:
        return "diverged (NaN)"
    word = "better" if verdict.beats_reference else "no better than no-skill"
    return f"{word}: {_signed(verdict.versus_reference)}"


def reference_estimates(assessment: rule.Assessment) -> dict[str, stats.Interval]:
    """The no-skill reference's mean and corrected interval of every metric."""
    ref = assessment.reference
    n_train, n_test = split_sizes(ref)
    return {m: stats.interval(ref[m].to_numpy(np.float64), n_train, n_test) for m in METRICS}


def variants_table(
    rows: Sequence[VariantStats],
    baseline: str,
    assessment: rule.Assessment,
    ece: Mapping[str, float],
) -> pd.DataFrame:
    """One row per variant and one for the no-skill reference (``ece``: each one's
    expected calibration error, the reference's under ``reference.NAME``)."""
    header = [
        "variant", "accuracy mean (std)", "95% CI", "ROC AUC [95% CI]", "log loss [95% CI]",
        "Brier [95% CI]", "ECE", "Δ Brier vs no-skill [95% CI]", "train − held-out accuracy",
        f"Δ accuracy vs {baseline} [95% CI]", "p (Holm)", "folds",
    ]  # fmt: skip
    body = []
    for r in rows:
        acc, auc, ll, brier = (r.summary.estimates[m] for m in METRICS)
        n, repeats = r.summary.n_splits, r.summary.repeats
        body.append(
            [
                r.name,
                f"{pct(acc.mean)} ({pct(acc.std)})",
                ci(acc.low, acc.high),
                _estimate(auc), _estimate(ll), _estimate(brier), f"{ece[r.name]:.3f}",
                skill_cell(assessment.choice.verdict(r.name)),
                pp(r.summary.gap),
                "—" if r.versus is None else f"{pp(r.versus.mean)} {ci(*r.versus.bounds, pp)}",
                "—" if r.versus is None else f"{p_value(r.versus.p)} ({p_value(r.p_holm)})",
                f"{n} ({repeats} × {n // repeats})",
            ]
        )  # fmt: skip
    ref = reference_estimates(assessment)
    acc = ref["accuracy"]
    body.append(
        [
            f"{reference.NAME} (reference)", f"{pct(acc.mean)} ({pct(acc.std)})",
            ci(acc.low, acc.high), _estimate(ref["roc_auc"]), _estimate(ref["log_loss"]),
            _estimate(ref["brier"]), f"{ece[reference.NAME]:.3f}", "—", "—", "—", "—",
            body[0][-1] if body else "—",
        ]
    )  # fmt: skip
    return _table(header, body)


def paired_table(rows: Sequence[VariantStats], baseline: str) -> pd.DataFrame:
    """Each variant minus the baseline, split by split: accuracy, log loss and Brier."""
    header = [
        "variant", f"Δ accuracy vs {baseline} [95% CI]", "p", "p (Holm)",
        f"Δ log loss vs {baseline} [95% CI]", "p", "p (Holm)",
        f"Δ Brier vs {baseline} [95% CI]", "p", "p (Holm)",
    ]  # fmt: skip
    body = []
    for r in rows:
        if r.versus is None:
            continue
        a, ll, br = r.versus, r.log_loss_versus, r.brier_versus
        body.append(
            [
                r.name,
                f"{pp(a.mean)} {ci(a.low, a.high, pp)}", p_value(a.p), p_value(r.p_holm),
                _signed(ll), p_value(ll.p), p_value(r.log_loss_p_holm),
                _signed(br), p_value(br.p), p_value(r.brier_p_holm),
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
                 f"{r.name}.delta_log_loss_p_value_holm": r.log_loss_p_holm,
                 f"{r.name}.delta_brier": r.brier_versus.mean,
                 f"{r.name}.delta_brier_p_value_holm": r.brier_p_holm}
            )  # fmt: skip
    return out


def champion_sentences(rows: Sequence[VariantStats], assessment: rule.Assessment) -> list[str]:
    """The report's words on the served model: which variant, by what rule, and how good
    it is once the choice is accounted for; or that no variant may be served."""
    chosen = assessment.choice.chosen
    eligible = assessment.choice.eligible
    ref = assessment.reference_means()[rule.SCORE]
    if chosen is None:
        return [
            f"No variant beats the no-skill reference (Brier {ref:.3f}) by the rule's test, "
            "so none is chosen: the registered model's alias @champion is not set "
            "(and is removed if an earlier run set it)."
        ]
    best = next(r for r in rows if r.name == chosen)
    brier, acc = best.summary.estimates["brier"], best.accuracy
    corrected = _corrected(assessment.corrected)
    return [
        f"The registered model's alias @champion names {chosen}'s final model: by the "
        f"selection rule, the lowest mean held-out Brier score ({brier.mean:.3f}) among the "
        f"{len(eligible)} of {len(rows)} variants that beat the no-skill reference "
        f"({ref:.3f}).",
        f"Its own CV accuracy, {pct(acc.mean)} {ci(acc.low, acc.high)}, is the best of "
        f"{len(eligible)} noisy scores; corrected for that choice (BBC-CV over those "
        f"variants, {rule.BOOTSTRAPS} bootstraps), it is {_score(corrected, 'accuracy')} "
        f"and its Brier score {_score(corrected, 'brier')}.",
        "This picks a model to serve; it is not a claim that it is better than the others "
        "(the paired tests above say how sure that would be).",
    ]


@dataclass(frozen=True)
class GridConclusion:
    """A grid study as the report shows it: its trials (``trials.csv``) and its metrics
    (``metrics.json``: the no-skill reference, the best trial and its corrected
    estimates)."""

    name: str
    variant: str
    axes: tuple[str, ...]
    trials: pd.DataFrame
    metrics: Mapping


def _value(value) -> str:
    """An axis value as a cell: a missing one (MaxNorm none: nan in a table, None in
    metrics.json) is ``none``."""
    return "none" if value is None or pd.isna(value) else f"{value:g}"


def _at(row: Mapping, axes: Sequence[str]) -> str:
    return ", ".join(f"{a} {_value(row[a])}" for a in axes)


def grid_sentence(grid: GridConclusion) -> str:
    """What a grid study shows, in a few sentences with their intervals: the range of
    accuracy, which trials beat the no-skill reference, and the best by the rule with
    its bias-corrected estimate (or that none may be called best)."""
    trials, axes, metrics = grid.trials, grid.axes, grid.metrics
    acc = trials["accuracy_mean"]
    low, high = trials.loc[acc.idxmin()], trials.loc[acc.idxmax()]

    def acc_ci(row) -> str:
        return f"{pct(row['accuracy_mean'])} {ci(row['accuracy_ci_low'], row['accuracy_ci_high'])}"

    ref = metrics["reference"]
    n, beat = len(trials), int(trials["beats_reference"].sum())
    text = (
        f"Grid {grid.name} ({n} trials of {grid.variant}, varying {', '.join(axes)}): mean "
        f"held-out accuracy ranges from {acc_ci(low)} ({_at(low, axes)}) to {acc_ci(high)} "
        f"({_at(high, axes)}). {beat} of {n} trials beat the no-skill reference (Brier "
        f"{ref['brier_mean']:.3f}, accuracy {pct(ref['accuracy_mean'])})"
    )
    chance = trials[trials["beats_reference"] == 0]
    if len(chance):
        listed = "; ".join(_at(r, axes) for _, r in chance.head(5).iterrows())
        more = f" and {len(chance) - 5} more" if len(chance) > 5 else ""
        text += f"; no better than chance: {listed}{more}"
    best, corrected = metrics["best"], metrics["best_corrected"]
    if best is None:
        text += ". No trial is better than chance, so none is called best."
    else:
        text += (
            f". The best by the selection rule (lowest mean Brier among those) is at "
            f"{_at(best, axes)}: Brier {_score(best, 'brier')}, accuracy "
            f"{_score(best, 'accuracy')}; corrected for the choice (BBC-CV), accuracy "
            f"{_score(corrected, 'accuracy')}."
        )
    overlap = high["accuracy_ci_low"] <= low["accuracy_ci_high"]
    text += (
        " The intervals of the lowest and the highest accuracy overlap: within this grid, "
        "the data do not separate the settings by accuracy."
        if overlap
        else " The intervals of the lowest and the highest accuracy do not overlap."
    )
    diverged = int(trials["brier_mean"].isna().sum())
    return text + (f" {diverged} trials diverged in training (NaN scores)." if diverged else "")


@dataclass(frozen=True)
class SearchConclusion:
    """A search as the report shows it: its settings (``design.searches.SearchConfig``),
    its trials (``trials.csv``: every trial, how it ended and its scores at its last rung)
    and its metrics (``metrics.json``: the no-skill reference, the rule's choice among the
    complete trials and its corrected estimates, the trials' fates, the model-epochs)."""

    name: str
    variant: str
    sampler: str
    axes: tuple[str, ...]
    rungs: tuple[int, ...]  # epochs at each rung; one rung without halving
    reduction: int | None  # successive halving's; None without halving
    trials: pd.DataFrame
    metrics: Mapping


def search_sentence(search: SearchConclusion) -> str:
    """What a search did and chose, in a few sentences with their intervals: the sampler
    and the budget, the trials' fates, the model-epochs successive halving saved, and the
    rule's choice among the complete trials with its bias-corrected estimate (or that
    none may be chosen)."""
    m, axes = search.metrics, search.axes
    n, complete = m["n_trials"], m["n_complete"]
    if search.reduction is None:
        budget = f"no halving: every trial trains {search.rungs[-1]} epochs"
    else:
        budget = (
            f"successive halving over rungs of {', '.join(map(str, search.rungs))} epochs, "
            f"the best 1/{search.reduction} at each rung going on to the next"
        )
    fates = f"{complete} complete, {m['n_pruned']} pruned"
    fates += f", {m['n_failed']} failed" if m["n_failed"] else ""
    text = (
        f"Search {search.name} ({n} trials of {search.variant} asked for by Optuna's "
        f"{search.sampler} sampler over {', '.join(axes)}; {budget}): {fates}."
    )
    trained, full = m["model_epochs"], m["model_epochs_full_budget"]
    if full and trained < full:
        text += (
            f" It trained {trained:,} model-epochs (one network on one split for one epoch), "
            f"{pct(1 - trained / full)} fewer than the {full:,} of every trial at the full "
            f"{search.rungs[-1]} epochs."
        )
    else:
        text += f" It trained {trained:,} model-epochs, every trial's full budget."
    if complete == 0:
        return text + " No trial completed, so none is chosen."
    scored = search.trials[
        (search.trials["state"] == "complete") & search.trials["accuracy_mean"].notna()
    ]
    if len(scored):
        low = scored.loc[scored["accuracy_mean"].idxmin()]
        high = scored.loc[scored["accuracy_mean"].idxmax()]
        text += (
            f" Over the complete trials, mean held-out accuracy ranges from "
            f"{_score(low, 'accuracy')} (#{int(low['trial'])}) to {_score(high, 'accuracy')} "
            f"(#{int(high['trial'])})."
        )
    ref, beat = m["reference"], m["n_beat_reference"]
    text += (
        f" {beat} of {complete} complete trials beat the no-skill reference (Brier "
        f"{ref['brier_mean']:.3f}, accuracy {pct(ref['accuracy_mean'])}); pruned trials, "
        "scored after fewer epochs, are not candidates."
    )
    best, corrected = m["best"], m["best_corrected"]
    if best is None:
        return text + " No complete trial beats the no-skill reference, so none is chosen."
    return text + (
        f" Among those, the selection rule (lowest mean Brier) chooses trial "
        f"#{best['trial']} at {_at(best, axes)}: held-out Brier {_score(best, 'brier')}, "
        f"accuracy {_score(best, 'accuracy')}; corrected for the choice (BBC-CV), accuracy "
        f"{_score(corrected, 'accuracy')} and Brier {_score(corrected, 'brier')}."
    )


def selection_table(
    rows: Sequence[VariantStats],
    assessment: rule.Assessment,
    grids: Sequence[GridConclusion],
    searches: Sequence[SearchConclusion] = (),
) -> pd.DataFrame:
    """Every choice the pipeline makes (the champion among the variants, each grid's best
    trial, each search's chosen trial among its complete ones): the chosen one's naive CV
    estimate beside the bias-corrected one."""
    header = [
        "choice among", "candidates", "beat no-skill", "chosen", "accuracy: naive [95% CI]",
        "accuracy: BBC-CV [95% CI]", "Brier: naive [95% CI]", "Brier: BBC-CV [95% CI]",
    ]  # fmt: skip
    body = []
    chosen = assessment.choice.chosen
    if chosen is None:
        body.append(["variants", str(len(rows)), "0", "none", "—", "—", "—", "—"])
    else:
        est = next(r for r in rows if r.name == chosen).summary.estimates
        acc, brier = est["accuracy"], est["brier"]
        c = _corrected(assessment.corrected)
        body.append(
            [
                "variants (@champion)", str(len(rows)), str(len(assessment.choice.eligible)),
                chosen, f"{pct(acc.mean)} {ci(acc.low, acc.high)}", _score(c, "accuracy"),
                _estimate(brier), _score(c, "brier"),
            ]
        )  # fmt: skip
    for g in grids:
        body.append(_trial_choice(f"grid {g.name}", str(len(g.trials)), g.metrics, g.axes))
    for s in searches:
        m = s.metrics
        candidates = f"{m['n_complete']} complete of {m['n_trials']}"
        body.append(_trial_choice(f"search {s.name}", candidates, m, s.axes))
    return _table(header, body)


def _trial_choice(label: str, candidates: str, m: Mapping, axes: Sequence[str]) -> list[str]:
    """A grid's or a search's row of the table of choices, from its ``metrics.json``."""
    best, c = m["best"], m["best_corrected"]
    if best is None:
        return [label, candidates, "0", "none", "—", "—", "—", "—"]
    return [
        label, candidates, str(m["n_beat_reference"]), f"#{best['trial']}: {_at(best, axes)}",
        _score(best, "accuracy"), _score(c, "accuracy"), _score(best, "brier"), _score(c, "brier"),
    ]  # fmt: skip


MC_METRICS = ("log_loss", "brier", "accuracy")
LABELS = {"log_loss": "log loss", "brier": "Brier", "accuracy": "accuracy"}


def mc_table(
    mc: Mapping[str, Mapping[str, stats.PairedTest]],
    samples: int,
    ece: Mapping[str, float],
    mc_ece: Mapping[str, float],
) -> pd.DataFrame:
    """MC dropout (``samples`` stochastic passes, averaged) minus the standard
    weight-scaled pass, paired split by split, for every variant with dropout; and the
    expected calibration error of each pass's pooled predictions."""
    header = ["variant", "passes", "ECE: standard → MC"]
    for m in MC_METRICS:
        header += [f"Δ {LABELS[m]} (MC − standard) [95% CI]", "p"]
    body = []
    for name, tests in mc.items():
        cells = [name, str(samples), f"{ece[name]:.3f} → {mc_ece[name]:.3f}"]
        for m in MC_METRICS:
            t = tests[m]
            cells += [pp(t.mean) + " " + ci(t.low, t.high, pp) if m == "accuracy" else _signed(t),
                      p_value(t.p)]  # fmt: skip
        body.append(cells)
    return _table(header, body)


def skill_findings(rows: Sequence[VariantStats], assessment: rule.Assessment) -> list[str]:
    """The no-skill reference, and which variants are no better than it."""
    ref = reference_estimates(assessment)
    out = [
        f"The no-skill reference (each split's training share of mines, for every row) "
        f"scores accuracy {pct(ref['accuracy'].mean)}, Brier {ref['brier'].mean:.3f} and log "
        f"loss {ref['log_loss'].mean:.3f}. A variant beats it when the corrected paired "
        "t-test of its Brier score minus the reference's has a 95% interval below zero."
    ]
    weak = [r.name for r in rows if not assessment.choice.verdict(r.name).beats_reference]
    out.append(
        f"No better than chance by that test: {', '.join(weak)}."
        if weak
        else "Every variant beats it."
    )
    worse = [r for r in rows if r.summary.estimates["log_loss"].mean > ref["log_loss"].mean]
    if worse:
        out.append(
            "By log loss, "
            + ", ".join(f"{r.name} ({r.summary.estimates['log_loss'].mean:.3f})" for r in worse)
            + f" score worse than the reference's {ref['log_loss'].mean:.3f} although they "
            "rank rows far better (ROC AUC above 0.9): their wrong answers are confident, "
            "which the unbounded log loss punishes hardest. Overconfidence, not accuracy, is "
            "what separates these networks."
        )
    return out


def calibration_findings(
    ece: Mapping[str, float], bins: Mapping[str, pd.DataFrame], names: Sequence[str]
) -> list[str]:
    """What the reliability diagrams show: each variant's ECE and its extreme bins."""
    ordered = sorted(names, key=lambda n: ece[n])
    out = [
        "Expected calibration error (pooled out-of-fold predictions, 10 quantile bins): "
        + ", ".join(f"{n} {ece[n]:.3f}" for n in ordered)
        + "."
    ]
    for n in names:
        table = bins[n]
        top, bottom = table.iloc[-1], table.iloc[0]
        out.append(
            f"{n}: the most confident tenth of 'mine' answers (mean P {top['p_mean']:.3f}) "
            f"were mines {pct(top['y_mean'])} of the time; the most confident tenth of 'rock' "
            f"answers (mean P {bottom['p_mean']:.3f}) were mines {pct(bottom['y_mean'])} of "
            "the time."
        )
    return out


def mc_findings(mc: Mapping[str, Mapping[str, stats.PairedTest]], samples: int) -> list[str]:
    """MC dropout against the standard pass, per variant, in words."""
    if not mc:
        return ["No variant has dropout: MC dropout was not measured."]
    out = []
    for name, tests in mc.items():
        parts = []
        for m in MC_METRICS:
            t = tests[m]
            better = (t.mean > 0) if m == "accuracy" else (t.mean < 0)
            word = ("better" if better else "worse") if t.p < ALPHA else "no significant difference"
            shown = f"{pp(t.mean)}" if m == "accuracy" else f"{t.mean:+.3f}"
            parts.append(f"{LABELS[m]} {shown} (p {p_value(t.p)}: {word})")
        out.append(
            f"{name}, MC dropout ({samples} passes) minus the standard pass: "
            + "; ".join(parts)
            + "."
        )
    return out


def conclusion_metrics(
    assessment: rule.Assessment,
    ece: Mapping[str, float],
    mc: Mapping[str, Mapping[str, stats.PairedTest]],
    mc_ece: Mapping[str, float],
) -> dict[str, float]:
    """The report's new numbers for its MLflow table: the reference, the choice's
    corrected estimates, each ECE (of MC dropout's too) and each MC-minus-standard
    difference."""
    out = {f"{reference.NAME}.{m}_mean": v for m, v in assessment.reference_means().items()}
    out.update({f"{n}.ece": v for n, v in ece.items()})
    out.update({f"{n}.mc_ece": v for n, v in mc_ece.items()})
    chosen = assessment.choice.chosen  # its row carries the BBC-CV estimates of the choice
    for m, c in (assessment.corrected or {}).items():
        out.update({f"{chosen}.bbc_{m}": c.mean, f"{chosen}.bbc_{m}_ci_low": c.low,
                    f"{chosen}.bbc_{m}_ci_high": c.high})  # fmt: skip
    for name, tests in mc.items():
        for m, t in tests.items():
            key = f"{name}.mc_delta_{m}"
            out.update({key: t.mean, f"{key}_ci_low": t.low, f"{key}_ci_high": t.high,
                        f"{key}_p": t.p})  # fmt: skip
    return out
