"""A stage killed with SIGKILL leaves its run RUNNING; the next stage to open the store
finds its process gone and ends the run KILLED, saying how it was found."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sonarlab.tracking.stores import FOUND_DEAD_TAG
from tests.integration.conftest import BIN, Project

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh(project, tmp_path) -> Project:
    """The tiny project with its data fetched and standardized, and no store."""
    root = tmp_path / "repo"
    shutil.copytree(project.root, root, ignore=shutil.ignore_patterns("mlflow.db*", ".git"))
    p = Project(root, project.env)
    for stage in ("fetch", "standardize"):
        p.run(str(BIN / "python"), "-m", f"sonarlab.stages.{stage}")
    return p


def statuses(db: Path) -> dict[str, str]:
    """Each run's status, read without MLflow (which would migrate a store the stage is
    still creating) and without waiting on the stage's writes."""
    if not db.exists():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
            return dict(conn.execute("SELECT run_uuid, status FROM runs"))
    except sqlite3.OperationalError:  # tables not made yet, or locked for a moment
        return {}


def test_a_run_left_by_kill_9_is_marked_killed_by_the_next_stage(fresh):
    db = fresh.root / "mlflow.db"
    cmd = [str(BIN / "python"), "-m", "sonarlab.stages.cv", "baseline",
           "--set", "cv.engine=keras", "--epochs", "5000"]  # fmt: skip
    with open(fresh.root / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=fresh.root, env=fresh.env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while "RUNNING" not in statuses(db).values():  # training has started under a live run
        assert proc.poll() is None, (fresh.root / "killed.log").read_text()[-3000:]
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the stage never started a run")
        time.sleep(0.2)
    time.sleep(1)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    (run_id,) = [r for r, s in statuses(db).items() if s == "RUNNING"]  # nothing ended it

    # The next stage opens the store: the run of the dead process is ended before training.
    after = fresh.run(str(BIN / "python"), "-m", "sonarlab.stages.cv", "baseline",
                      "--epochs", "1", "--folds", "2", "--set", "cv.repeats=1")  # fmt: skip
    client = MlflowClient(fresh.store)
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and run.info.end_time is not None
    assert run.info.end_time >= run.info.start_time
    note = run.data.tags[FOUND_DEAD_TAG]
    pattern = (
        rf"process {proc.pid} on host {re.escape(socket.gethostname())} \(started "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\) no longer exists; marked KILLED by "
        r"cv@baseline at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    )
    assert re.fullmatch(pattern, note), note
    (line,) = [x for x in after.stderr.splitlines() if "left RUNNING" in x]
    # an override run (--set, --epochs) is named so: it is never taken for the pipeline's
    assert line.endswith(f" INFO run {run_id} (baseline (override)) left RUNNING: {note}")
    # The killed run's finished fold runs are untouched; the new stage's runs finished.
    others = client.search_runs(
        [run.info.experiment_id], f"attributes.run_id != '{run_id}'", max_results=1000
    )
    assert others and all(r.info.status == "FINISHED" for r in others)
    assert all(FOUND_DEAD_TAG not in r.data.tags for r in others)
