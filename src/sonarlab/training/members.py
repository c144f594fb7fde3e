"""The unit of work of an engine: a member is one model to train, with its own settings,
rows, standardization and seed; a member's outcome is what training it gave.

Engine-neutral and small: a cross-validation is 30 split members and a final member of
one variant; a grid study is the same splits times every trial's variant and training
seed. A member's result depends on the member alone, never on which other members an
engine trains beside it (``engines.fused`` tests this bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonarlab.data.folds import Prepared, Scaler
from sonarlab.data.seeds import fold_seed
from sonarlab.design.variants import VariantConfig


@dataclass(frozen=True)
class Member:
    variant: VariantConfig
    train: np.ndarray  # row indices it is trained on
    test: np.ndarray  # row indices it is scored on (none for a final model)
    scaler: Scaler  # fitted on its training rows only
    seed: int  # its initial weights, and the root of each of its random streams


@dataclass
class Outcome:
    weights: list[np.ndarray]  # trained, in Keras' ``trainable_weights`` order
    curves: np.ndarray  # (epochs, 4): results.CURVE_KEYS per epoch
    p_train: np.ndarray  # P(mine) of its training rows, final weights, inference mode
    p_test: np.ndarray  # P(mine) of its held-out rows


def split_members(variant: VariantConfig, prepared: Prepared, replicate: int = 0) -> list[Member]:
    """One member per split of ``prepared``: ``variant`` on that split, with that split's
    model seed (the pipeline's own for replicate 0, which ``cv@<variant>`` trains)."""
    return [
        Member(variant, s.train, s.test, sc, fold_seed(prepared.seed, s.repeat, s.fold, replicate))
        for s, sc in zip(prepared.splits, prepared.scalers, strict=True)
    ]


def shape_key(variant: VariantConfig) -> tuple:
    """What must be equal for members to train in one program: the network's shape, the
    batch size, the number of epochs, the schedule's kind, and which optional parts the
    network has (each dropout, MaxNorm). Everything else is a per-member value."""
    m = variant.model
    if m.kind == "mlp":
        parts = (m.input_dropout > 0, m.hidden_dropout > 0, m.max_norm is not None)
        shape = ("mlp", m.hidden, *parts)
    else:
        shape = ("lstm", m.units, m.timesteps, m.features, m.dropout > 0, m.recurrent_dropout > 0)
    return (shape, variant.batch_size, variant.epochs, variant.schedule.kind)
