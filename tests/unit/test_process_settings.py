"""What every sonarlab process sets for itself, however it was launched: no telemetry,
XLA's instruction set capped, and a temporary folder of its own that goes with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sonarlab.cli import command

PRINT_ENV = (
    "import json, os, sonarlab; print(json.dumps({k: os.environ.get(k) for k in "
    "('MLFLOW_DISABLE_TELEMETRY', 'XLA_FLAGS')}))"
)


def settings_after_import(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", *env)}
    done = subprocess.run(
        [sys.executable, "-c", PRINT_ENV], env={**base, **env}, capture_output=True, text=True,
        check=True, timeout=60,
    )  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "--xla_cpu_max_isa=AVX2"),
        ("--xla_dump_to=/tmp/x", "--xla_dump_to=/tmp/x --xla_cpu_max_isa=AVX2"),
        ("--xla_cpu_max_isa=AVX512", "--xla_cpu_max_isa=AVX512"),  # yours wins
    ],
)
def test_importing_sonarlab_caps_xla_and_turns_telemetry_off(given, expected):
    env = {} if given is None else {"XLA_FLAGS": given}
    got = settings_after_import(**env)
    assert got["XLA_FLAGS"] == expected
    assert got["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert settings_after_import(MLFLOW_DISABLE_TELEMETRY="false")["MLFLOW_DISABLE_TELEMETRY"] == (
        "false"
    )


def test_a_command_works_in_a_temporary_folder_that_goes_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    seen = {}

    def body() -> None:
        seen["dir"] = Path(tempfile.gettempdir())
        (seen["dir"] / "__autograph_generated_file1234.py").write_text("x = 1\n")
        seen["env"] = os.environ["TMPDIR"]

    assert command.run("unit", body) == 0
    assert seen["dir"].parent == tmp_path and seen["env"] == str(seen["dir"])
    assert not seen["dir"].exists() and list(tmp_path.iterdir()) == []
    assert tempfile.gettempdir() == str(tmp_path) and os.environ["TMPDIR"] == str(tmp_path)


def test_a_bugs_traceback_outlives_the_commands_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def body() -> None:
        raise RuntimeError("a bug")

    assert command.run("unit", body) == 1
    (saved,) = tmp_path.glob("sonarlab-unit-*.txt")
    assert "RuntimeError: a bug" in saved.read_text()
