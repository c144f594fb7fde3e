"""What a stage does with the run ``mlflow run`` hands it."""

from __future__ import annotations

from sonarlab.tracking import Launch, take_launch


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
