"""The fetch stage's CLI in a scratch workspace: what a user sees when it works and when not."""

import logging
import shutil
import socket

import pytest
import yaml

from sonarlab.data import uci
from sonarlab.stages import fetch
from tests.conftest import ROOT


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    shutil.copy(ROOT / "dvc.yaml", tmp_path)
    port = closed_port()
    params = {"fetch": {"urls": [f"http://127.0.0.1:{port}/sonar.zip"], "timeout_seconds": 2,
                        "retries": 1}}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    return tmp_path


def test_local_mirror_via_sonar_source(workspace, shared_sonar, monkeypatch):
    monkeypatch.setenv("SONAR_SOURCE", str(shared_sonar))
    assert fetch.main([]) == 0
    written = workspace / "data" / "raw" / "sonar.csv"
    assert uci.fingerprint(uci.read_local(written)) == uci.FINGERPRINT


def test_no_network_and_no_source_fails_with_one_line_saying_what_to_do(
    workspace, monkeypatch, caplog
):
    monkeypatch.delenv("SONAR_SOURCE", raising=False)
    with caplog.at_level(logging.ERROR):
        assert fetch.main([]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "could not get the Sonar data" in errors[0] and "SONAR_SOURCE" in errors[0]
    assert not (workspace / "data").exists()


def test_bad_copy_leaves_nothing_behind(workspace, tmp_path, monkeypatch, caplog):
    bad = tmp_path / "bad.csv"
    bad.write_text("<html>404</html>")
    monkeypatch.setenv("SONAR_SOURCE", str(bad))
    assert fetch.main([]) == 1
    assert "HTML" in caplog.text
    assert not (workspace / "data" / "raw" / "sonar.csv").exists()
