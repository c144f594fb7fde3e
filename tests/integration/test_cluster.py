"""Grid shards on a real Dask cluster (a `dask scheduler` and `dask worker` processes on
127.0.0.1, dashboards off), and the faults a cluster has. Every process a test starts is
stopped by its pid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.conftest import BIN

pytestmark = pytest.mark.integration

GRID = "hidden_dropout"


class Cluster:
    """A scheduler and workers, each its own process, listening on 127.0.0.1 only."""

    def __init__(self, root: Path, env: dict):
        self.root, self.env, self.procs = root, env, {}
        root.mkdir(parents=True, exist_ok=True)
        self.file = root / "scheduler.json"
        self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
                    "--no-dashboard", "--scheduler-file", str(self.file))  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.file.is_file():
            assert time.monotonic() < deadline, self.log("scheduler")
            time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")

    def _start(self, name: str, *args: str, env: dict | None = None) -> None:
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen(
            [str(BIN / "dask"), *args], cwd=self.root, env=env or self.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def add_worker(self, name: str, env: dict | None = None) -> None:
        self._start(name, "worker", "--scheduler-file", str(self.file), "--nthreads", "1",
                    "--no-nanny", "--host", "127.0.0.1", "--no-dashboard", env=env)  # fmt: skip

    def wait_for_workers(self, n: int) -> dict:
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=120)
            return {a: w for a, w in client.scheduler_info()["workers"].items()}

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()[-3000:]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def cluster(scratch, tmp_path):
    c = Cluster(tmp_path / "cluster", scratch.env)
    c.add_worker("worker-1")
    c.add_worker("worker-2")
    c.wait_for_workers(2)
    yield c
    c.stop()


def run_grid(project, env=None, check=True):
    return project.run(str(BIN / "python"), "-m", "sonarlab.stages.grid", GRID,
                       env=env, check=check)  # fmt: skip


def trials_bytes(project) -> bytes:
    return (project.root / "results" / "grid" / GRID / "trials.csv").read_bytes()


def test_a_grid_on_the_cluster_equals_the_in_process_grid_byte_for_byte(scratch, cluster):
    project = scratch
    here = trials_bytes(project)  # written by `dvc repro`, in this process
    out = run_grid(project, env={"DASK_SCHEDULER_ADDRESS": cluster.address})
    assert f"on the Dask cluster at {cluster.address} (2 workers)" in out.stderr
    done = [ln for ln in out.stderr.splitlines() if " of 3 done " in ln]
    assert len(done) == 3 and "100.0%" in done[-1]
    assert trials_bytes(project) == here


def test_a_worker_killed_mid_grid_loses_no_trial(scratch, cluster):
    """kill -9 of a worker while it trains a shard: Dask reruns the shard on the other
    worker, and the grid's trials are those of an undisturbed run."""
    from distributed import Client

    project = scratch
    params = project.params()
    params["variants"]["hidden"]["epochs"] = 150  # shards that train long enough to be hit
    project.write_params(params)
    undisturbed = run_grid(project)
    assert undisturbed.returncode == 0
    expected = trials_bytes(project)
    (project.root / "results" / "grid" / GRID / "trials.csv").unlink()

    env = {**project.env, "DASK_SCHEDULER_ADDRESS": cluster.address}
    driver = subprocess.Popen(
        [str(BIN / "python"), "-m", "sonarlab.stages.grid", GRID], cwd=project.root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    killed = None
    with Client(cluster.address, timeout=30, set_as_default=False) as client:
        deadline = time.monotonic() + 180
        while killed is None and time.monotonic() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                time.sleep(2)  # inside the shard's training
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                assert pid in {p.pid for p in cluster.procs.values()}  # one we started
                os.kill(pid, signal.SIGKILL)
                killed = busy[0]
            time.sleep(0.2)
    assert killed, "no worker ever had a shard to train"
    _, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr[-3000:]
    assert trials_bytes(project) == expected
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    runs = client.search_runs([exp.experiment_id], f"attributes.run_name = 'grid@{GRID}'")
    parent = max(runs, key=lambda r: r.info.start_time)
    trials = client.get_experiment_by_name("sonar-dropout-trials")
    kids = client.search_runs(
        [trials.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(kids) == 6  # no trial lost, none counted twice


def test_an_unreachable_scheduler_is_named_within_seconds(scratch):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    t0 = time.monotonic()
    out = run_grid(scratch, env={"DASK_SCHEDULER_ADDRESS": address}, check=False)
    assert time.monotonic() - t0 < 40
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if " ERROR " in ln]
    assert f"Dask scheduler {address} is not reachable" in line
    assert not _grid_runs(scratch)


def _grid_runs(project):
    """The grid's MLflow runs (none if the store or the experiment was never made)."""
    if not (project.root / "mlflow.db").exists():
        return []
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], f"attributes.run_name = 'grid@{GRID}'")


def test_a_worker_running_other_code_is_refused_by_name(scratch, tmp_path):
    """A worker whose sonarlab differs (here: its version) would change results."""
    import sonarlab

    other = tmp_path / "other-src"
    shutil.copytree(Path(sonarlab.__file__).parent, other / "sonarlab")
    init = other / "sonarlab" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.'))
    c = Cluster(tmp_path / "cluster", scratch.env)
    try:
        c.add_worker("stale", env={**scratch.env, "PYTHONPATH": str(other)})
        (worker,) = c.wait_for_workers(1)
        out = run_grid(scratch, env={"DASK_SCHEDULER_ADDRESS": c.address}, check=False)
    finally:
        c.stop()
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if " ERROR " in ln]
    assert f"Dask worker {worker} runs other code or libraries: sonarlab 9." in line
    assert not _grid_runs(scratch)  # refused before any run, any training


def test_a_shard_that_raises_stops_the_grid_with_its_trials_in_one_line(scratch, tmp_path):
    """A worker whose Keras is set up for a backend this environment lacks: the shard
    raises on import, a real error of a real misconfigured worker."""
    c = Cluster(tmp_path / "cluster", scratch.env)
    try:
        c.add_worker("jax", env={**scratch.env, "KERAS_BACKEND": "jax"})
        c.wait_for_workers(1)
        out = run_grid(scratch, env={"DASK_SCHEDULER_ADDRESS": c.address}, check=False)
    finally:
        c.stop()
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if " ERROR " in ln]
    assert "failed on the Dask cluster" in line and "model.hidden_dropout=" in line
    (run,) = _grid_runs(scratch)[:1]
    assert run.info.status == "FAILED"
    client = MlflowClient(scratch.store)
    trials = client.get_experiment_by_name("sonar-dropout-trials")
    assert not client.search_runs(
        [run.info.experiment_id, trials.experiment_id],
        f"tags.mlflow.parentRunId = '{run.info.run_id}'",
    )  # no trial half-logged


def test_ctrl_c_on_the_driver_cancels_the_shards_and_kills_the_run(scratch, cluster):
    from distributed import Client

    project = scratch
    params = project.params()
    params["variants"]["hidden"]["epochs"] = 3000
    project.write_params(params)
    out_dir = project.root / "results" / "grid" / GRID
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    env = {**project.env, "DASK_SCHEDULER_ADDRESS": cluster.address}
    driver = subprocess.Popen(
        [str(BIN / "python"), "-m", "sonarlab.stages.grid", GRID], cwd=project.root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with Client(cluster.address, timeout=30, set_as_default=False) as client:
        deadline = time.monotonic() + 180
        while not any(client.processing().values()):
            assert time.monotonic() < deadline and driver.poll() is None
            time.sleep(0.2)
        driver.send_signal(signal.SIGINT)
        _, stderr = driver.communicate(timeout=60)
        assert driver.returncode == 130, stderr[-3000:]
        deadline = time.monotonic() + 30
        while any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(client.processing().values())  # nothing left running
    assert "interrupted" in stderr and "Traceback" not in stderr
    run = max(_grid_runs(project), key=lambda r: r.info.start_time)
    assert run.info.status == "KILLED"
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
