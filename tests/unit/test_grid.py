"""Grid studies: the config, the plan into shards, and a trial's independence of them."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml

from sonarlab.core.params import ConfigError, CVConfig, read_params
from sonarlab.data.folds import prepare
from sonarlab.data.seeds import fold_seed
from sonarlab.data.uci import Sonar
from sonarlab.design.grids import load_grid
from sonarlab.grid import shards
from sonarlab.grid.figures import grid_trials
from sonarlab.report import comparison
from sonarlab.results.metrics import METRICS
from sonarlab.results.summary import summarize_folds
from sonarlab.stages import grid as grid_stage
from sonarlab.training.engines.fused import cross_validate_fused
from sonarlab.training.members import shape_key, split_members
from sonarlab.training.outcomes import per_split
from tests.conftest import ROOT

PARAMS = read_params(ROOT / "params.yaml")


def with_grid(**spec) -> dict:
    return {**PARAMS, "grids": {"g": spec}}


def test_the_default_grids_replace_the_sweep():
    for name, variant, axis in (("input_dropout", "visible", "model.input_dropout"),
                                ("hidden_dropout", "hidden", "model.hidden_dropout")):  # fmt: skip
        g = load_grid(PARAMS, name)
        assert g.variant == variant and g.axis_names == [axis]
        assert [t.values[axis] for t in g.trials] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
        assert [getattr(t.variant.model, axis.split(".")[1]) for t in g.trials] == [
            0.0, 0.1, 0.2, 0.3, 0.4, 0.5
        ]  # fmt: skip


def test_trials_are_the_product_of_the_axes_in_order():
    axes = {"optimizer.learning_rate": [0.1, 0.01], "model.max_norm": [None, 3.0], "seed": [0, 2]}
    spec = {"variant": "hidden", "axes": axes}
    g = load_grid(with_grid(**spec), "g")
    assert len(g.trials) == 8 and [t.index for t in g.trials] == list(range(8))
    t = g.trials[5]  # (0.01, None, 2)
    assert t.values == {"optimizer.learning_rate": 0.01, "model.max_norm": None, "seed": 2}
    assert t.variant.optimizer.learning_rate == 0.01 and t.variant.model.max_norm is None
    assert t.replicate == 2 and t.variant.model.hidden_dropout == 0.2  # the rest: `hidden`


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"variant": "hidden", "axes": {"model.hiden_dropout": [0.1]}},
         "grids.g.axes.model.hiden_dropout: got [0.1]; unknown key; allowed: model.input_dropout"),
        ({"variant": "hidden", "axes": {"model.units": [8]}},
         "grids.g.axes.model.units: got [8]; not read by variants.hidden (model kind 'mlp'"),
        ({"variant": "hidden", "axes": {"schedule.decay": [0.1]}},
         "grids.g.axes.schedule.decay: got [0.1]; not read by variants.hidden"),
        ({"variant": "hidden", "axes": {"model.hidden": [[8]]}},
         "grids.g.axes.model.hidden: got [[8]]; not a numeric field"),
        ({"variant": "hidden", "axes": {"model.hidden_dropout": []}},
         "grids.g.axes.model.hidden_dropout: got []; allowed: a non-empty list"),
        ({"variant": "hidden", "axes": {"model.hidden_dropout": 0.2}},
         "grids.g.axes.model.hidden_dropout: got 0.2; allowed: a non-empty list"),
        ({"variant": "hidden", "axes": {"model.hidden_dropout": [0.1, "high"]}},
         "grids.g.axes.model.hidden_dropout[1]: got 'high'; allowed: a number"),
        ({"variant": "hidden", "axes": {"model.hidden_dropout": [0.1, 1.0]}},
         "grids.g.axes.model.hidden_dropout[1]: got 1.0; allowed: 0.0 <= value < 1.0"),
        ({"variant": "hidden", "axes": {"optimizer.momentum": [0, 0.0]}},
         "grids.g.axes.optimizer.momentum: got [0, 0.0]; duplicate values"),
        ({"variant": "hidden", "axes": {"seed": [0, -1]}},
         "grids.g.axes.seed[1]: got -1; allowed: an integer >= 0"),
        ({"variant": "hiden", "axes": {"seed": [0]}},
         "grids.g.variant: got 'hiden'; defined variants: baseline"),
        ({"variant": "hidden", "axes": {}},
         "grids.g.axes: got {}; allowed: a non-empty mapping"),
        ({"variant": "hidden", "axes": {"seed": [0]}, "extra": 1},
         "grids.g.extra: got 1; unknown key; allowed: variant, axes"),
    ],
)  # fmt: skip
def test_bad_grids_are_refused_naming_the_key(spec, message):
    with pytest.raises(ConfigError) as err:
        load_grid(with_grid(**spec), "g")
    assert message in str(err.value)


@pytest.mark.parametrize("name", ["a b", "../up", "x;rm", "a/b", "1st"])
def test_a_grid_name_must_be_a_plain_identifier(name):
    params = {**PARAMS, "grids": {name: {"variant": "hidden", "axes": {"seed": [0]}}}}
    with pytest.raises(ConfigError, match="allowed: a plain identifier"):
        load_grid(params, name)


def test_the_stage_refuses_a_bad_grid_before_training_or_mlflow(workspace, caplog):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["grids"]["hidden_dropout"]["axes"]["model.hidden_dropout"] = [0.1, 2.0]
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with caplog.at_level(logging.ERROR):
        assert grid_stage.main(["hidden_dropout"]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "grids.hidden_dropout.axes.model.hidden_dropout[1]: got 2.0" in line
    assert not (workspace / "mlflow.db").exists() and not (workspace / "results").exists()


def tiny_grid(tiny_data, axes, epochs=3):
    X, y = tiny_data
    params = with_grid(variant="hidden", axes=axes)
    params["variants"] = {**PARAMS["variants"], "hidden": {**PARAMS["variants"]["hidden"],
                                                           "epochs": epochs}}  # fmt: skip
    prepared = prepare(X, y, CVConfig(folds=3, repeats=1, seed=3))
    return load_grid(params, "g"), Sonar(X, y, ()), prepared


def run(study, sonar, prepared, max_members):
    planned = shards.plan(study, sonar, prepared, max_members)
    results = [shards.run_shard(s) for s in reversed(planned)]  # any order
    return planned, shards.tables(study, shards.trial_folds(planned, results, prepared))


def test_shards_group_trials_by_shape_and_bound_their_size(tiny_data):
    axes = {"model.hidden_dropout": [0.0, 0.1, 0.2, 0.3], "seed": [0, 1]}
    study, sonar, prepared = tiny_grid(tiny_data, axes)
    planned = shards.plan(study, sonar, prepared, max_members=7)
    assert sorted(i for s in planned for i in s.trials) == list(range(8))  # each trial once
    for s in planned:
        assert len(s.members) == 3 * len(s.trials) <= 7  # 2 trials of 3 splits at most
        assert len({shape_key(m.variant) for m in s.members}) == 1
    # rate 0.0 has no dropout layer: its 2 trials train in a program of their own
    assert sorted(len(s.trials) for s in planned) == [2, 2, 2, 2]
    trial = study.trials[3]  # rate 0.1, replicate 1
    members = split_members(trial.variant, prepared, trial.replicate)
    split = prepared.splits[2]
    assert members[2].seed == fold_seed(3, split.repeat, split.fold, 1) != fold_seed(3, 0, 2)


def test_a_trials_numbers_do_not_depend_on_how_the_grid_was_sharded(tiny_data):
    axes = {"model.hidden_dropout": [0.0, 0.2, 0.4], "optimizer.momentum": [0.5, 0.9]}
    study, sonar, prepared = tiny_grid(tiny_data, axes)
    shards_a, (trials_a, splits_a) = run(study, sonar, prepared, max_members=100)
    shards_b, (trials_b, splits_b) = run(study, sonar, prepared, max_members=3)
    assert len(shards_a) == 2 and len(shards_b) == 6
    assert trials_a.equals(trials_b) and splits_a.equals(splits_b)


def test_the_trial_that_is_a_pipeline_variant_gives_its_cv_numbers(tiny_data):
    study, sonar, prepared = tiny_grid(tiny_data, {"model.hidden_dropout": [0.1, 0.2]})
    _, (trials, splits) = run(study, sonar, prepared, max_members=100)
    cv = cross_validate_fused(study.trials[1].variant, sonar, prepared)  # `hidden` itself
    mine = splits[splits["trial"] == 1]
    assert mine[list(METRICS)].to_dict("records") == [f.test_metrics for f in cv.folds]
    expected = summarize_folds(per_split(cv.folds)).metrics()
    row = trials[trials["trial"] == 1].iloc[0]
    assert {k: row[k] for k in expected} == expected


def judged(study, sonar, prepared):
    planned = shards.plan(study, sonar, prepared)
    results = [shards.run_shard(s) for s in planned]
    out = shards.judged(study, planned, results, prepared, prepared.seed)
    return out.trials, out.splits, out.predictions, out.assessment


def test_the_grid_figure_and_sentence_follow_the_number_of_axes(tiny_data):
    axes = {"model.hidden_dropout": [0.1, 0.3], "optimizer.momentum": [0.5, 0.9], "seed": [0, 1]}
    study, sonar, prepared = tiny_grid(tiny_data, axes, epochs=2)
    trials, _, _, assessment = judged(study, sonar, prepared)
    ref = assessment.reference_means()
    one = grid_trials(trials[trials["trial"] < 2], ["seed"], "t", ref)
    assert [ax.get_xlabel() for ax in one.axes] == ["seed"] * 3
    assert [ax.get_ylabel() for ax in one.axes] == [
        "held-out accuracy (%)", "held-out Brier score (selection score)", "held-out log loss"
    ]  # fmt: skip
    # the no-skill reference is a dashed line on every panel
    assert all(any(line.get_linestyle() == "--" for line in ax.lines) for ax in one.axes)
    assert one.axes[0].lines[-1].get_ydata()[0] == pytest.approx(100 * ref["accuracy"])
    two = grid_trials(trials, ["model.hidden_dropout", "optimizer.momentum"], "t", ref)
    heat = two.axes[0]
    assert heat.get_xlabel() == "optimizer.momentum" and heat.get_ylabel() == "model.hidden_dropout"
    assert len(heat.images) == 1 and heat.images[0].get_array().shape == (2, 2)
    three = grid_trials(trials, study.axis_names, "t", ref)
    assert [ax.get_xlabel() for ax in three.axes] == study.axis_names
    metrics = grid_metrics_of(trials, study, assessment)
    sentence = comparison.grid_sentence(
        comparison.GridConclusion("g", "hidden", tuple(study.axis_names), trials, metrics)
    )
    assert sentence.startswith("Grid g (8 trials of hidden, varying model.hidden_dropout, ")
    beat = int(trials["beats_reference"].sum())
    assert f"{beat} of 8 trials beat the no-skill reference" in sentence
    if metrics["best"] is None:  # 2 epochs on tiny data: chance level is likely
        assert "none is called best" in sentence
    else:
        assert f"{metrics['best']['brier_mean']:.3f}" in sentence
    np.testing.assert_array_equal(sorted(trials["trial"]), range(8))


def grid_metrics_of(trials, study, assessment):
    from sonarlab.results import tables

    corrected = assessment.corrected and {m: c.as_dict() for m, c in assessment.corrected.items()}
    return tables.grid_metrics(
        trials, study.axis_names, assessment.choice.chosen, assessment.reference_means(), corrected
    )


def test_the_best_trial_is_the_rules_choice_and_is_never_at_chance(tiny_data):
    """Trials that learn (enough epochs) against trials that cannot (learning rate 0):
    the rule never names a trial at chance, and the predictions table holds every
    trial's held-out rows once per repeat."""
    axes = {"optimizer.learning_rate": [1e-9, 0.1]}
    study, sonar, prepared = tiny_grid(tiny_data, axes, epochs=20)
    trials, splits, oof, assessment = judged(study, sonar, prepared)
    frozen = trials.set_index("trial").loc[0]
    assert frozen["beats_reference"] == 0  # weights that barely move: no skill
    assert assessment.choice.chosen != 0
    assert len(oof) == len(sonar.y) * len({s.repeat for s in prepared.splits})
    # the predictions table gives back each trial's per-split scores
    from sonarlab.results.predictions import split_scores

    for t in (0, 1):
        again = split_scores(oof, f"p_{t}")
        mine = splits[splits["trial"] == t].reset_index(drop=True)
        np.testing.assert_allclose(again["brier"], mine["brier"], rtol=1e-12)
    metrics = grid_metrics_of(trials, study, assessment)
    assert metrics["n_beat_reference"] == int(trials["beats_reference"].sum())
    if metrics["best"] is not None:
        assert metrics["best"]["trial"] == 1
        assert set(metrics["best_corrected"]) == {
            f"{m}_{p}"
            for m in ("accuracy", "brier", "log_loss")
            for p in ("mean", "ci_low", "ci_high")
        }
