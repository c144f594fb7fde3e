"""Dropout at inference: off by default (deterministic), on for MC-dropout sampling."""

from __future__ import annotations

import csv
import io
import shutil
from typing import ClassVar

import numpy as np
import pytest

from sonarlab import predict
from sonarlab.core.params import read_params
from sonarlab.data.folds import Scaler
from sonarlab.design.variants import load_variant
from sonarlab.training import sampling
from sonarlab.training.model import build_model, predict_proba
from tests.conftest import ROOT, sonar_csv_text, synthetic_sonar

PARAMS = read_params(ROOT / "params.yaml")
X, Y = synthetic_sonar()
SCALER = Scaler.fit(X)


def model_of(name: str):
    return build_model(load_variant(PARAMS, name), SCALER, n_train=len(X), seed=1)


@pytest.mark.parametrize("name", ["visible", "hidden", "lstm"])
def test_inference_is_deterministic_and_dropout_on_varies(name):
    model = model_of(name)
    np.testing.assert_array_equal(predict_proba(model, X), predict_proba(model, X))
    first = np.asarray(model(X, training=True)).ravel()
    second = np.asarray(model(X, training=True)).ravel()
    assert not np.allclose(first, second)
    mean, std = sampling.mc_dropout(model, X, samples=20, seed=3)
    assert (std > 0).all() and mean.shape == std.shape == (len(X),)
    # the same seed gives the same masks; another seed other masks
    again = sampling.mc_dropout(model, X, samples=20, seed=3)
    np.testing.assert_array_equal(mean, again[0])
    np.testing.assert_array_equal(std, again[1])
    assert not np.allclose(std, sampling.mc_dropout(model, X, samples=20, seed=4)[1])


def test_without_dropout_mc_sampling_has_no_spread():
    model = model_of("baseline")
    mean, std = sampling.mc_dropout(model, X, samples=5, seed=0)
    np.testing.assert_allclose(std, 0.0, atol=1e-12)
    np.testing.assert_allclose(mean, predict_proba(model, X), rtol=1e-6)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    shutil.copy(ROOT / "params.yaml", tmp_path)
    model = model_of("hidden")
    (tmp_path / "results" / "hidden").mkdir(parents=True)
    model.save(tmp_path / "results" / "hidden" / "model.keras")
    (tmp_path / "rows.csv").write_text(sonar_csv_text(X[:7], Y[:7]))
    monkeypatch.chdir(tmp_path)
    return tmp_path, model


def test_predict_cli_writes_probabilities_and_mc_statistics(workspace):
    root, model = workspace
    assert predict.main(["hidden", "rows.csv", "--samples", "30", "--output", "out.csv"]) == 0
    rows = list(csv.DictReader(io.StringIO((root / "out.csv").read_text())))
    assert [r["row"] for r in rows] == [str(i) for i in range(7)]
    p = np.array([float(r["p_mine"]) for r in rows])
    expected = predict_proba(model, predict.read_rows(root / "rows.csv"))
    np.testing.assert_allclose(p, expected, rtol=1e-5)  # the CSV keeps 6 digits
    std = np.array([float(r["mc_std"]) for r in rows])
    assert (std > 0).all()
    assert predict.main(["hidden", "rows.csv", "--samples", "30", "--output", "again.csv"]) == 0
    assert (root / "again.csv").read_text() == (root / "out.csv").read_text()


def test_predict_cli_without_samples_prints_inference_only(workspace, capsys):
    assert predict.main(["hidden", "rows.csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == "row,p_mine"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no rows"),
        ("0.1,0.2,M\n", "row 1: 3 columns, expected 60"),
        (",".join(["x"] * 60) + "\n", "row 1: a band value is not a number"),
        (",".join(["1.5"] * 60) + "\n", "outside [0, 1]"),
        (",".join(["0.5"] * 60) + ",X\n", "labels ['X'] found; expected only M and R"),
        (",".join(["0.5"] * 60) + ",M\n" + ",".join(["0.5"] * 60) + "\n", "row 2: 60 columns"),
    ],
)
def test_predict_cli_rejects_bad_rows_with_one_line(workspace, caplog, content, message):
    root, _ = workspace
    (root / "bad.csv").write_text(content)
    assert predict.main(["hidden", "bad.csv"]) == 1
    assert message in caplog.text and "Traceback" not in caplog.text


def test_predict_cli_names_a_missing_model(workspace, caplog):
    assert predict.main(["visible", "rows.csv"]) == 1
    assert "results/visible/model.keras" in caplog.text


def test_predict_cli_refuses_an_unknown_variant(workspace, caplog):
    assert predict.main(["nosuch", "rows.csv"]) == 2
    assert "variant: got 'nosuch'; defined variants: baseline, visible" in caplog.text


class _FreshDraws:
    """Stands in for a model with dropout on: every call gives new values, all recorded."""

    non_trainable_variables: ClassVar[list] = []

    def __init__(self):
        self.rng, self.calls = np.random.default_rng(0), []

    def __call__(self, X, training):
        assert training
        self.calls.append(self.rng.uniform(size=(len(X), 1)))
        return self.calls[-1]


def test_mc_statistics_combined_batch_by_batch_equal_those_of_all_draws(monkeypatch):
    monkeypatch.setattr(sampling, "SAMPLE_BATCH_ROWS", 10)  # 3 samples of 3 rows a call
    model = _FreshDraws()
    mean, std = sampling.mc_dropout(model, X[:3], samples=100, seed=0)
    assert [len(c) for c in model.calls] == [9] * 33 + [3]
    draws = np.concatenate([c.reshape(-1, 3) for c in model.calls])
    assert draws.shape == (100, 3)
    np.testing.assert_allclose(mean, draws.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, draws.std(axis=0), rtol=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "10001"], "--samples: got 10001; allowed: an integer from 0 to 10000"),
        (["--samples", "-1"], "--samples: got -1; allowed: an integer from 0 to 10000"),
        (["--read-timeout", "0"], "--read-timeout: got 0.0; allowed: a finite value > 0"),
        (["--read-timeout", "inf"], "--read-timeout: got inf; allowed: a finite value > 0"),
    ],
)
def test_out_of_range_options_are_one_line_and_exit_2(workspace, caplog, args, message):
    assert predict.main(["hidden", "rows.csv", *args]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"predict hidden: invalid parameter: {message}"]


def test_samples_times_rows_is_bounded_too(workspace, caplog, monkeypatch):
    monkeypatch.setattr(predict, "MAX_SAMPLED_ROWS", 50)
    assert predict.main(["hidden", "rows.csv", "--samples", "8"]) == 2  # 7 rows
    assert "--samples: got 8 for 7 rows; allowed: samples x rows at most 50 (here --samples 7)" in (
        caplog.text
    )
    assert predict.main(["hidden", "rows.csv", "--samples", "7", "--output", "out.csv"]) == 0


def test_long_sampling_reports_progress(workspace, caplog):
    with caplog.at_level("INFO"):
        assert predict.main(["hidden", "rows.csv", "--samples", "10000", "--output", "o.csv"]) == 0
    assert "predict: MC dropout: 10000 samples of 7 rows in" in caplog.text


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("results", "--output results: is a folder; name a file"),
        ("rows.csv/out.csv", "--output rows.csv/out.csv: rows.csv is a file, not a folder"),
        ("rows.csv/a/b.csv", "--output rows.csv/a/b.csv: rows.csv is a file, not a folder"),
        ("/sys/out.csv", "--output /sys/out.csv: cannot write in /sys ("),
    ],
)
def test_an_output_that_cannot_be_written_is_named_before_any_work(
    workspace, caplog, output, message
):
    root, _ = workspace
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert predict.main(["hidden", "rows.csv", "--output", output]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(f"predict hidden: {message}")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_rows_from_a_source_that_never_ends_stop_at_the_size_limit(workspace, caplog):
    assert predict.main(["hidden", "/dev/zero"]) == 1
    assert (
        "predict hidden: /dev/zero: larger than 16 MiB (the limit for predict's rows, "
        "about 40,000 rows)" in caplog.text
    )
