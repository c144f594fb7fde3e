"""Shared fixtures: tiny synthetic Sonar-shaped data and paths to the project and shared copy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The offline mirror of the UCI data (never committed): ../shared/data/sonar.csv.
SHARED_SONAR = Path(
    os.environ.get("SONAR_TEST_DATA", ROOT.parent / "shared" / "data" / "sonar.csv")
)


def synthetic_sonar(n_mine: int = 30, n_rock: int = 26, seed: int = 0):
    """Sonar-shaped, learnable data: 60 bands in [0, 1]; mines carry more energy in bands 20-39."""
    rng = np.random.default_rng(seed)
    y = np.array([1] * n_mine + [0] * n_rock, dtype=np.float32)
    X = rng.uniform(0.0, 0.6, size=(len(y), 60))
    X[y == 1, 20:40] += 0.35
    order = rng.permutation(len(y))
    return np.clip(X[order], 0, 1).astype(np.float32), y[order]


@pytest.fixture
def tiny_data():
    return synthetic_sonar()


def sonar_csv_text(X: np.ndarray, y: np.ndarray) -> str:
    return "".join(
        ",".join(f"{v:.4f}" for v in row) + ("," + ("M" if lab else "R")) + "\n"
        for row, lab in zip(X, y, strict=True)
    )


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """An empty project (dvc.yaml, params.yaml) as the cwd, with a store of its own: for
    running a stage's ``main`` in-process."""
    shutil.copy(ROOT / "dvc.yaml", tmp_path)
    shutil.copy(ROOT / "params.yaml", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture
def shared_sonar() -> Path:
    if not SHARED_SONAR.is_file():
        pytest.skip(f"no offline copy of the Sonar data at {SHARED_SONAR}")
    return SHARED_SONAR
