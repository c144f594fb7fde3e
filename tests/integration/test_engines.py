"""Both engines on real data and tiny work: the keras engine through the stage, and the
two engines' accuracy over seeds (the full comparison: `make agreement`)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from sonarlab.core.params import CVConfig, read_params
from sonarlab.data import uci
from sonarlab.data.folds import prepare
from sonarlab.design.variants import load_variant
from sonarlab.training import engines
from tests.conftest import ROOT, SHARED_SONAR
from tests.integration.conftest import BIN

pytestmark = pytest.mark.integration


def test_keras_engine_through_the_stage(scratch):
    project = scratch
    project.run(
        str(BIN / "python"), "-m", "sonarlab.stages.cv", "baseline", "--set", "cv.engine=keras"
    )
    # --set makes it an override run: its files go to scratch/, its run is named so
    scratch_metrics = json.loads(
        (project.root / "scratch" / "cv" / "baseline" / "metrics.json").read_text()
    )
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("sonar-dropout")
    (run,) = client.search_runs(
        [exp.experiment_id],
        "params.`cv.engine` = 'keras' and attributes.run_name = 'baseline (override)'",
    )
    assert run.data.metrics["n_folds"] == scratch_metrics["n_folds"]
    assert scratch_metrics["n_folds"] == project.metrics("baseline")["n_folds"]
    folds = client.get_experiment_by_name("sonar-dropout-folds")
    assert len(client.search_runs(
        [folds.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )) == scratch_metrics["n_folds"]  # fmt: skip


def test_engines_agree_within_noise_over_seeds():
    if not SHARED_SONAR.is_file():
        pytest.skip("needs the offline copy of the Sonar data")
    sonar = uci.read_local(SHARED_SONAR)
    variant = dataclasses.replace(
        load_variant(read_params(ROOT / "params.yaml"), "hidden"), epochs=20
    )
    means = {"keras": [], "fused": []}
    for seed in range(5):
        prepared = prepare(sonar.X, sonar.y, CVConfig(folds=3, seed=seed))
        for engine, acc in means.items():
            folds = engines.cross_validate(engine, variant, sonar, prepared).folds
            acc.append(np.mean([f.test_metrics["accuracy"] for f in folds]))
    k, f = np.array(means["keras"]), np.array(means["fused"])
    se = np.sqrt(k.var(ddof=1) / len(k) + f.var(ddof=1) / len(f))
    assert abs(f.mean() - k.mean()) < 3 * se + 0.01, (k, f)
    assert min(k.mean(), f.mean()) > 0.65  # both learn: far above the 53% majority rate
