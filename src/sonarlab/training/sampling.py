"""Monte Carlo dropout (Gal & Ghahramani 2016): a model's predictions with its dropout
left on, averaged over many passes. One sampler, ``mc_dropout``, for both users:
``cv@<variant>`` scores each fold's model on its held-out rows with it
(``held_out_mc_means``), and ``sonarlab.predict --samples`` runs a variant's final model.

The masks of a model's passes come from that model's own seed (``seeds.mc_dropout_seed``),
so the same model, rows, passes and seed give the same numbers in any process. The
passes run as an XLA program (``jit_compile``), like the fused engine, and so under the
AVX2 cap every sonarlab process sets (``sonarlab.XLA_ISA``): eager Keras goes through
oneDNN, whose kernels follow the CPU (its numbers differed between the default and
``ONEDNN_MAX_CPU_ISA=AVX2`` on this AVX-512 machine; the compiled program's did not), so
``predictions.csv`` is the same on AVX2 and AVX-512 machines.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf

from sonarlab.core.params import N_BANDS
from sonarlab.data.folds import Prepared, Scaler
from sonarlab.data.seeds import mc_dropout_seed
from sonarlab.design.variants import VariantConfig
from sonarlab.training.members import split_members
from sonarlab.training.model import build_network
from sonarlab.training.outcomes import FoldResult

# Samples are drawn as copies of the rows in one batch, each copy with its own dropout
# masks: up to this many rows a model call, instead of one call a sample.
SAMPLE_BATCH_ROWS = 16_384


class Reporter(Protocol):
    """What the sampler reports its samples to (``cli.progress.Progress`` is one)."""

    def update(self, done: int, where: str = "") -> None: ...


def uses_dropout(variant: VariantConfig) -> bool:
    """Whether the variant's network has any dropout (else MC dropout is its plain pass)."""
    m = variant.model
    if m.kind == "mlp":
        return m.input_dropout > 0 or m.hidden_dropout > 0
    return m.dropout > 0 or m.recurrent_dropout > 0


_PASSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _passes(model) -> Callable:
    """``model(x, training=True)`` as one XLA program per input shape, made once per model
    (its variables are captured: assigning them later is seen). A stand-in that is not a
    Keras model (a test's) is called as it is."""
    if not isinstance(model, keras.Model):
        return lambda x: model(x, training=True)
    if model not in _PASSES:
        _PASSES[model] = tf.function(lambda x: model(x, training=True), jit_compile=True)
    return _PASSES[model]


def mc_dropout(
    model, X: np.ndarray, samples: int, seed: int, progress: Reporter | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over ``samples`` forward passes with dropout on (``training=True``).

    The masks come from the model's own dropout layers, whose random state is reset
    from ``seed`` first, so the same seed gives the same masks. Nothing else in these
    models behaves differently in training mode (no batch norm), so the spread is the
    dropout's alone. A batch of ``k`` copies of the rows gives ``k`` samples in one call
    (every row of a batch has masks of its own); the batches' sizes depend only on
    ``samples`` and the number of rows, so a seed still fixes the result. Mean and std
    are combined batch by batch (Chan et al.'s pairwise update), in memory of one batch.
    ``progress`` sees the samples done after every call.
    """
    if samples < 1:
        raise ValueError(f"samples: got {samples}; allowed: an integer >= 1")
    # Each dropout layer (and LSTM cell) draws its masks from a SeedGenerator whose
    # state, [seed, counter], is a variable of the model: reset every one of them.
    states = [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]
    for i, state in enumerate(states):
        state.assign(np.array([mc_dropout_seed(seed, i), 0], dtype=state.dtype))
    per_call = max(1, SAMPLE_BATCH_ROWS // len(X))
    done, mean, m2 = 0, np.zeros(len(X)), np.zeros(len(X))
    passes = _passes(model)
    while done < samples:
        k = min(per_call, samples - done)
        out = passes(np.tile(np.asarray(X, np.float32), (k, 1)))
        draws = keras.ops.convert_to_numpy(out).reshape(k, len(X)).astype(np.float64)
        batch_mean = draws.mean(axis=0)
        delta, total = batch_mean - mean, done + k
        mean = mean + delta * (k / total)
        m2 = m2 + ((draws - batch_mean) ** 2).sum(axis=0) + delta**2 * (done * k / total)
        done = total
        if progress is not None:
            progress.update(done, f"{done}/{samples} samples")
    return mean, np.sqrt(m2 / samples)


def held_out_mc_means(
    variant: VariantConfig,
    prepared: Prepared,
    X: np.ndarray,
    folds: Sequence[FoldResult],
    samples: int,
    progress: Reporter | None = None,
) -> list[np.ndarray]:
    """Each fold's MC-dropout mean of its held-out rows (in ``split.test`` order): the
    fold's model with its trained weights (``FoldResult.weights``), ``samples`` passes
    seeded from the model's own seed, the one it was trained from (``split_members``).
    ``progress`` counts the folds done.

    XLA compiles a program once per model and input shape (about 2 s for an MLP, 4-5 s
    for the LSTM), so the folds share one network: built with an identity
    standardization, it takes each fold's trained weights in turn and is given the
    fold's rows standardized as the fold's own ``Normalization`` layer does it
    (``standardized``), which that layer bakes into the program as constants. The
    numbers are those of the fold's own network (``tests/unit/test_sampling.py``)."""
    members = split_members(variant, prepared)
    shared = build_network(variant, Scaler(np.zeros(N_BANDS), np.ones(N_BANDS)), 0)
    out = []
    for i, (member, fold) in enumerate(zip(members, folds, strict=True), 1):
        if not np.array_equal(member.test, fold.split.test):  # a bug, not an input
            raise ValueError(f"fold {i}: its result is not of split {i} of the prepared folds")
        for var, value in zip(shared.trainable_weights, fold.weights, strict=True):
            var.assign(value)
        rows = standardized(X[member.test], member.scaler)
        out.append(mc_dropout(shared, rows, samples, member.seed)[0])
        if progress is not None:
            progress.update(i, f"fold {i}/{len(members)}, {samples} passes each")
    return out


def standardized(X: np.ndarray, scaler: Scaler) -> np.ndarray:
    """``X`` standardized in float32 exactly as ``model.build_network``'s ``Normalization``
    layer does it: (x - mean) / max(sqrt(variance), epsilon), variance = std²."""
    mean = np.asarray(scaler.mean.tolist(), np.float32)
    variance = np.asarray((scaler.std**2).tolist(), np.float32)
    scale = np.maximum(np.sqrt(variance), np.float32(keras.config.epsilon()))
    return (np.asarray(X, np.float32) - mean) / scale
