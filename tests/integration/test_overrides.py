"""A cv run with overrides (``--epochs``, ``--folds``, ``--set``; MLproject's ``cv`` entry
point with non-default ``-P``) is kept apart: its files go to ``scratch/cv/<variant>/``,
its MLflow run is tagged and named as an override run, and nothing DVC or the model
registry owns changes."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from sonarlab.core.paths import Paths
from sonarlab.tracking.runs import OVERRIDES_TAG
from tests.integration.conftest import BIN, Project

pytestmark = pytest.mark.integration

EXPERIMENT = "sonar-dropout"  # params.yaml's mlflow.experiment: also the registered model's name
LINE = (
    "cv@baseline: overrides (variants.baseline.epochs=1): results go to scratch/cv/baseline/ "
    "and MLflow only; no registered model or alias changes"
)
COMMANDS = {
    "cli": [str(BIN / "python"), "-m", "sonarlab.stages.cv", "baseline", "--epochs", "1"],
    "mlflow-run": [
        str(BIN / "mlflow"), "run", ".", "-e", "cv", "-P", "variant=baseline", "-P", "epochs=1",
        "--env-manager", "local", "--experiment-name", EXPERIMENT,
    ],
}  # fmt: skip


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def registry_state(client: MlflowClient) -> tuple[str, int]:
    """The version ``@baseline`` names, and how many versions the registered model has."""
    alias = client.get_model_version_by_alias(EXPERIMENT, "baseline").version
    return alias, len(client.search_model_versions(f"name = '{EXPERIMENT}'"))


@pytest.mark.parametrize("command", COMMANDS, ids=list(COMMANDS))
def test_an_override_run_changes_no_dvc_output_and_no_alias(scratch: Project, command: str):
    project = scratch  # a copy of the reproduced project, its store empty
    project.dvc("repro", "--force", "--single-item", "cv@baseline")  # registers @baseline
    client = MlflowClient(project.store)
    results = project.root / "results" / "baseline"
    before = file_bytes(results), project.dvc("status", "--json").stdout, registry_state(client)
    assert before[0] and before[2][1] == 1

    out = project.run(*COMMANDS[command], env={"MLFLOW_TRACKING_URI": project.store})

    assert LINE in out.stderr
    after = file_bytes(results), project.dvc("status", "--json").stdout, registry_state(client)
    assert after == before
    assert "cv@baseline" not in json.loads(after[1])
    scratch_out = Paths(project.root).scratch_variant("baseline")
    assert scratch_out.root == project.root / "scratch" / "cv" / "baseline"
    assert all(p.is_file() for p in scratch_out.outputs)
    metrics = json.loads(scratch_out.metrics.read_text())
    assert metrics["n_folds"] == json.loads((results / "metrics.json").read_text())["n_folds"]
    # scratch/ is git-ignored: `git status` shows nothing of it
    status = project.run("git", "status", "--porcelain", "--untracked-files=all").stdout
    assert "scratch" not in status, status

    exp = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([exp.experiment_id], f"tags.`{OVERRIDES_TAG}` IS NOT NULL")
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "baseline (override)"
    assert run.data.tags[OVERRIDES_TAG] == "variants.baseline.epochs=1"
    assert run.data.params["variant.epochs"] == "1"
    if command == "mlflow-run":  # the entry point's own run, renamed
        assert run.data.tags["mlflow.project.entryPoint"] == "cv"
    # the model is the run's artifact, unregistered
    mlflow.set_tracking_uri(project.store)
    (model,) = mlflow.search_logged_models(
        experiment_ids=[exp.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    assert model.name == "model"
    assert not client.search_model_versions(f"run_id = '{run.info.run_id}'")
