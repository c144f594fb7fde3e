"""The sweep summary's selection of points from ``dvc.api.exp_show`` rows."""

from __future__ import annotations

import pytest

from sonarlab import sweep
from sonarlab.config import ConfigError

PARAMS = {
    "cv": {"folds": 10, "repeats": 3, "seed": 7},
    "variants": {"visible": {"model": {"input_dropout": 0.2, "hidden": [60, 30]}, "epochs": 300}},
}
KEY = "variants.visible.model.input_dropout"


def row(name, rate, acc, *, epochs=300, seed=7):
    prefix = "results/visible/metrics.json:"
    return {
        "Experiment": name, "rev": "workspace" if name is None else "abc",
        "cv.folds": 10.0, "cv.repeats": 3.0, "cv.seed": float(seed),  # numbers come as floats
        KEY: rate, "variants.visible.model.hidden": "[60, 30]", "variants.visible.epochs": epochs,
        f"{prefix}accuracy_mean": acc, f"{prefix}accuracy_ci_low": acc - 0.05,
        f"{prefix}accuracy_ci_high": acc + 0.05,
    }  # fmt: skip


def test_points_keep_one_per_rate_from_comparable_experiments_only():
    rows = [
        row(None, 0.2, 0.85),  # the workspace
        row("exp-a", 0.0, 0.83),
        row("exp-b", 0.2, 0.85),  # the same settings as the workspace: a duplicate
        row("exp-c", 0.4, 0.80, epochs=50),  # other epochs: not comparable
        row("exp-d", 0.4, 0.81, seed=1),  # other splits: not comparable
        {**row("exp-e", 0.5, 0.8), "results/visible/metrics.json:accuracy_mean": None},  # failed
        row("exp-f", 0.5, 0.79),
    ]
    pts = sweep.points(rows, [KEY], PARAMS)
    assert [(p.rate, p.mean, p.experiment) for p in pts] == [
        (0.0, 0.83, "exp-a"), (0.2, 0.85, "workspace"), (0.5, 0.79, "exp-f")
    ]  # fmt: skip
    assert pts[0].low == pytest.approx(0.78) and pts[0].high == pytest.approx(0.88)


def test_a_key_outside_variants_is_refused():
    with pytest.raises(ConfigError, match=r"variants\.<variant>"):
        sweep.variant_of("cv.folds")


def test_queue_status_counts_tasks_by_status():
    out = (
        "Task     Name        Created    Status\n"
        "1a2b3c4  exp-1       10:01 AM   Success\n"
        "5d6e7f8  exp-2       10:01 AM   Running\n"
        "9a8b7c6  exp-3       10:02 AM   Queued\n"
        "0f0f0f0  exp-4       10:02 AM   Failed\n"
        "\nWorker status: 1 active, 0 idle\n"
    )
    counts = sweep.queue_status(lambda cmd: type("P", (), {"stdout": out})())
    assert counts == {"Success": 1, "Running": 1, "Queued": 1, "Failed": 1}
