"""The one model factory: every variant is a ``VariantConfig`` read by ``build_model``.

The network takes raw 60-band rows: a fixed ``Normalization`` layer holding the
fold's (or, for the final model, the full data's) standardization statistics comes
first, so a saved model needs no separate scaler.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from sonarlab.core.params import N_BANDS
from sonarlab.data.folds import Scaler
from sonarlab.data.seeds import Stream, stream_seed
from sonarlab.design.variants import ModelConfig, OptimizerConfig, ScheduleConfig, VariantConfig


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow ops deterministic:
    what follows (initial weights, and for Keras ``fit`` batch orders and dropout masks)
    depends on ``seed`` alone."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def predict_proba(model: keras.Model, X: np.ndarray) -> np.ndarray:
    """P(mine) per row, inference mode (dropout off). A direct call: no retracing per shape."""
    return keras.ops.convert_to_numpy(model(X, training=False)).ravel()


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer updates per epoch: the last, short batch is still an update."""
    return math.ceil(n_train / batch_size)


def make_learning_rate(
    optimizer: OptimizerConfig,
    schedule: ScheduleConfig,
    epochs: int,
    updates_per_epoch: int,
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate, or a Keras schedule evaluated at every optimizer update.

    ``time`` reproduces Keras 2's ``SGD(decay=...)``: lr0 / (1 + decay * t) with t
    the update count (``decay`` defaults to lr0 / epochs, the tutorial's choice).
    ``step`` multiplies the rate by ``drop`` every ``every`` epochs, counting epochs
    from 0: lr0 * drop ** floor(epoch / every). (The often-copied
    ``pow(drop, floor(1 + epoch) / every)`` puts ``floor`` around ``1 + epoch``,
    where it does nothing, and so decays smoothly instead of in steps.)
    """
    lr0 = optimizer.learning_rate
    if schedule.kind == "constant":
        return lr0
    if schedule.kind == "time":
        decay = schedule.decay if schedule.decay is not None else lr0 / epochs
        return keras.optimizers.schedules.InverseTimeDecay(lr0, decay_steps=1, decay_rate=decay)
    if schedule.kind == "step":
        return keras.optimizers.schedules.ExponentialDecay(
            lr0,
            decay_steps=schedule.every * updates_per_epoch,
            decay_rate=schedule.drop,
            staircase=True,
        )
    raise ValueError(f"unknown schedule kind {schedule.kind!r}")  # validated in config


class _Seeds:
    """Explicit seeds for a network's initializers and dropout layers, drawn in order from
    the model's seed. Left unseeded, Keras draws each one from Python's global
    ``random`` when the layer is made: a value any other thread (a Dask worker's event
    loop, say) may consume in between, which made initial weights differ at random."""

    def __init__(self, seed: int):
        self.seed, self.count = seed, 0

    def __call__(self) -> int:
        self.count += 1
        return stream_seed(self.seed, Stream.INIT, self.count)

    def glorot(self) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=self())


def _body(model: ModelConfig, x: keras.KerasTensor, seeds: _Seeds) -> keras.KerasTensor:
    if model.kind == "mlp":
        constraint = keras.constraints.MaxNorm(model.max_norm) if model.max_norm else None
        if model.input_dropout > 0:
            x = keras.layers.Dropout(model.input_dropout, seed=seeds(), name="input_dropout")(x)
        for i, units in enumerate(model.hidden, start=1):
            x = keras.layers.Dense(
                units, activation="relu", kernel_constraint=constraint,
                kernel_initializer=seeds.glorot(), name=f"hidden_{i}",
            )(x)  # fmt: skip
            if model.hidden_dropout > 0:
                x = keras.layers.Dropout(
                    model.hidden_dropout, seed=seeds(), name=f"hidden_dropout_{i}"
                )(x)
        return x
    x = keras.layers.Reshape((model.timesteps, model.features), name="bands_as_sequence")(x)
    return keras.layers.LSTM(
        model.units,
        dropout=model.dropout,
        recurrent_dropout=model.recurrent_dropout,
        kernel_initializer=seeds.glorot(),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seeds()),
        seed=seeds(),
        name="lstm",
    )(x)


def build_network(variant: VariantConfig, scaler: Scaler, seed: int) -> keras.Model:
    """The (uncompiled) network for ``variant``, standardizing raw rows with ``scaler``;
    its initial weights (and its dropout layers' seeds) are a function of ``seed``."""
    seeds = _Seeds(seed)
    inputs = keras.Input((N_BANDS,), name="bands")
    x = keras.layers.Normalization(
        mean=scaler.mean.tolist(), variance=(scaler.std**2).tolist(), name="standardize"
    )(inputs)
    x = _body(variant.model, x, seeds)
    outputs = keras.layers.Dense(
        1, activation="sigmoid", kernel_initializer=seeds.glorot(), name="p_mine"
    )(x)
    return keras.Model(inputs, outputs, name=f"sonar_{variant.model.kind}")


def build_model(variant: VariantConfig, scaler: Scaler, n_train: int, seed: int) -> keras.Model:
    """``build_network`` compiled with the variant's optimizer, schedule and loss.

    ``n_train`` fixes the number of updates per epoch, which step schedules need.
    """
    model = build_network(variant, scaler, seed)
    updates = steps_per_epoch(n_train, variant.batch_size)
    lr = make_learning_rate(variant.optimizer, variant.schedule, variant.epochs, updates)
    model.compile(
        # named: Keras counts unnamed optimizers per process (sgd, sgd_1, ...), and the
        # name is saved in model.keras
        optimizer=keras.optimizers.SGD(
            learning_rate=lr, momentum=variant.optimizer.momentum, name="sgd"
        ),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        # One host call per epoch instead of per batch: same arithmetic, less overhead.
        steps_per_execution=updates,
    )
    return model


def initial_values(variant: VariantConfig, seed: int) -> list[np.ndarray]:
    """The initial trainable weights of ``build_network(variant, _, seed)``, in its
    ``trainable_weights`` order, drawn by the same seeded initializers in the same order
    of seeds, without building the network (about 50x faster: the fused engine needs the
    weights of every member, thousands in a grid). ``build_network`` stays the reference:
    a unit test keeps the two equal bit for bit for every kind and part."""
    seeds = _Seeds(seed)
    model = variant.model

    def draw(init: keras.initializers.Initializer, shape: tuple[int, ...]) -> np.ndarray:
        return keras.ops.convert_to_numpy(init(shape, dtype="float32"))

    values: list[np.ndarray] = []
    if model.kind == "mlp":
        if model.input_dropout > 0:
            seeds()  # the input Dropout's seed
        width = N_BANDS
        for units in model.hidden:
            values += [draw(seeds.glorot(), (width, units)), np.zeros(units, np.float32)]
            if model.hidden_dropout > 0:
                seeds()  # the Dropout after it
            width = units
    else:
        kernel = draw(seeds.glorot(), (model.features, 4 * model.units))
        recurrent = draw(
            keras.initializers.Orthogonal(seed=seeds()), (model.units, 4 * model.units)
        )
        seeds()  # the LSTM's own dropout seed
        bias = np.zeros(4 * model.units, np.float32)
        bias[model.units : 2 * model.units] = 1.0  # Keras' unit_forget_bias
        values += [kernel, recurrent, bias]
        width = model.units
    return [*values, draw(seeds.glorot(), (width, 1)), np.zeros(1, np.float32)]
