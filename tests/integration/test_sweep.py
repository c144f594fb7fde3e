"""The dropout sweep end to end: real ``dvc exp run --queue`` and ``dvc queue start -j 4``.

Four experiments run at once against one new SQLite store, so this is also the
parallel-writers test with DVC's own queue: every run and metric must be there.
"""

from __future__ import annotations

import csv
import shutil

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.conftest import BIN, TINY_SPLITS, Project

pytestmark = pytest.mark.integration

KEYS = ["variants.visible.model.input_dropout", "variants.hidden.model.hidden_dropout"]
RATES = [0.0, 0.5]


@pytest.fixture(scope="module")
def swept(reproduced, tmp_path_factory) -> tuple[Project, str]:
    project, _ = reproduced
    root = tmp_path_factory.mktemp("sweep") / "repo"
    # the git history and the DVC cache come along; the store starts empty
    shutil.copytree(
        project.root, root, ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts", "tmp")
    )
    p = Project(root, project.env)
    p.run("git", "add", "-A")
    p.run("git", "commit", "-q", "--allow-empty", "-m", "before the sweep")
    out = p.run(
        str(BIN / "python"), "-m", "sonarlab.sweep", "run", "--jobs", "4",
        "--rates", ",".join(map(str, RATES)), *KEYS,
    )  # fmt: skip
    return p, out.stderr


def test_sweep_summary_has_every_rate_of_both_variants(swept):
    project, log = swept
    assert "sweep: 4/4 experiments done" in log
    with open(project.root / "reports" / "sweep" / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    for key in KEYS:
        rates = {float(r["rate"]) for r in rows if r["key"] == key}
        assert set(RATES) <= rates, (key, rates)
    for r in rows:
        assert float(r["accuracy_ci_low"]) <= float(r["accuracy_mean"])
        assert float(r["accuracy_mean"]) <= float(r["accuracy_ci_high"])
    assert (project.root / "reports/sweep/sweep.png").read_bytes().startswith(b"\x89PNG")
    summary = (project.root / "reports" / "sweep" / "sweep.md").read_text()
    assert all(f"## {key}" in summary for key in KEYS)


def test_every_queued_experiment_logged_into_the_repo_root_store(swept):
    project, _ = swept
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    assert all(
        r.info.artifact_uri.startswith((project.root / "mlartifacts").as_uri()) for r in runs
    )
    top = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    cv = [r for r in top if r.data.tags["dvc.stage"].startswith("cv@")]
    report = [r for r in top if r.data.tags["dvc.stage"] == "report"]
    # each experiment ran exactly its changed variant and the report
    assert sorted(r.info.run_name for r in cv) == ["hidden", "hidden", "visible", "visible"]
    assert len(report) == 4
    names = {r.data.tags.get("dvc.exp_name") for r in cv}
    assert len(names) == 4 and None not in names
    assert {r.data.tags["dvc.exp_name"] for r in report} == names
    with open(project.root / "reports" / "sweep" / "sweep.csv") as fh:
        summary = {(r["variant"], float(r["rate"])): r for r in csv.DictReader(fh)}
    for run in cv:
        folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run.info.run_id]
        assert len(folds) == TINY_SPLITS
        assert all({"accuracy", "roc_auc", "log_loss"} <= set(f.data.metrics) for f in folds)
        key = next(k for k in KEYS if k.split(".")[1] == run.info.run_name)
        rate = float(run.data.params[f"variant.{key.split('.', 2)[2]}"])
        assert rate in RATES
        point = summary[(run.info.run_name, rate)]  # the summary shows this very run
        assert float(point["accuracy_mean"]) == pytest.approx(run.data.metrics["accuracy_mean"])
        assert point["experiment"] == run.data.tags["dvc.exp_name"]
