"""The report's comparison: pairing by split, the tables and the sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonarlab.report import comparison
from sonarlab.report.page import html_table, markdown_table
from sonarlab.results import stats


def folds(accuracies, n_train=18, n_test=2, folds_per_repeat=5, seed=7):
    """A variant's per-split table (the columns of ``result_files.FOLDS``)."""
    n = len(accuracies)
    return pd.DataFrame(
        {
            "repeat": [i // folds_per_repeat for i in range(n)],
            "fold": [i % folds_per_repeat for i in range(n)],
            "n_train": n_train, "n_test": n_test,
            "test_rows": [f"{seed}:{i}" for i in range(n)],
            "accuracy": accuracies, "roc_auc": 0.9, "log_loss": 0.4,
            "train_accuracy": 1.0,
        }
    )  # fmt: skip


BASE = [0.80, 0.85, 0.90, 0.75, 0.80, 0.85, 0.80, 0.90, 0.85, 0.80]
BETTER = [a + d for a, d in zip(BASE, [0.05, 0.10, 0.05, 0.10, 0.05] * 2, strict=True)]


def test_compare_pairs_each_variant_with_the_baseline_split_by_split():
    rows = comparison.compare(
        {"baseline": folds(BASE), "better": folds(BETTER)}, "baseline"
    )  # fmt: skip
    base, better = rows
    assert base.versus is None and (base.summary.n_splits, base.summary.repeats) == (10, 2)
    expected = stats.corrected_paired_ttest(BETTER, BASE, n_train=18, n_test=2)
    assert better.versus == expected
    assert better.versus.mean == pytest.approx(0.07)
    assert better.summary.estimates["accuracy"] == stats.interval(BETTER, 18, 2)
    assert better.summary.gap == pytest.approx(1 - np.mean(BETTER))


def test_variants_scored_on_other_splits_are_refused():
    other = folds(BASE, n_train=17, n_test=3)
    reshuffled = folds(BASE, seed=8)  # same sizes, other rows held out
    with pytest.raises(ValueError, match="same splits"):
        comparison.compare({"baseline": folds(BASE), "x": reshuffled}, "baseline")
    with pytest.raises(ValueError, match="same splits"):
        comparison.compare({"baseline": folds(BASE), "x": other}, "baseline")
    with pytest.raises(ValueError, match="no results"):
        comparison.compare({"x": other}, "baseline")


def test_findings_say_where_the_tutorial_falls_and_what_the_test_says():
    # a baseline around the tutorial's 86%, a "visible" clearly better on every split
    base = [0.86 + d for d in (-0.02, 0.01, 0.0, 0.02, -0.01) * 2]
    visible = [a + 0.08 for a in base]
    rows = comparison.compare(
        {"baseline": folds(base), "visible": folds(visible)}, "baseline"
    )  # fmt: skip
    text = "\n".join(comparison.findings(rows, "baseline"))
    assert "Outside our 95% interval: visible (tutorial 83.52%" in text
    assert "inside: baseline" in text
    assert "visible vs baseline: accuracy +8.00 pp" in text and "< 0.001: higher;" in text
    assert "log loss +0.000 [+0.000, +0.000], Holm-adjusted p 1.000: not significant" in text
    # the tutorial's -2.52 pp is far from our +8 pp
    assert "[+8.00 pp, +8.00 pp], excludes it" in text
    table = markdown_table(comparison.variants_table(rows, "baseline"))
    header, rule, *body = [[c.strip() for c in line.strip("|").split("|")]
                           for line in table.splitlines()]  # fmt: skip
    assert header[:3] == ["variant", "accuracy mean (std)", "95% CI"]
    assert set("".join(rule)) <= {"-", ":"} and len(rule) == len(header)
    assert body[1][:2] == ["visible", "94.00% (1.41%)"]
    html = html_table(comparison.tutorial_table(rows))
    assert html.count("<tr") == 3 and "<td>no</td>" in html


def test_html_cells_are_escaped():
    html = html_table(pd.DataFrame([["x & y"]], columns=["a<b"]))
    assert "a&lt;b" in html and "x &amp; y" in html


def test_holm_adjusts_over_every_variant_and_the_null_result_is_worded_as_such():
    rng = np.random.default_rng(0)
    base = list(0.84 + rng.normal(0, 0.05, 10))
    others = {f"v{i}": [a + rng.normal(0, 0.05) for a in base] for i in range(3)}
    rows = comparison.compare(
        {"baseline": folds(base), **{k: folds(v) for k, v in others.items()}}, "baseline"
    )
    tested = rows[1:]
    assert [r.p_holm for r in tested] == pytest.approx(stats.holm([r.versus.p for r in tested]))
    assert all(r.p_holm >= r.versus.p for r in tested)
    text = "\n".join(comparison.findings(rows, "baseline"))
    assert all(r.p_holm >= 0.05 for r in tested)  # noise only: nothing significant
    assert "No accuracy difference from baseline is significant at the 5% level" in text
    assert "Holm-adjusted over 3 comparisons" in text and "not ruled out" in text
    paired = markdown_table(comparison.paired_table(rows, "baseline"))
    assert len(paired.splitlines()) == 2 + 3  # header, rule, one row per non-baseline variant


def test_a_report_of_the_baseline_alone_has_nothing_to_pair():
    (row,) = comparison.compare({"baseline": folds(BASE)}, "baseline")
    assert row.versus is None and row.p_holm is None
    assert comparison.paired_table([row], "baseline").empty
    assert not any("vs baseline" in s for s in comparison.findings([row], "baseline"))


def test_the_tutorial_is_compared_only_with_variants_made_with_its_settings():
    flat = {"model.kind": "mlp", "model.hidden": [60, 30], "schedule.kind": "constant",
            "epochs": 300, "batch_size": 16, "model.input_dropout": 0.2,
            "model.hidden_dropout": 0.0, "model.max_norm": 3.0,
            "optimizer.learning_rate": 0.1, "optimizer.momentum": 0.9}  # fmt: skip
    assert comparison.unlike_tutorial("visible", flat, folds=10) == []
    swept = {**flat, "model.input_dropout": 0.5}
    assert comparison.unlike_tutorial("visible", swept, folds=3) == [
        "model.input_dropout 0.5 (tutorial 0.2)", "cv.folds 3 (tutorial 10)"
    ]  # fmt: skip
    scored = {"baseline": folds(BASE), "visible": folds(BETTER)}
    rows = comparison.compare(scored, "baseline")
    unlike = {"baseline": [], "visible": ["model.input_dropout 0.5 (tutorial 0.2)"]}
    text = "\n".join(comparison.findings(rows, "baseline", unlike))
    assert "Not compared with the tutorial, as their settings differ: visible (model.input" in text
    assert "The tutorial's visible" not in text and "(baseline)" in text
    same = comparison.tutorial_table(rows, unlike)["same settings as the tutorial?"]
    assert list(same) == ["yes", "no: model.input_dropout 0.5 (tutorial 0.2)"]


def with_losses(losses: dict[str, float]):
    tables = {}
    for name, loss in losses.items():
        table = folds(BASE)
        table["log_loss"] = loss
        tables[name] = table
    return comparison.compare(tables, next(iter(losses)))


def test_the_champion_has_the_lowest_mean_log_loss_and_a_nan_never_wins():
    rows = with_losses({"baseline": 0.5, "a": 0.3, "diverged": float("nan"), "b": 0.4})
    assert comparison.champion(rows).name == "a"
    (sentence, caveat) = comparison.champion_sentences(rows)
    assert "@champion names a's final model" in sentence and "0.300" in sentence
    assert "not a claim" in caveat


def test_a_tie_goes_to_the_first_variant_in_params_order():
    assert comparison.champion(with_losses({"baseline": 0.4, "x": 0.3, "y": 0.3})).name == "x"


def test_no_finite_loss_no_champion():
    with pytest.raises(ValueError, match="no variant has a finite mean held-out log loss"):
        comparison.champion(with_losses({"baseline": float("nan")}))
