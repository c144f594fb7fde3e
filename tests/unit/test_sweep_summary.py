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
    # the workspace row is not an experiment: 0.2 comes from exp-b
    assert [(p.rate, p.mean, p.experiment) for p in pts] == [
        (0.0, 0.83, "exp-a"), (0.2, 0.85, "exp-b"), (0.5, 0.79, "exp-f")
    ]  # fmt: skip
    assert sweep.points(rows[:1], [KEY], PARAMS) == []  # the workspace alone: no points
    assert pts[0].low == pytest.approx(0.78) and pts[0].high == pytest.approx(0.88)


def test_a_key_outside_variants_is_refused():
    with pytest.raises(ConfigError, match=r"variants\.<variant>"):
        sweep.variant_of("cv.folds")


def test_queue_status_reads_only_the_named_experiments():
    out = (
        "Task     Name        Created    Status\n"
        "1a2b3c4  exp-1       10:01 AM   Success\n"
        "5d6e7f8  exp-2       10:01 AM   Running\n"
        "9a8b7c6  exp-3       10:02 AM   Queued\n"
        "0f0f0f0  exp-4       10:02 AM   Failed\n"
        "1111111  old-one     09:00 AM   Queued\n"  # an earlier sweep's: not ours
        "\nWorker status: 1 active, 0 idle\n"
    )
    ran = []

    def runner(cmd):
        ran.append(cmd[-2:])
        return type("P", (), {"stdout": out})()

    status = sweep.queue_status(runner, ["exp-1", "exp-2", "exp-3", "exp-4", "9a8b7c6"])
    assert status == {
        "exp-1": "Success", "exp-2": "Running", "exp-3": "Queued", "exp-4": "Failed",
        "9a8b7c6": "Queued",  # an unnamed experiment goes by its task id
    }  # fmt: skip
    assert ran == [["queue", "status"]]


def test_queued_names_are_read_from_dvc_output():
    out = (
        "Queueing with overrides '{'params.yaml': ['k=0']}'.\n"
        "Queued experiment 'nasty-cull' for future execution.\n"
        "Queueing with overrides '{'params.yaml': ['k=0.5']}'.\n"
        "Queued experiment 'e2fd374' for future execution.\n"
    )
    assert sweep.queued_names(out) == ["nasty-cull", "e2fd374"]


def fake_queue(monkeypatch, tables):
    """``dvc queue status`` answers with the next of ``tables`` (the last one repeats)."""
    calls = []

    def run(cmd):
        calls.append(cmd)
        out = tables[min(len(calls), len(tables)) - 1]
        return type("P", (), {"stdout": out})()

    monkeypatch.setattr(sweep, "_run", run)
    return calls


def test_wait_polls_until_its_experiments_end(monkeypatch):
    head = "Task Name Created Status\n"
    calls = fake_queue(
        monkeypatch,
        [head + "a1 exp-a 10:01 Running\nb1 exp-b 10:01 Queued\n",
         head + "a1 exp-a 10:01 Success\nb1 exp-b 10:01 Running\nc1 old 09:00 Queued\n",
         head + "a1 exp-a 10:01 Success\nb1 exp-b 10:01 Failed\nc1 old 09:00 Queued\n"],
    )  # fmt: skip
    status = sweep.wait(["exp-a", "exp-b"], poll=0)
    assert status == {"exp-a": "Success", "exp-b": "Failed"}  # "old" is not waited for
    assert len(calls) == 3


def test_wait_gives_up_at_the_timeout(monkeypatch):
    fake_queue(monkeypatch, ["t1 exp-a 10:01 Running\n"])
    status = sweep.wait(["exp-a"], poll=0.01, timeout=0.05)
    assert status == {"exp-a": "Running"}
