"""Every seed the pipeline derives from ``cv.seed``, each purpose named once.

A derived seed is ``SeedSequence([seed, purpose, *path])``: the purpose keeps the
streams apart (no two purposes ever share bits), the path says which member of that
purpose (a repeat, a fold, a layer). The numbers below are part of the results:
changing one changes every number the pipeline reports, so they are fixed here and
call sites use the names.

Pure NumPy: both engines, ``folds`` and ``predict`` import this without TensorFlow.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

SEED_LIMIT = 2**31 - 1  # TensorFlow and Keras take seeds below this


class Purpose(IntEnum):
    """What a seed derived from ``cv.seed`` is for."""

    FOLD = 1  # a fold model's initial weights, batch orders and dropout masks
    FINAL = 2  # the final model's, trained on every row
    # 3 was the fused engine's one seed for the streams of all its models at once;
    # each model's streams now derive from its own seed (``stream_seed``).
    REPLICATE = 4  # another training seed for the same split (a grid's replicates)


class Stream(IntEnum):
    """A model's random streams, each keyed apart from the others by
    ``stream_seed(<the model's seed>, stream, *path)``. The fused engine draws the first
    four itself; ``INIT`` seeds every model's initializers and Keras dropout layers."""

    ORDER = 1  # the order of a member's training rows in an epoch
    DROP_INPUT = 2  # dropout on the inputs
    DROP_HIDDEN = 3  # dropout after a hidden layer (path: the layer's index)
    DROP_LSTM = 4  # LSTM masks (path: 0 input, 1 recurrent)
    INIT = 5  # the network's initializers and dropout layers (path: their order)


def derive_seed(seed: int, *path: int) -> int:
    """A seed below ``SEED_LIMIT`` determined by ``seed`` and ``path`` alone."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0] % SEED_LIMIT)


def fold_seed(seed: int, repeat: int, fold: int, replicate: int = 0) -> int:
    """The seed of the model of one split; ``replicate`` > 0: another training seed for
    the same split (replicate 0 is the pipeline's own model of that split)."""
    if replicate:
        return derive_seed(seed, Purpose.REPLICATE, repeat, fold, replicate)
    return derive_seed(seed, Purpose.FOLD, repeat, fold)


def final_seed(seed: int) -> int:
    return derive_seed(seed, Purpose.FINAL)


def stream_seed(model_seed: int, stream: Stream, *path: int) -> int:
    """The seed of one of a model's random streams, from that model's own seed."""
    return derive_seed(model_seed, stream, *path)


def split_shuffle_seed(seed: int, repeat: int) -> int:
    """The shuffle of one repeat's stratified folds (any 32-bit value: scikit-learn's)."""
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])


def mc_dropout_seed(seed: int, generator: int) -> int:
    """The state of the ``generator``-th dropout generator of a model, for MC dropout."""
    return derive_seed(seed, generator)
