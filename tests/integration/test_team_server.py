"""The team tracking server: a real PostgreSQL (initialised in a temporary folder, on
127.0.0.1 only, as its own user), a real `mlflow server` on it started by the project's
script, and a grid run on a real Dask cluster logging to it through the artifact proxy."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.integration.conftest import BIN, free_port, serving
from tests.integration.test_cluster import Cluster

pytestmark = pytest.mark.integration


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        message = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    return found[-1].parent


@pytest.fixture
def postgres():
    """A PostgreSQL server of our own; it refuses to run as root, so as root it runs as
    the `postgres` user the OS package made, in a folder that user can reach (pytest's
    temporary folders are private to root)."""
    bindir = postgres_bin()
    user = "postgres" if os.geteuid() == 0 else None
    home = Path(tempfile.mkdtemp(prefix="sonarlab-pg-"))
    if user:
        pw = pwd.getpwnam(user)
        os.chown(home, pw.pw_uid, pw.pw_gid)
    data, port = home / "data", free_port()
    subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "sonarlab", "--auth=trust",
                    "-E", "UTF8"], user=user, check=True, capture_output=True)  # fmt: skip
    server = subprocess.Popen(
        [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
         "-k", str(home)],
        user=user, stdout=open(home / "log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    try:
        import psycopg2

        deadline = time.monotonic() + 60
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=port, user="sonarlab",
                                        dbname="postgres")  # fmt: skip
                break
            except psycopg2.OperationalError:
                assert time.monotonic() < deadline, (home / "log").read_text()
                time.sleep(0.3)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        yield f"postgresql://sonarlab@127.0.0.1:{port}/mlflow"
    finally:
        server.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
        server.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def tracking_server(postgres, tmp_path):
    port = free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "SONARLAB_DATABASE_URI": postgres, "SONARLAB_ARTIFACTS": str(tmp_path / "artifacts"),
           "SONARLAB_SERVER_PORT": str(port), "MLFLOW_DISABLE_TELEMETRY": "true"}  # fmt: skip
    server = subprocess.Popen(
        [str(ROOT / "scripts" / "tracking-server")], env=env, cwd=tmp_path,
        stdout=open(tmp_path / "server.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
        start_new_session=True,
    )  # fmt: skip
    with serving(server, f"http://127.0.0.1:{port}", tmp_path / "server.log") as uri:
        yield uri, tmp_path / "artifacts"


def test_the_script_refuses_a_store_that_is_not_postgresql(tmp_path):
    env = {**os.environ, "SONARLAB_DATABASE_URI": f"sqlite:///{tmp_path}/x.db"}
    out = subprocess.run([str(ROOT / "scripts" / "tracking-server")], env=env,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 2 and "must be a postgresql:// URI" in out.stderr


def test_a_grid_on_the_cluster_logs_every_trial_to_the_team_server(
    scratch, tracking_server, tmp_path
):
    uri, artifacts = tracking_server
    cluster = Cluster(tmp_path / "cluster", scratch.env)
    try:
        cluster.add_worker("worker-1")
        cluster.add_worker("worker-2")
        cluster.wait_for_workers(2)
        env = {"DASK_SCHEDULER_ADDRESS": cluster.address, "MLFLOW_TRACKING_URI": uri}
        out = scratch.run(str(BIN / "python"), "-m", "sonarlab.stages.grid", "hidden_dropout",
                          env=env)  # fmt: skip
    finally:
        cluster.stop()
    assert f"store {uri}" in out.stderr
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("sonar-dropout")
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # proxied by the server
    (parent,) = client.search_runs(
        [exp.experiment_id], "attributes.run_name = 'grid@hidden_dropout'"
    )
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_trials"] == 6
    trials = client.get_experiment_by_name("sonar-dropout-trials")
    kids = client.search_runs(
        [trials.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(float(k.data.params["variant.model.hidden_dropout"]) for k in kids) == [
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5
    ]  # fmt: skip
    assert all("accuracy_mean" in k.data.metrics for k in kids)
    local = scratch.root / "results" / "grid" / "hidden_dropout" / "trials.csv"
    fetched = client.download_artifacts(parent.info.run_id, "trials.csv", str(tmp_path))
    assert Path(fetched).read_bytes() == local.read_bytes()  # through the proxy
    assert any(artifacts.rglob("trials.csv"))  # and stored where the server was told
    table = pd.read_csv(local)
    assert len(table) == 6


def test_a_tracking_server_that_is_down_fails_the_grid_before_training(scratch):
    uri = f"http://127.0.0.1:{free_port()}"
    out = scratch.run(str(BIN / "python"), "-m", "sonarlab.stages.grid", "hidden_dropout",
                      env={"MLFLOW_TRACKING_URI": uri}, check=False)  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"MLflow tracking server {uri} is not reachable" in out.stderr
