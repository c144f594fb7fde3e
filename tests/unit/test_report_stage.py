"""The report stage refuses a bad baseline before it reads results or touches MLflow."""

import logging

import pytest
import yaml

from sonarlab.stages import report


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nosuch", "report.baseline: got 'nosuch'; allowed: a variant (baseline, visible"),
        ("", "report.baseline: got ''; allowed: the name of a variant"),
        (3, "report.baseline: got 3; allowed: a string"),
    ],
)
def test_a_bad_baseline_stops_with_one_line_and_exit_2(workspace, caplog, value, message):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["report"]["baseline"] = value
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with caplog.at_level(logging.ERROR):
        assert report.main([]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert message in line
    assert not (workspace / "mlflow.db").exists() and not (workspace / "reports").exists()


def test_missing_results_name_the_file(workspace, caplog):
    assert report.main([]) == 1
    assert "results/baseline/folds.csv" in caplog.text
    assert not (workspace / "mlflow.db").exists()


def test_the_champion_alias_is_removed_when_no_variant_may_be_served(tmp_path):
    """``runs.clear_champion`` on a real store: the alias goes, the versions stay."""
    from mlflow.tracking import MlflowClient

    from sonarlab.tracking import runs

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    client.create_registered_model("m")
    version = client.create_model_version("m", source=str(tmp_path / "model")).version
    client.set_registered_model_alias("m", "baseline", version)
    assert runs.set_champion(client, "m", "baseline") == version
    assert client.get_model_version_by_alias("m", "champion").version == version
    assert runs.clear_champion(client, "m") is True
    assert "champion" not in client.get_registered_model("m").aliases
    assert client.get_model_version_by_alias("m", "baseline").version == version
    assert runs.clear_champion(client, "m") is False  # nothing to remove
