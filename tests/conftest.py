"""Shared fixtures: tiny synthetic Sonar-shaped data and paths to the project and shared copy."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def offline_copy(env=os.environ) -> Path:
    """The offline copy of the UCI data that the tests needing the real data read (never
    committed): ``$SONAR_TEST_DATA``, else ``$SONAR_SOURCE`` when it names a file (as the
    pipeline takes it: relative to the project root), else ``../shared/data/sonar.csv``."""
    for name in ("SONAR_TEST_DATA", "SONAR_SOURCE"):
        value = env.get(name, "")
        if value and "://" not in value:
            return ROOT / value  # an absolute path stays as it is
    return ROOT.parent / "shared" / "data" / "sonar.csv"


SHARED_SONAR = offline_copy()


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


@contextlib.contextmanager
def loopback_server(handler) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (a free port) answering with ``handler`` in a
    thread of this process: its URL; shut down, and its socket closed, afterwards."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def lock_held(path: Path, seconds: float) -> Iterator[None]:
    """Another process holding an exclusive ``flock`` on ``path`` (for at most
    ``seconds``) while the block runs."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, time\n"
         f"fh = open({str(path)!r}, 'a'); fcntl.flock(fh, fcntl.LOCK_EX)\n"
         f"print('held', flush=True); time.sleep({seconds})"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.kill()
        holder.wait(timeout=10)
