"""design.sizes: the estimates against hand counts, the limits against the real studies
(the default pipeline, the README's 324-trial grid) and against what cannot run."""

from __future__ import annotations

import copy
import dataclasses
import os

import pytest
import yaml

from sonarlab.core.errors import StageError
from sonarlab.core.params import ConfigError, load_protocol, load_section
from sonarlab.design import sizes
from sonarlab.design.grids import grid_names, load_grid
from sonarlab.design.variants import ModelConfig, load_variant
from tests.conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def big_grid() -> dict:
    """The README's 324-trial grid, as ``make bench-grid`` runs it (benchmarks/grid.py)."""
    from benchmarks.grid import BIG

    return copy.deepcopy(BIG)


def with_grid(spec: dict) -> dict:
    params = copy.deepcopy(PARAMS)
    params["grids"] = {"big": spec}
    return params


# --- the estimates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hidden", "count"),
    [
        ((60, 30), 60 * 60 + 60 + 60 * 30 + 30 + 30 + 1),  # 5,521: the tutorial's 60-60-30-1
        ((10,), 60 * 10 + 10 + 10 + 1),
        ((100_000, 100_000), 60 * 100_000 + 100_000 + 100_000**2 + 100_000 + 100_000 + 1),
    ],
)
def test_an_mlp_has_its_dense_kernels_and_biases(hidden, count):
    assert sizes.parameter_count(ModelConfig(kind="mlp", hidden=hidden)) == count


@pytest.mark.parametrize(
    ("units", "features", "count"), [(32, 6, 4 * 32 * 39 + 33), (4, 1, 4 * 4 * 6 + 5)]
)
def test_an_lstm_has_four_gates_and_a_head(units, features, count):
    model = ModelConfig(kind="lstm", units=units, timesteps=60 // features, features=features)
    assert sizes.parameter_count(model) == count


def test_the_counts_are_the_networks_keras_builds():
    from sonarlab.data.folds import Scaler  # noqa: I001 - Keras loads here, for this test only
    from sonarlab.training.model import build_network

    import numpy as np

    scaler = Scaler(np.zeros(60), np.ones(60))
    for name in PARAMS["variants"]:
        variant = load_variant(PARAMS, name)
        network = build_network(variant, scaler, 0)
        n = sum(int(np.prod(w.shape)) for w in network.trainable_weights)
        assert sizes.parameter_count(variant.model) == n, name


def test_the_constants_match_the_code_they_describe():
    from sonarlab.data import uci
    from sonarlab.training.engines import fused

    assert sizes.ROWS == uci.N_ROWS
    assert sizes.MODELS_PER_PROGRAM == fused.BLOCK


def test_program_memory_is_weights_activations_and_rows_per_model():
    variant = load_variant(PARAMS, "baseline")
    p, bs = 5521, 16
    weights = p * sizes.WEIGHT_COPIES
    acts = bs * (60 + 60 + 30 + 1) * sizes.ACTIVATION_COPIES
    rows = 2 * 13 * bs * 61  # 208 rows padded to 13 batches of 16; train and held-out
    assert sizes.program_memory(variant, 32) == 32 * (weights + acts + rows) * 4
    assert sizes.kept_memory(variant, 31) == 31 * (p + 2 * 208) * 4


# --- the limits -----------------------------------------------------------------------


def test_the_limits_are_what_the_comments_say():
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert physical * 3 // 4 == sizes.MEMORY_LIMIT
    assert sizes.WORK_LIMIT == 3 * 86400 * sizes.THROUGHPUT
    # README: 4,240 model-epochs/s of 12 steps (batch 16, 188 training rows)
    assert pytest.approx(4240 * 12, rel=0.05) == sizes.THROUGHPUT


@pytest.mark.parametrize("name", list(PARAMS["variants"]))
def test_every_default_variant_passes_with_a_wide_margin(name):
    variant = load_variant(PARAMS, name)
    cv = load_section(PARAMS, "cv")
    sizes.check_cv(name, variant, cv.folds, cv.repeats, cv.engine)
    models = cv.folds * cv.repeats + 1
    memory = sizes.program_memory(variant) + sizes.kept_memory(variant, models)
    assert memory * 100 < sizes.MEMORY_LIMIT
    assert variant.epochs * models * 13 * 1000 < sizes.WORK_LIMIT


@pytest.mark.parametrize("name", grid_names(PARAMS))
def test_every_default_grid_passes(name):
    assert len(load_grid(PARAMS, name, load_protocol(PARAMS)).trials) == 6


def test_the_readmes_324_trial_grid_passes_with_a_wide_margin():
    params = with_grid(big_grid())
    study = load_grid(params, "big", load_protocol(params))
    assert len(study.trials) == 324
    work = 324 * 30 * 300 * 12  # model-steps: 12 steps of 16 of 188 training rows
    assert work * 100 < sizes.WORK_LIMIT
    hidden = study.trials[0].variant
    assert (
        sizes.program_memory(hidden) + sizes.kept_memory(hidden, 324 * 30)
    ) * 10 < sizes.MEMORY_LIMIT


def test_a_network_too_big_for_memory_is_refused_naming_its_widths():
    variant = load_variant(PARAMS, "baseline")
    huge = dataclasses.replace(
        variant, model=dataclasses.replace(variant.model, hidden=(200_000, 200_000))
    )
    with pytest.raises(ConfigError) as caught:
        sizes.check_cv("huge", huge, 10, 3, "fused")
    message = str(caught.value)
    assert message.startswith(
        "variants.huge.model.hidden: [200000, 200000] makes 4.0e10 parameters; "
    )
    assert "32 models trained together need about" in message
    assert "sonarlab.design.sizes.MEMORY_LIMIT); make the layers narrower" in message


def test_too_many_epochs_or_too_big_a_batch_is_refused_by_its_key():
    variant = load_variant(PARAMS, "baseline")
    with pytest.raises(ConfigError, match=r"^variants\.b\.epochs: 31 models x 100,000,000 epochs"):
        sizes.check_cv("b", dataclasses.replace(variant, epochs=10**8), 10, 3, "fused")
    with pytest.raises(ConfigError, match=r"^variants\.b\.batch_size: 10,000,000 rows a batch"):
        sizes.check_cv("b", dataclasses.replace(variant, batch_size=10**7), 10, 3, "fused")


def test_a_million_trial_grid_is_refused_before_its_trials_are_built():
    axes = {"model.hidden_dropout": [i / 2000 for i in range(1000)],
            "optimizer.learning_rate": [(i + 1) / 1000 for i in range(1000)]}  # fmt: skip
    params = with_grid({"variant": "hidden", "axes": axes})
    with pytest.raises(ConfigError) as caught:
        load_grid(params, "big", load_protocol(params))
    message = str(caught.value)
    assert message.startswith(
        "grids.big.axes: 1,000,000 trials x 30 splits x 300 epochs x 12 steps = 1.1e11 model-steps"
    )
    assert message.endswith("sonarlab.design.sizes.WORK_LIMIT); use fewer values")


def test_a_grid_whose_trained_weights_would_not_fit_names_its_axes():
    params = with_grid({"variant": "hidden", "axes": {"seed": list(range(100))}})
    params["variants"]["hidden"]["model"]["hidden"] = [2000, 2000]
    with pytest.raises(ConfigError, match=r"^grids\.big\.axes: 4\.1e6 parameters a model; "
                       r"100 trials x 30 splits keep about"):  # fmt: skip
        load_grid(params, "big", load_protocol(params))


def test_a_grid_axis_that_widens_the_network_is_named():
    params = with_grid({"variant": "lstm", "axes": {"model.units": [8, 100_000]}})
    with pytest.raises(ConfigError, match=r"^grids\.big\.axes\.model\.units: 100000 makes"):
        load_grid(params, "big", load_protocol(params))


# --- running out of memory anyway -------------------------------------------------------


class ResourceExhaustedError(Exception):  # TensorFlow's, by name: no TensorFlow here
    pass


def test_out_of_memory_is_recognized_by_name_through_its_causes():
    assert sizes.ran_out_of_memory(ResourceExhaustedError("OOM when allocating"))
    assert sizes.ran_out_of_memory(MemoryError())
    try:
        try:
            raise ResourceExhaustedError("OOM")
        except ResourceExhaustedError as inner:
            raise StageError("shard 0 failed in this process") from inner
    except StageError as outer:
        assert sizes.ran_out_of_memory(outer)
        # a one-line message names the error, not TensorFlow's long text
        assert sizes.memory_error_name(outer) == "ResourceExhaustedError"
    assert not sizes.ran_out_of_memory(ValueError("no"))
    assert sizes.memory_error_name(ValueError("no")) is None
