"""Outputs that cannot be written: found before training and named, in one line; a disk
that fills during a write is named too. Real stages, real mounts (tests run as root, and
root ignores permissions: a read-only mount or a small tmpfs is what stops root)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sonarlab.core import files
from tests.integration.conftest import BIN, Project

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def mounted(target: Path, *args: str):
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount not possible here: {done.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


@contextlib.contextmanager
def read_only(folder: Path):
    with mounted(folder, "--bind", str(folder)):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        yield folder


def tiny_disk(folder: Path, size: str):
    return mounted(folder, "-t", "tmpfs", "-o", f"size={size}", "tmpfs")


def stage(project: Project, *argv: str):
    return project.run(str(BIN / "python"), "-m", *argv, check=False)


def assert_stopped_before_training(project: Project, proc, names: str) -> None:
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and names in errors[0], errors
    assert " folds x " not in proc.stderr and " trials x " not in proc.stderr  # no training
    # no MLflow run was started (the store was not even opened)
    assert (
        not (project.root / "mlflow.db").exists()
        or MlflowClient(project.store).search_runs(
            [e.experiment_id for e in MlflowClient(project.store).search_experiments()]
        )
        == []
    )


@pytest.fixture
def copy(scratch) -> Project:
    return scratch


def test_a_file_where_the_output_folder_must_be(copy):
    out = copy.root / "results" / "baseline"
    shutil.rmtree(out)
    out.write_text("in the way\n")
    proc = stage(copy, "sonarlab.stages.cv", "baseline")
    assert_stopped_before_training(copy, proc, f"{out / 'metrics.json'}: {out} is a file")
    assert out.read_text() == "in the way\n"


def test_a_read_only_output_folder(copy):
    out = copy.root / "results" / "baseline"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with read_only(out):
        proc = stage(copy, "sonarlab.stages.cv", "baseline")
    assert_stopped_before_training(
        copy, proc, f"{out / 'metrics.json'}: cannot write in {out} (Read-only file system)"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_disk_too_full_for_the_outputs(copy):
    out = copy.root / "results" / "grid" / "hidden_dropout"
    shutil.rmtree(out)
    with tiny_disk(out, "1m"):
        proc = stage(copy, "sonarlab.stages.grid", "hidden_dropout")
        assert list(out.iterdir()) == []
    assert_stopped_before_training(
        copy, proc, f"{out / 'trials.csv'}: only 1.0 MiB free on the disk of {out}"
    )


def test_the_report_checks_its_outputs_first(copy):
    reports = copy.root / "reports"
    shutil.rmtree(reports)
    reports.write_text("in the way\n")
    proc = stage(copy, "sonarlab.stages.report")
    assert_stopped_before_training(copy, proc, f"{reports / 'index.html'}: {reports} is a file")


def test_a_disk_that_fills_during_a_write_is_named(tmp_path):
    """What no check before can promise: the disk fills while the file is written."""
    folder = tmp_path / "small"
    with tiny_disk(folder, "64k"):
        target = folder / "big.txt"
        with pytest.raises(OSError, match=rf"cannot write {target}: No space left on device"):
            files.write_text(target, "x" * 200_000)
        assert list(folder.iterdir()) == []  # no temporary file left behind
