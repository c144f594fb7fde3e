"""Results travel through the DVC remote, and CI catches a stale dvc.lock.

A clone of the tiny project runs its pipeline, commits dvc.lock and pushes to the
default remote (in a home of its own); second clones, made with `git clone`, pull the
results without training. `scripts/check_lock.py` runs in fresh clones, without outputs,
as CI runs it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import BIN, Project, ran_stages

pytestmark = pytest.mark.integration

# The default remote's url in .dvc/config, under the home of whoever runs DVC.
STORAGE = Path(".local/share/sonarlab/dvc-storage")


def clone(source: Project, dest: Path, home: Path) -> Project:
    """``git clone`` of ``source`` run as a user whose home is ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    source.run("git", "clone", "-q", str(source.root), str(dest))
    return Project(dest, {**source.env, "HOME": str(home)})


def locked_outputs(project: Project) -> list[str]:
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())
    return sorted({out["path"] for stage in lock["stages"].values() for out in stage["outs"]})


def snapshot(project: Project) -> dict[str, bytes]:
    return {path: (project.root / path).read_bytes() for path in locked_outputs(project)}


def run_cache(project: Project) -> set[str]:
    runs = project.root / ".dvc" / "cache" / "runs"
    return {str(p.relative_to(runs)) for p in runs.rglob("*") if p.is_file()}


@dataclass
class Published:
    origin: Project  # the clone that ran the pipeline and pushed, at `new`
    old: str  # the commit with the first results
    new: str  # the commit after a param change (report.baseline) and its repro
    outputs: dict[str, dict[str, bytes]]  # per commit: every output's bytes
    metrics: dict[str, dict]  # per commit: `dvc metrics show --json`


def commit(project: Project, message: str) -> str:
    """Commit the work tree; a commit even when nothing changed: the outputs are
    byte-identical, so a clone of a commit whose lock is already current has nothing new."""
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "--allow-empty", "-m", message)
    return project.run("git", "rev-parse", "HEAD").stdout.strip()


@pytest.fixture(scope="module")
def published(reproduced, tmp_path_factory) -> Published:
    """A clone of the tiny project whose two commits' results are in its default remote.

    Its pipeline runs from the DVC cache of ``reproduced`` (copied, so that fixture stays
    as it is): every stage is restored from DVC's run-cache, as `dvc repro` does when
    the code, params and data are those of a run it has seen. Then one param change
    re-runs the report, and that commit is pushed too."""
    source, _ = reproduced
    tmp = tmp_path_factory.mktemp("share")
    origin = clone(source, tmp / "origin", tmp / "home-origin")
    shutil.copytree(source.root / ".dvc" / "cache", origin.root / ".dvc" / "cache")
    origin.dvc("repro")
    outputs, metrics = {}, {}

    def publish(message: str) -> str:
        rev = commit(origin, message)
        origin.dvc("push", "--run-cache")
        outputs[rev] = snapshot(origin)
        metrics[rev] = json.loads(origin.dvc("metrics", "show", "--json").stdout)
        return rev

    old = publish("results")
    params = origin.params()
    params["report"]["baseline"] = "visible"
    origin.write_params(params)
    assert ran_stages(origin.dvc("repro").stdout) == ["report"]
    new = publish("report against visible")
    return Published(origin, old, new, outputs, metrics)


def test_push_creates_the_default_remote_under_the_users_home(published):
    storage = Path(published.origin.env["HOME"]) / STORAGE
    assert published.origin.dvc("remote", "default").stdout.strip() == "storage"
    assert (storage / "files" / "md5").is_dir()
    assert (storage / "runs").is_dir()  # the run-cache went too
    # Everything a colleague needs is there: `dvc status -c` compares with the remote.
    assert (
        "Cache and remote 'storage' are in sync."
        in published.origin.dvc("status", "--cloud").stdout
    )


def test_a_fresh_clone_pulls_the_results_without_training(published, tmp_path):
    origin = published.origin
    mate = clone(origin, tmp_path / "mate", tmp_path / "home-mate")
    # Another user of the machine: the origin's folder, named in the clone's own config.
    storage = Path(origin.env["HOME"]) / STORAGE
    mate.dvc("remote", "modify", "--local", "storage", "url", str(storage))
    # nothing DVC caches is there yet (metrics.json is: cache: false, kept in git)
    assert not (mate.root / "results" / "hidden" / "model.keras").exists()
    assert (mate.root / "results" / "hidden" / "metrics.json").exists()

    pulled = mate.dvc("pull", "--run-cache")

    assert ran_stages(pulled.stdout + pulled.stderr) == []
    assert "Data and pipelines are up to date." in mate.dvc("status").stdout
    assert (
        json.loads(mate.dvc("metrics", "show", "--json").stdout)
        == (published.metrics[published.new])
    )
    assert snapshot(mate) == published.outputs[published.new]
    assert run_cache(mate) and run_cache(mate) <= run_cache(origin)
    repro = mate.dvc("repro")
    assert ran_stages(repro.stdout) == []
    assert not (mate.root / "mlflow.db").exists()  # no stage ran, nothing was logged


def test_an_old_commits_results_are_pulled_after_a_param_change(published, tmp_path):
    old, new = published.old, published.new
    assert (
        published.outputs[old]["reports/summary.md"]
        != (published.outputs[new]["reports/summary.md"])
    )
    mate = clone(published.origin, tmp_path / "mate", Path(published.origin.env["HOME"]))
    mate.run("git", "checkout", "-q", old)
    mate.dvc("pull")
    assert "Data and pipelines are up to date." in mate.dvc("status").stdout
    assert snapshot(mate) == published.outputs[old]

    mate.run("git", "checkout", "-q", "main")
    mate.dvc("pull")  # the new commit's outputs were not in this clone's cache
    assert snapshot(mate) == published.outputs[new]
    mate.run("git", "checkout", "-q", old)
    mate.dvc("checkout")  # both commits' outputs are in the cache now: no remote needed
    assert snapshot(mate) == published.outputs[old]
    assert not (mate.root / "mlflow.db").exists()


# --- scripts/check_lock.py, in fresh clones without outputs, as CI runs it ---------


def check_lock(project: Project):
    return project.run(str(BIN / "python"), "scripts/check_lock.py", check=False)


@pytest.fixture
def ci_clone(published, tmp_path) -> Project:
    """A fresh clone of the published commit: code, params and dvc.lock; no outputs."""
    project = clone(published.origin, tmp_path / "ci", tmp_path / "home-ci")
    assert not (project.root / "data" / "raw" / "sonar.csv").exists()
    return project


def stale(out: str) -> list[tuple[str, str]]:
    """(stage, problem) for every line naming a stale stage."""
    prefix = "stale dvc.lock: "
    return [
        tuple(line.removeprefix(prefix).split(": ", 1))
        for line in out.splitlines()
        if line.startswith(prefix)
    ]


def stages_depending_on(project: Project, path: str) -> set[str]:
    spec = yaml.safe_load((project.root / "dvc.yaml").read_text())["stages"]
    params = project.params()
    named = set()
    for name, stage in spec.items():
        body = stage.get("do", stage)
        if path in body.get("deps", []):
            keys = params[stage["foreach"][2:-1]] if "foreach" in stage else None
            named |= {f"{name}@{k}" for k in keys} if keys else {name}
    return named


def test_the_lock_check_passes_on_a_fresh_clone_in_one_line(ci_clone):
    result = check_lock(ci_clone)
    params = ci_clone.params()
    # fetch, standardize, report and the foreach stages
    n_stages = 3 + len(params["variants"]) + len(params["grids"]) + len(params["searches"])
    assert (result.returncode, result.stdout) == (
        0,
        f"dvc.lock describes the code and params of all {n_stages} stages of dvc.yaml\n",
    )


def test_the_lock_check_names_each_stage_a_changed_source_file_feeds(ci_clone):
    # grid and report list the folder src/sonarlab/results, cv@* its files one by one:
    # each stage's problem names the dep as its dvc.yaml lists it
    model = ci_clone.root / "src" / "sonarlab" / "results" / "stats.py"
    model.write_text(model.read_text() + "# edited\n")

    result = check_lock(ci_clone)

    assert result.returncode == 1
    found = dict(stale(result.stdout))
    by_folder = stages_depending_on(ci_clone, "src/sonarlab/results")
    by_file = stages_depending_on(ci_clone, "src/sonarlab/results/stats.py")
    assert by_folder and by_file  # both kinds are in the pipeline
    assert set(found) == by_folder | by_file
    for stage, problem in found.items():
        dep = "src/sonarlab/results" if stage in by_folder else "src/sonarlab/results/stats.py"
        assert problem.startswith(f"{dep}: changed ("), (stage, problem)
    assert "run `dvc repro`, then commit dvc.lock" in result.stdout.splitlines()[-1]


def test_the_lock_check_names_a_changed_param_and_the_stages_that_read_it(ci_clone):
    params = ci_clone.params()
    epochs = params["variants"]["hidden"]["epochs"]
    params["variants"]["hidden"]["epochs"] = epochs + 1
    ci_clone.write_params(params)

    result = check_lock(ci_clone)

    line = f"param variants.hidden.epochs: {epochs} in dvc.lock, {epochs + 1} now"
    assert result.returncode == 1
    assert sorted(stale(result.stdout)) == sorted(
        (stage, line) for stage in ["cv@hidden", "grid@hidden_dropout", "search@tutorial", "report"]
    )


def test_the_lock_check_finds_a_new_variant_missing_from_the_lock(ci_clone):
    params = ci_clone.params()
    params["variants"]["wide"] = {**params["variants"]["baseline"], "batch_size": 32}
    ci_clone.write_params(params)

    result = check_lock(ci_clone)

    assert result.returncode == 1
    assert sorted(stale(result.stdout)) == [
        ("cv@wide", "not in dvc.lock"),
        ("report", "param variants.wide: not in dvc.lock"),
    ]


def test_the_lock_check_compares_a_stages_inputs_with_the_outputs_the_lock_records(ci_clone):
    """A lock committed after re-running one stage alone: its consumers' entries still
    name its old outputs. Compared lock to lock, since a clone has no outputs."""
    path = ci_clone.root / "dvc.lock"
    lock = yaml.safe_load(path.read_text())
    for out in lock["stages"]["standardize"]["outs"]:
        if out["path"] == "data/prepared/folds.csv":
            old, out["md5"] = out["md5"], "0" * 32
    for out in lock["stages"]["cv@lstm"]["outs"]:
        if out["path"] == "results/lstm/metrics.json":
            out["md5"] = "1" * 32
    path.write_text(yaml.safe_dump(lock, sort_keys=False))

    found = stale(check_lock(ci_clone).stdout)

    readers = stages_depending_on(ci_clone, "data/prepared/folds.csv")
    expected = {
        (stage, f"data/prepared/folds.csv: {old} in this stage's lock entry, {'0' * 32} as "
         "stage standardize's output") for stage in readers
    }  # fmt: skip
    assert set(found) - {f for f in found if f[0] == "report"} == expected
    [(_, report)] = [f for f in found if f[0] == "report"]
    assert report.startswith("results: changed (")
