"""Grid studies end to end on the tiny copy: real ``dvc repro``, a real MLflow store."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sonarlab.results.summary import SUMMARY_KEYS
from sonarlab.results.tables import VERSUS_REFERENCE
from tests.integration.conftest import BIN, TINY, TINY_SPLITS

pytestmark = pytest.mark.integration

RATES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def trials(project, name: str) -> pd.DataFrame:
    return pd.read_csv(project.root / "results" / "grid" / name / "trials.csv")


def test_each_default_grid_writes_its_trials_splits_metrics_and_figure(reproduced):
    project, _ = reproduced
    for name, axis in (("input_dropout", "model.input_dropout"),
                       ("hidden_dropout", "model.hidden_dropout")):  # fmt: skip
        out = project.root / "results" / "grid" / name
        t = trials(project, name)
        assert list(t.columns) == ["trial", axis, *SUMMARY_KEYS, "ece", *VERSUS_REFERENCE]
        assert t[axis].tolist() == RATES and (t["n_folds"] == TINY_SPLITS).all()
        assert (t["accuracy_ci_low"] <= t["accuracy_mean"]).all()
        assert (t["accuracy_mean"] <= t["accuracy_ci_high"]).all()
        splits = pd.read_csv(out / "splits.csv")
        assert len(splits) == len(RATES) * TINY_SPLITS
        assert sorted(splits["trial"].unique()) == list(range(len(RATES)))
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["n_trials"] == 6
        assert metrics["n_beat_reference"] == t["beats_reference"].sum()
        assert 0.2 < metrics["reference"]["brier_mean"] < 0.3  # the base rate's Brier
        eligible = t[t["beats_reference"] == 1]
        if eligible.empty:  # the rule names no best trial at chance level
            assert metrics["best"] is None and metrics["best_corrected"] is None
        else:  # the lowest mean Brier among the trials that beat the reference
            best = eligible.loc[eligible["brier_mean"].idxmin()]
            assert metrics["best"]["trial"] == best["trial"]
            assert metrics["best"][axis] == best[axis]
            assert set(metrics["best_corrected"]) >= {"accuracy_mean", "brier_ci_high"}
        oof = pd.read_csv(out / "predictions.csv")
        assert len(oof) == 208 * TINY["repeats"]
        assert list(oof.columns[4:]) == [f"p_{i}" for i in range(6)]
        assert (out / "grid.png").read_bytes().startswith(b"\x89PNG")
    shown = json.loads(project.dvc("metrics", "show", "--json").stdout)[""]["data"]
    assert shown["results/grid/hidden_dropout/metrics.json"]["data"]["n_trials"] == 6


def test_the_grid_trial_equal_to_a_variant_gives_its_cv_metrics(reproduced):
    """hidden_dropout at 0.2 is `hidden` itself: the same models, the same numbers."""
    project, _ = reproduced
    cv = project.metrics("hidden")
    row = trials(project, "hidden_dropout").set_index("model.hidden_dropout").loc[0.2]
    for key in SUMMARY_KEYS:
        assert f"{row[key]:.6g}" == f"{cv[key]:.6g}", key


def test_a_grid_run_twice_writes_identical_trials(scratch):
    project = scratch  # a copy: the DVC-owned outputs of `reproduced` stay as they are
    path = project.root / "results" / "grid" / "input_dropout" / "trials.csv"
    before = path.read_bytes()
    project.run(str(BIN / "python"), "-m", "sonarlab.stages.grid", "input_dropout")
    assert path.read_bytes() == before


def test_mlflow_holds_a_parent_run_per_grid_and_a_child_run_per_trial(reproduced):
    project, _ = reproduced
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    (parent,) = client.search_runs(
        [exp.experiment_id], "attributes.run_name = 'grid@hidden_dropout'", max_results=1
    )
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["dvc.stage"] == "grid@hidden_dropout"
    assert parent.data.params["axes"] == "model.hidden_dropout"
    assert parent.data.metrics["n_trials"] == 6
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "splits.csv", "predictions.csv", "metrics.json", "grid.png"} <= artifacts
    assert (
        "n_beat_reference" in parent.data.metrics and "no_skill_brier_mean" in parent.data.metrics
    )
    trials = client.get_experiment_by_name("sonar-dropout-trials")  # off the first page
    kids = client.search_runs(
        [trials.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(kids) == 6
    rates = sorted(float(k.data.params["variant.model.hidden_dropout"]) for k in kids)
    assert rates == RATES
    for kid in kids:
        assert kid.info.status == "FINISHED"
        assert set(SUMMARY_KEYS) <= set(kid.data.metrics)
        assert kid.data.params["variant.optimizer.learning_rate"]  # every field of the variant
        assert kid.data.params["cv.folds"] and kid.data.params["seed"] == "0"


def test_the_report_shows_each_grid_with_a_sentence(reproduced):
    project, _ = reproduced
    page = (project.root / "reports" / "index.html").read_text()
    assert "<h2>Grid studies</h2>" in page
    assert "Grid hidden_dropout (6 trials of hidden, varying model.hidden_dropout)" in page
    summary = (project.root / "reports" / "summary.md").read_text()
    assert "![input_dropout](../results/grid/input_dropout/grid.png)" in summary
