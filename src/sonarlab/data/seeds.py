"""Every seed the pipeline derives from ``cv.seed``, each purpose named once.

A derived seed is ``SeedSequence([root, tag, *path])``: ``root`` is ``cv.seed`` or a
model's own seed, ``tag`` says what the seed is for, and ``path`` which member of that
purpose (a repeat, a fold, a layer). Every tag is used by one function only, and each
function always gives a path of the same length, so no two purposes ever hash the same
input: their streams share no bits, by construction. (The outputs are 31-bit numbers,
so two inputs can still meet by chance, with odds of about n² / 2³² for n seeds;
``tests/unit/test_seeds.py`` checks that none do for the seeds, repeats, folds and
replicates a study uses.)

The numbers below are part of the results: changing one changes every number the
pipeline reports, so they are fixed here and call sites use the names.

Pure NumPy: both engines, ``folds`` and ``predict`` import this without TensorFlow.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

SEED_LIMIT = 2**31 - 1  # TensorFlow and Keras take seeds below this


class Purpose(IntEnum):
    """What a seed derived from ``cv.seed`` is for (``derive_seed``'s tag). Tags 1-4 were
    in use before purposes and streams were kept apart (a repeat's shuffle hashed
    ``[seed, repeat]``, so repeat 2 met ``FINAL``); none is used again."""

    FOLD = 11  # a fold model's initial weights, batch orders and dropout masks
    FINAL = 12  # the final model's, trained on every row
    REPLICATE = 13  # another training seed for the same split (a grid's replicates)
    SHUFFLE = 14  # the shuffle of one repeat's stratified folds
    MC_DROPOUT = 15  # a dropout generator's state for predict's MC sampling
    BOOTSTRAP = 16  # the bootstrap samples of rows behind the bias-corrected estimates


class Stream(IntEnum):
    """A model's random streams, each keyed apart from the others (and from every
    ``Purpose``) by ``stream_seed(<the model's seed>, stream, *path)``. The fused engine
    draws the first four itself; ``INIT`` seeds every model's initializers and Keras
    dropout layers."""

    ORDER = 21  # the order of a member's training rows in an epoch
    DROP_INPUT = 22  # dropout on the inputs
    DROP_HIDDEN = 23  # dropout after a hidden layer (path: the layer's index)
    DROP_LSTM = 24  # LSTM masks (path: 0 input, 1 recurrent)
    INIT = 25  # the network's initializers and dropout layers (path: their order)


# how many path elements each tag takes: a fixed arity keeps the inputs apart
ARITY: dict[int, int] = {
    Purpose.FOLD: 2,  # repeat, fold
    Purpose.FINAL: 0,
    Purpose.REPLICATE: 3,  # repeat, fold, replicate
    Purpose.SHUFFLE: 1,  # repeat
    Purpose.MC_DROPOUT: 1,  # generator
    Purpose.BOOTSTRAP: 0,
    Stream.ORDER: 0,
    Stream.DROP_INPUT: 0,
    Stream.DROP_HIDDEN: 1,  # layer
    Stream.DROP_LSTM: 1,  # 0 input, 1 recurrent
    Stream.INIT: 1,  # the initializer's or dropout layer's order in the network
}


def derive_seed(root: int, tag: Purpose | Stream, *path: int, limit: int = SEED_LIMIT) -> int:
    """A seed below ``limit`` determined by ``root``, ``tag`` and ``path`` alone."""
    if len(path) != ARITY[tag]:
        raise ValueError(f"{tag!r} takes {ARITY[tag]} path elements, got {path}")
    entropy = [int(root), int(tag), *(int(p) for p in path)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0]) % limit


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
    return derive_seed(seed, Purpose.SHUFFLE, repeat, limit=2**32)


def bootstrap_seed(seed: int) -> int:
    """The bootstrap samples of rows that BBC-CV draws (``selection.rule``)."""
    return derive_seed(seed, Purpose.BOOTSTRAP)


def mc_dropout_seed(seed: int, generator: int) -> int:
    """The state of the ``generator``-th dropout generator of a model, for MC dropout."""
    return derive_seed(seed, Purpose.MC_DROPOUT, generator)
