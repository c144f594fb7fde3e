"""What a cv run logs of its out-of-fold predictions, in a real MLflow store (SQLite,
artifacts in files): MLflow's own evaluation and MC dropout against the standard pass."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import log_loss, roc_auc_score

from sonarlab.results.predictions import paired, split_scores
from sonarlab.tracking import evaluation

EVALUATE_ARTIFACTS = {
    "pooled_roc_curve_plot.png",
    "pooled_precision_recall_curve_plot.png",
    "pooled_calibration_curve_plot.png",
    "pooled_lift_curve_plot.png",
    "pooled_confusion_matrix.png",
}


def predictions(mc: bool = True, repeats: int = 2, folds: int = 3, n: int = 60) -> pd.DataFrame:
    """A PREDICTIONS table: every row held out once per repeat, learnable labels."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, n)
    parts = []
    for r in range(repeats):
        fold = rng.permutation(np.arange(n) % folds)
        p = np.clip(0.3 + 0.4 * label + rng.normal(0, 0.2, n), 0.01, 0.99)
        p_mc = np.clip(p + rng.normal(0, 0.05, n), 0.01, 0.99) if mc else np.full(n, np.nan)
        parts.append(pd.DataFrame({"repeat": r, "fold": fold, "row": np.arange(n),
                                   "label": label, "p": p, "p_mc": p_mc}))  # fmt: skip
    return pd.concat(parts).sort_values(["repeat", "fold", "row"], ignore_index=True)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    yield client, experiment, tmp_path
    mlflow.set_tracking_uri(None)


def test_mlflow_evaluates_the_pooled_predictions_into_the_run(store):
    client, experiment, root = store
    table = predictions()
    before = sorted(p.name for p in root.iterdir())  # the store's artifacts go to art/
    runs = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=experiment) as run:
            metrics = evaluation.evaluate_out_of_fold(table, "results/hidden/predictions.csv")
        runs.append(run.info.run_id)
    artifacts = {a.path for a in client.list_artifacts(runs[0])}
    assert artifacts == EVALUATE_ARTIFACTS
    y, p = table["label"].to_numpy(), table["p"].to_numpy()
    assert metrics["pooled_roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert metrics["pooled_log_loss"] == pytest.approx(log_loss(y, p))
    assert metrics["pooled_accuracy_score"] == pytest.approx(np.mean((p > 0.5) == y))
    assert metrics["pooled_example_count"] == len(table)
    logged = client.get_run(runs[0]).data.metrics
    assert {k: logged[k] for k in metrics} == pytest.approx(metrics)
    assert logged["evaluation_seconds"] > 0
    # the table is the run's evaluation input, named
    (given,) = client.get_run(runs[0]).inputs.dataset_inputs
    assert given.dataset.name == evaluation.EVALUATION_DATASET
    # the images are the same bytes from the same predictions, and nothing is left behind
    for name in EVALUATE_ARTIFACTS:
        a, b = (Path(client.download_artifacts(r, name, str(root / f"dl-{r}"))) for r in runs)
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    left = sorted(p.name for p in root.iterdir() if not p.name.startswith(("dl-", "art")))
    assert left == before


def test_a_diverged_model_is_not_evaluated(store, caplog):
    _, experiment, _ = store
    table = predictions().assign(p=np.nan)
    with mlflow.start_run(experiment_id=experiment):
        assert evaluation.evaluate_out_of_fold(table, "x.csv") == {}
    assert "MLflow's evaluation skipped: 120 held-out probabilities are not finite" in caplog.text


def test_mc_dropout_metrics_are_the_paired_difference_from_the_standard_pass(store):
    client, experiment, _ = store
    table = predictions()
    with mlflow.start_run(experiment_id=experiment) as run:
        evaluation.log_mc_dropout(table, 1.5)
    logged = client.get_run(run.info.run_id).data.metrics
    mc, standard = split_scores(table, "p_mc"), split_scores(table, "p")
    tests = paired(mc, standard, evaluation.MC_METRICS)
    expected = {"mc_dropout_seconds": 1.5}
    for m in ("accuracy", "log_loss", "brier", "roc_auc"):
        expected[f"mc_{m}_mean"] = mc[m].mean()
        t = tests[m]
        expected |= {f"mc_delta_{m}": t.mean, f"mc_delta_{m}_ci_low": t.low,
                     f"mc_delta_{m}_ci_high": t.high, f"mc_delta_{m}_p": t.p}  # fmt: skip
    assert logged == pytest.approx(expected)
    assert math.isclose(logged["mc_delta_log_loss"], (mc["log_loss"] - standard["log_loss"]).mean())


def test_without_mc_dropout_nothing_is_logged(store):
    client, experiment, _ = store
    with mlflow.start_run(experiment_id=experiment) as run:
        evaluation.log_mc_dropout(predictions(mc=False), None)
    assert client.get_run(run.info.run_id).data.metrics == {}
