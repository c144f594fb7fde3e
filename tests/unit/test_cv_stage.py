"""The cv stage refuses bad parameters before loading TensorFlow, training or touching MLflow."""

import logging

import pytest
import yaml

from sonarlab.stages import cv


def edit(workspace, fn):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    fn(params)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.parametrize(
    ("change", "variant", "message"),
    [
        (lambda p: p["variants"]["hidden"]["model"].update(dropuot=0.2), "hidden",
         "variants.hidden.model.dropuot: got 0.2; unknown key"),
        (lambda p: p["variants"]["lstm"]["model"].update(timesteps=7), "lstm",
         "variants.lstm.model.timesteps: got '7x6'"),
        (lambda p: p["cv"].update(folds=1), "baseline", "cv.folds: got 1"),
        (lambda p: None, "nosuch", "variants.nosuch: got '<missing>'; defined variants"),
    ],
)  # fmt: skip
def test_bad_params_stop_with_one_line_and_exit_2(workspace, caplog, change, variant, message):
    edit(workspace, change)
    with caplog.at_level(logging.ERROR):
        assert cv.main([variant]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert message in line and "invalid parameter" in line
    assert not (workspace / "mlflow.db").exists()
    assert not (workspace / "results").exists()


def test_missing_inputs_say_which_file(workspace, caplog):
    assert cv.main(["baseline"]) == 1
    assert "data/raw/sonar.csv" in caplog.text


def test_unreachable_tracking_server_is_named_before_training(tmp_path):
    import socket

    from sonarlab.tracking.runs import check_reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(OSError, match=rf"MLflow tracking server {uri} is not reachable"):
        check_reachable(uri, timeout=2)
    check_reachable(f"sqlite:///{tmp_path}/mlflow.db")  # local stores need no probe
