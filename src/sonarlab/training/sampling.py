"""Monte Carlo dropout (Gal & Ghahramani 2016): a model's predictions with its dropout
left on, averaged over many passes. One sampler, ``mc_dropout``, for both users:
``cv@<variant>`` scores each fold's model on its held-out rows with it
(``held_out_mc_means``), and ``sonarlab.predict --samples`` runs a variant's final model.

The masks of a model's passes come from that model's own seed (``seeds.mc_dropout_seed``),
so the same model, rows, passes and seed give the same numbers in any process on the same
kind of CPU. The passes run eagerly, through oneDNN, whose kernels follow the CPU (its
numbers changed with ``ONEDNN_MAX_CPU_ISA=AVX2`` on an AVX-512 machine); compiled by XLA
they did not, but XLA's CPU code was 50 times slower on large batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import keras
import numpy as np

from sonarlab.data.folds import Prepared
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
    while done < samples:
        k = min(per_call, samples - done)
        out = model(np.tile(X, (k, 1)), training=True)
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
    """Each fold's MC-dropout mean of its held-out rows (in ``split.test`` order): its
    model rebuilt from the trained weights (``FoldResult.weights``), ``samples`` passes
    seeded from the model's own seed, the one it was trained from (``split_members``).
    ``progress`` counts the folds done."""
    members = split_members(variant, prepared)
    out = []
    for i, (member, fold) in enumerate(zip(members, folds, strict=True), 1):
        if not np.array_equal(member.test, fold.split.test):  # a bug, not an input
            raise ValueError(f"fold {i}: its result is not of split {i} of the prepared folds")
        model = build_network(variant, member.scaler, member.seed)
        for var, value in zip(model.trainable_weights, fold.weights, strict=True):
            var.assign(value)
        out.append(mc_dropout(model, X[member.test], samples, member.seed)[0])
        if progress is not None:
            progress.update(i, f"fold {i}/{len(members)}, {samples} passes each")
    return out
