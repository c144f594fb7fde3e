"""The comparison of variants that the report shows: pure functions of per-fold scores.

Every variant is scored on the same splits (``standardize`` makes them once), so a
variant is compared with the baseline split by split: the paired differences and the
corrected resampled t-test of ``stats``. The tables are built once as rows of cells
and rendered both as Markdown and as HTML.
"""

from __future__ import annotations

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
ALPHA = 1 - stats.CONFIDENCE


@dataclass(frozen=True)
class Fold:
    """One split's held-out scores for one variant (a row of ``results/<v>/folds.csv``)."""

    repeat: int
    fold: int
    n_train: int
    n_test: int
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
            **{k: float(row[k]) for k in (*METRICS, "train_accuracy")},
        )

    @property
    def split(self) -> tuple[int, int, int, int]:
        return (self.repeat, self.fold, self.n_train, self.n_test)


@dataclass(frozen=True)
class VariantStats:
    name: str
    n_splits: int
    repeats: int
    estimates: dict[str, stats.Interval]  # METRICS -> mean, std and corrected 95% CI
    gap: float  # mean over splits of (training-rows accuracy − held-out accuracy)
    versus: stats.PairedTest | None  # accuracy minus the baseline's; None for the baseline
    seconds: float

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
        versus = None
        if name != baseline:
            versus = stats.corrected_paired_ttest(
                [f.accuracy for f in rows], [f.accuracy for f in reference], n_train, n_test
            )
        out.append(
            VariantStats(
                name=name,
                n_splits=len(rows),
                repeats=len({f.repeat for f in rows}),
                estimates=estimates,
                gap=sum(f.train_accuracy - f.accuracy for f in rows) / len(rows),
                versus=versus,
                seconds=seconds[name],
            )
        )
    return out


# --- wording --------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def pp(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def ci(low: float, high: float, fmt=pct) -> str:
    return f"[{fmt(low)}, {fmt(high)}]"


def p_value(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def verdict(test: stats.PairedTest) -> str:
    if test.p < ALPHA:
        return "higher" if test.mean > 0 else "lower"
    return "no evidence of a difference"


# --- tables: a header and rows of cells ----------------------------------------------

Table = tuple[list[str], list[list[str]]]


def variants_table(rows: Sequence[VariantStats], baseline: str) -> Table:
    header = [
        "variant", "accuracy mean (std)", "95% CI", "ROC AUC [95% CI]", "log loss [95% CI]",
        "train − held-out accuracy", f"Δ accuracy vs {baseline} [95% CI]", "p", "folds", "time",
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
                "—" if r.versus is None else p_value(r.versus.p),
                f"{r.n_splits} ({r.repeats} × {r.n_splits // r.repeats})",
                f"{r.seconds:.0f} s",
            ]
        )  # fmt: skip
    return header, body


def tutorial_table(rows: Sequence[VariantStats]) -> Table:
    header = ["variant", "tutorial (one 10-fold run)", "ours: mean [95% CI]", "tutorial inside?"]
    body = []
    for r in rows:
        if r.name in PUBLISHED:
            mean, std = PUBLISHED[r.name]
            acc = r.estimates["accuracy"]
            body.append(
                [
                    r.name,
                    f"{pct(mean)} ({pct(std)})",
                    f"{pct(acc.mean)} {ci(*r.accuracy_ci)}",
                    "yes" if acc.contains(mean) else "no",
                ]
            )
    return header, body


def findings(rows: Sequence[VariantStats], baseline: str) -> list[str]:
    """Plain sentences: where the tutorial's numbers fall, and what the paired tests say."""
    by_name = {r.name: r for r in rows}
    out = []
    published = [n for n in PUBLISHED if n in by_name]
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
    if baseline in PUBLISHED and baseline in by_name:
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
            v = r.versus
            out.append(
                f"{r.name} vs {baseline}: {pp(v.mean)} {ci(v.low, v.high, pp)}, "
                f"p = {p_value(v.p)} (corrected resampled t-test, {v.df} df): {verdict(v)}."
            )
    tests = [r for r in rows if r.versus is not None]
    if tests and all(r.versus.p >= ALPHA for r in tests):
        out.append(
            f"No variant differs from {baseline} at the {ALPHA:.0%} level: the differences "
            "between variants are smaller than what the fold-to-fold spread can resolve."
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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
