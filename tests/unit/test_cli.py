"""The CLIs' shared parts: a bad argument or environment value is one line and a known exit
code; a bug is one line naming where its traceback was saved."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sonarlab.cli.command import CliParser, log_level, one_line, run
from sonarlab.core.params import ConfigError, apply_overrides
from sonarlab.core.paths import store_root
from sonarlab.grid import cluster
from sonarlab.predict import main as predict_main
from sonarlab.stages import cv, fetch, grid, report, search, standardize

ENTRY_POINTS = {
    "python -m sonarlab.stages.fetch": fetch.main,
    "python -m sonarlab.stages.standardize": standardize.main,
    "python -m sonarlab.stages.cv": cv.main,
    "python -m sonarlab.stages.grid": grid.main,
    "python -m sonarlab.stages.search": search.main,
    "python -m sonarlab.stages.report": report.main,
    "python -m sonarlab.predict": predict_main,
}


@pytest.mark.parametrize(
    "text, shown",
    [("plain", "plain"), ("a\nb", "a\\nb"), ("a\r\x1b[2Jb", "a\\r\\x1b[2Jb"),
     ("é ü", "é ü"), ("x\u2028y", "x\\u2028y"), ("tab\t", "tab\\t")],
)  # fmt: skip
def test_one_line_escapes_every_line_break_and_control_character(text, shown):
    assert one_line(text) == shown


@pytest.mark.parametrize("prog, main", ENTRY_POINTS.items())
@pytest.mark.parametrize(
    "argv", [["--bogus"], ["a\nb", "c", "d", "e"], ["--epochs"], ["--samples", "x", "y", "z"]]
)
def test_every_entry_point_refuses_a_bad_argument_in_one_line(prog, main, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.endswith(" (see --help)\n")
    assert err.startswith(f"{prog}: error: ")


@pytest.mark.parametrize("prog, main", ENTRY_POINTS.items())
def test_every_entry_point_still_has_its_help(prog, main, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    out, _ = capsys.readouterr()
    assert stop.value.code == 0
    assert out.startswith(f"usage: {prog}") and out.count("\n") > 3


def test_the_parser_names_the_argument_and_the_value(capsys):
    parser = CliParser(prog="p")
    parser.add_argument("--epochs", type=int)
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "x\ny"])
    assert capsys.readouterr().err == (
        "p: error: argument --epochs: invalid int value: 'x\\ny' (see --help)\n"
    )


@pytest.mark.parametrize(
    "value, level",
    [
        (None, "INFO"),
        ("", "INFO"),
        ("debug", "DEBUG"),
        (" Warning ", "WARNING"),
        ("ERROR", "ERROR"),
    ],
)
def test_log_level_takes_any_case(value, level):
    env = {} if value is None else {"SONARLAB_LOG_LEVEL": value}
    assert log_level(env) == level


@pytest.mark.parametrize("value", ["bogus", "CRITICAL", "10", "IN\nFO"])
def test_a_bad_log_level_is_a_config_error_naming_the_variable(value):
    with pytest.raises(ConfigError, match=r"^SONARLAB_LOG_LEVEL: got .*; allowed: DEBUG, INFO"):
        log_level({"SONARLAB_LOG_LEVEL": value})


def test_run_reports_a_bad_log_level_in_one_line_without_running(monkeypatch, caplog):
    monkeypatch.setenv("SONARLAB_LOG_LEVEL", "bogus")
    ran = []
    assert run("fetch", lambda: ran.append(1)) == 2
    assert ran == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "fetch: invalid parameter: SONARLAB_LOG_LEVEL: got 'bogus'; "
        "allowed: DEBUG, INFO, WARNING, ERROR (any case)"
    ]


def test_a_bug_is_one_line_and_its_traceback_is_saved(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR

    def bug() -> None:
        {}["missing"]

    assert run("cv@x", bug) == 1
    (message,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert message.startswith(
        "cv@x: an unexpected error: KeyError: 'missing'; the traceback is in "
    )
    saved = Path(message.split("the traceback is in ")[1].split(" ")[0])
    assert saved.parent == tmp_path
    assert "Traceback (most recent call last)" in saved.read_text()
    assert "bug" in saved.read_text()


def test_a_file_not_found_without_a_file_name_says_its_message(caplog):
    def outside() -> None:
        raise FileNotFoundError("no dvc.yaml in / or above: run sonarlab from inside the project")

    assert run("fetch", outside) == 1
    (message,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert message == "fetch: no dvc.yaml in / or above: run sonarlab from inside the project"


def test_dvc_root_must_be_an_existing_folder(tmp_path):
    assert store_root(tmp_path, {"DVC_ROOT": str(tmp_path)}) == tmp_path.resolve()
    assert store_root(tmp_path, {"DVC_ROOT": ""}) == tmp_path
    missing = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"^DVC_ROOT: got '.*missing'; allowed: an existing"):
        store_root(tmp_path, {"DVC_ROOT": missing})
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^DVC_ROOT: "):
        store_root(tmp_path, {"DVC_ROOT": str(tmp_path / "file")})


@pytest.mark.parametrize(
    "address, problem",
    [("garbage", "missing port"), ("tcp://h", "missing port"), ("x://y", "unknown address scheme"),
     ("tcp://127.0.0.1:99999", "out of range"), ("tcp://h:abc", "invalid literal")],
)  # fmt: skip
def test_a_malformed_dask_address_is_a_config_error(address, problem):
    import dask.config

    refused = pytest.raises(ConfigError, match=rf"^DASK_SCHEDULER_ADDRESS: got .*{problem}")
    with dask.config.set({"scheduler-address": address}), refused:
        cluster.scheduler_address()


def test_a_dask_address_is_taken_as_given():
    import dask.config

    with dask.config.set({"scheduler-address": "tcp://127.0.0.1:8786"}):
        assert cluster.scheduler_address() == "tcp://127.0.0.1:8786"
    with dask.config.set({"scheduler-address": None}):
        assert cluster.scheduler_address() is None


@pytest.mark.parametrize("raw", ["[", "{a: 1", "!!python/object:os.system", "'", "a: b: c"])
def test_an_override_that_is_not_yaml_is_a_config_error(raw):
    with pytest.raises(ConfigError, match=r"^override cv\.folds: .* is not a YAML value"):
        apply_overrides({"cv": {"folds": 10}}, [f"cv.folds={raw}"])
