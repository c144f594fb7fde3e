"""The report's page, in Markdown and in self-contained HTML, and its figures.

One list of sections (``sections``: headings with a table or sentences) is rendered
twice: as Markdown by pandas (``DataFrame.to_markdown``) and as HTML by a Jinja2
template with autoescaping, the figures inlined as data: URIs so the page opens
offline.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from sonarlab.report import comparison
from sonarlab.report.comparison import VariantStats
from sonarlab.report.figures import (
    differences,
    fold_accuracies,
    overfitting,
    reliability_diagrams,
)
from sonarlab.results import stats
from sonarlab.results.figures import save_figure
from sonarlab.results.tables import FOLD_ACCURACY, fold_accuracy
from sonarlab.selection import rule

TITLE = "Dropout on the Sonar data: repeated cross-validation, paired against the baseline"
FIGURES = {  # file -> caption
    "fold_accuracy.png": "Held-out accuracy of every split (box: quartiles and median; "
    "triangle: mean; whiskers: 1.5 IQR).",
    "differences.png": "Each variant minus the baseline, paired split by split, with the "
    "corrected 95% interval. An interval that crosses zero is no evidence of a difference.",
    "overfitting.png": "Loss per epoch on the training rows (training mode, dropout on) and "
    "on the held-out fold: mean over splits ± one std. The distance between the two "
    "curves is the overfitting that one accuracy number hides.",
    "reliability.png": "Reliability diagrams: in each tenth of the pooled out-of-fold "
    "predictions (sorted by P(mine)), the observed share of mines against the mean predicted "
    "probability. On the diagonal, a probability means what it says; below it on the right "
    "and above it on the left, the network is overconfident.",
}
SEARCH_FIGURES = {  # results/search/<name>/<key>.png -> caption
    "history": "Optimization history: the held-out Brier score of each complete trial, in "
    "the order the sampler asked for them, and the best so far.",
    "importance": "Parameter importance (fANOVA) for the held-out Brier score of the "
    "complete trials: how much of its variance each parameter explains.",
    "slices": "The held-out Brier score of every complete trial against each parameter "
    "(colour: the trial's number).",
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
HTML = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ css }}</style></head>
<body>
<h1>{{ title }}</h1>
<p>{{ protocol }}</p>
{% for heading, content in sections %}<h2>{{ heading }}</h2>
{% if content is string %}{{ content }}{% else %}<ul>{% for s in content %}<li>{{ s }}</li>{% endfor %}</ul>{% endif %}
{% endfor %}{% if grids %}<h2>Grid studies</h2>
{% for sentence, src, name in grids %}<p>{{ sentence }}</p><figure><img alt="{{ name }}" src="{{ src }}"></figure>
{% endfor %}{% endif %}{% if searches %}<h2>Searches</h2>
{% for sentence, pngs, name in searches %}<p>{{ sentence }}</p>
{% for src, caption in pngs %}<figure><img alt="{{ name }}: {{ caption }}" src="{{ src }}"><figcaption>{{ caption }}</figcaption></figure>
{% endfor %}{% endfor %}{% endif %}<h2>Figures</h2>
{% for src, caption in figures %}<figure><img alt="{{ caption }}" src="{{ src }}"><figcaption>{{ caption }}</figcaption></figure>
{% endfor %}<h2>Learning curves per variant</h2>
{% for src, name in curves %}<figure><img alt="{{ name }}" src="{{ src }}"></figure>
{% endfor %}</body></html>
"""  # noqa: E501
)


def protocol_sentence(rows: Sequence[VariantStats]) -> str:
    n, repeats = rows[0].summary.n_splits, rows[0].summary.repeats
    return (
        f"Every variant was trained and scored on the same {n} splits "
        f"({repeats} repeats of stratified {n // repeats}-fold CV), so each "
        "comparison is paired split by split. Accuracy is the mean (population std) over "
        "the held-out folds, the tutorial's format. Intervals are 95% corrected resampled "
        "t intervals (Nadeau & Bengio, 2003): the variance of a mean over k CV folds is "
        "taken as (1/k + n_test/n_train)·s², not s²/k, because the training sets overlap. "
        "p is the two-sided p-value of the corrected resampled t-test of the paired "
        "differences; in brackets, Holm-adjusted for testing every variant against the "
        'baseline at once. "train − held-out" is the final accuracy on the fold\'s training rows '
        "minus its held-out accuracy, both in inference mode."
    )


@dataclass(frozen=True)
class Content:
    """Everything the page says, computed by the report stage from the results."""

    rows: Sequence[VariantStats]
    baseline: str
    unlike: Mapping[str, list[str]]  # comparison.unlike_tutorial per published variant
    assessment: rule.Assessment  # the variants judged by the selection rule
    ece: Mapping[str, float]  # per variant, and the no-skill reference's
    bins: Mapping[str, pd.DataFrame]  # calibration.reliability of each variant
    mc: Mapping[str, Mapping[str, stats.PairedTest]]  # MC − standard, variants with dropout
    mc_bins: Mapping[str, pd.DataFrame]
    mc_ece: Mapping[str, float]
    mc_samples: int
    grids: Sequence[comparison.GridConclusion] = ()
    searches: Sequence[comparison.SearchConclusion] = ()

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rows]


def sections(c: Content) -> list[tuple[str, pd.DataFrame | list[str]]]:
    """The report's text, in order: (heading, a table) or (heading, sentences)."""
    out = [
        ("Variants", comparison.variants_table(c.rows, c.baseline, c.assessment, c.ece)),
        (f"Paired against {c.baseline}", comparison.paired_table(c.rows, c.baseline)),
        ("The tutorial's published numbers", comparison.tutorial_table(c.rows, c.unlike)),
        (
            "Findings",
            comparison.findings(c.rows, c.baseline, c.unlike)
            + comparison.skill_findings(c.rows, c.assessment)
            + comparison.calibration_findings(c.ece, c.bins, c.names)[:1]
            + comparison.mc_findings(c.mc, c.mc_samples),
        ),
        ("Selection: the one rule", [selection_rule_sentence()]),
        (
            "What was chosen: naive and bias-corrected estimates",
            comparison.selection_table(c.rows, c.assessment, c.grids, c.searches),
        ),
        ("Model to serve", comparison.champion_sentences(c.rows, c.assessment)),
        ("Calibration", comparison.calibration_findings(c.ece, c.bins, c.names)),
    ]
    if c.mc:
        out.append(
            (
                "MC dropout against the standard pass",
                comparison.mc_table(c.mc, c.mc_samples, c.ece, c.mc_ece),
            )
        )
    return out


def selection_rule_sentence() -> str:
    return (
        "Every choice (the @champion among the variants, each grid's best trial, each "
        "search's chosen trial among its complete ones) follows one rule: among the "
        "candidates that beat the no-skill reference (the corrected paired t-test of their "
        "per-split Brier score minus the reference's has a 95% interval below zero), the "
        "lowest mean held-out Brier score; ties go to the lower mean log loss, then to the "
        "first in params order. The Brier score is a proper scoring rule that stays "
        "bounded: log loss, also proper, lets a few confidently wrong rows decide, and on "
        "these data it rewards networks that answer the base rate. A chosen candidate's own "
        "CV score is the best of several noisy scores; BBC-CV (Tsamardinos et al., 2018) "
        "bootstraps the out-of-fold predictions to correct it, with no extra training."
    )


def markdown_table(table: pd.DataFrame) -> str:
    # the cells are display text: tabulate must not re-format the ones that look numeric
    return table.to_markdown(index=False, disable_numparse=True) + "\n"


def html_table(table: pd.DataFrame) -> str:
    return f'<div class="table">{table.to_html(index=False, border=0, escape=True)}</div>'


def markdown_page(c: Content) -> str:
    """The page in Markdown; the figures are linked (the grids' in results/grid/, the
    searches' in results/search/)."""
    parts = [f"# {TITLE}\n", protocol_sentence(c.rows) + "\n"]
    for heading, content in sections(c):
        parts.append(f"## {heading}\n")
        if isinstance(content, pd.DataFrame):
            parts.append(markdown_table(content))
        else:
            parts.append("\n".join(f"- {s}" for s in content) + "\n")
    if c.grids:
        parts.append("## Grid studies\n")
        for g in c.grids:
            figure = f"![{g.name}](../results/grid/{g.name}/grid.png)"
            parts.append(f"{comparison.grid_sentence(g)}\n\n{figure}\n")
    if c.searches:
        parts.append("## Searches\n")
        for s in c.searches:
            parts.append(f"{comparison.search_sentence(s)}\n")
            parts += [
                f"![{s.name} {key}](../results/search/{s.name}/{key}.png)\n\n*{caption}*\n"
                for key, caption in SEARCH_FIGURES.items()
            ]
    parts.append("## Figures\n")
    parts += [f"![{name}]({name})\n\n*{caption}*\n" for name, caption in FIGURES.items()]
    parts.append("## Learning curves per variant\n")
    parts += [f"![{n}](../results/{n}/learning_curves.png)\n" for n in c.names]
    return "\n".join(parts)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def html_page(
    c: Content,
    figures: Mapping[str, Path],
    curves: Mapping[str, Path],
    grid_figures: Mapping[str, Path],
    search_pngs: Mapping[str, Mapping[str, Path]],
) -> str:
    """The report as one HTML file: styles inline, figures as data: URIs
    (``search_pngs``: each search's figures, by the keys of ``SEARCH_FIGURES``)."""
    return HTML.render(
        title=TITLE,
        css=CSS,
        protocol=protocol_sentence(c.rows),
        sections=[
            # pandas has escaped the table's cells: the template inserts it as it is
            (heading, Markup(html_table(t)) if isinstance(t, pd.DataFrame) else t)
            for heading, t in sections(c)
        ],
        figures=[(_data_uri(figures[name]), caption) for name, caption in FIGURES.items()],
        curves=[(_data_uri(path), name) for name, path in curves.items()],
        grids=[
            (comparison.grid_sentence(g), _data_uri(grid_figures[g.name]), g.name) for g in c.grids
        ],
        searches=[
            (
                comparison.search_sentence(s),
                [(_data_uri(search_pngs[s.name][k]), cap) for k, cap in SEARCH_FIGURES.items()],
                s.name,
            )
            for s in c.searches
        ],
    )


def write_figures(
    reports: Path,
    content: Content,
    tables: Mapping[str, pd.DataFrame],
    curves: Mapping[str, pd.DataFrame],
) -> dict[str, Path]:
    """``fold_accuracy.csv`` and the figures of ``FIGURES``, written into ``reports``."""
    rows, baseline = content.rows, content.baseline
    names = content.names
    n = rows[0].summary.n_splits
    out = {name: reports / name for name in FIGURES}
    FOLD_ACCURACY.write(reports / "fold_accuracy.csv", fold_accuracy({v: tables[v] for v in names}))
    save_figure(
        fold_accuracies(
            {v: tables[v]["accuracy"].tolist() for v in names},
            f"Held-out accuracy per split ({n} splits per variant)",
        ),
        out["fold_accuracy.png"],
    )
    others = [r for r in rows if r.versus is not None]
    save_figure(
        differences(
            [r.name for r in others],
            [r.versus.mean for r in others],
            [r.versus.low for r in others],
            [r.versus.high for r in others],
            f"Accuracy minus {baseline}, paired over {n} splits (95% corrected CI)",
        ),
        out["differences.png"],
    )
    save_figure(
        overfitting(
            {v: curves[v] for v in names}, f"Train vs held-out loss, mean ± std over {n} splits"
        ),
        out["overfitting.png"],
    )
    save_figure(
        reliability_diagrams(
            content.bins, content.ece,
            "Reliability of the pooled out-of-fold predictions (10 quantile bins)",
            content.mc_bins,
        ),
        out["reliability.png"],
    )  # fmt: skip
    return out
