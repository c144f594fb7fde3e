"""Ctrl-C and SIGTERM during training: a real stage process, a real signal, a real store."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.conftest import BIN

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_training_ends_the_run_killed_and_writes_nothing(scratch, signum, code):
    project = scratch
    out = project.root / "results" / "baseline"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    cmd = [str(BIN / "python"), "-m", "sonarlab.stages.cv", "baseline",
           "--set", "cv.engine=keras", "--epochs", "5000"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    client = MlflowClient(project.store)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until training has started under a live run
        exp = client.get_experiment_by_name("sonar-dropout")
        runs = client.search_runs([exp.experiment_id]) if exp else []
        if runs and runs[0].info.status == "RUNNING":
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the stage never started a run")
    time.sleep(3)  # well inside the first fold (5000 epochs)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-3000:]
    assert ("interrupted" if signum == signal.SIGINT else "terminated") in stderr
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "KILLED"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing half-written
