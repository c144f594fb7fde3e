import math

import keras
import numpy as np
import pytest

from sonarlab.core.params import read_params
from sonarlab.data.folds import Scaler
from sonarlab.design.variants import (
    ModelConfig,
    OptimizerConfig,
    ScheduleConfig,
    VariantConfig,
    load_variant,
)
from sonarlab.training.model import build_model, make_learning_rate, steps_per_epoch
from tests.conftest import ROOT

PARAMS = read_params(ROOT / "params.yaml")
SCALER = Scaler(mean=np.linspace(0.0, 0.5, 60), std=np.linspace(0.1, 0.3, 60))


def layers_of(model):
    return [(type(layer).__name__, layer) for layer in model.layers]


def dropout_positions(model):
    """(index in the layer list, rate) of every Dropout layer."""
    return [
        (i, layer.rate) for i, (kind, layer) in enumerate(layers_of(model)) if kind == "Dropout"
    ]


def build(name):
    return build_model(load_variant(PARAMS, name), SCALER, n_train=187, seed=1)


def test_baseline_is_60_60_30_1_without_dropout_or_constraint():
    model = build("baseline")
    kinds = [k for k, _ in layers_of(model)]
    assert kinds == ["InputLayer", "Normalization", "Dense", "Dense", "Dense"]
    dense = [layer for k, layer in layers_of(model) if k == "Dense"]
    assert [d.units for d in dense] == [60, 30, 1]
    assert [d.activation.__name__ for d in dense] == ["relu", "relu", "sigmoid"]
    assert all(d.kernel_constraint is None for d in dense)
    assert model.input_shape == (None, 60)
    opt = model.optimizer
    assert isinstance(opt, keras.optimizers.SGD)
    assert float(opt.learning_rate) == pytest.approx(0.01)
    assert opt.momentum == pytest.approx(0.8)


def test_visible_drops_the_inputs_and_constrains_hidden_kernels():
    model = build("visible")
    assert dropout_positions(model) == [(2, 0.2)]  # right after standardization
    dense = [layer for k, layer in layers_of(model) if k == "Dense"]
    assert [type(d.kernel_constraint).__name__ for d in dense] == ["MaxNorm", "MaxNorm", "NoneType"]
    assert dense[0].kernel_constraint.max_value == 3.0
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)
    assert model.optimizer.momentum == pytest.approx(0.9)


def test_hidden_drops_after_each_hidden_layer():
    model = build("hidden")
    kinds = [k for k, _ in layers_of(model)]
    assert kinds == ["InputLayer", "Normalization", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [rate for _, rate in dropout_positions(model)] == [0.2, 0.2]


def test_lstm_reads_bands_as_a_sequence_with_recurrent_dropout():
    model = build("lstm")
    lstm = model.get_layer("lstm")
    cfg = load_variant(PARAMS, "lstm").model
    assert lstm.units == cfg.units
    assert lstm.dropout == cfg.dropout and lstm.recurrent_dropout == cfg.recurrent_dropout > 0
    assert model.get_layer("bands_as_sequence").target_shape == (cfg.timesteps, cfg.features)


def test_standardization_is_inside_the_model():
    model = build("baseline")
    norm = model.get_layer("standardize")
    x = np.random.default_rng(0).uniform(size=(4, 60)).astype("float32")
    expected = (x - SCALER.mean) / SCALER.std
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm(x)), expected, rtol=1e-5, atol=1e-5)


def test_lr_decay_uses_keras2_time_decay_per_update():
    v = load_variant(PARAMS, "lr_decay")
    lr = build_model(v, SCALER, n_train=187, seed=1).optimizer._learning_rate
    assert isinstance(lr, keras.optimizers.schedules.InverseTimeDecay)
    decay = v.optimizer.learning_rate / v.epochs  # decay: null means lr0 / epochs
    for t in (0, 1, 12, 3599):
        assert float(lr(t)) == pytest.approx(0.1 / (1 + decay * t), rel=1e-6)


@pytest.mark.parametrize("decay", [0.0, 1e-3, 0.5])
def test_time_schedule_values(decay):
    sched = make_learning_rate(
        OptimizerConfig(0.2, 0.9), ScheduleConfig("time", decay=decay), 10, 12
    )
    for t in (0, 5, 100):
        assert float(sched(t)) == pytest.approx(0.2 / (1 + decay * t), rel=1e-6)


def test_step_schedule_drops_every_n_epochs_counting_from_zero():
    updates = 12
    sched = make_learning_rate(
        OptimizerConfig(0.1, 0.9), ScheduleConfig("step", drop=0.5, every=10), 300, updates
    )

    def at_epoch(e):
        return float(sched(e * updates))

    # epochs 0..9 at lr0, 10..19 at lr0/2, 20..29 at lr0/4
    assert [at_epoch(e) for e in (0, 9, 10, 19, 20)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    # within an epoch the rate does not change
    assert float(sched(10 * updates - 1)) == pytest.approx(0.1)
    # the misplaced-floor formula decays smoothly: it would give 0.1 * 0.5 ** (1/10) at epoch 0
    misplaced = 0.1 * math.pow(0.5, math.floor(1 + 0) / 10)
    assert at_epoch(0) != pytest.approx(misplaced)


def test_constant_schedule_is_a_plain_float():
    assert make_learning_rate(OptimizerConfig(0.01, 0.8), ScheduleConfig(), 300, 12) == 0.01


def test_steps_per_epoch_counts_the_short_last_batch():
    assert steps_per_epoch(187, 16) == 12
    assert steps_per_epoch(192, 16) == 12
    assert steps_per_epoch(193, 16) == 13


def test_trained_optimizer_reaches_the_scheduled_rate(tiny_data):
    X, y = tiny_data
    v = VariantConfig(
        model=ModelConfig("mlp", hidden=(4,)),
        optimizer=OptimizerConfig(0.1, 0.9),
        schedule=ScheduleConfig("time", decay=0.05),
        epochs=3,
        batch_size=16,
    )
    model = build_model(v, Scaler.fit(X), n_train=len(X), seed=1)
    model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    updates = 3 * steps_per_epoch(len(X), 16)
    assert int(model.optimizer.iterations) == updates
    assert float(model.optimizer.learning_rate) == pytest.approx(
        0.1 / (1 + 0.05 * updates), rel=1e-6
    )


def test_initial_weights_are_a_function_of_the_seed_alone():
    """Not of Python's global ``random``, which other threads (a Dask worker's event loop)
    may draw from between the seeding and the building."""
    import random

    v = load_variant(PARAMS, "hidden")
    first = build_model(v, SCALER, n_train=187, seed=5).get_weights()
    random.seed(123)
    random.random()
    again = build_model(v, SCALER, n_train=187, seed=5).get_weights()
    other = build_model(v, SCALER, n_train=187, seed=6).get_weights()
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])  # the first hidden kernel differs


def _variant(**model) -> VariantConfig:
    return VariantConfig(
        model=ModelConfig(**model), optimizer=OptimizerConfig(0.1, 0.9),
        schedule=ScheduleConfig("constant"), epochs=3, batch_size=16,
    )  # fmt: skip


DRAWN = [
    *(load_variant(PARAMS, name) for name in PARAMS["variants"]),
    _variant(kind="mlp", hidden=(7,), input_dropout=0.3, hidden_dropout=0.0),
    _variant(kind="mlp", hidden=(5, 4, 3), input_dropout=0.0, hidden_dropout=0.1),
    _variant(kind="mlp", hidden=(8, 2), input_dropout=0.1, hidden_dropout=0.2, max_norm=2.0),
    _variant(kind="lstm", units=3, timesteps=12, features=5, dropout=0.0, recurrent_dropout=0.0),
    _variant(kind="lstm", units=6, timesteps=6, features=10, dropout=0.1, recurrent_dropout=0.3),
]


@pytest.mark.parametrize("variant", DRAWN, ids=lambda v: repr(v.model)[:60])
@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5])
def test_initial_values_are_build_networks_weights_bit_for_bit(variant, seed):
    """The fused engine draws each member's initial weights without building its network;
    they must be the built network's exactly, in its order, for every kind and part."""
    from sonarlab.training.model import build_network, initial_values

    built = [w.numpy() for w in build_network(variant, SCALER, seed).trainable_weights]
    drawn = initial_values(variant, seed)
    assert [w.shape for w in drawn] == [w.shape for w in built]
    for a, b in zip(drawn, built, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
