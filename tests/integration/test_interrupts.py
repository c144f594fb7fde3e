"""Ctrl-C, SIGTERM and errors in a stage: a real stage process, a real cause, a real store."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from sonarlab.core.params import load_section
from tests.integration.conftest import BIN

pytestmark = pytest.mark.integration


def start_training(project, epochs: int):
    """A real ``cv@baseline`` stage (keras engine, ``epochs`` epochs) once training has
    started under a live run: the process, the store's client and the experiment."""
    cmd = [str(BIN / "python"), "-m", "sonarlab.stages.cv", "baseline",
           "--set", "cv.engine=keras", "--epochs", str(epochs)]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    client = MlflowClient(project.store)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        exp = client.get_experiment_by_name("sonar-dropout")
        if exp and client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'"):
            return proc, client, exp
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.kill()
    pytest.fail("the stage never started a run")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_training_ends_the_run_killed_and_writes_nothing(scratch, signum, code):
    project = scratch
    out = project.root / "results" / "baseline"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    scratch_out = project.root / "scratch" / "cv" / "baseline"  # where an override run writes
    proc, client, exp = start_training(project, epochs=5000)
    time.sleep(3)  # well inside the first fold (5000 epochs)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-3000:]
    assert ("interrupted" if signum == signal.SIGINT else "terminated") in stderr
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "KILLED"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing half-written
    assert not scratch_out.exists() or not any(scratch_out.iterdir())
    # and DVC runs the stage cleanly afterwards, to the same metrics (same seed)
    project.dvc("repro", "--force", "--single-item", "cv@baseline")
    runs = client.search_runs([exp.experiment_id], "tags.`dvc.stage` = 'cv@baseline'")
    assert [r.info.status for r in runs][:1] == ["FINISHED"]
    metrics = json.loads((out / "metrics.json").read_text())
    previous = json.loads(before["metrics.json"])
    assert metrics == previous


def test_an_error_after_training_ends_the_runs_failed_and_writes_nothing(scratch):
    """A real failure in a real stage: ``metrics.json`` is replaced by a directory once
    training has started (before, the stage's output check would refuse it at once), so
    the atomic rename of the first output fails (IsADirectoryError) after training. The
    stage runs with overrides, so its outputs are those of ``scratch/cv/baseline/``."""
    project = scratch
    results = project.root / "results" / "baseline"
    in_results = {p.name: p.read_bytes() for p in results.iterdir()}
    out = project.root / "scratch" / "cv" / "baseline"
    planted = out / "metrics.json"
    before = {p.name: p.read_bytes() for p in out.iterdir() if p != planted} if out.exists() else {}
    proc, client, exp = start_training(project, epochs=40)
    out.mkdir(parents=True, exist_ok=True)
    planted.unlink(missing_ok=True)
    planted.mkdir()
    _, stderr = proc.communicate(timeout=300)

    # _cli maps OSError to exit 1 and one logged line naming the path, no traceback.
    assert proc.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, stderr[-3000:]
    # the file meant is named, not the temporary file the rename came from
    assert errors[0].endswith(
        f"ERROR cv@baseline: [Errno 21] cannot write {planted}: Is a directory"
    )

    (parent,) = runs = client.search_runs([exp.experiment_id])
    folds_exp = client.get_experiment_by_name("sonar-dropout-folds")
    folds = client.search_runs([folds_exp.experiment_id], max_results=1000)
    assert parent.info.status == "FAILED" and parent.info.end_time is not None
    assert "accuracy_mean" in parent.data.metrics  # it failed after training, as planned
    error = parent.data.tags["error"]
    assert error == f"IsADirectoryError: [Errno 21] cannot write {planted}: Is a directory"
    cv = load_section(project.params(), "cv")
    assert len(folds) == cv.folds * cv.repeats
    for fold in folds:
        assert fold.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert fold.info.status == "FINISHED" and "accuracy" in fold.data.metrics
        assert "error" not in fold.data.tags
    assert not [r.info.run_id for r in runs + folds if r.info.status == "RUNNING"]

    # Nothing written, no temporary file left behind; the planted directory is untouched.
    assert planted.is_dir() and not any(planted.iterdir())
    assert {p.name: p.read_bytes() for p in out.iterdir() if p != planted} == before
    assert {p.name: p.read_bytes() for p in results.iterdir()} == in_results
