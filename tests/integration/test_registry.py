"""After a tiny ``dvc repro``: the UI's first page and chart view, the data set in every
training run's lineage, and the registered ``@champion`` served by ``mlflow models serve``.

The UI call is the one MLflow 3.17's experiment page makes for its first page
(``searchRuns`` in ``server/js/build``): ``POST ajax-api/2.0/mlflow/runs/search`` with
``max_results`` 100, ``order_by ["attributes.start_time DESC"]`` and ``ACTIVE_ONLY``.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sonarlab.data.uci import FINGERPRINT
from sonarlab.results.predictions import split_scores
from sonarlab.selection import reference, rule
from tests.conftest import SHARED_SONAR
from tests.integration.conftest import BIN
from tests.integration.test_server import free_port

pytestmark = pytest.mark.integration

EXPERIMENT = "sonar-dropout"  # params.yaml's mlflow.experiment: also the registered model's name
UI_FIRST_PAGE = {
    "filter": "",
    "run_view_type": "ACTIVE_ONLY",
    "max_results": 100,
    "order_by": ["attributes.start_time DESC"],
}
LOCAL = {"no_proxy": "127.0.0.1", "MLFLOW_DISABLE_TELEMETRY": "true"}


def wait_until_up(proc: subprocess.Popen, url: str, seconds: float) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if proc.poll() is not None:
                pytest.fail(
                    f"{proc.args[:3]} exited {proc.returncode}: {proc.stderr.read()[-3000:]}"
                )
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def post(url: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture(scope="module")
def ui(reproduced):
    """``mlflow ui`` (as ``make ui`` starts it) on the reproduced project's store."""
    project, _ = reproduced
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "ui", "--backend-store-uri", project.store,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=project.root, env={**project.env, **LOCAL},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(proc, f"{url}/health", 90)
        yield url
    finally:
        stop(proc)


def newest_runs(client: MlflowClient, experiment_id: str) -> dict[str, str]:
    """Run name -> id of its newest run (other tests in the session re-run stages in the
    same project and store)."""
    newest: dict[str, str] = {}
    for run in client.search_runs([experiment_id], max_results=1000):  # newest first
        newest.setdefault(run.info.run_name, run.info.run_id)
    return newest


def test_the_ui_first_page_holds_every_variant_and_no_fold_or_trial(reproduced, ui):
    project, _ = reproduced
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name(EXPERIMENT)
    status, body = post(
        f"{ui}/ajax-api/2.0/mlflow/runs/search",
        {"experiment_ids": [exp.experiment_id], **UI_FIRST_PAGE},
    )
    assert status == 200, body
    runs = json.loads(body)["runs"]
    names = {r["info"]["run_name"] for r in runs}
    variants = list(project.params()["variants"])
    grids = [f"grid@{g}" for g in project.params()["grids"]]
    # every stage's newest run (other tests in the session may have added runs of theirs)
    assert names >= {*variants, *grids, "report"}
    assert {r["info"]["run_id"] for r in runs} >= set(
        newest_runs(client, exp.experiment_id).values()
    )
    # No fold or trial on the first page: however many there are, they cannot push a
    # variant (the baseline, the oldest) behind "Load more". (Children of a run that
    # `mlflow run -e main` made may be here: another test of the session makes some.)
    folds_and_trials = {
        r.info.run_id
        for suffix in ("-folds", "-trials")
        for r in client.search_runs(
            [client.get_experiment_by_name(EXPERIMENT + suffix).experiment_id], max_results=1000
        )
    }
    assert folds_and_trials and not folds_and_trials & {r["info"]["run_id"] for r in runs}
    # The chart view draws one chart per metric key of these runs: the report adds none.
    report = next(r for r in runs if r["info"]["run_name"] == "report")  # the newest
    assert not report["data"].get("metrics")
    table = json.loads(
        Path(client.download_artifacts(report["info"]["run_id"], "comparison.json")).read_text()
    )
    assert set(table["data"][0]) >= set() and "variant" in table["columns"]
    rows = {row[table["columns"].index("variant")]: row for row in table["data"]}
    assert sorted(rows) == sorted([*variants, "no-skill"])  # the reference is a row too
    champion = client.get_run(report["info"]["run_id"]).data.tags["champion"]
    assert rows[champion][table["columns"].index("bbc_accuracy")] is not None


def test_every_fold_and_trial_is_a_child_in_its_own_experiment(reproduced):
    project, _ = reproduced
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name(EXPERIMENT)
    parents = newest_runs(client, exp.experiment_id)
    folds = client.get_experiment_by_name(f"{EXPERIMENT}-folds")
    trials = client.get_experiment_by_name(f"{EXPERIMENT}-trials")
    for variant in project.params()["variants"]:
        kids = client.search_runs(
            [folds.experiment_id], f"tags.mlflow.parentRunId = '{parents[variant]}'"
        )
        assert len(kids) == project.metrics(variant)["n_folds"], variant
    for grid, spec in project.params()["grids"].items():
        kids = client.search_runs(
            [trials.experiment_id], f"tags.mlflow.parentRunId = '{parents[f'grid@{grid}']}'"
        )
        assert len(kids) == math.prod(len(v) for v in spec["axes"].values()), grid


def test_every_training_run_names_the_data_set_with_the_pinned_fingerprint(reproduced):
    project, _ = reproduced
    client = MlflowClient(project.store)
    ids = [client.get_experiment_by_name(f"{EXPERIMENT}{s}").experiment_id for s in ("", "-trials")]
    runs = [  # the training runs: the stages' (cv, grid) and the grid trials'
        r for r in client.search_runs(ids, max_results=1000)
        if r.data.tags.get("dvc.stage", "").startswith(("cv@", "grid@"))
        or "sonarlab.grid" in r.data.tags
    ]  # fmt: skip
    expected_runs = len(project.params()["variants"]) + sum(
        1 + math.prod(len(v) for v in g["axes"].values())
        for g in project.params()["grids"].values()
    )
    assert len(runs) >= expected_runs  # (more if other tests re-ran stages here)
    for run in runs:
        # a cv run has one more input: its pooled held-out predictions, which MLflow's
        # evaluator logs (tracking.evaluation)
        inputs = run.inputs.dataset_inputs
        evaluated = [i for i in inputs if i.dataset.name == "uci-sonar-out-of-fold"]
        cv = run.data.tags.get("dvc.stage", "").startswith("cv@")
        assert len(evaluated) == (1 if cv else 0), run.info.run_name
        (given,) = [i for i in inputs if i not in evaluated]
        assert given.dataset.name == "uci-sonar", run.info.run_name
        assert given.dataset.digest == FINGERPRINT[:36]  # MLflow's longest digest
        assert json.loads(given.dataset.source) == {"uri": "data/raw/sonar.csv"}
        tags = {t.key: t.value for t in given.tags}
        assert tags == {"mlflow.data.context": "training", "sonarlab.fingerprint": FINGERPRINT}
        assert json.loads(given.dataset.profile)["num_rows"] == 208


def test_each_variant_is_a_version_with_its_alias_and_the_champion_is_the_rules_choice(
    reproduced,
):
    project, _ = reproduced
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name(EXPERIMENT)
    variants = list(project.params()["variants"])
    versions = {v: client.get_model_version_by_alias(EXPERIMENT, v) for v in variants}
    # each alias names the version its variant's newest cv run registered (another test
    # of the session may have run a variant again, under `mlflow run` with another name);
    # a grid's run has its variant as a param too, and a run with overrides (tagged
    # sonarlab.overrides) registers nothing and moves no alias: neither counts
    newest = {
        v: client.search_runs(
            [exp.experiment_id],
            f"params.variant = '{v}' and tags.`dvc.stage` = 'cv@{v}' "
            "and tags.`sonarlab.overrides` IS NULL",
            max_results=1,
        )[0]
        for v in variants
    }
    assert {v: mv.run_id for v, mv in versions.items()} == {
        v: r.info.run_id for v, r in newest.items()
    }
    assert len({mv.version for mv in versions.values()}) == len(variants)
    chosen = rules_choice(project, variants)
    summary = (project.root / "reports" / "summary.md").read_text()
    assert chosen is not None, "the tiny run should give a variant with skill: see TINY"
    champion = client.get_model_version_by_alias(EXPERIMENT, "champion")
    assert champion.version == versions[chosen].version
    assert f"@champion names {chosen}'s final model" in summary


def rules_choice(project, variants: list[str]) -> str | None:
    """The selection rule applied here to the variants' results files."""
    results = project.root / "results"
    folds = {v: pd.read_csv(results / v / "folds.csv") for v in variants}
    oof = pd.read_csv(results / variants[0] / "predictions.csv")
    return rule.choose(folds, split_scores(reference.no_skill(oof))).chosen


@pytest.fixture(scope="module")
def served(reproduced):
    """``mlflow models serve`` of ``@champion``, offline (``--env-manager local``);
    its URL and the seconds it took to answer /ping."""
    project, _ = reproduced
    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{EXPERIMENT}@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=project.root, env={**project.env, **LOCAL, "MLFLOW_TRACKING_URI": project.store},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(proc, f"{url}/ping", 180)
        yield url, time.monotonic() - t0
    finally:
        stop(proc)


def test_the_served_champion_gives_what_predict_gives(reproduced, served, tmp_path):
    project, _ = reproduced
    url, seconds = served
    lines = SHARED_SONAR.read_text().splitlines()[:5]
    rows = [[float(x) for x in line.split(",")[:60]] for line in lines]
    status, body = post(f"{url}/invocations", {"inputs": rows})
    assert status == 200, body
    got = np.asarray(json.loads(body)["predictions"], dtype=np.float32).ravel()

    champion = MlflowClient(project.store).get_model_version_by_alias(EXPERIMENT, "champion")
    variant = champion.tags["variant"]
    csv = tmp_path / "rows.csv"
    csv.write_text("\n".join(lines) + "\n")
    out = project.run(str(BIN / "python"), "-m", "sonarlab.predict", variant, str(csv))
    expected = np.asarray(
        [float(line.split(",")[1]) for line in out.stdout.splitlines()[1:]], dtype=np.float32
    )
    assert len(got) == len(rows) == len(expected)
    # Same weights, two float32 computations: predict calls the model eagerly, the
    # served Keras flavor through model.predict's compiled function, which may round
    # differently in the last bits (measured: up to 4e-6 relative).
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    import keras
    import mlflow

    mlflow.set_tracking_uri(project.store)
    served_model = mlflow.keras.load_model(f"models:/{EXPERIMENT}@champion")
    local = keras.saving.load_model(project.root / "results" / variant / "model.keras")
    assert len(served_model.weights) == len(local.weights) > 0
    for a, b in zip(served_model.weights, local.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    print(f"served @champion ({variant}) answered /ping after {seconds:.1f} s")


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([[0.5] * 59], id="59 values"),
        pytest.param([[0.5] * 61], id="61 values"),
        pytest.param([["a"] + [0.5] * 59], id="a string"),
        pytest.param([[0.5] * 60, [0.5] * 59], id="ragged"),
    ],
)
def test_bad_rows_get_a_4xx_without_a_stack_trace(served, rows):
    url, _ = served
    status, body = post(f"{url}/invocations", {"inputs": rows})
    assert 400 <= status < 500, body
    answer = json.loads(body)
    assert answer["error_code"] == "BAD_REQUEST" or answer["error_code"].startswith("INVALID")
    assert "stack_trace" not in answer and "Traceback" not in body
