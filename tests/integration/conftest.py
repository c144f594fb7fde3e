"""A temporary copy of the project, shrunk to tiny work, driven with the real tools."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, SHARED_SONAR

BIN = Path(sys.executable).parent


def outputs_ignored(*patterns: str, everywhere: tuple[str, ...] = ()):
    """An ignore for ``shutil.copytree``: names matching ``patterns`` (a project's outputs,
    stores and caches) are left out except inside a Python package, whose subpackages may
    share their names (``sonarlab.data``, ``sonarlab.results``); names matching
    ``everywhere`` are left out in every folder."""
    outputs, anywhere = shutil.ignore_patterns(*patterns), shutil.ignore_patterns(*everywhere)

    def ignored(folder: str, names: list[str]) -> set[str]:
        package = (Path(folder) / "__init__.py").is_file()
        return anywhere(folder, names) | (set() if package else outputs(folder, names))

    return ignored


COPY_IGNORE = outputs_ignored(
    ".venv", ".git", "mlflow.db*", "mlartifacts", "mlruns", "results", "reports", "data",
    "dvc.lock", "cache", "tmp", "dvc_plots",
    everywhere=("__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache"),
)  # fmt: skip
TINY = {"folds": 3, "repeats": 2, "epochs": 2}
TINY_SPLITS = TINY["folds"] * TINY["repeats"]
# the default search, shrunk: one block; with halving, two rungs ending at TINY's epochs
TINY_SEARCH = {"trials": 6, "rungs": [1, TINY["epochs"]]}


def tiny_params(params: dict) -> dict:
    params["cv"]["folds"] = TINY["folds"]
    params["cv"]["repeats"] = TINY["repeats"]
    for variant in params["variants"].values():
        variant["epochs"] = TINY["epochs"]
        if variant["model"]["kind"] == "lstm":
            variant["model"]["units"] = 4
    for search in params.get("searches", {}).values():
        search["trials"] = TINY_SEARCH["trials"]
        if search.get("halving"):
            search["halving"]["rungs"] = TINY_SEARCH["rungs"]
    return params


class Project:
    """The copy, and the commands a user would type in it."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env

    def run(self, *cmd: str, check: bool = True, env: dict | None = None):
        proc = subprocess.run(
            cmd, cwd=self.root, env={**self.env, **(env or {})}, capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                f"\n--- stderr\n{proc.stderr[-6000:]}"
            )
        return proc

    def dvc(self, *args: str, **kw):
        return self.run(str(BIN / "dvc"), *args, **kw)

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def metrics(self, variant: str) -> dict:
        return json.loads((self.root / "results" / variant / "metrics.json").read_text())

    @property
    def store(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Project:
    if not SHARED_SONAR.is_file():
        pytest.skip(f"no offline copy of the Sonar data at {SHARED_SONAR}")
    root = tmp_path_factory.mktemp("sonarlab") / "repo"
    shutil.copytree(ROOT, root, ignore=COPY_IGNORE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "SONAR_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        SONAR_SOURCE=str(SHARED_SONAR),
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid",
    )  # fmt: skip
    p = Project(root, env)
    p.write_params(tiny_params(p.params()))
    p.run("git", "init", "-q", "-b", "main")
    p.run("git", "add", "-A")
    p.run("git", "commit", "-q", "-m", "tiny copy of sonarlab")
    return p


@pytest.fixture(scope="session")
def reproduced(project: Project) -> tuple[Project, str]:
    """The copy after one full ``dvc repro``; its output."""
    out = project.dvc("repro")
    return project, out.stdout + out.stderr


@pytest.fixture
def scratch(reproduced, tmp_path) -> Project:
    """A copy of the reproduced project with an empty store, for running stages outside
    DVC without touching the outputs DVC owns in ``project``."""
    project, _ = reproduced
    root = tmp_path / "scratch"
    shutil.copytree(project.root, root, ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts"))
    return Project(root, project.env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(server: subprocess.Popen, uri: str, log: Path) -> Iterator[str]:
    """``uri``, once the tracking server ``server`` (started by the caller, its output in
    ``log``) answers its /health, within 120 s; the server is stopped by its pid after."""
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the tracking server never answered"
                time.sleep(0.5)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
