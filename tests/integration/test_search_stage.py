"""Searches end to end on the tiny copy: real ``dvc repro``, a real MLflow store, Optuna's
own storage reading the study, and a real Dask cluster."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sonarlab.core.paths import SearchPaths
from sonarlab.search.journal import read_journal
from tests.integration.conftest import BIN, TINY_SEARCH, TINY_SPLITS
from tests.integration.test_cluster import Cluster

pytestmark = pytest.mark.integration

NAME = "tutorial"
SPACE = ["model.hidden_dropout", "optimizer.learning_rate", "optimizer.momentum",
         "model.max_norm"]  # fmt: skip


def outputs(project, name: str = NAME) -> SearchPaths:
    return SearchPaths(project.root / "results" / "search" / name)


def output_bytes(project, name: str = NAME) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in outputs(project, name).outputs}


def run_search(project, env=None, check=True):
    return project.run(str(BIN / "python"), "-m", "sonarlab.stages.search", NAME,
                       env=env, check=check)  # fmt: skip


def test_the_default_search_writes_its_trials_metrics_study_and_figures(reproduced):
    project, log = reproduced
    assert "Running stage 'search@tutorial'" in log
    out = outputs(project)
    trials = pd.read_csv(out.trials)
    assert list(trials.columns[:7]) == ["trial", "state", "epochs", *SPACE]
    assert trials["trial"].tolist() == list(range(TINY_SEARCH["trials"]))
    # halving [1, 2] in a block of 6 with reduction 3: 2 trials go on to the last rung
    low, high = TINY_SEARCH["rungs"]
    complete = trials[trials["state"] == "complete"]
    assert len(complete) == 2 and (complete["epochs"] == high).all()
    assert (trials.loc[trials["state"] == "pruned", "epochs"] == low).all()
    assert trials["model.max_norm"].isin([2.0, 3.0, 4.0]).sum() + trials[
        "model.max_norm"].isna().sum() == len(trials)  # fmt: skip
    assert ((trials["model.hidden_dropout"] >= 0) & (trials["model.hidden_dropout"] <= 0.5)).all()
    metrics = json.loads(out.metrics.read_text())
    assert metrics["n_trials"] == 6 and metrics["n_complete"] == 2 and metrics["n_pruned"] == 4
    splits = TINY_SPLITS
    assert metrics["model_epochs"] == 6 * splits * low + 2 * splits * high
    assert metrics["model_epochs_full_budget"] == 6 * splits * high
    if metrics["best"] is not None:  # the rule among the complete trials
        eligible = complete[complete["beats_reference"] == 1]
        assert metrics["best"]["trial"] == eligible.loc[eligible["brier_mean"].idxmin(), "trial"]
    oof = pd.read_csv(out.predictions)
    assert list(oof.columns[4:]) == [f"p_{t}" for t in complete["trial"]]
    assert len(pd.read_csv(out.splits)) == 6 * splits
    # the study, through Optuna's own storage: the same trials, states and values
    study = read_journal(out.study, f"search@{NAME}")
    assert [t.number for t in study.trials] == trials["trial"].tolist()
    assert [t.state.name.lower() for t in study.trials] == trials["state"].tolist()
    for t, row in zip(study.trials, trials.to_dict("records"), strict=True):
        for key in SPACE:
            value = t.params[key]
            assert (math.isnan(row[key]) and value is None) or f"{value:.6g}" == f"{row[key]:.6g}"
        if t.state.name == "COMPLETE":
            assert f"{t.value:.6g}" == f"{row['brier_mean']:.6g}"
        assert list(t.intermediate_values) == TINY_SEARCH["rungs"][: 1 + (row["epochs"] == high)]
    for figure in out.figures:
        assert figure.read_bytes().startswith(b"\x89PNG")
    shown = json.loads(project.dvc("metrics", "show", "--json").stdout)[""]["data"]
    assert shown["results/search/tutorial/metrics.json"]["data"]["n_trials"] == 6


def test_mlflow_holds_the_search_run_and_a_child_per_trial_named_by_its_values(reproduced):
    project, _ = reproduced
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    (parent,) = client.search_runs(
        [exp.experiment_id], "attributes.run_name = 'search@tutorial'", max_results=1
    )
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sampler"] == "tpe" and parent.data.params["rungs"] == "1,2"
    assert parent.data.metrics["n_complete"] == 2
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "study.journal", "history.png", "slices.png"} <= artifacts
    trials_exp = client.get_experiment_by_name("sonar-dropout-trials")
    kids = client.search_runs(
        [trials_exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    table = pd.read_csv(outputs(project).trials).set_index("trial")
    assert len(kids) == len(table)
    for kid in kids:
        row = table.loc[int(kid.data.params["trial"])]
        rate = float(kid.data.params["variant.model.hidden_dropout"])
        assert kid.info.run_name.startswith(f"{NAME}: hidden_dropout={rate:.4g}, learning_rate=")
        assert "#" not in kid.info.run_name
        assert kid.data.tags["sonarlab.state"] == row["state"]
        assert kid.data.params["variant.epochs"] == str(row["epochs"])
        assert kid.data.params["variant.batch_size"] == "16"  # every field of its variant
    # a grid's trials are named by their values too
    (grid,) = client.search_runs(
        [exp.experiment_id], "attributes.run_name = 'grid@hidden_dropout'", max_results=1
    )
    names = {k.info.run_name for k in client.search_runs(
        [trials_exp.experiment_id], f"tags.mlflow.parentRunId = '{grid.info.run_id}'")}  # fmt: skip
    assert names == {f"hidden_dropout: hidden_dropout={r}" for r in ("0", "0.1", "0.2", "0.3",
                                                                     "0.4", "0.5")}  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda s: s["space"].update({"optimizer.learning_rate": {"log_uniform": [0.0, 0.3]}}),
         "searches.tutorial.space.optimizer.learning_rate.log_uniform"),
        (lambda s: s.update(sampler="grid"), "searches.tutorial.sampler"),
        (lambda s: s["halving"].update(rungs=[2, 1]), "searches.tutorial.halving.rungs"),
    ],
)  # fmt: skip
def test_a_bad_search_is_one_line_naming_the_key_with_nothing_written(scratch, edit, key):
    before = output_bytes(scratch)
    params = scratch.params()
    edit(params["searches"][NAME])
    scratch.write_params(params)
    out = run_search(scratch, check=False)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert f"search@{NAME}: invalid parameter: {key}: got " in last, out.stderr
    assert output_bytes(scratch) == before
    assert not (scratch.root / "mlflow.db").exists()  # no MLflow run, not even a store


def test_a_forced_rerun_is_byte_identical(scratch):
    before = output_bytes(scratch)
    scratch.dvc("repro", "-f", "-s", "search@tutorial")
    after = output_bytes(scratch)
    assert after == before


def test_a_search_on_the_dask_cluster_equals_the_in_process_one_byte_for_byte(scratch, tmp_path):
    here = output_bytes(scratch)  # written by `dvc repro`, in this process
    cluster = Cluster(tmp_path / "cluster", scratch.env)
    try:
        cluster.add_worker("worker-1")
        cluster.add_worker("worker-2")
        cluster.wait_for_workers(2)
        out = run_search(scratch, env={"DASK_SCHEDULER_ADDRESS": cluster.address})
    finally:
        cluster.stop()
    assert f"on the Dask cluster at {cluster.address} (2 workers)" in out.stderr
    assert output_bytes(scratch) == here


def test_a_promoted_trial_equals_the_same_trial_trained_to_that_length_directly(scratch):
    """Halving's complete trials against a search without halving: the same sampler and
    seed ask the same trials (random sampling ignores what it is told), and every trial of
    the second trains the full length directly."""
    params = scratch.params()
    search = params["searches"][NAME]
    search["sampler"] = "random"
    scratch.write_params(params)
    run_search(scratch)
    halved = pd.read_csv(outputs(scratch).trials)
    halved_splits = pd.read_csv(outputs(scratch).splits)
    halved_oof = pd.read_csv(outputs(scratch).predictions)
    search["halving"] = None
    # the last rung is the variant's own length: a run without halving trains that
    assert params["variants"][search["variant"]]["epochs"] == TINY_SEARCH["rungs"][-1]
    scratch.write_params(params)
    run_search(scratch)
    direct = pd.read_csv(outputs(scratch).trials)
    direct_splits = pd.read_csv(outputs(scratch).splits)
    direct_oof = pd.read_csv(outputs(scratch).predictions)
    assert (direct["state"] == "complete").all()
    assert direct[SPACE].equals(halved[SPACE])  # the same trials were asked
    promoted = halved.loc[halved["state"] == "complete", "trial"].tolist()
    assert len(promoted) == 2
    for t in promoted:
        a = halved_splits[halved_splits["trial"] == t].reset_index(drop=True)
        b = direct_splits[direct_splits["trial"] == t].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert halved_oof[f"p_{t}"].equals(direct_oof[f"p_{t}"])
