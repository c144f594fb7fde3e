"""What a stage does with the run ``mlflow run`` hands it."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from sonarlab.core.params import ConfigError
from sonarlab.tracking.runs import Launch, take_launch


def test_an_entry_point_run_directly_logs_into_the_launched_run():
    env = {"MLFLOW_RUN_ID": "abc"}
    assert take_launch(env) == Launch(resume="abc")
    assert "MLFLOW_RUN_ID" not in env  # nested runs must not resume it too
    assert Launch(resume="abc").tags() == {}


def test_under_dvc_each_stage_makes_a_child_of_the_launched_run():
    env = {"MLFLOW_RUN_ID": "abc", "DVC_STAGE": "cv@hidden"}
    launch = take_launch(env)
    assert launch == Launch(parent="abc")
    assert launch.tags() == {"mlflow.parentRunId": "abc"}


def test_without_mlflow_run_nothing_changes():
    assert take_launch({}) == Launch()
    assert Launch().tags() == {}


@pytest.mark.parametrize("launch", [Launch(resume="garbage"), Launch(parent="garbage")])
def test_a_launched_run_that_does_not_exist_is_a_bad_parameter(tmp_path, launch):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    with pytest.raises(ConfigError, match=r"MLFLOW_RUN_ID: got 'garbage'; no such run in the st"):
        launch.start_args(client, experiment, "baseline")
    run = client.create_run(experiment)  # a real one is taken, and decides the experiment
    real = Launch(resume=run.info.run_id).start_args(client, "0", "baseline")
    assert real["experiment_id"] == experiment and real["run_id"] == run.info.run_id
