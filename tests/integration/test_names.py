"""Names that become paths or words of commands, hostile ones included, through `dvc repro`
and through every CLI that takes one: one line naming the key, nothing run in a shell,
nothing written outside the project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import BIN, Project

pytestmark = pytest.mark.integration

HOSTILE = ["../../escape", "a;touch pwned", "$(touch pwned)", "a'b", "a/b", "a b"]


def listing(folder: Path) -> set[str]:
    """Every path under ``folder`` (relative), what a stray write would change."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def copy(reproduced, tmp_path) -> Project:
    """The reproduced tiny project, copied into a folder of its own inside ``tmp_path``:
    the test watches everything in ``tmp_path`` outside the copy."""
    project, _ = reproduced
    root = tmp_path / "outer" / "repo"
    shutil.copytree(project.root, root, symlinks=True)
    return Project(root, project.env)


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if " ERROR " in ln]


def dvc_error_lines(stderr: str) -> list[str]:
    """The stage's error lines, or DVC's when it refuses before running the stage; not
    DVC's closing "failed to reproduce ... exited with 2", which repeats the stage's."""
    return error_lines(stderr) or [ln for ln in stderr.splitlines() if ln.startswith("ERROR:")]


@pytest.mark.parametrize("name", [*HOSTILE, "grid"])  # results/grid holds the grids
def test_a_hostile_variant_name_through_dvc_repro(copy, tmp_path, name):
    params = copy.params()
    params["variants"][name] = params["variants"]["baseline"]
    copy.write_params(params)
    before, results = listing(tmp_path), listing(copy.root / "results")
    proc = copy.dvc("repro", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    # the stage stops on the name with one line naming the key (or DVC refuses first:
    # a dotted key such as ``variants.../../escape`` is not a parameter it can find)
    (line,) = dvc_error_lines(proc.stderr)
    assert (f"variants.{name}: got {name!r}; allowed: a plain identifier" in line
            or f"Parameters 'variants.{name}' are missing" in line), line  # fmt: skip
    assert not any(p.name == "pwned" for p in tmp_path.rglob("*"))  # no shell ran it
    assert {p for p in listing(tmp_path) - before if not p.startswith("outer/repo/")} == set()
    assert listing(copy.root / "results") == results


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_grid_name_through_dvc_repro(copy, tmp_path, name):
    params = copy.params()
    params["grids"][name] = params["grids"]["hidden_dropout"]
    copy.write_params(params)
    before = listing(tmp_path)
    proc = copy.dvc("repro", check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    (line,) = dvc_error_lines(proc.stderr)
    assert (f"grids.{name}: got {name!r}; allowed: a plain identifier" in line
            or f"Parameters 'grids.{name}' are missing" in line), line  # fmt: skip
    assert not any(p.name == "pwned" for p in tmp_path.rglob("*"))
    assert {p for p in listing(tmp_path) - before if not p.startswith("outer/repo/")} == set()


@pytest.mark.parametrize(
    ("module", "argv", "key"),
    [
        ("sonarlab.stages.cv", ["{name}"], "variant"),
        ("sonarlab.stages.grid", ["{name}"], "grid"),
        ("sonarlab.predict", ["{name}", "data/raw/sonar.csv"], "variant"),
    ],
)
# (the property-based CLI test drives more names through these entry points)
@pytest.mark.parametrize("name", ["../../escape", "a;touch pwned", "a\nb", ""])
def test_a_hostile_name_on_the_command_line(copy, tmp_path, module, argv, key, name):
    before = listing(tmp_path)
    proc = copy.run(
        str(BIN / "python"), "-m", module, *(a.format(name=name) for a in argv), check=False
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    (line,) = error_lines(proc.stderr)
    assert f"{key}: got {name!r}" in line
    assert listing(tmp_path) == before  # nothing written anywhere, the project included


def test_under_dvc_the_name_comes_from_the_stage(copy):
    """`dvc.yaml`'s commands carry no name; without DVC_STAGE or an argument the stage
    says what it needs (the project's environment has no DVC_ variables)."""
    proc = copy.run(str(BIN / "python"), "-m", "sonarlab.stages.cv", check=False)
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert "variant: none given" in line
    proc = copy.run(str(BIN / "python"), "-m", "sonarlab.stages.grid", check=False,
                    env={"DVC_STAGE": "cv@baseline"})  # fmt: skip
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert "grid: none given" in line
