"""MC dropout of each fold's model on its held-out rows (``training.sampling``), the
out-of-fold predictions table (``outcomes.out_of_fold``) and what a split's scores are
from it (``results.predictions``), with both engines' trained weights."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pandas as pd
import pytest

from sonarlab import predict
from sonarlab.core.params import CVConfig
from sonarlab.data.folds import prepare
from sonarlab.data.seeds import fold_seed
from sonarlab.data.uci import Sonar
from sonarlab.design.variants import ModelConfig, OptimizerConfig, VariantConfig
from sonarlab.results import tables
from sonarlab.results.predictions import has_mc, split_scores
from sonarlab.training import sampling
from sonarlab.training.engines.fused import cross_validate_fused
from sonarlab.training.engines.keras import train_fold
from sonarlab.training.model import build_network, predict_proba
from sonarlab.training.outcomes import out_of_fold, per_split
from sonarlab.training.saving import save_model
from tests.conftest import sonar_csv_text

HIDDEN = VariantConfig(
    model=ModelConfig("mlp", hidden=(8, 4), hidden_dropout=0.3, max_norm=3.0),
    optimizer=OptimizerConfig(0.1, 0.9),
    epochs=3,
    batch_size=16,
)
BASELINE = dataclasses.replace(HIDDEN, model=ModelConfig("mlp", hidden=(8, 4)))
PROTOCOL = CVConfig(folds=3, repeats=2, seed=5)
T = 7


@pytest.fixture(scope="module")
def trained():
    from tests.conftest import synthetic_sonar

    X, y = synthetic_sonar()
    prepared = prepare(X, y, PROTOCOL)
    return X, y, prepared, cross_validate_fused(HIDDEN, Sonar(X, y, labels=()), prepared)


def test_which_variants_have_dropout():
    assert sampling.uses_dropout(HIDDEN) and not sampling.uses_dropout(BASELINE)
    lstm = ModelConfig("lstm", units=4, timesteps=10, features=6)
    assert not sampling.uses_dropout(dataclasses.replace(HIDDEN, model=lstm))
    for part in ({"dropout": 0.1}, {"recurrent_dropout": 0.1}):
        model = dataclasses.replace(lstm, **part)
        assert sampling.uses_dropout(dataclasses.replace(HIDDEN, model=model))


def test_held_out_mc_means_are_deterministic_per_model_seed(trained):
    X, _, prepared, result = trained
    first = sampling.held_out_mc_means(HIDDEN, prepared, X, result.folds, T)
    again = sampling.held_out_mc_means(HIDDEN, prepared, X, result.folds, T)
    assert len(first) == len(result.folds) == 6
    for a, b, fold in zip(first, again, result.folds, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.shape == fold.p_test.shape and not np.allclose(a, fold.p_test)
    # another seed is another set of masks: each fold's passes come from its own seed
    fold = result.folds[0]
    model = _fold_model(prepared, fold)
    own = fold_seed(PROTOCOL.seed, fold.split.repeat, fold.split.fold)
    np.testing.assert_array_equal(sampling.mc_dropout(model, X[fold.split.test], T, own)[0],
                                  first[0])  # fmt: skip
    assert not np.allclose(sampling.mc_dropout(model, X[fold.split.test], T, own + 1)[0], first[0])


def _fold_model(prepared, fold):
    i = [(s.repeat, s.fold) for s in prepared.splits].index((fold.split.repeat, fold.split.fold))
    model = build_network(HIDDEN, prepared.scalers[i], 0)  # the seed sets no trained weight
    for var, value in zip(model.trainable_weights, fold.weights, strict=True):
        var.assign(value)
    return model


def test_predict_samples_a_saved_fold_model_with_the_same_numbers(trained, tmp_path, monkeypatch):
    """``predict --samples`` is the same sampler: on a fold's model saved as predict loads
    it, the same seed gives the cv stage's numbers (bit for bit in memory; the CLI's CSV
    keeps 6 digits)."""
    X, y, prepared, result = trained
    fold = result.folds[1]
    rows = X[fold.split.test]
    seed = fold_seed(PROTOCOL.seed, fold.split.repeat, fold.split.fold)
    expected = sampling.held_out_mc_means(HIDDEN, prepared, X, result.folds, T)[1]
    (tmp_path / "results" / "hidden").mkdir(parents=True)
    path = tmp_path / "results" / "hidden" / "model.keras"
    save_model(_fold_model(prepared, fold), path)
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_array_equal(sampling.mc_dropout(loaded, rows, T, seed)[0], expected)
    from tests.conftest import ROOT

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "rows.csv").write_text(sonar_csv_text(rows, y[fold.split.test]))
    monkeypatch.chdir(tmp_path)
    args = ["hidden", "rows.csv", "--samples", str(T), "--seed", str(seed), "--output", "o.csv"]
    assert predict.main(args) == 0
    # the CSV rows hold 4 decimals of each band: the same model on those rows
    again = sampling.mc_dropout(loaded, predict.read_rows(tmp_path / "rows.csv"), T, seed)[0]
    out = pd.read_csv(tmp_path / "o.csv")
    np.testing.assert_allclose(out["mc_mean"], again, rtol=1e-5)


def test_out_of_fold_holds_every_row_once_per_repeat_and_reproduces_the_split_scores(
    trained, tmp_path
):
    X, y, prepared, result = trained
    p_mc = sampling.held_out_mc_means(HIDDEN, prepared, X, result.folds, T)
    table = out_of_fold(result.folds, p_mc)
    assert list(table.columns) == list(tables.PREDICTIONS.columns)
    assert table[["repeat", "fold", "row"]].equals(
        table[["repeat", "fold", "row"]].sort_values(["repeat", "fold", "row"], ignore_index=True)
    )
    for _, held in table.groupby("repeat"):
        assert sorted(held["row"]) == list(range(len(y)))
    np.testing.assert_array_equal(table["label"], y[table["row"]].astype(int))
    assert has_mc(table)
    # in memory the standard pass gives folds.csv's scores exactly
    folds = per_split(result.folds)
    scores = split_scores(table, "p")
    columns = ["repeat", "fold", "n_train", "n_test", "accuracy", "roc_auc", "log_loss", "brier"]
    pd.testing.assert_frame_equal(scores[columns], folds[columns], check_exact=True)
    # on disk, 9 digits keep the float32 probabilities: read back as float32, exactly
    tables.PREDICTIONS.write(tmp_path / "predictions.csv", table)
    back = tables.PREDICTIONS.read(tmp_path / "predictions.csv")
    np.testing.assert_array_equal(back["p"].to_numpy(np.float32), table["p"].to_numpy(np.float32))
    exact = back.assign(p=back["p"].to_numpy(np.float32).astype(np.float64))
    pd.testing.assert_frame_equal(split_scores(exact, "p")[columns], folds[columns],
                                  check_exact=True)  # fmt: skip
    written = (tmp_path / "predictions.csv").read_bytes()
    tables.PREDICTIONS.write(tmp_path / "again.csv", out_of_fold(result.folds, p_mc))
    assert (tmp_path / "again.csv").read_bytes() == written


def test_without_mc_dropout_p_mc_is_nan(trained):
    _, _, _, result = trained
    table = out_of_fold(result.folds)
    assert table["p_mc"].isna().all() and not has_mc(table)


def test_a_keras_engine_fold_keeps_the_weights_that_give_its_predictions(trained):
    X, y, prepared, _ = trained
    split, scaler = prepared.splits[0], prepared.scalers[0]
    fold = train_fold(HIDDEN, X, y, split, scaler, PROTOCOL.seed)
    model = build_network(HIDDEN, scaler, 0)
    for var, value in zip(model.trainable_weights, fold.weights, strict=True):
        var.assign(value)
    np.testing.assert_array_equal(predict_proba(model, X[split.test]), fold.p_test)
