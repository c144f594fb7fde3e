import numpy as np
import pytest

from sonarlab.core.files import FormatError
from sonarlab.core.params import ConfigError, CVConfig
from sonarlab.data.folds import (
    Scaler,
    assign_folds,
    fold_scalers,
    prepare,
    read_prepared,
    splits,
    write_prepared,
)


def test_every_row_is_held_out_exactly_once_per_repeat(tiny_data):
    _, y = tiny_data
    assignment = assign_folds(y, folds=5, repeats=3, seed=1)
    assert assignment.shape == (3, len(y))
    for r in range(3):
        held_out = np.concatenate([s.test for s in splits(assignment) if s.repeat == r])
        assert sorted(held_out.tolist()) == list(range(len(y)))
    for s in splits(assignment):
        assert not set(s.train) & set(s.test)
        assert len(s.train) + len(s.test) == len(y)


def test_folds_are_stratified(tiny_data):
    _, y = tiny_data
    assignment = assign_folds(y, folds=5, repeats=1, seed=1)
    share = y.mean()
    for s in splits(assignment):
        expected = share * len(s.test)
        assert abs(y[s.test].sum() - expected) <= 1.0


def test_folds_are_deterministic_and_depend_on_seed_and_repeat(tiny_data):
    _, y = tiny_data
    a = assign_folds(y, 5, 2, seed=3)
    np.testing.assert_array_equal(a, assign_folds(y, 5, 2, seed=3))
    assert not np.array_equal(a, assign_folds(y, 5, 2, seed=4))
    assert not np.array_equal(a[0], a[1])  # repeats reshuffle


def test_more_folds_than_the_smaller_class_is_a_config_error():
    y = np.array([1] * 10 + [0] * 3)
    with pytest.raises(ConfigError, match=r"cv.folds: got 4; allowed: at most 3"):
        assign_folds(y, folds=4, repeats=1, seed=0)


def test_scaler_statistics_come_from_the_training_part_only(tiny_data):
    X, y = tiny_data
    assignment = assign_folds(y, 4, 1, seed=0)
    for split, scaler in zip(splits(assignment), fold_scalers(X, assignment), strict=True):
        train = X[split.train].astype(np.float64)
        np.testing.assert_allclose(scaler.mean, train.mean(axis=0))
        np.testing.assert_allclose(scaler.std, train.std(axis=0))  # population std
        assert not np.allclose(scaler.mean, X.astype(np.float64).mean(axis=0))


def test_constant_band_gets_unit_scale_like_standardscaler():
    X = np.ones((6, 3))
    X[:, 1] = np.arange(6)
    s = Scaler.fit(X)
    assert s.std[0] == 1.0 and s.std[2] == 1.0 and s.std[1] == pytest.approx(np.arange(6).std())


def test_prepared_round_trips_through_its_files(tiny_data, tmp_path):
    X, y = tiny_data
    cv = CVConfig(folds=4, repeats=2, seed=5)
    prepared = prepare(X, y, cv)
    write_prepared(prepared, tmp_path / "folds.csv", tmp_path / "scalers.json")
    lines = (tmp_path / "folds.csv").read_text().splitlines()
    assert lines[0] == "row,repeat,fold" and len(lines) == 1 + 2 * len(y)
    assert lines[1] == f"0,0,{prepared.assignment[0, 0]}"
    back = read_prepared(tmp_path / "folds.csv", tmp_path / "scalers.json")
    assert back.protocol == (4, 2, 5) and back.seed == 5
    assert [(s.repeat, s.fold) for s in back.splits] == [
        (s.repeat, s.fold) for s in prepared.splits
    ]
    np.testing.assert_array_equal(back.assignment, prepared.assignment)
    assert len(back.scalers) == 8
    for a, b in zip(back.scalers, prepared.scalers, strict=True):
        np.testing.assert_allclose(a.mean, b.mean)
        np.testing.assert_allclose(a.std, b.std)
    np.testing.assert_allclose(back.full.mean, X.astype(np.float64).mean(axis=0))


def test_a_prepared_folds_file_with_a_missing_column_is_named(tiny_data, tmp_path):
    X, y = tiny_data
    write_prepared(prepare(X, y, CVConfig(folds=3)), tmp_path / "folds.csv", tmp_path / "s.json")
    text = (tmp_path / "folds.csv").read_text().replace("row,repeat,fold", "row,repeat,fould")
    (tmp_path / "folds.csv").write_text(text)
    with pytest.raises(FormatError, match=r"folds.csv: no column 'fold'"):
        read_prepared(tmp_path / "folds.csv", tmp_path / "s.json")


def test_first_keeps_the_first_splits_and_their_scalers(tiny_data):
    X, y = tiny_data
    prepared = prepare(X, y, CVConfig(folds=3, repeats=2))
    two = prepared.first(2)
    assert [(s.repeat, s.fold) for s in two.splits] == [(0, 0), (0, 1)]
    assert two.scalers == prepared.scalers[:2] and two.full is prepared.full
