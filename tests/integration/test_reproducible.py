"""The pipeline is reproducible, byte for byte, and its bookkeeping lives in git.

A clone of the tiny project runs `dvc repro`, commits dvc.lock and the `cache: false`
outputs, then runs `dvc repro --force`: nothing DVC tracks may change. A fresh clone of
that commit, with no DVC cache and a store of its own, reproduces the same dvc.lock.
Clones with nothing pulled show and diff the metrics kept in git, and `dvc status`
names exactly the stages an edited source file feeds.
"""

from __future__ import annotations

import contextlib
import difflib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Project, ran_stages
from tests.integration.test_share import STORAGE, clone, commit, stages_depending_on

pytestmark = pytest.mark.integration


def git_status(project: Project) -> list[str]:
    out = project.run("git", "status", "--porcelain", "--untracked-files=all").stdout
    return out.splitlines()


def status_paths(lines: list[str]) -> set[str]:
    return {line[3:] for line in lines}


def uncached_outputs(project: Project) -> set[str]:
    """Every output dvc.yaml marks `cache: false` (kept in git, not in DVC's cache)."""
    spec = yaml.safe_load((project.root / "dvc.yaml").read_text())["stages"]
    params = project.params()
    found = set()
    for stage in spec.values():
        body = stage.get("do", stage)
        keys = list(params[stage["foreach"][2:-1]]) if "foreach" in stage else [None]
        for section in ("outs", "metrics", "plots"):
            for entry in body.get(section, []):
                if not isinstance(entry, dict):
                    continue
                ((path, options),) = entry.items()
                if (options or {}).get("cache", True) is False:
                    found |= {path.replace("${key}", k) if k else path for k in keys}
    return found


def locked_md5s(lock: bytes) -> dict[str, str | None]:
    stages = yaml.safe_load(lock)["stages"]
    return {out["path"]: out.get("md5") for s in stages.values() for out in s["outs"]}


def lock_difference(before: bytes, after: bytes) -> str:
    """Why two dvc.lock files differ: the outputs whose md5 changed, else the text diff."""
    old, new = locked_md5s(before), locked_md5s(after)
    changed = sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))
    if changed:
        return "outputs whose md5 differ: " + ", ".join(changed)
    diff = difflib.unified_diff(
        before.decode().splitlines(), after.decode().splitlines(), "first", "second", lineterm=""
    )
    return "dvc.lock differs outside the outputs' md5s:\n" + "\n".join(list(diff)[:60])


def fewer_arms(params: dict) -> dict:
    """The tiny params with two variants and one two-trial grid: every kind of stage,
    a third of the work (the pipeline runs three times here)."""
    params["variants"] = {k: params["variants"][k] for k in ("baseline", "hidden")}
    grid = params["grids"]["hidden_dropout"]
    params["grids"] = {"hidden_dropout": {**grid, "axes": {"model.hidden_dropout": [0.0, 0.2]}}}
    return params


@dataclass
class Runs:
    origin: Project  # ran the pipeline at `results`, --force, then at `more_epochs`
    results: str  # the commit of the first run's dvc.lock and `cache: false` outputs
    more_epochs: str  # the next commit: variants.baseline.epochs + 1, re-run
    first_status: list[str]  # `git status` after the first run, before the commit
    committed_status: list[str]  # ... right after that commit
    lock: bytes  # dvc.lock after the first run
    forced_lock: bytes  # dvc.lock after `dvc repro --force`
    forced_status: list[str]  # `git status` after `dvc repro --force`
    forced_ran: list[str]
    all_stages: list[str]
    mate: Project  # a fresh clone of `results`, its pipeline run from nothing
    mate_ran: list[str]


@pytest.fixture(scope="module")
def runs(project, tmp_path_factory) -> Runs:
    """One tiny pipeline, run in a clone of the session's tiny project (at its first
    commit: code and tiny params, no results), then with --force and, at once, in a
    fresh clone of the committed results (no DVC cache, nothing pulled, an MLflow store
    of its own); then once more after a param change. Shared by the checks below."""
    tmp = tmp_path_factory.mktemp("reproducible")
    origin = clone(project, tmp / "origin", tmp / "home-origin")
    root = origin.run("git", "rev-list", "--max-parents=0", "HEAD").stdout.split()[0]
    origin.run("git", "reset", "-q", "--hard", root)
    origin.write_params(fewer_arms(origin.params()))
    commit(origin, "two variants, one grid")

    first = origin.dvc("repro")
    all_stages = ran_stages(first.stdout)
    lock = (origin.root / "dvc.lock").read_bytes()
    first_status = git_status(origin)
    origin.run("git", "add", "--", *sorted(status_paths(first_status)))
    origin.run("git", "commit", "-q", "-m", "tiny results")
    results = origin.run("git", "rev-parse", "HEAD").stdout.strip()
    committed_status = git_status(origin)

    mate = clone(origin, tmp / "mate", tmp / "home-mate")
    assert not (mate.root / ".dvc" / "cache").exists()
    with ThreadPoolExecutor(2) as pool:
        mate_repro = pool.submit(mate.dvc, "repro")
        forced = origin.dvc("repro", "--force")
        mate_ran = ran_stages(mate_repro.result().stdout)
    forced_lock = (origin.root / "dvc.lock").read_bytes()
    forced_status = git_status(origin)

    params = origin.params()
    params["variants"]["baseline"]["epochs"] += 1
    origin.write_params(params)
    origin.dvc("repro")
    more_epochs = commit(origin, "baseline: one more epoch")
    return Runs(
        origin, results, more_epochs, first_status, committed_status,
        lock, forced_lock, forced_status, ran_stages(forced.stdout), all_stages, mate, mate_ran,
    )  # fmt: skip


# --- 1. the same commit, run again with --force: every tracked byte the same ---------


def test_first_run_leaves_only_the_lock_gitignores_and_uncached_outputs(runs):
    changed = status_paths(runs.first_status)
    ignores = {p for p in changed if p.endswith(".gitignore")}
    assert changed - ignores == {"dvc.lock", *uncached_outputs(runs.origin)}, runs.first_status
    assert runs.committed_status == []


def test_forced_repro_rewrites_a_byte_identical_lock(runs):
    assert sorted(runs.forced_ran) == sorted(runs.all_stages)  # all ran, none restored
    assert runs.forced_lock == runs.lock, lock_difference(runs.lock, runs.forced_lock)


def test_forced_repro_leaves_git_clean(runs):
    assert runs.forced_status == [], (
        f"git status after `dvc repro --force`: {runs.forced_status}; "
        + lock_difference(runs.lock, runs.forced_lock)
    )


# --- 2. a fresh clone reproduces the same lock ---------------------------------------


def test_a_fresh_clone_reproduces_the_lock_byte_for_byte(runs):
    mate = runs.mate
    assert mate.run("git", "rev-parse", "HEAD").stdout.strip() == runs.results
    assert sorted(runs.mate_ran) == sorted(runs.all_stages)  # all ran, none restored
    assert (mate.root / "mlflow.db").is_file() and mate.store != runs.origin.store
    lock = (mate.root / "dvc.lock").read_bytes()
    assert lock == runs.lock, lock_difference(runs.lock, lock)
    assert "Data and pipelines are up to date." in mate.dvc("status").stdout
    status = git_status(mate)
    assert status == [], f"git status in the clone: {status}; " + lock_difference(runs.lock, lock)


# --- 3. metrics from git alone --------------------------------------------------------


@pytest.fixture
def bare_clone(runs, tmp_path) -> Project:
    """A clone of the latest commit with nothing pulled: no outputs, no DVC cache."""
    mate = clone(runs.origin, tmp_path / "bare", tmp_path / "home-bare")
    assert not (mate.root / "results" / "baseline" / "model.keras").exists()
    return mate


def assert_nothing_fetched(project: Project) -> None:
    assert not (project.root / ".dvc" / "cache").exists()
    assert not (Path(project.env["HOME"]) / STORAGE).exists()
    assert not (project.root / "results" / "baseline" / "model.keras").exists()


def test_metrics_show_works_in_a_clone_with_nothing_pulled(runs, bare_clone):
    shown = json.loads(bare_clone.dvc("metrics", "show", "--json").stdout)
    assert shown == json.loads(runs.origin.dvc("metrics", "show", "--json").stdout)
    files = shown[""]["data"]
    metrics = {p for p in uncached_outputs(bare_clone) if p.endswith("metrics.json")}
    assert set(files) == metrics
    for path, f in files.items():  # a variant's summary, or a grid's trials and reference
        assert "error" not in f, path
        data = f["data"]
        assert (
            data["reference"]["brier_mean"] > 0 if "n_trials" in data else data["accuracy_mean"] > 0
        )
    table = bare_clone.dvc("metrics", "show").stdout
    assert all(path in table for path in metrics)
    assert_nothing_fetched(bare_clone)


def test_metrics_diff_against_the_previous_commit_works_with_nothing_pulled(runs, bare_clone):
    assert bare_clone.run("git", "rev-parse", "HEAD~1").stdout.strip() == runs.results
    diff = json.loads(bare_clone.dvc("metrics", "diff", "HEAD~1", "--json").stdout)
    baseline = diff["results/baseline/metrics.json"]
    numbers = {k: v for k, v in baseline.items() if v["old"] != v["new"]}
    assert numbers and all(
        isinstance(v["old"], float) and isinstance(v["new"], float) for v in numbers.values()
    ), baseline
    table = bare_clone.dvc("metrics", "diff", "HEAD~1").stdout
    assert "results/baseline/metrics.json" in table and "accuracy_mean" in table
    assert_nothing_fetched(bare_clone)


# --- 4. dvc status names exactly the stages an edit feeds ------------------------------


@contextlib.contextmanager
def edited(project: Project, path: str) -> Iterator[None]:
    """``path`` with a comment line appended, for the duration; then as it was."""
    file = project.root / path
    text = file.read_text()
    file.write_text(text + "# edited\n")
    try:
        yield
    finally:
        file.write_text(text)


def stale(project: Project) -> dict:
    return json.loads(project.dvc("status", "--json").stdout)


def test_the_pipeline_is_up_to_date_before_any_edit(runs):
    assert stale(runs.origin) == {}


def test_an_edit_to_the_report_code_makes_only_the_report_stale(runs):
    with edited(runs.origin, "src/sonarlab/report/page.py"):
        found = stale(runs.origin)
    assert found == {"report": [{"changed deps": {"src/sonarlab/report": "modified"}}]}


def test_an_edit_to_the_tracking_code_makes_nothing_stale(runs):
    with edited(runs.origin, "src/sonarlab/tracking/runs.py"):
        assert stale(runs.origin) == {}


def test_an_edit_to_the_grid_design_leaves_data_and_cv_fresh(runs):
    with edited(runs.origin, "src/sonarlab/design/grids.py"):
        found = set(stale(runs.origin))
    assert not {s for s in found if s in ("fetch", "standardize") or s.startswith("cv@")}
    readers = stages_depending_on(runs.origin, "src/sonarlab/design") | stages_depending_on(
        runs.origin, "src/sonarlab/design/grids.py"
    )  # the folder (search@*, report) or the file (grid@*)
    assert found == readers and "report" in readers, found
    assert {"grid@hidden_dropout", "search@tutorial"} <= readers
