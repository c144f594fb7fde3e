"""A study too big to fit in memory or to finish is refused by the real CLI before any
work: one error line naming the key, the estimate and the limit, exit 2, within seconds,
no MLflow run and nothing under results/ (design.sizes)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

SECONDS = 60  # interpreter and imports (~5 s; 20 s on a loaded machine); no TensorFlow, no training
OUR_RECORD = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ")
HUGE = [200_000, 200_000]


@pytest.fixture
def project(tmp_path) -> Path:
    """dvc.yaml and params.yaml with a variant and a grid far too big, and no data at
    all: the refusal must come before the data is read."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(ROOT / "dvc.yaml", root)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["variants"]["huge"] = {
        **params["variants"]["baseline"],
        "model": {**params["variants"]["baseline"]["model"], "hidden": HUGE},
    }
    params["grids"]["million"] = {
        "variant": "hidden",
        "axes": {
            "model.hidden_dropout": [i / 2000 for i in range(1000)],
            "optimizer.learning_rate": [(i + 1) / 1000 for i in range(1000)],
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "tmp").mkdir()
    return root


def error_lines(proc, code: int) -> list[str]:
    """The stage exited ``code`` with no traceback: its ERROR records (one, or the
    assertion shows the whole stderr)."""
    said = f"exit {proc.returncode}\n--- stderr\n{proc.stderr[-4000:]}"
    assert proc.returncode == code, said
    assert "Traceback" not in proc.stdout + proc.stderr, said
    errors = [
        ln for ln in proc.stderr.splitlines() if (m := OUR_RECORD.match(ln)) and m[1] == "ERROR"
    ]
    assert len(errors) == 1, said
    return errors


def refused(root: Path, module: str, *argv: str) -> tuple[str, float]:
    """Run the stage; check exit 2 with exactly one error line, no traceback, no MLflow
    store and no results; return that line and the wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "SONAR"))}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        TMPDIR=str(root / "tmp"),
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", module, *argv], cwd=root, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    (error,) = error_lines(proc, 2)
    assert "an unexpected error" not in error
    assert not list(root.glob("mlflow.db*")), "an MLflow store was made"
    assert not (root / "results").exists() and not (root / "scratch").exists()
    assert not (root / "mlartifacts").exists()
    return error, seconds


def test_a_variant_too_big_for_memory(project):
    line, seconds = refused(project, "sonarlab.stages.cv", "huge")
    assert (
        "cv@huge: invalid parameter: variants.huge.model.hidden: [200000, 200000] makes "
        "4.0e10 parameters; " in line
    )
    assert "over the limit of" in line and "sonarlab.design.sizes.MEMORY_LIMIT" in line
    assert seconds < SECONDS, seconds


def test_a_network_widened_on_the_command_line(project):
    line, seconds = refused(
        project,
        "sonarlab.stages.cv",
        "baseline",
        "--set",
        "variants.baseline.model.hidden=[100000,100000]",
    )
    assert (
        "cv@baseline: invalid parameter: variants.baseline.model.hidden: [100000, 100000] "
        "makes 1.0e10" in line
    )
    assert seconds < SECONDS, seconds


def test_a_million_trial_grid(project):
    line, seconds = refused(project, "sonarlab.stages.grid", "million")
    assert (
        "grid@million: invalid parameter: grids.million.axes: 1,000,000 trials x 30 splits" in line
    )
    assert "sonarlab.design.sizes.WORK_LIMIT); use fewer values" in line
    assert seconds < SECONDS, seconds
