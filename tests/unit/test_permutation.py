"""The permutation check (``benchmarks/permutation.py``) on tiny data with no signal:
what must hold whatever the draw, not the numbers measured on the real data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks.permutation import check, describe, permuted, summary
from sonarlab.core.params import CVConfig, read_params
from sonarlab.data.uci import Sonar
from sonarlab.design.grids import load_grid
from tests.conftest import ROOT

PARAMS = read_params(ROOT / "params.yaml")
AXES = {"model.hidden_dropout": [0.0, 0.25, 0.5], "optimizer.learning_rate": [0.01, 0.1]}


@pytest.fixture(scope="module")
def noise():
    """48 rows whose bands are drawn apart from the labels (26 mines): no signal, by
    construction; a 6-trial grid of `hidden` made small (one layer of 8, 4 epochs: its
    program compiles in a few seconds); 1 x 2 folds."""
    rng = np.random.default_rng(5)
    X = rng.uniform(0.0, 1.0, size=(48, 60)).astype(np.float32)
    y = permuted(np.array([1] * 26 + [0] * 22, dtype=np.float32), 1)
    params = {**PARAMS, "grids": {"g": {"variant": "hidden", "axes": AXES}}}
    base = PARAMS["variants"]["hidden"]
    small = {**base, "model": {**base["model"], "hidden": [8]}, "epochs": 4}
    params["variants"] = {**PARAMS["variants"], "hidden": small}
    grid = load_grid(params, "g")
    cv = CVConfig(folds=2, repeats=1, seed=3)
    return Sonar(X, y, ()), grid, cv, check(Sonar(X, y, ()), grid, cv, bootstraps=200)


def test_permuted_labels_keep_the_class_counts_and_follow_their_seed():
    y = np.array([1] * 30 + [0] * 26, dtype=np.float32)
    a = permuted(y, 1)
    assert np.array_equal(a, permuted(y, 1)) and not np.array_equal(a, permuted(y, 2))
    assert sorted(a) == sorted(y) and not np.array_equal(a, y)


def test_the_naive_best_is_the_best_of_the_trials_and_chance_is_the_majority_rate(noise):
    _, grid, _, c = noise
    assert c.trials == len(grid.trials) == 6
    assert c.majority == pytest.approx(26 / 48)
    # the naive best is the maximum of the trials' mean accuracies: at least their mean,
    # and at least the accuracy of the trial the rule's score would pick
    assert c.best_accuracy.accuracy >= c.mean_accuracy
    assert c.best_accuracy.accuracy >= c.lowest_brier.accuracy
    assert c.best_accuracy.low <= c.best_accuracy.accuracy <= c.best_accuracy.high
    # each stratified fold holds 13 of the 26 mines and 11 of the 22 rocks, so the
    # reference predicts q = 13/24 on held-out rows with that rate: Brier q(1 - q)
    assert c.reference_brier == pytest.approx(13 * 11 / 24**2)
    assert c.reference_accuracy == pytest.approx(13 / 24)


def test_with_no_signal_the_guard_lets_nothing_through_and_bbc_covers_chance(noise):
    _, _, _, c = noise
    # 2 splits: the corrected t-test has 1 degree of freedom (t = 12.7), so no trial of
    # noise is ever shown to beat the reference, and the rule chooses nothing
    assert c.eligible == 0 and c.chosen is None
    acc, brier = c.corrected["accuracy"], c.corrected["brier"]
    assert acc.low <= acc.mean <= acc.high and brier.low <= brier.mean <= brier.high
    assert acc.low < c.majority < acc.high  # ~17 out-of-bag rows a bootstrap: wide


def test_the_check_is_deterministic_and_prints_each_labelling(noise):
    sonar, grid, cv, c = noise
    again = check(sonar, grid, cv, bootstraps=200)
    assert dataclasses.replace(again, seconds=0.0) == dataclasses.replace(c, seconds=0.0)
    lines = describe("permutation 1", c, grid)
    assert lines.startswith("## permutation 1: 6 trials")
    assert "it chooses nothing" in lines
    table = summary([("permutation 1", c), ("permutation 2", c)])
    assert "| permutation 1 | 6 |" in table
    assert "| mean of 2 permutations | 6 |" in table and "2 of 2: nothing" in table
