"""The files of a variant's results: written and read by one module, checked on read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sonarlab.core.files import FormatError
from sonarlab.data.folds import Split
from sonarlab.results import tables
from sonarlab.results.metrics import CURVE_KEYS
from sonarlab.results.summary import SUMMARY_KEYS, summarize_folds
from sonarlab.training.outcomes import FoldResult, epoch_table, mean_curves, per_split, rows_digest


def fold(repeat, k, acc, epochs=3):
    split = Split(repeat, k, np.arange(8) + 2 * k, np.array([0, 1]) + 2 * k)
    curves = {key: list(np.linspace(0.1 * (k + 1), 1, epochs)) for key in CURVE_KEYS}
    metrics = {"accuracy": acc, "roc_auc": 0.75, "log_loss": 0.5 + k / 7, "brier": 0.2 + k / 50}
    return FoldResult(
        split, curves, np.zeros(2), np.zeros(2), {"accuracy": 1.0}, metrics, 0.25, weights=[]
    )


FOLDS = [fold(0, 0, 0.5), fold(0, 1, 1.0), fold(1, 0, 0.5)]


def test_the_per_split_table_round_trips_through_folds_csv(tmp_path):
    table = per_split(FOLDS)
    tables.FOLDS.write(tmp_path / "folds.csv", table)
    header = (tmp_path / "folds.csv").read_text().splitlines()[0]
    assert header.split(",") == list(tables.FOLDS.columns)
    back = tables.FOLDS.read(tmp_path / "folds.csv")
    assert back["test_rows"].tolist() == [rows_digest(f.split.test) for f in FOLDS]
    assert back[["repeat", "fold", "n_train", "n_test"]].values.tolist() == [
        [0, 0, 8, 2], [0, 1, 8, 2], [1, 0, 8, 2]
    ]  # fmt: skip
    # six significant digits on disk: the report's numbers agree with metrics.json's to that
    np.testing.assert_allclose(back["log_loss"], table["log_loss"], rtol=1e-6)
    a, b = summarize_folds(table).metrics(), summarize_folds(back).metrics()
    assert a.keys() == b.keys() == set(SUMMARY_KEYS)
    assert a == pytest.approx(b, rel=1e-5)


def test_curves_round_trip_with_the_epoch_as_index(tmp_path):
    curves = mean_curves(FOLDS)
    tables.CURVES.write(tmp_path / "curves.csv", curves)
    text = (tmp_path / "curves.csv").read_text().splitlines()
    assert text[0].startswith("epoch,train_loss_mean,train_loss_std,") and len(text) == 4
    back = tables.CURVES.read(tmp_path / "curves.csv")
    assert list(back.index) == [1, 2, 3] and list(back.columns) == list(curves.columns)
    np.testing.assert_allclose(back.to_numpy(), curves.to_numpy(), rtol=1e-5)


def test_a_folds_curves_keep_its_float32_values_exactly(tmp_path):
    rng = np.random.default_rng(3)
    values = {key: rng.random(5, dtype=np.float32).tolist() for key in CURVE_KEYS}
    tables.FOLD_CURVES.write(tmp_path / "curves.csv", epoch_table(values))
    back = tables.FOLD_CURVES.read(tmp_path / "curves.csv")
    assert list(back.index) == [1, 2, 3, 4, 5] and list(back.columns) == list(CURVE_KEYS)
    for key in CURVE_KEYS:  # the engines' numbers, bit for bit
        assert (back[key].to_numpy(np.float32) == np.float32(values[key])).all(), key


def test_metrics_json_must_hold_exactly_its_keys(tmp_path):
    metrics = {
        **summarize_folds(per_split(FOLDS)).metrics(),
        "ece": 0.05,
        "final_train_accuracy": 1.0,
    }
    tables.write_metrics(tmp_path / "m.json", metrics)
    assert tables.read_metrics(tmp_path / "m.json") == metrics
    (tmp_path / "m.json").write_text(
        json.dumps({k: v for k, v in metrics.items() if k != "n_folds"})
    )
    with pytest.raises(FormatError, match=r"m\.json: no metric 'n_folds'"):
        tables.read_metrics(tmp_path / "m.json")
    (tmp_path / "m.json").write_text(json.dumps({**metrics, "extra": 1}))
    with pytest.raises(FormatError, match=r"m\.json: unexpected metric 'extra'"):
        tables.read_metrics(tmp_path / "m.json")


def test_a_folds_csv_without_its_split_fingerprint_is_an_error(tmp_path):
    # the report once read such a file and paired variants on sizes alone
    per_split(FOLDS).drop(columns="test_rows").to_csv(tmp_path / "folds.csv", index=False)
    with pytest.raises(FormatError, match=r"folds.csv: no column 'test_rows'"):
        tables.FOLDS.read(tmp_path / "folds.csv")
