"""The report's comparison: pairing by split, the tables and the sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonarlab.report import comparison
from sonarlab.report.page import html_table, markdown_table
from sonarlab.results import stats
from sonarlab.selection import reference, rule


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
            "brier": [0.12 + 0.01 * (i % 3) for i in range(n)], "train_accuracy": 1.0,
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
    tables = {"baseline": folds(base), "visible": folds(visible)}
    judged = assessment(tables)
    ece = {"baseline": 0.1, "visible": 0.05, reference.NAME: 0.0}
    table = markdown_table(comparison.variants_table(rows, "baseline", judged, ece))
    header, rule, *body = [[c.strip() for c in line.strip("|").split("|")]
                           for line in table.splitlines()]  # fmt: skip
    assert header[:3] == ["variant", "accuracy mean (std)", "95% CI"]
    assert set("".join(rule)) <= {"-", ":"} and len(rule) == len(header)
    assert body[1][:2] == ["visible", "94.00% (1.41%)"]
    assert body[2][0] == "no-skill (reference)" and body[2][5].startswith("0.250 [")
    assert body[1][7].startswith("better: -0.1")  # Brier 0.13 vs the reference's 0.25
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


def reference_scores(brier: float = 0.25) -> pd.DataFrame:
    """A no-skill reference's per-split scores on ``folds``' splits."""
    table = folds(BASE)[["repeat", "fold", "n_train", "n_test"]]
    return table.assign(accuracy=0.5, roc_auc=0.5, log_loss=0.69, brier=brier)


def assessment(tables, brier: float = 0.25) -> rule.Assessment:
    ref = reference_scores(brier)
    choice = rule.choose(tables, ref)
    corrected = None
    if choice.chosen is not None:
        corrected = {m: rule.Corrected(0.8, 0.7, 0.9) for m in rule.BBC_METRICS}
    return rule.Assessment(choice, ref, corrected)


def test_the_champion_is_the_rules_choice_and_the_sentences_give_both_estimates():
    tables = {"baseline": folds(BASE), "a": folds(BETTER)}
    tables["a"]["brier"] = 0.10  # the lowest mean Brier
    rows = comparison.compare(tables, "baseline")
    judged = assessment(tables)
    assert judged.choice.chosen == "a"
    (sentence, corrected, caveat) = comparison.champion_sentences(rows, judged)
    assert "@champion names a's final model" in sentence and "Brier score (0.100)" in sentence
    assert "2 of 2 variants that beat the no-skill reference (0.250)" in sentence
    assert "it is 80.00% [70.00%, 90.00%]" in corrected
    assert "not a claim" in caveat


def test_no_variant_that_beats_the_reference_no_champion():
    tables = {"baseline": folds(BASE)}
    rows = comparison.compare(tables, "baseline")
    judged = assessment(tables, brier=0.12)  # the reference is as good as the baseline
    assert judged.choice.chosen is None
    (sentence,) = comparison.champion_sentences(rows, judged)
    assert "No variant beats the no-skill reference" in sentence and "not set" in sentence
    table = comparison.selection_table(rows, judged, [])
    assert table.iloc[0].tolist()[:4] == ["variants", "1", "0", "none"]
    text = " ".join(comparison.skill_findings(rows, judged))
    assert "No better than chance by that test: baseline." in text


def test_mc_dropout_is_tabled_and_worded_per_variant():
    a, b = [0.3 + 0.01 * (i % 4) for i in range(10)], [0.35 + 0.01 * (i % 3) for i in range(10)]
    test = stats.corrected_paired_ttest(a, b, 18, 2)
    mc = {"hidden": {m: test for m in comparison.MC_METRICS}}
    table = comparison.mc_table(mc, 50, {"hidden": 0.12}, {"hidden": 0.08})
    assert table.iloc[0, :3].tolist() == ["hidden", "50", "0.120 → 0.080"]
    (line,) = comparison.mc_findings(mc, 50)
    assert line.startswith("hidden, MC dropout (50 passes) minus the standard pass: log loss -0.")
    assert "log loss" in line and ": better" in line  # lower loss
    assert comparison.mc_findings({}, 50) == [
        "No variant has dropout: MC dropout was not measured."
    ]
