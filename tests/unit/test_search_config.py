"""Searches from params alone: ``searches.<name>`` validated key by key, its dimensions as
Optuna distributions, the rule's ranking, the study as a journal Optuna opens, trial run
names, and seeded samplers. No training: everything here is checked before any runs."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import math
import warnings

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState, create_trial

from sonarlab.core.params import ConfigError, load_protocol, read_params
from sonarlab.design import sizes
from sonarlab.design.searches import (
    MAX_TRIALS,
    Dimension,
    Halving,
    load_search,
    search_names,
    trial_variant,
)
from sonarlab.results.stats import PairedTest
from sonarlab.search import journal
from sonarlab.search.driver import make_sampler, new_study
from sonarlab.selection.rule import Verdict, ranking
from sonarlab.tracking.runs import trial_run_name
from tests.conftest import ROOT

PARAMS = read_params(ROOT / "params.yaml")
TUTORIAL = PARAMS["searches"]["tutorial"]


def with_search(name: str = "s", **changes) -> dict:
    """params.yaml with one search ``name``: the tutorial's, with ``changes`` (None drops)."""
    spec = copy.deepcopy(TUTORIAL)
    spec.update(changes)
    return {**PARAMS, "searches": {name: {k: v for k, v in spec.items() if v is not ...}}}


def with_space(space: dict, **changes) -> dict:
    return with_search(space=space, **changes)


def refused(params: dict, name: str = "s", protocol=None) -> str:
    with pytest.raises(ConfigError) as err:
        load_search(params, name, protocol)
    return str(err.value)


# --- the default search ------------------------------------------------------------------


def test_the_tutorial_search_loads_as_params_say():
    s = load_search(PARAMS, "tutorial")
    assert search_names(PARAMS) == ["tutorial"]
    assert (s.name, s.variant, s.sampler, s.trials, s.seed) == ("tutorial", "hidden", "tpe", 32, 0)
    assert s.base.model.hidden_dropout == 0.2 and s.base.epochs == 300
    assert s.axis_names == [
        "model.hidden_dropout", "optimizer.learning_rate", "optimizer.momentum", "model.max_norm"
    ]  # fmt: skip
    assert s.space == (
        Dimension("model.hidden_dropout", "uniform", 0.0, 0.5),
        Dimension("optimizer.learning_rate", "log_uniform", 0.001, 0.3),
        Dimension("optimizer.momentum", "uniform", 0.5, 0.95),
        Dimension("model.max_norm", "categorical", choices=(None, 2.0, 3.0, 4.0)),
    )
    assert s.halving == Halving((50, 300), 3) and s.rungs == (50, 300)


def test_defaults_sampler_tpe_seed_0_and_no_halving_trains_the_variants_epochs():
    params = with_search(sampler=..., seed=..., halving=...)
    s = load_search(params, "s")
    assert (s.sampler, s.seed, s.halving) == ("tpe", 0, None)
    assert s.rungs == (300,)  # the base variant's own epochs
    assert load_search(with_search(halving=None), "s").rungs == (300,)


def test_halving_reduction_defaults_to_3():
    s = load_search(with_search(halving={"rungs": [10, 30, 90]}), "s")
    assert s.halving == Halving((10, 30, 90), 3) and s.rungs == (10, 30, 90)


def test_the_tutorial_search_passes_the_size_check():
    load_search(PARAMS, "tutorial", load_protocol(PARAMS))


@pytest.mark.parametrize("choices", [[None, 2.0], [None], [2, 3.5]])
def test_max_norm_null_or_numbers_in_a_categorical_build(choices):
    s = load_search(with_space({"model.max_norm": {"categorical": choices}}), "s")
    assert s.space == (Dimension("model.max_norm", "categorical", choices=tuple(choices)),)
    for value in choices:
        v = trial_variant(PARAMS, s, {"model.max_norm": value}, 50)
        assert v.model.max_norm == value


def test_an_int_field_takes_int_bounds_or_integer_choices():
    space = {"batch_size": {"int": [8, 32]}, "epochs": {"categorical": [10, 20]}}
    s = load_search(with_space(space, halving=None), "s")
    assert s.space == (
        Dimension("batch_size", "int", 8, 32),
        Dimension("epochs", "categorical", choices=(10, 20)),
    )
    lstm = load_search(
        with_space({"model.units": {"int": [4, 64]}}, variant="lstm", halving=None), "s"
    )
    assert lstm.space == (Dimension("model.units", "int", 4, 64),)


def test_schedule_fields_are_searchable_when_the_schedule_reads_them():
    s = load_search(with_space({"schedule.decay": {"log_uniform": [1e-4, 1e-2]}},
                               variant="lr_decay"), "s")  # fmt: skip
    assert s.space == (Dimension("schedule.decay", "log_uniform", 1e-4, 1e-2),)


# --- refused, naming the key ---------------------------------------------------------------


SPACE = "searches.s.space"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # the search's own keys
        (with_search(extra=1),
         "searches.s.extra: got 1; unknown key; allowed: variant, space, sampler, trials, seed"),
        (with_search(variant="hiden"),
         "searches.s.variant: got 'hiden'; defined variants: baseline, visible, hidden"),
        (with_search(variant=...), "searches.s.variant: got None; defined variants"),
        (with_search(sampler="grid"),
         "searches.s.sampler: got 'grid'; allowed: one of random, qmc, tpe"),
        (with_search(sampler="TPE"), "searches.s.sampler: got 'TPE'"),
        (with_search(seed=-1), "searches.s.seed: got -1; allowed: an integer >= 0"),
        (with_search(seed=1.0), "searches.s.seed: got 1.0; allowed: an integer >= 0"),
        (with_search(seed=True), "searches.s.seed: got True; allowed: an integer >= 0"),
        (with_search(trials=...), "searches.s.trials: got None; allowed: an integer from 1"),
        (with_search(space={}), f"{SPACE}: got {{}}; allowed: a non-empty mapping"),
        (with_search(space=...), f"{SPACE}: got None; allowed: a non-empty mapping"),
        (with_search(space=[["model.max_norm", [2.0]]]),
         f"{SPACE}: got [['model.max_norm', [...]]]; allowed"),
        # a dimension's key
        (with_space({"model.hiden_dropout": {"uniform": [0.0, 0.5]}}),
         f"{SPACE}.model.hiden_dropout: got {{'uniform': [0.0, 0.5]}}; unknown key; "
         "allowed: model.input_dropout, model.hidden_dropout, model.max_norm"),
        (with_space({"seed": {"int": [0, 3]}}),  # a grid's replicate axis, not a field
         f"{SPACE}.seed: got {{'int': [0, 3]}}; unknown key"),
        (with_space({"model.units": {"int": [8, 16]}}),
         f"{SPACE}.model.units: got {{'int': [8, 16]}}; not read by variants.hidden "
         "(model kind 'mlp', schedule kind 'constant')"),
        (with_space({"model.hidden_dropout": {"uniform": [0.0, 0.5]}}, variant="lstm"),
         f"{SPACE}.model.hidden_dropout: got {{'uniform': [0.0, 0.5]}}; not read by variants.lstm"),
        (with_space({"schedule.decay": {"uniform": [0.0, 0.1]}}),
         f"{SPACE}.schedule.decay: got {{'uniform': [0.0, 0.1]}}; not read by variants.hidden"),
        (with_space({"model.hidden": {"categorical": [[8], [16]]}}),
         f"{SPACE}.model.hidden: got {{'categorical': [[...], [...]]}}; not a numeric field"),
        (with_space({"model.kind": {"categorical": ["lstm"]}}),
         f"{SPACE}.model.kind: got {{'categorical': ['lstm']}}; not a numeric field"),
        (with_space({"epochs": {"int": [10, 20]}}),
         f"{SPACE}.epochs: got {{'int': [10, 20]}}; the halving's rungs set the epochs"),
        # its distribution
        (with_space({"model.hidden_dropout": {"normal": [0.0, 0.5]}}),
         f"{SPACE}.model.hidden_dropout.normal: got [0.0, 0.5]; unknown distribution; "
         "allowed: one of {uniform: [low, high]}"),
        (with_space({"model.hidden_dropout": [0.0, 0.5]}),
         f"{SPACE}.model.hidden_dropout: got [0.0, 0.5]; allowed: one of {{uniform"),
        (with_space({"model.hidden_dropout": {"uniform": [0.0, 0.5], "int": [0, 1]}}),
         f"{SPACE}.model.hidden_dropout: got {{"),
        (with_space({"model.hidden_dropout": None}),
         f"{SPACE}.model.hidden_dropout: got None; allowed: one of"),
        (with_space({"optimizer.learning_rate": {"log_uniform": [0.0, 0.3]}}),
         f"{SPACE}.optimizer.learning_rate.log_uniform: got [0.0, 0.3]; "
         "allowed: 0 < low < high (a log scale)"),
        (with_space({"optimizer.learning_rate": {"log_uniform": [-0.1, 0.3]}}),
         f"{SPACE}.optimizer.learning_rate.log_uniform: got [-0.1, 0.3]; allowed: 0 < low"),
        (with_space({"model.hidden_dropout": {"int": [0, 1]}}),
         f"{SPACE}.model.hidden_dropout.int: got [0, 1]; integer bounds on a float field"),
        (with_space({"optimizer.learning_rate": {"int": [1, 2]}}),
         f"{SPACE}.optimizer.learning_rate.int: got [1, 2]; integer bounds on a float field"),
        (with_space({"batch_size": {"uniform": [8, 32]}}),
         f"{SPACE}.batch_size.uniform: got [8, 32]; uniform on an integer field; use int"),
        (with_space({"batch_size": {"log_uniform": [8, 32]}}),
         f"{SPACE}.batch_size.log_uniform: got [8, 32]; log_uniform on an integer field"),
        (with_space({"epochs": {"uniform": [10.0, 20.0]}}, halving=None),
         f"{SPACE}.epochs.uniform: got [10.0, 20.0]; uniform on an integer field; use int"),
        (with_space({"model.units": {"uniform": [8, 16]}}, variant="lstm"),
         f"{SPACE}.model.units.uniform: got [8, 16]; uniform on an integer field"),
        (with_space({"batch_size": {"int": [8.0, 32]}}),
         f"{SPACE}.batch_size.int: got [8.0, 32]; allowed: two integers"),
        (with_space({"batch_size": {"int": [8, 32.5]}}),
         f"{SPACE}.batch_size.int: got [8, 32.5]; allowed: two integers"),
        (with_space({"model.hidden_dropout": {"uniform": [0.3, 0.3]}}),
         f"{SPACE}.model.hidden_dropout.uniform: got [0.3, 0.3]; allowed: low < high"),
        (with_space({"model.hidden_dropout": {"uniform": [0.4, 0.3]}}),
         f"{SPACE}.model.hidden_dropout.uniform: got [0.4, 0.3]; allowed: low < high"),
        (with_space({"batch_size": {"int": [16, 16]}}),
         f"{SPACE}.batch_size.int: got [16, 16]; allowed: low < high"),
        (with_space({"model.hidden_dropout": {"uniform": [0.3]}}),
         f"{SPACE}.model.hidden_dropout.uniform: got [0.3]; allowed: [low, high], two finite"),
        (with_space({"model.hidden_dropout": {"uniform": [0.0, 0.2, 0.4]}}),
         f"{SPACE}.model.hidden_dropout.uniform: got [0.0, 0.2, 0.4]; allowed: [low, high]"),
        (with_space({"model.hidden_dropout": {"uniform": 0.2}}),
         f"{SPACE}.model.hidden_dropout.uniform: got 0.2; allowed: [low, high]"),
        (with_space({"model.hidden_dropout": {"uniform": [0.1, "x"]}}),
         f"{SPACE}.model.hidden_dropout.uniform: got [0.1, 'x']; allowed: [low, high]"),
        (with_space({"model.hidden_dropout": {"uniform": [0.1, math.nan]}}),
         f"{SPACE}.model.hidden_dropout.uniform: got [0.1, nan]; allowed: [low, high]"),
        (with_space({"optimizer.learning_rate": {"uniform": [0.1, math.inf]}}),
         f"{SPACE}.optimizer.learning_rate.uniform: got [0.1, inf]; allowed: [low, high]"),
        (with_space({"model.hidden_dropout": {"uniform": [False, 0.3]}}),
         f"{SPACE}.model.hidden_dropout.uniform: got [False, 0.3]; allowed: [low, high]"),
        (with_space({"model.max_norm": {"categorical": []}}),
         f"{SPACE}.model.max_norm.categorical: got []; allowed: a non-empty list of values"),
        (with_space({"model.max_norm": {"categorical": 3.0}}),
         f"{SPACE}.model.max_norm.categorical: got 3.0; allowed: a non-empty list"),
        (with_space({"model.max_norm": {"categorical": [2.0, 3.0, 2.0]}}),
         f"{SPACE}.model.max_norm.categorical: got [2.0, 3.0, 2.0]; duplicate values"),
        (with_space({"model.max_norm": {"categorical": [None, 3.0, None]}}),
         f"{SPACE}.model.max_norm.categorical: got [None, 3.0, None]; duplicate values"),
        (with_space({"model.max_norm": {"categorical": [2, 2.0]}}),  # the same variant twice
         f"{SPACE}.model.max_norm.categorical: got [2, 2.0]; duplicate values"),
        (with_space({"model.max_norm": {"categorical": [None, "x"]}}),
         f"{SPACE}.model.max_norm.categorical[1]: got 'x'; allowed: a number, or null"),
        (with_space({"model.max_norm": {"categorical": [True]}}),
         f"{SPACE}.model.max_norm.categorical[0]: got True; allowed: a number, or null"),
        (with_space({"model.max_norm": {"categorical": [2.0, math.nan]}}),
         f"{SPACE}.model.max_norm.categorical[1]: got nan; allowed: a number, or null"),
        # a value the variant does not allow, at a bound or a choice
        (with_space({"optimizer.momentum": {"categorical": [None, 0.9]}}),
         f"{SPACE}.optimizer.momentum.categorical[0]: got None; allowed: a number"),
        (with_space({"model.max_norm": {"categorical": [None, -1.0]}}),
         f"{SPACE}.model.max_norm.categorical[1]: got -1.0; allowed: a value > 0"),
        (with_space({"model.max_norm": {"categorical": [-1]}}),
         f"{SPACE}.model.max_norm.categorical[0]: got -1.0; allowed: a value > 0"),
        (with_space({"model.hidden_dropout": {"uniform": [0.0, 1.0]}}),
         f"{SPACE}.model.hidden_dropout.uniform[1]: got 1.0; allowed: 0.0 <= value < 1.0"),
        (with_space({"optimizer.learning_rate": {"log_uniform": [0.01, 20.0]}}),
         f"{SPACE}.optimizer.learning_rate.log_uniform[1]: got 20.0; allowed: 0.0 <= value"),
        (with_space({"batch_size": {"int": [0, 16]}}),
         f"{SPACE}.batch_size.int[0]: got 0; allowed: an integer >= 1"),
        (with_space({"batch_size": {"categorical": [16, 16.5]}}),
         f"{SPACE}.batch_size.categorical[1]: got 16.5; allowed: an integer"),
        (with_space({"model.timesteps": {"categorical": [10, 12]}}, variant="lstm"),
         f"{SPACE}.model.timesteps.categorical[1]: got '12x6'; allowed: timesteps x features"),
        # a value that fails with the variant's other fields: the key that complained follows
        (with_space({"model.features": {"int": [5, 6]}}, variant="lstm"),
         f"{SPACE}.model.features.int[0]: variants.lstm.model.timesteps: got '10x5'; "
         "allowed: timesteps x features == 60"),
    ],
)  # fmt: skip
def test_bad_searches_are_refused_naming_the_key(params, message):
    assert refused(params).startswith(message)


@pytest.mark.parametrize("trials", [0, -1, 1.5, True, False, "32", None, MAX_TRIALS + 1])
def test_the_budget_is_an_integer_from_1_to_max_trials(trials):
    assert MAX_TRIALS == 10_000
    message = refused(with_search(trials=trials))
    assert message.startswith(f"searches.s.trials: got {trials!r}; allowed: an integer from 1 to")
    assert "10,000" in message


@pytest.mark.parametrize("trials", [1, MAX_TRIALS])
def test_the_budgets_bounds_are_allowed(trials):
    assert load_search(with_search(trials=trials), "s").trials == trials


@pytest.mark.parametrize(
    ("halving", "message"),
    [
        ({"rungs": [50, 50], "reduction": 3},
         "searches.s.halving.rungs: got [50, 50]; allowed: strictly increasing epochs"),
        ({"rungs": [300, 50]}, "searches.s.halving.rungs: got [300, 50]; allowed: strictly"),
        ({"rungs": [10, 30, 20]}, "searches.s.halving.rungs: got [10, 30, 20]; allowed: strictly"),
        ({"rungs": [50], "reduction": 3},
         "searches.s.halving.rungs: got [50]; allowed: a list of two or more epoch counts"),
        ({"rungs": []}, "searches.s.halving.rungs: got []; allowed: a list of two or more"),
        ({"reduction": 3}, "searches.s.halving.rungs: got None; allowed: a list of two or more"),
        ({"rungs": 50}, "searches.s.halving.rungs: got 50; allowed: a list of two or more"),
        ({"rungs": [0, 50]}, "searches.s.halving.rungs[0]: got 0; allowed: an integer >= 1"),
        ({"rungs": [10, -5]}, "searches.s.halving.rungs[1]: got -5; allowed: an integer >= 1"),
        ({"rungs": [10, 20.0]}, "searches.s.halving.rungs[1]: got 20.0; allowed: an integer >= 1"),
        ({"rungs": [True, 20]}, "searches.s.halving.rungs[0]: got True; allowed: an integer"),
        ({"rungs": [50, 300], "reduction": 1},
         "searches.s.halving.reduction: got 1; allowed: an integer >= 2"),
        ({"rungs": [50, 300], "reduction": 2.5},
         "searches.s.halving.reduction: got 2.5; allowed: an integer >= 2"),
        ({"rungs": [50, 300], "reduction": None},
         "searches.s.halving.reduction: got None; allowed: an integer >= 2"),
        ({"rungs": [50, 300], "reduction": 3, "eta": 2},
         "searches.s.halving.eta: got 2; unknown key; allowed: rungs, reduction"),
        ([50, 300], "searches.s.halving: got [50, 300]; allowed: a mapping with keys rungs"),
    ],
)  # fmt: skip
def test_bad_halvings_are_refused_naming_the_key(halving, message):
    assert refused(with_search(halving=halving)).startswith(message)


def test_a_halvings_last_rung_must_be_valid_epochs_for_the_variant():
    # epochs 0 is refused by the halving itself; any rung >= 1 builds the variant
    s = load_search(with_search(halving={"rungs": [1, 2]}), "s")
    assert trial_variant(PARAMS, s, {}, 2).epochs == 2


@pytest.mark.parametrize("name", ["a-b", "a b", "../up", "1st", "x;rm", ""])
def test_a_search_name_must_be_a_plain_identifier(name):
    params = {**PARAMS, "searches": {name: copy.deepcopy(TUTORIAL)}}
    with pytest.raises(ConfigError) as err:
        search_names(params)
    assert str(err.value).startswith(f"searches.{name}: got {name!r}; allowed: a plain identifier")
    with pytest.raises(ConfigError, match="allowed: a plain identifier"):
        load_search(params, name)


def test_a_non_string_search_name_is_refused():
    with pytest.raises(ConfigError, match=r"^searches\.3: got 3; allowed: a plain identifier"):
        search_names({**PARAMS, "searches": {3: copy.deepcopy(TUTORIAL)}})


def test_a_missing_search_names_the_defined_ones():
    assert (
        refused(PARAMS, "tutoral")
        == "searches.tutoral: got '<missing>'; defined searches: tutorial"
    )
    assert refused({**PARAMS, "searches": {}}, "x").startswith(
        "searches.x: got '<missing>'; defined searches: none"
    )
    no_section = {k: v for k, v in PARAMS.items() if k != "searches"}
    assert search_names(no_section) == []
    assert refused(no_section, "x").startswith(
        "searches.x: got '<missing>'; defined searches: none"
    )


def test_searches_and_a_search_must_be_mappings():
    assert refused({**PARAMS, "searches": [1]}).startswith(
        "searches: got [1]; allowed: a mapping of search name to its settings"
    )
    assert refused({**PARAMS, "searches": {"s": 3}}).startswith(
        "searches.s: got 3; allowed: a mapping with keys variant, space, sampler, trials"
    )


def test_a_base_variant_that_does_not_exist_is_refused_before_its_space():
    params = with_search(variant="nope", space={"model.bogus": {"uniform": [0, 1]}})
    assert refused(params).startswith("searches.s.variant: got 'nope'; defined variants: baseline")


def test_an_invalid_base_variant_names_the_variants_key():
    params = copy.deepcopy(with_search())
    params["variants"] = {**PARAMS["variants"], "hidden": {**PARAMS["variants"]["hidden"],
                                                           "batch_size": 0}}  # fmt: skip
    assert refused(params).startswith("variants.hidden.batch_size: got 0")


def test_load_search_leaves_params_untouched():
    params = with_search(space={"model.max_norm": {"categorical": [None, 2.0]}})
    before = copy.deepcopy(params)
    s = load_search(params, "s")
    trial_variant(params, s, {"model.max_norm": 2.0}, 50)
    assert params == before


# --- the size check with the splits' protocol -------------------------------------------------


def test_a_budget_over_the_work_limit_is_refused_naming_trials():
    protocol = load_protocol(PARAMS)
    splits = protocol.folds * protocol.repeats
    steps = math.ceil(sizes.train_rows(protocol.folds) / 16)  # `hidden`'s batch size
    last = sizes.WORK_LIMIT // (MAX_TRIALS * splits * steps) + 1  # the epochs just over it
    params = with_search(trials=MAX_TRIALS, halving={"rungs": [1, last]})
    assert MAX_TRIALS * splits * (1 + last) * steps > sizes.WORK_LIMIT
    message = refused(params, protocol=protocol)
    assert message.startswith(f"searches.s.trials: {MAX_TRIALS:,} trials x {splits} splits x ")
    assert "sonarlab.design.sizes.WORK_LIMIT" in message and "ask for fewer trials" in message
    load_search(params, "s")  # without the protocol, no size check
    # a smaller budget of the same search fits
    load_search(with_search(trials=32, halving={"rungs": [1, last]}), "s", protocol)


def test_the_work_counts_the_smallest_batch_the_space_can_ask_for():
    protocol = load_protocol(PARAMS)
    params = with_space({"batch_size": {"int": [1, 16]}}, trials=MAX_TRIALS, halving=None)
    load_search(with_space({"batch_size": {"int": [15, 16]}}, trials=MAX_TRIALS, halving=None),
                "s", protocol)  # fmt: skip
    message = refused(params, protocol=protocol)
    steps = sizes.train_rows(protocol.folds)  # batches of 1 row
    assert message.startswith(f"searches.s.trials: {MAX_TRIALS:,} trials x 30 splits x 300 "
                              f"epochs x {steps} steps")  # fmt: skip


# --- dimensions as Optuna distributions, halving, trial variants -------------------------------


def test_dimensions_as_optuna_distributions():
    s = load_search(PARAMS, "tutorial")
    d = {dim.key: dim.optuna() for dim in s.space}
    assert d["model.hidden_dropout"] == FloatDistribution(0.0, 0.5, log=False)
    assert d["optimizer.learning_rate"] == FloatDistribution(0.001, 0.3, log=True)
    assert isinstance(d["optimizer.learning_rate"], FloatDistribution)
    assert d["optimizer.learning_rate"].log and d["optimizer.learning_rate"].step is None
    assert d["model.max_norm"] == CategoricalDistribution((None, 2.0, 3.0, 4.0))
    assert None in d["model.max_norm"].choices
    ints = Dimension("batch_size", "int", 8, 32).optuna()
    assert ints == IntDistribution(8, 32) and type(ints) is IntDistribution
    assert not ints.log and ints.step == 1


def test_dimension_bounds():
    assert Dimension("a", "uniform", 0.1, 0.5).bounds() == [0.1, 0.5]
    assert Dimension("a", "int", 1, 5).bounds() == [1, 5]
    assert Dimension("a", "categorical", choices=(None, 2.0)).bounds() == [None, 2.0]


@pytest.mark.parametrize(
    ("n", "reduction", "kept"),
    [(1, 3, 1), (2, 3, 1), (3, 3, 1), (4, 3, 2), (9, 3, 3), (10, 3, 4), (16, 3, 6), (16, 2, 8),
     (17, 2, 9), (16, 4, 4), (5, 10, 1)],
)  # fmt: skip
def test_halving_keeps_the_best_one_in_reduction_at_least_one(n, reduction, kept):
    assert Halving((10, 30), reduction).kept(n) == kept


def test_trial_variant_sets_the_values_and_with_halving_the_rungs_epochs():
    s = load_search(PARAMS, "tutorial")
    values = {"model.hidden_dropout": 0.35, "optimizer.learning_rate": 0.02,
              "optimizer.momentum": 0.6, "model.max_norm": None}  # fmt: skip
    v = trial_variant(PARAMS, s, values, 50)
    assert v.model.hidden_dropout == 0.35 and v.model.max_norm is None
    assert (v.optimizer.learning_rate, v.optimizer.momentum) == (0.02, 0.6)
    assert v.epochs == 50 and v.batch_size == 16 and v.model.hidden == (60, 30)
    assert trial_variant(PARAMS, s, values, 300).epochs == 300
    assert s.base.model.hidden_dropout == 0.2  # the base is untouched
    unhalved = load_search(with_search(halving=None), "s")
    assert trial_variant(PARAMS, unhalved, values, 7).epochs == 300  # no halving: the variant's


def test_trial_variant_names_the_variants_key_or_the_combination():
    s = load_search(PARAMS, "tutorial")
    with pytest.raises(ConfigError, match=r"^variants\.hidden\.model\.hidden_dropout: got 1\.5"):
        trial_variant(PARAMS, s, {"model.hidden_dropout": 1.5}, 50)
    lstm = load_search(with_space({"model.dropout": {"uniform": [0.0, 0.5]}}, variant="lstm"), "s")
    with pytest.raises(ConfigError) as err:
        trial_variant(PARAMS, lstm, {"model.features": 5}, 50)
    assert str(err.value).startswith(
        "searches.s.space {'model.features': 5}: variants.lstm.model.timesteps: got '10x5'"
    )


# --- the rule's ranking -------------------------------------------------------------------------


def verdict(name: str, score: float, tie: float = 0.5, high: float | None = -0.01) -> Verdict:
    """A candidate whose test against the reference has upper bound ``high`` (None: none)."""
    test = None if high is None else PairedTest(high - 0.02, high - 0.04, high, -3.0, 0.01, 29)
    return Verdict(name, score, tie, test)


def test_ranking_orders_the_eligible_by_score_then_tie_break_then_order():
    vs = [verdict("a", 0.20, 0.6), verdict("b", 0.15, 0.5), verdict("c", 0.20, 0.4),
          verdict("d", 0.15, 0.5), verdict("e", 0.10, 0.9)]  # fmt: skip
    assert ranking(vs) == ["e", "b", "d", "c", "a"]
    assert ranking(vs, eligible_only=False) == ["e", "b", "d", "c", "a"]
    assert ranking([]) == [] and ranking([], eligible_only=False) == []


def test_ranking_leaves_out_or_puts_last_those_that_do_not_beat_the_reference():
    vs = [verdict("skill", 0.20), verdict("no_skill", 0.05, high=0.01),
          verdict("borderline", 0.04, high=0.0), verdict("also", 0.18),
          verdict("untested", 0.01, high=None)]  # fmt: skip
    assert [v.beats_reference for v in vs] == [True, False, False, True, False]
    assert ranking(vs) == ["also", "skill"]
    assert ranking(vs, eligible_only=False) == ["also", "skill", "untested", "borderline",
                                                "no_skill"]  # fmt: skip


def test_ranking_never_ranks_a_diverged_candidate():
    vs = [
        verdict("nan", math.nan, math.nan, None),
        verdict("ok", 0.2),
        verdict("nan_eligible", math.nan, 0.1),
        verdict("bad", 0.3, high=0.1),
    ]
    assert ranking(vs) == ["ok"]
    assert ranking(vs, eligible_only=False) == ["ok", "bad"]
    assert ranking([verdict("nan", math.nan, high=None)], eligible_only=False) == []


def test_ranking_puts_a_nan_tie_break_after_a_finite_one():
    vs = [verdict("nan_tie", 0.2, math.nan), verdict("tie", 0.2, 5.0), verdict("best", 0.1)]
    assert ranking(vs) == ["best", "tie", "nan_tie"]


def test_ranking_with_duplicate_names_keeps_both_in_order():
    assert ranking([verdict("x", 0.2), verdict("x", 0.1)]) == ["x", "x"]


# --- the journal -------------------------------------------------------------------------------

DISTRIBUTIONS = {
    "model.hidden_dropout": FloatDistribution(0.0, 0.5),
    "optimizer.learning_rate": FloatDistribution(0.001, 0.3, log=True),
    "batch_size": IntDistribution(8, 32),
    "model.max_norm": CategoricalDistribution((None, 2.0, 3.0)),
}


def frozen_trials() -> list:
    """A complete, a pruned and a failed trial, stamped with this moment's clock."""

    def params(dropout, lr, batch, max_norm):
        return {"model.hidden_dropout": dropout, "optimizer.learning_rate": lr,
                "batch_size": batch, "model.max_norm": max_norm}  # fmt: skip

    return [
        create_trial(state=TrialState.COMPLETE, value=0.125, params=params(0.1, 0.01, 16, None),
                     distributions=DISTRIBUTIONS, intermediate_values={50: 0.2, 300: 0.125}),
        create_trial(state=TrialState.PRUNED, params=params(0.4, 0.2, 8, 3.0),
                     distributions=DISTRIBUTIONS, intermediate_values={50: 0.31}),
        create_trial(state=TrialState.FAIL, params=params(0.3, 0.25, 32, 2.0),
                     distributions=DISTRIBUTIONS),
    ]  # fmt: skip


def open_with_optuna(path, name="search@s"):
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


def test_optunas_own_journal_storage_opens_the_journal(tmp_path):
    trials = frozen_trials()
    target = tmp_path / "search" / "study.log"  # its folder is made
    journal.write_journal(target, "search@s", trials)
    study = open_with_optuna(target)
    assert study.study_name == "search@s"
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    got = study.trials
    assert [t.number for t in got] == [0, 1, 2]
    assert [t.state for t in got] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    assert [t.value for t in got] == [0.125, None, None]
    assert [t.params for t in got] == [t.params for t in trials]
    assert got[0].params["model.max_norm"] is None and got[1].params["batch_size"] == 8
    assert [t.distributions for t in got] == [DISTRIBUTIONS] * 3
    assert [t.intermediate_values for t in got] == [{50: 0.2, 300: 0.125}, {50: 0.31}, {}]
    assert study.best_trial.number == 0
    for t in got:
        assert t.datetime_start == t.datetime_complete == journal.EPOCH.replace(tzinfo=None)
    # read_journal reads the same
    again = journal.read_journal(target, "search@s")
    assert [(t.state, t.value, t.params, t.intermediate_values) for t in again.trials] == [
        (t.state, t.value, t.params, t.intermediate_values) for t in got
    ]


def test_the_same_trials_write_the_same_bytes_whenever_they_ran(tmp_path):
    first = frozen_trials()
    later = frozen_trials()
    for t in later:
        t.datetime_start = datetime.datetime(2031, 5, 6, 7, 8, 9)
        t.datetime_complete = datetime.datetime(2031, 5, 6, 8, 0, 0)
    journal.write_journal(tmp_path / "a" / "study.log", "search@s", first)
    journal.write_journal(tmp_path / "b" / "study.log", "search@s", later)
    a, b = ((tmp_path / d / "study.log").read_bytes() for d in "ab")
    assert a == b and a
    lines = [json.loads(line) for line in a.decode().splitlines()]
    assert {x["worker_id"] for x in lines} == {journal.WRITER}
    assert b"2031" not in a and str(datetime.date.today().year).encode() not in a
    # the trials given are not changed
    assert later[0].datetime_start == datetime.datetime(2031, 5, 6, 7, 8, 9)
    # and a different study differs
    journal.write_journal(tmp_path / "c" / "study.log", "search@s", first[:2])
    assert (tmp_path / "c" / "study.log").read_bytes() != a


def test_a_journal_is_replaced_not_appended_and_leaves_no_lock_behind(tmp_path):
    target = tmp_path / "study.log"
    journal.write_journal(target, "search@s", frozen_trials())
    once = target.read_bytes()
    journal.write_journal(target, "search@s", frozen_trials())
    assert target.read_bytes() == once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.log"]
    journal.write_journal(target, "search@s", frozen_trials()[:1])
    assert len(open_with_optuna(target).trials) == 1


def test_an_empty_study_is_a_journal_too(tmp_path):
    target = tmp_path / "study.log"
    journal.write_journal(target, "search@s", [])
    assert open_with_optuna(target).trials == []


def test_optuna_can_continue_a_written_study(tmp_path):
    target = tmp_path / "study.log"
    journal.write_journal(target, "search@s", frozen_trials())
    study = open_with_optuna(target)
    trial = study.ask(DISTRIBUTIONS)
    study.tell(trial, 0.01)
    reread = journal.read_journal(target, "search@s")
    assert len(reread.trials) == 4 and reread.best_trial.number == 3
    assert reread.trials[0].intermediate_values == {50: 0.2, 300: 0.125}


def test_reading_a_study_the_journal_does_not_hold_fails(tmp_path):
    target = tmp_path / "study.log"
    journal.write_journal(target, "search@s", frozen_trials())
    with pytest.raises(KeyError):
        journal.read_journal(target, "search@other")


# --- trial run names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"model.hidden_dropout": 0.2}, "tutorial: hidden_dropout=0.2"),
        ({"optimizer.learning_rate": 0.0123456789, "model.max_norm": None},
         "tutorial: learning_rate=0.01235, max_norm=None"),
        ({"optimizer.momentum": 0.87654321, "batch_size": 16, "epochs": 300},
         "tutorial: momentum=0.8765, batch_size=16, epochs=300"),
        ({"model.max_norm": 3.0}, "tutorial: max_norm=3"),
        ({"a.b.c": 123456.7}, "tutorial: c=1.235e+05"),
        ({"x": 1e-7}, "tutorial: x=1e-07"),
        ({"seed": 2, "model.units": 12345678}, "tutorial: seed=2, units=12345678"),  # ints whole
        ({"x": 0.1 + 0.2}, "tutorial: x=0.3"),
    ],
)  # fmt: skip
def test_a_trial_run_is_named_by_its_values(values, name):
    assert trial_run_name("tutorial", values) == name


def test_trial_run_names_keep_the_values_order():
    a = trial_run_name("s", {"model.hidden_dropout": 0.1, "optimizer.momentum": 0.9})
    b = trial_run_name("s", {"optimizer.momentum": 0.9, "model.hidden_dropout": 0.1})
    assert a == "s: hidden_dropout=0.1, momentum=0.9" and b == "s: momentum=0.9, hidden_dropout=0.1"


# --- samplers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampler", "cls"),
    [("random", optuna.samplers.RandomSampler), ("qmc", optuna.samplers.QMCSampler),
     ("tpe", optuna.samplers.TPESampler)],
)  # fmt: skip
def test_make_sampler_gives_the_sampler_asked_for(sampler, cls):
    search = dataclasses.replace(load_search(PARAMS, "tutorial"), sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # QMC's
        assert type(make_sampler(search)) is cls
    study = new_study(search)
    assert type(study.sampler) is cls and study.study_name == "search@tutorial"
    assert study.direction == optuna.study.StudyDirection.MINIMIZE


def ask_blocks(search, blocks: int = 3, size: int = 6) -> list[dict]:
    """The params a new study of ``search`` asks, a block at a time as the driver asks,
    each told a score that depends on its params alone."""
    study = new_study(search)
    distributions = {d.key: d.optuna() for d in search.space}
    asked = []
    for _ in range(blocks):
        block = [study.ask(distributions) for _ in range(size)]
        for trial in block:
            p = trial.params
            study.tell(trial, (math.log(p["optimizer.learning_rate"]) + 3) ** 2
                       + p["model.hidden_dropout"] + (p["model.max_norm"] or 5.0) / 10)  # fmt: skip
            asked.append(dict(p))
    return asked


@pytest.mark.parametrize("sampler", ["random", "qmc", "tpe"])
def test_two_studies_from_the_same_seed_ask_the_same_params(sampler):
    search = dataclasses.replace(load_search(PARAMS, "tutorial"), sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and quietly: new_study hides Optuna's warnings
        first = ask_blocks(search)
    second = ask_blocks(search)
    assert first == second and len(first) == 18  # past TPE's 10 random start-up trials
    other = ask_blocks(dataclasses.replace(search, seed=1))
    assert other != first
    dims = {d.key: d for d in search.space}
    for p in first:  # and inside the space
        assert set(p) == set(dims)
        assert 0.0 <= p["model.hidden_dropout"] <= 0.5
        assert 0.001 <= p["optimizer.learning_rate"] <= 0.3
        assert 0.5 <= p["optimizer.momentum"] <= 0.95
        assert p["model.max_norm"] in dims["model.max_norm"].choices
        trial_variant(PARAMS, search, p, 50)  # every asked point builds a variant
