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
