"""The no-skill reference, the one selection rule, BBC-CV and calibration: pure functions
checked against closed forms and small examples worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sonarlab.results import calibration, predictions
from sonarlab.selection import reference, rule


def _table(splits_per_repeat: int, repeats: int, labels: np.ndarray) -> pd.DataFrame:
    """Out-of-fold keys: every repeat holds each row out once, fold = row % folds."""
    rows = np.arange(len(labels))
    return pd.DataFrame(
        [
            {"repeat": r, "fold": i % splits_per_repeat, "row": i, "label": int(labels[i])}
            for r in range(repeats)
            for i in rows
        ]
    ).sort_values(["repeat", "fold", "row"], ignore_index=True)


# --- the no-skill reference -----------------------------------------------------------


def test_the_no_skill_reference_predicts_each_splits_training_share_of_mines():
    labels = np.array([1, 1, 1, 0, 0, 1, 0, 1, 1, 0])  # 6 mines in 10 rows
    table = reference.no_skill(_table(2, 1, labels))
    # fold 0 holds rows 0,2,4,6,8 (labels 1,1,0,0,1): its training rows have 3 mines of 5
    assert table.loc[table["fold"] == 0, "p"].unique().tolist() == [3 / 5]
    # fold 1 holds rows 1,3,5,7,9 (labels 1,0,1,1,0): training 3 mines of 5 as well
    assert table.loc[table["fold"] == 1, "p"].unique().tolist() == [3 / 5]


def test_the_no_skill_scores_are_their_closed_forms():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=40)
    table = reference.no_skill(_table(4, 2, labels))
    scores = predictions.split_scores(table)
    for (repeat, fold), row in scores.set_index(["repeat", "fold"]).iterrows():
        held = table[(table["repeat"] == repeat) & (table["fold"] == fold)]
        train = labels[np.setdiff1d(np.arange(40), held["row"])]
        q, k, n = train.mean(), held["label"].sum(), len(held)
        assert row["log_loss"] == pytest.approx(-(k * math.log(q) + (n - k) * math.log(1 - q)) / n)
        assert row["brier"] == pytest.approx((k * (1 - q) ** 2 + (n - k) * q**2) / n)
        assert row["accuracy"] == pytest.approx((k if q > 0.5 else n - k) / n)
        assert row["roc_auc"] == pytest.approx(0.5)  # a constant ranks nothing
        assert row["n_train"] == 40 - n


# --- the selection rule ---------------------------------------------------------------


def _scores(brier: list[float], log_loss: list[float] | None = None) -> pd.DataFrame:
    n = len(brier)
    return pd.DataFrame(
        {"repeat": [0] * n, "fold": range(n), "n_train": [90] * n, "n_test": [10] * n,
         "brier": brier, "log_loss": log_loss or [0.5] * n, "accuracy": [0.8] * n}
    )  # fmt: skip


REFERENCE = _scores([0.25, 0.24, 0.26, 0.25, 0.25, 0.24, 0.26, 0.25])


def test_a_chance_level_candidate_is_never_chosen_even_with_the_lowest_log_loss():
    chance = _scores([0.249, 0.241, 0.259, 0.25, 0.248, 0.242, 0.258, 0.251], [0.2] * 8)
    good = _scores([0.12, 0.15, 0.10, 0.14, 0.13, 0.11, 0.12, 0.16], [0.9] * 8)
    choice = rule.choose({"chance": chance, "good": good}, REFERENCE)
    assert choice.chosen == "good"
    assert not choice.verdict("chance").beats_reference
    assert choice.eligible == ["good"]
    assert rule.choose({"chance": chance}, REFERENCE).chosen is None


def test_nan_never_wins():
    diverged = _scores([math.nan] + [0.01] * 7)
    good = _scores([0.12, 0.15, 0.10, 0.14, 0.13, 0.11, 0.12, 0.16])
    choice = rule.choose({"diverged": diverged, "good": good}, REFERENCE)
    assert choice.chosen == "good"
    assert math.isnan(choice.verdict("diverged").score)
    assert choice.verdict("diverged").versus_reference is None
    assert rule.choose({"diverged": diverged}, REFERENCE).chosen is None


def test_ties_go_to_the_lower_log_loss_then_to_the_first():
    brier = [0.12, 0.15, 0.10, 0.14, 0.13, 0.11, 0.12, 0.16]
    a, b, c = _scores(brier, [0.6] * 8), _scores(brier, [0.4] * 8), _scores(brier, [0.4] * 8)
    assert rule.choose({"a": a, "b": b, "c": c}, REFERENCE).chosen == "b"
    assert rule.choose({"c": c, "b": b, "a": a}, REFERENCE).chosen == "c"
    lower = _scores([x - 0.01 for x in brier], [0.9] * 8)
    assert rule.choose({"a": a, "b": b, "lower": lower}, REFERENCE).chosen == "lower"


def test_the_rule_refuses_scores_of_other_splits():
    other = _scores([0.1] * 8).assign(fold=range(1, 9))
    with pytest.raises(ValueError, match="same splits"):
        rule.choose({"other": other}, REFERENCE)


# --- BBC-CV ---------------------------------------------------------------------------


def test_bbc_matches_a_small_example_worked_by_hand():
    labels = np.array([1, 0, 1])
    # candidate A: Brier per row 0.01, 0.04, 0.36; candidate B: 0.16, 0.36, 0.16
    p = np.array([[[0.9, 0.6], [0.2, 0.6], [0.4, 0.6]]])
    counts = np.array([[2, 1, 0], [0, 0, 3], [1, 1, 1]])
    # bootstrap 1: in-bag A 0.06 < B 0.68, so A, scored on row 2: Brier 0.36, wrong (0.4)
    # bootstrap 2: in-bag A 1.08 > B 0.48, so B, on rows 0 and 1: Brier 0.26, one right
    # bootstrap 3: no out-of-bag row, skipped
    out = rule.bbc(p, labels, counts)
    assert out["brier"].mean == pytest.approx((0.36 + 0.26) / 2)
    assert out["accuracy"].mean == pytest.approx((0.0 + 0.5) / 2)
    assert out["brier"].low == pytest.approx(0.26 + 0.025 * 0.10)
    assert out["brier"].high == pytest.approx(0.26 + 0.975 * 0.10)
    ll_b = -(math.log(0.6) + math.log(0.4)) / 2
    assert out["log_loss"].mean == pytest.approx((-math.log(0.4) + ll_b) / 2)
    # two identical repeats give the same estimate (a bootstrap's value is their mean)
    twice = rule.bbc(np.concatenate([p, p]), labels, counts)
    assert twice["brier"].mean == pytest.approx(out["brier"].mean)


def test_bbc_is_below_the_naive_best_of_many_on_labels_with_no_signal():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, size=200)
    p = rng.uniform(0.3, 0.7, size=(1, 200, 50))  # 50 candidates that know nothing
    naive = max(float(((p[0, :, c] > 0.5) == labels).mean()) for c in range(50))
    out = rule.bbc(p, labels, rule.bootstrap_counts(200, 500, seed=1))
    assert naive > 0.55  # the best of 50 coin-flippers looks skilled
    assert out["accuracy"].low < 0.5 < out["accuracy"].high
    assert abs(out["accuracy"].mean - 0.5) < 0.03


def test_bbc_never_chooses_a_diverged_candidate_and_chooses_once_over_the_repeats():
    labels = np.array([1, 0, 1])
    good = [[0.9, 0.2, 0.8], [0.8, 0.1, 0.9]]  # per repeat
    p = np.stack([np.column_stack([[np.nan] * 3, g, [0.5] * 3]) for g in good])
    counts = np.array([[1, 1, 1], [2, 1, 0]])  # the first has no out-of-bag row: skipped
    out = rule.bbc(p, labels, counts)
    # bootstrap 2 chooses the good candidate; it is scored on row 2 of each repeat
    assert out["brier"].mean == pytest.approx(((0.8 - 1) ** 2 + (0.9 - 1) ** 2) / 2)
    assert np.isfinite([c.mean for c in out.values()]).all()


def test_bootstrap_counts_are_fixed_by_the_seed():
    a, b = rule.bootstrap_counts(30, 20, 4), rule.bootstrap_counts(30, 20, 4)
    assert np.array_equal(a, b) and (a.sum(axis=1) == 30).all()
    assert not np.array_equal(a, rule.bootstrap_counts(30, 20, 5))


def test_probability_matrix_refuses_a_repeat_that_misses_a_row():
    table = _table(2, 2, np.array([0, 1, 0, 1])).assign(p=0.5)
    matrix, labels = rule.probability_matrix(table, ["p"])
    assert matrix.shape == (2, 4, 1) and labels.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="repeat 1"):
        rule.probability_matrix(table.iloc[:-1], ["p"])


# --- calibration ----------------------------------------------------------------------


def test_quantile_bins_hold_equal_counts_and_ece_is_their_weighted_gap():
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 1, 0, 1, 1, 1, 1])
    table = calibration.reliability(p, y, bins=4)
    assert table["n"].tolist() == [2, 2, 2, 2]
    assert table["p_mean"].tolist() == pytest.approx([0.15, 0.35, 0.65, 0.85])
    assert table["y_mean"].tolist() == [0.0, 0.5, 1.0, 1.0]
    ece = calibration.expected_calibration_error(p, y, bins=4)
    assert ece == pytest.approx((0.15 + 0.15 + 0.35 + 0.15) / 4)


def test_a_perfectly_calibrated_constant_has_no_calibration_error():
    y = np.array([1, 0] * 50)
    assert calibration.expected_calibration_error(np.full(100, 0.5), y) == pytest.approx(0.0)
