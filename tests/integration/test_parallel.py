"""Four stage processes at once against one new SQLite store: nothing lost, nothing broken."""

from __future__ import annotations

import subprocess

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.conftest import BIN

pytestmark = pytest.mark.integration


def test_four_stages_at_once_on_a_new_sqlite_store(scratch, tmp_path):
    store = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"  # new: its schema is made here
    env = {**scratch.env, "MLFLOW_TRACKING_URI": store}
    variants = ["baseline", "visible", "hidden", "lr_decay"]
    procs = [
        subprocess.Popen(
            [str(BIN / "python"), "-m", "sonarlab.stages.cv", v],
            cwd=scratch.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in variants
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e[-2000:] for e in errors]
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("sonar-dropout")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    folds = scratch.metrics("baseline")["n_folds"]
    assert sorted(r.info.run_name for r in parents) == sorted(variants)
    assert len(runs) == 4  # the folds are in their own experiment
    fold_runs = client.search_runs(
        [client.get_experiment_by_name("sonar-dropout-folds").experiment_id], max_results=1000
    )
    assert len(fold_runs) == 4 * folds
    assert {r.data.tags["mlflow.parentRunId"] for r in fold_runs} == {
        p.info.run_id for p in parents
    }
    assert {r.info.status for r in runs} == {"FINISHED"}
    for parent in parents:
        assert parent.data.metrics["n_folds"] == folds
        assert (
            len(client.get_metric_history(parent.info.run_id, "epoch_test_loss_mean"))
            == (scratch.params()["variants"][parent.info.run_name]["epochs"])
        )
