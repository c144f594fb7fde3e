"""End to end on a tiny copy: real ``dvc``, a real MLflow SQLite store, real data copy."""

from __future__ import annotations

import base64
import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from sonarlab.data import uci
from sonarlab.results import tables
from sonarlab.results.metrics import CURVE_KEYS
from sonarlab.results.predictions import split_scores
from tests.conftest import SHARED_SONAR
from tests.integration.conftest import BIN, TINY, TINY_SPLITS, ran_stages
from tests.unit.test_evaluation import EVALUATE_ARTIFACTS

pytestmark = pytest.mark.integration

VARIANTS = ["baseline", "visible", "hidden", "lstm", "lr_decay"]
GRIDS = ["input_dropout", "hidden_dropout"]
SEARCHES = ["tutorial"]
SEARCH_FIGURES = ("history", "importance", "slices")


def parent_runs(client: MlflowClient, experiment_id: str):
    """The cv stages' top-level runs (not their folds, not the report's or a grid's run),
    newest first."""
    runs = client.search_runs([experiment_id], max_results=1000)
    return [
        r
        for r in runs
        if "mlflow.parentRunId" not in r.data.tags
        and r.data.tags.get("dvc.stage", "").startswith("cv@")
    ]


def children(client: MlflowClient, run) -> list:
    """Runs whose parent is ``run``: in its experiment (stages under `mlflow run`) and
    in ``<experiment>-folds`` (a cv stage's folds)."""
    exp = client.get_experiment(run.info.experiment_id)
    folds = client.get_experiment_by_name(f"{exp.name}-folds")
    ids = [exp.experiment_id, *([folds.experiment_id] if folds else [])]
    return client.search_runs(ids, f"tags.mlflow.parentRunId = '{run.info.run_id}'")


def test_repro_runs_every_stage_once_in_dependency_order(reproduced):
    project, out = reproduced
    ran = ran_stages(out)
    assert ran[:2] == ["fetch", "standardize"] and ran[-1] == "report"
    assert sorted(ran[2:-1]) == sorted([*(f"cv@{v}" for v in VARIANTS),
                                        *(f"grid@{g}" for g in GRIDS),
                                        *(f"search@{s}" for s in SEARCHES)])  # fmt: skip
    raw = project.root / "data" / "raw" / "sonar.csv"
    assert uci.fingerprint(uci.read_local(raw)) == uci.FINGERPRINT


def test_dag_and_metrics_show_every_variant(reproduced):
    project, _ = reproduced
    dag = project.dvc("dag").stdout
    stages = ["fetch", "standardize", "report", *(f"cv@{v}" for v in VARIANTS)]
    for stage in [*stages, *(f"grid@{g}" for g in GRIDS), *(f"search@{s}" for s in SEARCHES)]:
        assert stage in dag
    shown = json.loads(project.dvc("metrics", "show", "--json").stdout)
    per_file = shown[""]["data"]
    for v in VARIANTS:
        m = per_file[f"results/{v}/metrics.json"]["data"]
        assert 0.0 <= m["accuracy_std"] < m["accuracy_mean"] <= 1.0
        assert m["n_folds"] == TINY_SPLITS
        assert m["accuracy_ci_low"] <= m["accuracy_mean"] <= m["accuracy_ci_high"]


def test_generated_files_are_owned_by_dvc_not_git(reproduced):
    """DVC caches the data, the models and the per-split tables (git ignores them); the
    metrics and small plot data are ``cache: false``, for git to keep beside dvc.lock."""
    project, _ = reproduced
    cached = [
        "data/raw/sonar.csv",
        "data/prepared/folds.csv",
        "reports/summary.md",
        *(f"results/{v}/{f}" for v in VARIANTS
          for f in ("model.keras", "folds.csv", "predictions.csv")),
        *(f"results/search/{n}/{f}" for n in SEARCHES
          for f in ("study.journal", "splits.csv", "predictions.csv", "history.png")),
    ]  # fmt: skip
    kept = [
        "reports/fold_accuracy.csv",
        *(f"results/{v}/{f}" for v in VARIANTS for f in ("metrics.json", "curves.csv")),
        *(f"results/grid/{g}/{f}" for g in GRIDS for f in ("metrics.json", "trials.csv")),
        *(f"results/search/{n}/{f}" for n in SEARCHES for f in ("metrics.json", "trials.csv")),
    ]
    for path in cached + kept:
        assert (project.root / path).is_file(), path
        ignored = project.run("git", "check-ignore", "-q", path, check=False).returncode == 0
        assert ignored == (path in cached), path
    status = project.run("git", "status", "--porcelain", "--untracked-files=all").stdout
    # Only DVC's bookkeeping changes (the lock file and the .gitignore files it writes),
    # and the outputs git is to keep appear.
    assert all(ln.endswith(("dvc.lock", ".gitignore")) or ln[3:] in kept
               for ln in status.splitlines()), status  # fmt: skip


MC_KEYS = {
    "mc_dropout_seconds",
    *(f"mc_{m}_mean" for m in ("accuracy", "log_loss", "brier", "roc_auc")),
    *(f"mc_delta_{m}{part}" for m in ("accuracy", "log_loss", "brier", "roc_auc")
      for part in ("", "_ci_low", "_ci_high", "_p")),
}  # fmt: skip


def test_predictions_hold_every_held_out_row_and_mc_dropout_where_there_is_dropout(reproduced):
    project, _ = reproduced
    for v in VARIANTS:
        table = tables.PREDICTIONS.read(project.root / "results" / v / "predictions.csv")
        assert len(table) == 208 * TINY["repeats"], v
        assert table["p_mc"].isna().all() == (v == "baseline"), v
        # its standard pass gives folds.csv's scores (folds.csv keeps 6 digits)
        folds = tables.FOLDS.read(project.root / "results" / v / "folds.csv")
        scores = split_scores(table.assign(p=table["p"].to_numpy(np.float32).astype(float)))
        for m in ("accuracy", "roc_auc", "log_loss", "brier"):
            np.testing.assert_allclose(scores[m], folds[m], rtol=1e-5, err_msg=f"{v} {m}")


REPORT_FIGURES = ["fold_accuracy.png", "differences.png", "overfitting.png", "reliability.png"]
# the sections the report must show (issue: conclusions you can trust)
REPORT_SECTIONS = [
    "## Variants", "## Selection: the one rule",
    "## What was chosen: naive and bias-corrected estimates", "## Model to serve",
    "## Calibration", "## MC dropout against the standard pass", "## Grid studies",
]  # fmt: skip


def fold_accuracy(project, variant: str) -> np.ndarray:
    with open(project.root / "results" / variant / "folds.csv") as fh:
        return np.array([float(row["accuracy"]) for row in csv.DictReader(fh)])


def test_report_puts_the_tutorial_beside_our_numbers(reproduced):
    project, _ = reproduced
    summary = (project.root / "reports" / "summary.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in summary.splitlines() if line.startswith("|")]  # fmt: skip
    for v in VARIANTS:
        assert [v] in [r[:1] for r in rows]
    assert "86.04% (4.58%)" in summary and "83.52% (7.68%)" in summary
    # the tiny copy's settings are not the tutorial's: shown, but not compared
    assert "Not compared with the tutorial, as their settings differ: baseline (" in summary
    assert "epochs 2 (tutorial 300)" in summary
    assert "Every published accuracy" not in summary
    m = project.metrics("hidden")
    assert f"{100 * m['accuracy_mean']:.2f}% ({100 * m['accuracy_std']:.2f}%)" in summary
    assert f"[{100 * m['accuracy_ci_low']:.2f}%, {100 * m['accuracy_ci_high']:.2f}%]" in summary
    assert f"{TINY_SPLITS} ({TINY['repeats']} × {TINY['folds']})" in summary
    # the paired difference, computed here from the two folds.csv files
    delta = (fold_accuracy(project, "visible") - fold_accuracy(project, "baseline")).mean()
    assert f"visible vs baseline: accuracy {100 * delta:+.2f} pp" in summary
    for name in REPORT_FIGURES:
        assert (project.root / "reports" / name).read_bytes().startswith(b"\x89PNG"), name
        assert f"]({name})" in summary
    for heading in REPORT_SECTIONS:
        assert f"\n{heading}\n" in summary, heading
    assert "| no-skill (reference) |" in summary
    assert "Expected calibration error (pooled out-of-fold predictions" in summary
    # MC dropout is measured for every variant with dropout, and only for those
    for v in ("visible", "hidden", "lstm", "lr_decay"):
        assert f"{v}, MC dropout (" in summary
    assert "baseline, MC dropout" not in summary
    # every choice shows its naive and its bias-corrected estimate
    chosen = [ln for ln in summary.splitlines()
              if ln.startswith(("| variants", "| grid ", "| search "))]  # fmt: skip
    assert len(chosen) == 1 + len(GRIDS) + len(SEARCHES), chosen
    for name in SEARCHES:  # each search's sentence and its figures
        assert f"Search {name} (" in summary
        for figure in SEARCH_FIGURES:
            assert f"(../results/search/{name}/{figure}.png)" in summary


class _Resources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls, self.images, self.cells = [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.images += tag == "img"
        self.urls += [attrs[k] for k in ("src", "href") if k in attrs]

    def handle_data(self, data):
        self.cells.append(data)


def test_html_report_is_self_contained(reproduced):
    project, _ = reproduced
    page = _Resources()
    page.feed((project.root / "reports" / "index.html").read_text())
    # + a learning curve per variant, a figure per grid and three per search
    assert page.images == (len(REPORT_FIGURES) + len(VARIANTS) + len(GRIDS)
                           + len(SEARCH_FIGURES) * len(SEARCHES))  # fmt: skip
    assert page.urls and all(u.startswith("data:image/png;base64,") for u in page.urls)
    for url in page.urls:
        assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")
    text = " ".join(page.cells)
    assert all(v in text for v in VARIANTS) and "86.04% (4.58%)" in text
    assert "corrected resampled t-test" in text


def test_report_run_in_mlflow_holds_the_figures_and_the_statistics(reproduced):
    project, _ = reproduced
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    (run,) = client.search_runs([exp.experiment_id], "tags.`dvc.stage` = 'report'")[:1]
    assert run.info.status == "FINISHED" and run.info.run_name == "report"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"index.html", "summary.md", "fold_accuracy.csv", *REPORT_FIGURES} <= artifacts
    assert "comparison.json" in artifacts and not run.data.metrics  # a table, not charts
    table = json.loads(
        Path(client.download_artifacts(run.info.run_id, "comparison.json")).read_text()
    )
    rows = {r[0]: dict(zip(table["columns"], r, strict=True)) for r in table["data"]}
    delta = (fold_accuracy(project, "hidden") - fold_accuracy(project, "baseline")).mean()
    assert rows["hidden"]["delta_accuracy"] == pytest.approx(delta, abs=1e-6)
    p, p_holm = rows["hidden"]["p_value"], rows["hidden"]["p_value_holm"]
    assert 0.0 < p <= p_holm <= 1.0
    assert rows["baseline"]["p_value"] is None  # no test against itself


def test_dvc_plots_show_renders_the_report_figures(reproduced, tmp_path):
    project, _ = reproduced
    shown = json.loads(project.dvc("plots", "show", "--json", "-o", str(tmp_path / "j")).stdout)
    for name in REPORT_FIGURES:
        (image,) = shown["data"][f"reports/{name}"]
        with open(image["url"], "rb") as fh:  # the copy DVC renders
            assert fh.read() == (project.root / "reports" / name).read_bytes()
    project.dvc("plots", "show", "-o", str(tmp_path))
    page = (tmp_path / "index.html").read_text()
    assert "overfitting.png" in page and "fold_accuracy" in page


def test_store_holds_a_parent_run_per_variant_with_nested_folds(reproduced, tmp_path):
    project, _ = reproduced
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    assert exp.artifact_location == (project.root / "mlartifacts").as_uri()
    parents = {r.info.run_name: r for r in parent_runs(client, exp.experiment_id)}
    assert sorted(parents) == sorted(VARIANTS)
    head = project.run("git", "rev-parse", "HEAD").stdout.strip()
    for name, run in parents.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["dvc.stage"] == f"cv@{name}"
        assert run.data.tags["mlflow.source.git.commit"] == head
        assert run.data.params["cv.folds"] == str(TINY["folds"])
        assert run.data.params["variant.epochs"] == str(TINY["epochs"])
        assert "variant.model.kind" in run.data.params
        m = project.metrics(name)
        for key in ("accuracy_mean", "accuracy_std", "roc_auc_mean", "log_loss_mean",
                    "overfit_gap_mean"):  # fmt: skip
            assert run.data.metrics[key] == pytest.approx(m[key])
        # the wall time goes to MLflow only: no DVC output changes with the machine's speed
        assert "seconds" not in m and run.data.metrics["seconds"] > 0
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"folds.csv", "predictions.csv", "learning_curves.png", "curves.csv",
                "metrics.json", "params.json", *EVALUATE_ARTIFACTS} <= artifacts  # fmt: skip
        # MLflow's evaluation of the pooled held-out predictions, and MC dropout against
        # the standard pass for the variants with dropout (baseline has none)
        assert 0 <= run.data.metrics["pooled_roc_auc"] <= 1
        mc = {k for k in run.data.metrics if k.startswith("mc_")}
        assert mc == (set() if name == "baseline" else MC_KEYS), name
        folds = children(client, run)
        assert len(folds) == TINY_SPLITS
        # each fold's curves are its run's table; their mean is the variant's curves.csv
        fold_curves = []
        for fold in folds:
            assert {"accuracy", "roc_auc", "log_loss", "train_accuracy"} <= set(fold.data.metrics)
            assert not any(k.startswith("epoch_") for k in fold.data.metrics)
            local = mlflow.artifacts.download_artifacts(
                run_id=fold.info.run_id, artifact_path="curves.csv",
                dst_path=str(tmp_path / fold.info.run_id), tracking_uri=project.store,
            )  # fmt: skip
            fold_curves.append(tables.FOLD_CURVES.read(Path(local)))
        assert all(list(t.index) == list(range(1, TINY["epochs"] + 1)) for t in fold_curves)
        mean = tables.CURVES.read(project.root / "results" / name / "curves.csv")
        for key in CURVE_KEYS:
            np.testing.assert_allclose(
                np.mean([t[key] for t in fold_curves], axis=0), mean[f"{key}_mean"], rtol=1e-5
            )


def test_logged_model_predicts_from_raw_rows(reproduced):
    project, _ = reproduced
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    run = next(r for r in parent_runs(client, exp.experiment_id) if r.info.run_name == "hidden")
    mlflow.set_tracking_uri(project.store)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    inputs = model.metadata.signature.inputs.to_dict()
    assert list(inputs[0]["tensor-spec"]["shape"]) == [-1, 60]
    raw = uci.read_local(SHARED_SONAR).X
    p = np.asarray(model.predict(raw)).ravel()
    assert p.shape == (208,) and ((p >= 0) & (p <= 1)).all()
    local = keras.saving.load_model(project.root / "results" / "hidden" / "model.keras")
    np.testing.assert_allclose(p, local.predict(raw, verbose=0).ravel(), rtol=1e-5, atol=1e-6)


def test_second_repro_runs_nothing(reproduced):
    project, _ = reproduced
    out = project.dvc("repro")
    assert ran_stages(out.stdout) == []
    assert "Data and pipelines are up to date" in out.stdout


def test_editing_one_variant_reruns_only_it_its_grid_its_search_and_the_report(reproduced):
    project, _ = reproduced
    params = project.params()
    params["variants"]["hidden"]["optimizer"]["learning_rate"] = 0.05
    project.write_params(params)
    out = project.dvc("repro")
    ran = ran_stages(out.stdout)
    assert sorted(ran) == ["cv@hidden", "grid@hidden_dropout", "report", "search@tutorial"]
    assert ran[-1] == "report"


def test_same_seed_gives_identical_metrics(reproduced):
    project, _ = reproduced
    before = project.metrics("visible")
    project.dvc("repro", "--force", "--single-item", "cv@visible")
    after = project.metrics("visible")
    assert after == before


def test_exp_run_temp_logs_into_the_repo_root_store(reproduced):
    project, _ = reproduced
    mlflow.set_tracking_uri(project.store)
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "state before the experiment")
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    n_before = len(parent_runs(client, exp.experiment_id))
    project.dvc("exp", "run", "--temp", "-n", "tiny-exp", "-S", "variants.baseline.epochs=3")
    runs = parent_runs(client, exp.experiment_id)
    assert len(runs) == n_before + 1  # cv@baseline (and a report run, not counted here)
    new = runs[0]  # newest first
    assert new.info.run_name == "baseline"
    assert new.data.tags["dvc.exp_name"] == "tiny-exp"
    assert new.data.params["variant.epochs"] == "3"
    assert new.info.artifact_uri.startswith((project.root / "mlartifacts").as_uri())
    (model,) = mlflow.search_logged_models(
        experiment_ids=[exp.experiment_id],
        filter_string=f"source_run_id = '{new.info.run_id}'",
        output_format="list",
    )
    assert model.artifact_location.startswith((project.root / "mlartifacts").as_uri())


def test_mlflow_run_entry_point(reproduced):
    project, _ = reproduced
    out = project.run(
        str(BIN / "mlflow"), "run", ".", "-e", "cv", "-P", "variant=hidden", "-P", "epochs=2",
        "-P", "folds=2", "--env-manager", "local", "--experiment-name", "sonar-dropout",
        env={"MLFLOW_TRACKING_URI": project.store},
    )  # fmt: skip
    assert "succeeded" in out.stderr
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    run = parent_runs(client, exp.experiment_id)[0]
    assert run.data.params["cv.folds"] == "2"
    assert run.data.tags["mlflow.project.entryPoint"] == "cv"
    assert len(children(client, run)) == 2 * TINY["repeats"]


def test_mlflow_run_main_hangs_every_stage_run_under_its_run(reproduced):
    project, _ = reproduced
    params = project.params()
    params["variants"]["lstm"]["epochs"] = 3  # so that cv@lstm and report re-run
    project.write_params(params)
    project.run(
        str(BIN / "mlflow"), "run", ".", "-e", "main", "--env-manager", "local",
        "--experiment-name", "sonar-dropout", env={"MLFLOW_TRACKING_URI": project.store},
    )  # fmt: skip
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    (main,) = client.search_runs([exp.experiment_id], "tags.`mlflow.project.entryPoint` = 'main'")
    assert main.info.status == "FINISHED"
    kids = children(client, main)
    assert sorted(r.data.tags["dvc.stage"] for r in kids) == ["cv@lstm", "report"]
    assert all(r.info.status == "FINISHED" for r in kids)
    (lstm,) = [r for r in kids if r.info.run_name == "lstm"]
    assert lstm.data.params["variant.epochs"] == "3"
    assert len(children(client, lstm)) == TINY_SPLITS
