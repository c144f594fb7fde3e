"""A real `mlflow server` on 127.0.0.1 receives a tiny run; a down one fails the stage fast."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.conftest import BIN

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={"MLFLOW_DISABLE_TELEMETRY": "true", "PATH": str(BIN)},
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not start")
    yield uri
    proc.terminate()
    proc.wait(timeout=30)


def stage(project, uri):
    return project.run(
        str(BIN / "python"), "-m", "sonarlab.stages.cv", "baseline",
        env={"MLFLOW_TRACKING_URI": uri, "no_proxy": "127.0.0.1"}, check=False,
    )  # fmt: skip


def test_a_tracking_server_receives_the_whole_run(scratch, server):
    proc = stage(scratch, server)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(server)
    exp = client.get_experiment_by_name("sonar-dropout")
    (parent,) = client.search_runs([exp.experiment_id])
    folds = client.get_experiment_by_name("sonar-dropout-folds")
    assert len(client.search_runs([folds.experiment_id])) == scratch.metrics("baseline")["n_folds"]
    assert parent.info.status == "FINISHED"
    assert "learning_curves.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_a_down_server_fails_before_training_naming_the_uri(scratch):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = stage(scratch, uri)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert f"MLflow tracking server {uri} is not reachable" in proc.stderr
    assert "epoch" not in proc.stderr  # no training began
    assert elapsed < 60  # MLflow's own retries would take minutes
