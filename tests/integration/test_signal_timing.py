"""Ctrl-C or SIGTERM at any moment of a real stage, from its first import to its last
write: exit 130 or 143, one line, no traceback, no RUNNING run, no output half-written."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import matplotlib.image
import pytest
from mlflow.tracking import MlflowClient

from sonarlab.results import tables
from tests.integration.conftest import BIN

pytestmark = pytest.mark.integration

CMD = [str(BIN / "python"), "-m", "sonarlab.stages.cv", "baseline"]
MOMENTS = 10  # signals spread over one run's life, alternating SIGINT and SIGTERM


def whole_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        if archive.testzip() is not None:
            raise zipfile.BadZipFile(path)


def complete(path: Path) -> bool:
    """A whole output file, as its reader takes it."""
    readers = {
        "metrics.json": tables.read_metrics,
        "folds.csv": tables.FOLDS.read,
        "predictions.csv": tables.PREDICTIONS.read,
        "curves.csv": tables.CURVES.read,
        "learning_curves.png": matplotlib.image.imread,
        "model.keras": whole_zip,
    }
    try:
        readers[path.name](path)
    except Exception:
        return False
    return True


def test_a_signal_at_any_moment(scratch):
    project, out = scratch, scratch.root / "results" / "baseline"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    t0 = time.monotonic()
    project.run(*CMD)  # how long one run lives, start to exit, on this machine now
    life = time.monotonic() - t0
    client = MlflowClient(project.store)
    seen = []
    for i in range(MOMENTS):
        signum = (signal.SIGINT, signal.SIGTERM)[i % 2]
        delay = life * (i + 0.5) / MOMENTS
        proc = subprocess.Popen(
            CMD, cwd=project.root, env=project.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
        seen.append((round(delay, 1), signum.name, proc.returncode))
        where = f"{signum.name} after {delay:.1f} s of {life:.1f} s: exit {proc.returncode}"
        assert "Traceback" not in stdout + stderr, f"{where}\n{stderr[-3000:]}"
        errors = [ln for ln in stderr.splitlines() if re.search(r"\bERROR\b", ln)]
        if proc.returncode == 0:  # it had finished before the signal arrived
            assert errors == [], f"{where}\n{stderr[-3000:]}"
        else:
            assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], where
            word = "interrupted" if signum == signal.SIGINT else "terminated"
            assert len(errors) == 1 and word in errors[0], f"{where}\n{stderr[-3000:]}"
        # no run left RUNNING, whatever the moment
        experiments = [e.experiment_id for e in client.search_experiments()]
        running = client.search_runs(experiments, "attributes.status = 'RUNNING'")
        assert running == [], where
        # every output is the one before or a whole new one; no temporary file is left
        for path in out.iterdir():
            assert ".tmp" not in path.name, f"{where}: {path.name} left behind"
            assert path.read_bytes() == before.get(path.name) or complete(path), where
        assert {p.name for p in out.iterdir()} == set(before), where
    interrupted = [s for s in seen if s[2] != 0]
    assert len(interrupted) >= MOMENTS - 2, seen  # the moments did fall inside its life
    print(json.dumps(seen))
