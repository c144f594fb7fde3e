"""The comparison of variants that the report shows: pure functions of per-fold scores.

Every variant is scored on the same splits (``standardize`` makes them once), so a
variant is compared with the baseline split by split: the paired differences and the
corrected resampled t-test of ``stats``. The tables are built once as rows of cells
and rendered both as Markdown and as HTML.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sonarlab import stats

METRICS = ("accuracy", "roc_auc", "log_loss")
# Published in the tutorial: accuracy mean (std) over one stratified 10-fold CV.
PUBLISHED = {
    "baseline": (0.8604, 0.0458),
    "visible": (0.8352, 0.0768),
    "hidden": (0.8359, 0.0731),
}
# The tutorial's settings for those variants (dotted keys of a variant, as
# config.flatten gives them) and its CV: a published number is only compared with
# ours when the variant has exactly these settings (a sweep's experiment may not).
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
class Fold:
    """One split's held-out scores for one variant (a row of ``results/<v>/folds.csv``)."""

    repeat: int
    fold: int
    n_train: int
    n_test: int
    test_rows: str  # fingerprint of the held-out rows (cv.rows_digest)
    accuracy: float
    roc_auc: float
    log_loss: float
    train_accuracy: float

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> Fold:
        return cls(
            repeat=int(row["repeat"]),
            fold=int(row["fold"]),
            n_train=int(row["n_train"]),
            n_test=int(row["n_test"]),
            test_rows=row.get("test_rows", ""),
            **{k: float(row[k]) for k in (*METRICS, "train_accuracy")},
        )

    @property
    def split(self) -> tuple[int, int, int, int, str]:
        return (self.repeat, self.fold, self.n_train, self.n_test, self.test_rows)


@dataclass(frozen=True)
class VariantStats:
    name: str
    n_splits: int
    repeats: int
    estimates: dict[str, stats.Interval]  # METRICS -> mean, std and corrected 95% CI
    gap: float  # mean over splits of (training-rows accuracy − held-out accuracy)
    versus: stats.PairedTest | None  # accuracy minus the baseline's; None for the baseline
    seconds: float
    p_holm: float | None = None  # versus.p adjusted (Holm) over all variants' comparisons
    log_loss_versus: stats.PairedTest | None = None  # log loss minus the baseline's
    log_loss_p_holm: float | None = None

    @property
    def versus_ci(self) -> tuple[float, float]:
        return (self.versus.low, self.versus.high)

    @property
    def accuracy_ci(self) -> tuple[float, float]:
        acc = self.estimates["accuracy"]
        return (acc.low, acc.high)


def _sizes(folds: Sequence[Fold]) -> tuple[float, float]:
    return (
        sum(f.n_train for f in folds) / len(folds),
        sum(f.n_test for f in folds) / len(folds),
    )


def compare(
    folds: Mapping[str, Sequence[Fold]], seconds: Mapping[str, float], baseline: str
) -> list[VariantStats]:
    """Per-variant estimates and, for every other variant, the paired test against
    ``baseline``. Raises ``ValueError`` if a variant was not scored on the baseline's splits."""
    if baseline not in folds:
        raise ValueError(f"baseline variant {baseline!r} has no results")
    reference = folds[baseline]
    n_train, n_test = _sizes(reference)
    out = []
    for name, rows in folds.items():
        if [f.split for f in rows] != [f.split for f in reference]:
            raise ValueError(
                f"{name} was not scored on the same splits as {baseline}; re-run "
                "`dvc repro` so that every variant uses data/prepared"
            )
        estimates = {
            m: stats.interval([getattr(f, m) for f in rows], n_train, n_test) for m in METRICS
        }
        versus = log_loss_versus = None
        if name != baseline:
            versus, log_loss_versus = (
                stats.corrected_paired_ttest(
                    [getattr(f, m) for f in rows], [getattr(f, m) for f in reference],
                    n_train, n_test,
                )
                for m in ("accuracy", "log_loss")
            )  # fmt: skip
        out.append(
            VariantStats(
                name=name,
                n_splits=len(rows),
                repeats=len({f.repeat for f in rows}),
                estimates=estimates,
                gap=sum(f.train_accuracy - f.accuracy for f in rows) / len(rows),
                versus=versus,
                seconds=seconds[name],
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


# --- tables: a header and rows of cells ----------------------------------------------

Table = tuple[list[str], list[list[str]]]


def variants_table(rows: Sequence[VariantStats], baseline: str) -> Table:
    header = [
        "variant", "accuracy mean (std)", "95% CI", "ROC AUC [95% CI]", "log loss [95% CI]",
        "train − held-out accuracy", f"Δ accuracy vs {baseline} [95% CI]", "p (Holm)", "folds",
        "time",
    ]  # fmt: skip
    body = []
    for r in rows:
        acc, auc, ll = (r.estimates[m] for m in METRICS)
        body.append(
            [
                r.name,
                f"{pct(acc.mean)} ({pct(acc.std)})",
                ci(acc.low, acc.high),
                f"{auc.mean:.3f} [{auc.low:.3f}, {auc.high:.3f}]",
                f"{ll.mean:.3f} [{ll.low:.3f}, {ll.high:.3f}]",
                pp(r.gap),
                "—" if r.versus is None else f"{pp(r.versus.mean)} {ci(*r.versus_ci, pp)}",
                "—" if r.versus is None else f"{p_value(r.versus.p)} ({p_value(r.p_holm)})",
                f"{r.n_splits} ({r.repeats} × {r.n_splits // r.repeats})",
                f"{r.seconds:.0f} s",
            ]
        )  # fmt: skip
    return header, body


def paired_table(rows: Sequence[VariantStats], baseline: str) -> Table:
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
    return header, body


def tutorial_table(
    rows: Sequence[VariantStats], unlike: Mapping[str, list[str]] | None = None
) -> Table:
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
            acc = r.estimates["accuracy"]
            differs = unlike.get(r.name, [])
            body.append(
                [
                    r.name,
                    f"{pct(mean)} ({pct(std)})",
                    f"{pct(acc.mean)} {ci(*r.accuracy_ci)}",
                    "yes" if acc.contains(mean) else "no",
                    "no: " + ", ".join(differs) if differs else "yes",
                ]
            )
    return header, body


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
    inside = [n for n in published if by_name[n].estimates["accuracy"].contains(PUBLISHED[n][0])]
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
                    f"{n} (tutorial {pct(PUBLISHED[n][0])}, ours {ci(*by_name[n].accuracy_ci)})"
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


def markdown_table(table: Table) -> str:
    header, body = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def html_table(table: Table) -> str:
    header, body = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
    )
    return (
        f'<div class="table"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )
