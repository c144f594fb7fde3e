"""The keras engine (a ``fit`` per fold) and the engine-neutral results it returns."""

import math

import numpy as np
import pytest

from sonarlab.data.folds import assign_folds, fold_scalers, splits
from sonarlab.data.seeds import final_seed, fold_seed
from sonarlab.design.variants import ModelConfig, OptimizerConfig, VariantConfig
from sonarlab.results.metrics import binary_metrics
from sonarlab.results.summary import summarize_folds
from sonarlab.training.engines.keras import train_final, train_fold
from sonarlab.training.model import predict_proba
from sonarlab.training.outcomes import mean_curves, per_split


def test_binary_metrics_by_hand():
    y = np.array([1, 1, 0, 0])
    p = np.array([0.9, 0.4, 0.2, 0.6])
    m = binary_metrics(y, p)
    assert m["accuracy"] == 0.5  # 0.9 and 0.2 right, 0.4 and 0.6 wrong
    assert m["roc_auc"] == 0.75  # 3 of the 4 (mine, rock) pairs ranked right
    expected = -(math.log(0.9) + math.log(0.4) + math.log(0.8) + math.log(0.4)) / 4
    assert m["log_loss"] == pytest.approx(expected)


def test_fold_seeds_are_distinct_and_stable():
    seeds = {fold_seed(7, r, k) for r in range(3) for k in range(10)} | {final_seed(7)}
    assert len(seeds) == 31
    assert fold_seed(7, 0, 0) == fold_seed(7, 0, 0) != fold_seed(8, 0, 0)


VARIANT = VariantConfig(
    model=ModelConfig("mlp", hidden=(8, 4), hidden_dropout=0.2, max_norm=3.0),
    optimizer=OptimizerConfig(0.1, 0.9),
    epochs=4,
    batch_size=16,
)


def _first_fold(X, y):
    assignment = assign_folds(y, 3, 1, seed=0)
    return splits(assignment)[0], fold_scalers(X, assignment)[0]


def test_same_seed_same_fold_result_bit_for_bit(tiny_data):
    X, y = tiny_data
    split, scaler = _first_fold(X, y)
    a = train_fold(VARIANT, X, y, split, scaler, seed=11)
    b = train_fold(VARIANT, X, y, split, scaler, seed=11)
    assert a.curves == b.curves
    np.testing.assert_array_equal(a.p_test, b.p_test)
    c = train_fold(VARIANT, X, y, split, scaler, seed=12)
    assert c.curves["train_loss"] != a.curves["train_loss"]


def test_fold_result_shapes_and_consistency(tiny_data):
    X, y = tiny_data
    split, scaler = _first_fold(X, y)
    epochs = []
    r = train_fold(VARIANT, X, y, split, scaler, seed=1, tick=epochs.append)
    assert epochs == [0, 1, 2, 3]
    assert {k: len(v) for k, v in r.curves.items()} == dict.fromkeys(
        ("train_loss", "train_accuracy", "test_loss", "test_accuracy"), 4
    )
    # the last epoch's held-out numbers are the final model's held-out metrics
    assert r.curves["test_accuracy"][-1] == r.test_metrics["accuracy"]
    assert r.curves["test_loss"][-1] == pytest.approx(r.test_metrics["log_loss"], rel=1e-6)
    assert len(r.p_test) == len(split.test) and ((r.p_test >= 0) & (r.p_test <= 1)).all()


def test_final_model_trains_on_all_rows(tiny_data):
    X, y = tiny_data
    _, scaler = _first_fold(X, y)
    final = train_final(VARIANT, X, y, scaler, seed=1)
    assert len(final.curves["train_loss"]) == 4 and "test_loss" not in final.curves
    # its training metrics are its own predictions on every row, in inference mode
    p = predict_proba(final.model, X)
    assert final.train_metrics == binary_metrics(y, p)
    assert final.train_metrics["accuracy"] == np.mean((p > 0.5) == y)
    # and it is the model of the final seed: the same seed gives the same weights
    again = train_final(VARIANT, X, y, scaler, seed=1)
    for a, b in zip(final.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_summarize_uses_population_std_like_the_tutorial(tiny_data):
    X, y = tiny_data
    split, scaler = _first_fold(X, y)
    r = train_fold(VARIANT, X, y, split, scaler, seed=1)
    r2 = train_fold(VARIANT, X, y, split, scaler, seed=2)
    r.test_metrics["accuracy"], r2.test_metrics["accuracy"] = 0.8, 0.9
    r.train_metrics["accuracy"], r2.train_metrics["accuracy"] = 1.0, 0.95
    s = summarize_folds(per_split([r, r2])).metrics()
    assert s["accuracy_mean"] == pytest.approx(0.85)
    assert s["accuracy_std"] == pytest.approx(0.05)  # ddof=0
    assert s["n_folds"] == 2
    assert s["train_accuracy_mean"] == pytest.approx(0.975)
    assert s["overfit_gap_mean"] == pytest.approx(0.125)  # (0.2 + 0.05) / 2
    # the corrected interval: s² = 0.005, (1/2 + n_test/n_train) * s², t(0.975, 1 df)
    se = np.sqrt((1 / 2 + len(split.test) / len(split.train)) * 0.005)
    half = 12.706204736174698 * se
    ci = (s["accuracy_ci_low"], s["accuracy_ci_high"])
    assert ci == pytest.approx((0.85 - half, 0.85 + half))
    m = mean_curves([r, r2])
    np.testing.assert_allclose(
        m["train_loss_mean"], (np.array(r.curves["train_loss"]) + r2.curves["train_loss"]) / 2
    )
    assert list(m.index) == [1, 2, 3, 4] and m.index.name == "epoch"


def test_a_diverged_model_is_scored_not_fatal():
    """NaN outputs (training that diverged) give NaN ROC AUC and log loss, and the
    accuracy of calling each NaN row a rock."""
    y = np.array([1, 0, 0, 1, 0])
    m = binary_metrics(y, np.array([np.nan, 0.2, np.nan, 0.9, 0.1]))
    assert m["accuracy"] == 0.8  # a NaN is not above 0.5: both NaN rows are called rocks
    assert math.isnan(m["roc_auc"]) and math.isnan(m["log_loss"])
