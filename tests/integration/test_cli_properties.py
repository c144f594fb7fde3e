"""Property-based: every CLI, driven as a real process with generated arguments and
environment values, either succeeds or fails with exactly one error line and a non-zero
exit; never a traceback, and never a file written outside the project.

What "one error line" means, strictly: stderr's lines are each either a log record in the
CLIs' format (``HH:MM:SS LEVEL message``), a record of MLflow's own logger, TensorFlow's
start-up notices, or argparse's one-line error (``<prog>: error: ... (see --help)``); and
exactly one of them is an error (an ``ERROR`` record or the argparse line) when the exit
code is non-zero, none when it is 0. An "unexpected error" line is a bug, so it fails too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, SHARED_SONAR

pytestmark = pytest.mark.integration

TIMEOUT = 120  # seconds per example: a stage that trains here trains one epoch on 2 folds
VARIANT, GRID = "baseline", "tiny"

OUR_RECORD = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ")
MLFLOW_RECORD = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING) ")
TF_NOTICE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\)|[IW]\d{4} ")
ARGPARSE_ERROR = re.compile(r"python -m sonarlab[\w.]*: error: .+ \(see --help\)")


def tiny_params(params: dict) -> dict:
    """One variant of one epoch, 2 folds x 1 repeat, a grid of two trials, and a fetch
    that never leaves the machine (port 9 refuses at once)."""
    params["fetch"] = {"urls": ["http://127.0.0.1:9/sonar.all-data"], "timeout_seconds": 2,
                       "retries": 0}  # fmt: skip
    params["cv"].update(folds=2, repeats=1)
    params["variants"] = {VARIANT: {**params["variants"][VARIANT], "epochs": 1}}
    params["grids"] = {GRID: {"variant": VARIANT, "axes": {"model.input_dropout": [0.0, 0.2]}}}
    params["report"]["baseline"] = VARIANT
    return params


class Tiny:
    """A tiny project (dvc.yaml, params.yaml, the data) alone in a folder of its own."""

    def __init__(self, parent: Path):
        self.parent, self.root = parent, parent / "repo"
        self.root.mkdir()
        shutil.copy(ROOT / "dvc.yaml", self.root)
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        (self.root / "params.yaml").write_text(yaml.safe_dump(tiny_params(params)))
        (self.root / "rows.csv").write_text("".join(SHARED_SONAR.read_text().splitlines(True)[:3]))
        (self.root / "tmp").mkdir()  # TMPDIR: where a bug's traceback would be saved
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "SONAR"))
        }
        env.pop("DASK_SCHEDULER_ADDRESS", None)
        self.env = {
            **env,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT / "src"),
            "TMPDIR": str(self.root / "tmp"),
            "SONAR_SOURCE": str(SHARED_SONAR),
            "MLFLOW_TRACKING_URI": f"sqlite:///{self.root / 'mlflow.db'}",
        }

    def outside(self) -> set[str]:
        """Everything in the project's parent folder but the project itself."""
        return {str(p) for p in self.parent.rglob("*") if self.root not in (p, *p.parents)}

    def run(self, module: str, argv: list[str], env: dict[str, str | None]) -> None:
        """Run ``python -m module *argv`` with ``env``'s changes (None: unset) and check
        the outcome's contract."""
        full = {**self.env, **env}
        full = {k: v for k, v in full.items() if v is not None}
        before = self.outside()
        proc = subprocess.run(
            [sys.executable, "-m", module, *argv], cwd=self.root, env=full,
            capture_output=True, text=True, errors="backslashreplace", timeout=TIMEOUT,
        )  # fmt: skip
        shown = f"python -m {module} {argv!r} env {env!r} -> exit {proc.returncode}"
        said = f"{shown}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        for stream in (proc.stdout, proc.stderr):
            assert "Traceback" not in stream, said
            assert "Exception ignored" not in stream, said
        assert "an unexpected error" not in proc.stderr, said
        lines = proc.stderr.splitlines()
        errors = []
        for line in lines:
            record = OUR_RECORD.match(line)
            if record:
                errors += [line] if record.group(1) == "ERROR" else []
            elif ARGPARSE_ERROR.fullmatch(line):
                errors.append(line)
                assert proc.returncode == 2, said
            else:
                assert MLFLOW_RECORD.match(line) or TF_NOTICE.match(line), f"{line!r}\n{said}"
        assert len(errors) == (proc.returncode != 0), said
        assert self.outside() == before, said


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Tiny:
    """The tiny project with its data fetched and split, and the variant trained: every
    entry point can succeed in it."""
    if not SHARED_SONAR.is_file():
        pytest.skip(f"no offline copy of the Sonar data at {SHARED_SONAR}")
    project = Tiny(tmp_path_factory.mktemp("cli"))
    project.run("sonarlab.stages.fetch", [], {})
    project.run("sonarlab.stages.standardize", [], {})
    project.run("sonarlab.stages.cv", [VARIANT], {})
    assert (project.root / "results" / VARIANT / "model.keras").is_file()
    return project


# --- what is generated ---------------------------------------------------------------------

# Text a shell could pass: no NUL, no lone surrogates; line breaks, RTL marks, emoji welcome.
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
HOSTILE = ["", " ", "../x", "../../escape", "a b", ";", "a;b", "a/b", "a\nb", "é", "\u202e",
           "x" * 5000, "-1", "-0", "nan", "NaN", "inf", "1e999", "99999999999999999999", "--",
           "-", "--set", "=", "$(touch pwned)", "`id`", "%s", "{}", "*"]  # fmt: skip
hostile = st.sampled_from(HOSTILE) | text
numbers = st.sampled_from(["0", "1", "2", "-1", "3.5", "nan", "1e999", "0x10", "", "x"])
SET_KEYS = ["cv.folds", "cv.repeats", "cv.seed", "cv.engine", "mlflow.experiment", "bogus",
            f"variants.{VARIANT}.epochs", f"variants.{VARIANT}.model.kind", "variants",
            "", "cv", "a..b", "../x", "cv.folds.x"]  # fmt: skip
SET_VALUES = ["2", "0", "-1", "nan", ".inf", "x", "[1, 2]", "{a: 1}", "", "null", "[",
              "!!python/object:os.system", ":", "'", "keras", "1e999"]  # fmt: skip


@st.composite
def overrides(draw) -> list[str]:
    key = draw(st.sampled_from(SET_KEYS) | text)
    value = draw(st.sampled_from(SET_VALUES) | text)
    return ["--set", draw(st.sampled_from([f"{key}={value}", key, f"={value}"]))]


def flags(options: dict) -> st.SearchStrategy[list[str]]:
    """Any of ``options`` (flag -> strategy of its value), in any order, any number of times,
    sometimes with its value missing."""
    if not options:
        return st.just([])
    one = st.sampled_from(sorted(options)).flatmap(
        lambda flag: st.one_of(options[flag].map(lambda v: [flag, v]), st.just([flag]))
    )
    return st.lists(one, max_size=3).map(lambda parts: [t for part in parts for t in part])


def argv(first: st.SearchStrategy[list[str]], options: dict) -> st.SearchStrategy[list[str]]:
    return st.tuples(first, flags(options), st.lists(hostile, max_size=1)).map(
        lambda t: [*t[0], *t[1], *t[2]]
    )


names = st.sampled_from([VARIANT, GRID]) | hostile
# Folders that must not exist are named inside the project (the code before these checks
# made an MLflow store in DVC_ROOT=/nonexistent, at the root of the file system).
ENV = {
    "SONARLAB_LOG_LEVEL": ["INFO", "debug", " warning ", "bogus", "", "CRITICAL", "10", "\n"],
    "SONAR_SOURCE": [str(SHARED_SONAR), "garbage", "", "/dev/null", "/", "../x", "a\nb",
                     "http://127.0.0.1:9/x", "file:///nonexistent", "x" * 5000],
    "MLFLOW_TRACKING_URI": [None, "garbage", "sqlite:///no/such/folder/x.db", "http://127.0.0.1:9",
                            ""],
    "MLFLOW_RUN_ID": ["garbage", "", "0" * 32],
    "DVC_ROOT": ["no/such/folder", "", "x\ny"],
    "DVC_STAGE": [f"cv@{VARIANT}", f"grid@{GRID}", "cv@../../escape", "cv@a;b", "garbage", ""],
    "DVC_EXP_NAME": ["exp", "x" * 6000, "a\nb", ""],
    "DASK_SCHEDULER_ADDRESS": ["garbage", "tcp://127.0.0.1:99999", "tcp://h", "x://y", ""],
}  # fmt: skip
ENV_NAMES = sorted(ENV)
# Any text too, but not for the variables that name a place to write (a store, a root):
# text such as ".." would name a real folder outside the project, and writing there is
# what the user asked for.
FREE_TEXT = {"SONARLAB_LOG_LEVEL", "SONAR_SOURCE", "MLFLOW_RUN_ID", "DVC_STAGE", "DVC_EXP_NAME",
             "DASK_SCHEDULER_ADDRESS"}  # fmt: skip


@st.composite
def environments(draw, max_size: int = 2) -> dict[str, str | None]:
    chosen = draw(st.lists(st.sampled_from(ENV_NAMES), max_size=max_size, unique=True))
    return {
        k: draw(st.sampled_from(ENV[k]) | (text if k in FREE_TEXT else st.nothing()))
        for k in chosen
    }


def budget(n: int):
    return settings(
        max_examples=n, deadline=None, database=None, derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )  # fmt: skip


# --- the entry points (MLproject's and dvc.yaml's commands, and predict) --------------------


@pytest.mark.parametrize("module", ["sonarlab.stages.fetch", "sonarlab.stages.standardize"])
@budget(10)
@given(args=st.lists(hostile, max_size=2) | st.just([]), env=environments())
@example(args=["--help"], env={})
@example(args=[], env={"SONARLAB_LOG_LEVEL": "bogus"})
@example(args=[], env={"DVC_ROOT": "no/such/folder"})
@example(args=["a b"], env={})
def test_a_stage_without_arguments(tiny, module, args, env):
    tiny.run(module, args, env)


@budget(10)
@given(
    args=argv(
        names.map(lambda n: [n]) | st.just([]),
        {"--epochs": numbers, "--folds": numbers},
    ),
    more=st.lists(overrides(), max_size=1),
    env=environments(),
)
@example(args=["../../escape"], more=[], env={})
@example(args=["a;b"], more=[], env={})
@example(args=["a/b"], more=[], env={})
@example(args=["a", "b"], more=[], env={})
@example(args=["a b"], more=[], env={})
@example(args=[VARIANT, "--epochs", "x"], more=[], env={})
@example(args=[VARIANT], more=[["--set", "cv.folds=["]], env={})
@example(args=[VARIANT], more=[], env={"SONARLAB_LOG_LEVEL": "bogus"})
@example(args=[VARIANT], more=[], env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
# MLflow's own failures (the stores' checks make these one line of their own)
@example(args=[VARIANT], more=[], env={"MLFLOW_TRACKING_URI": "garbage"})
@example(args=[VARIANT], more=[], env={"MLFLOW_RUN_ID": "garbage"})
def test_cv(tiny, args, more, env):
    tiny.run("sonarlab.stages.cv", [*args, *(t for o in more for t in o)], env)


@budget(6)
@given(args=argv(names.map(lambda n: [n]) | st.just([]), {}), env=environments())
@example(args=["../../escape"], env={})
@example(args=["a;b"], env={})
@example(args=[GRID], env={"DASK_SCHEDULER_ADDRESS": "garbage"})
@example(args=[GRID], env={"DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:99999"})
def test_grid(tiny, args, env):
    tiny.run("sonarlab.stages.grid", args, env)


@budget(4)
@given(args=st.lists(hostile, max_size=2), env=environments())
@example(args=[], env={"DVC_ROOT": "no/such/folder"})
@example(args=[], env={})
def test_report(tiny, args, env):
    tiny.run("sonarlab.stages.report", args, env)


outputs = st.sampled_from(["out.csv", "results", "sub/out.csv", "", "rows.csv/x", "tmp"])


@budget(20)
@given(
    args=argv(
        st.tuples(names, st.sampled_from(["rows.csv", "missing.csv", "params.yaml", "data"])
                  | hostile).map(list),
        {"--samples": numbers, "--seed": numbers, "--output": outputs},
    ),
    env=environments(),
)  # fmt: skip
@example(args=[VARIANT, "rows.csv"], env={})
@example(args=[VARIANT, "rows.csv", "--samples", "2", "--output", "out.csv"], env={})
@example(args=["../../escape", "rows.csv"], env={})
@example(args=[VARIANT, "rows.csv", "--samples", "-1"], env={})
def test_predict(tiny, args, env):
    tiny.run("sonarlab.predict", args, env)
