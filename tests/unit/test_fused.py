"""The fused engine against per-member Keras ``fit``, its random streams, and the
invariant that makes grids trustworthy: a member's numbers depend on the member alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from sonarlab.core.params import CVConfig
from sonarlab.data.folds import Scaler, prepare
from sonarlab.data.uci import Sonar
from sonarlab.design.variants import ModelConfig, OptimizerConfig, ScheduleConfig, VariantConfig
from sonarlab.training.engines import fused
from sonarlab.training.members import Member, shape_key
from sonarlab.training.model import build_model, predict_proba, seed_everything

IDENTITY = Scaler(mean=np.zeros(60), std=np.ones(60))
EPOCHS = 4
# Unequal members: 43 rows are 3 batches of 16 (the last short), 56 rows are 4 (3 full),
# so the smaller member sits out the last step of every epoch.
SIZES = (43, 56, 50)


def mlp(**model):
    return VariantConfig(
        model=ModelConfig("mlp", hidden=(12, 6), **model),
        optimizer=OptimizerConfig(0.05, 0.9),
        epochs=EPOCHS,
        batch_size=16,
    )


def lstm(**model):
    return VariantConfig(
        model=ModelConfig("lstm", units=5, timesteps=10, features=6, **model),
        optimizer=OptimizerConfig(0.05, 0.9),
        schedule=ScheduleConfig("time", decay=0.01),
        epochs=EPOCHS,
        batch_size=16,
    )


CASES = {
    "mlp": mlp(),
    "mlp-maxnorm-time-decay": dataclasses.replace(
        mlp(max_norm=0.5), schedule=ScheduleConfig("time", decay=0.05)
    ),
    "mlp-step-decay": dataclasses.replace(
        mlp(), schedule=ScheduleConfig("step", drop=0.5, every=2)
    ),
    "lstm": lstm(),
}


def standardized(tiny_data):
    X, y = tiny_data
    X = (X - X.mean(0)) / X.std(0)  # already standardized: both engines see the same floats
    return X.astype(np.float32), y


def members(variant, tiny_data, seeds=(101, 202, 303)):
    X, y = standardized(tiny_data)
    rng = np.random.default_rng(3)
    rows = [rng.choice(len(y), n, replace=False) for n in SIZES]
    return X, y, [Member(variant, r, r[:0], IDENTITY, s) for r, s in zip(rows, seeds, strict=True)]


def keras_reference(variant, X, y, mem, orders):
    """Each member trained by Keras ``fit``, one epoch per call, in the given row order."""
    weights, losses = [], []
    for i, m in enumerate(mem):
        seed_everything(m.seed)
        model = build_model(variant, IDENTITY, len(m.train), m.seed)
        history = []
        for e in range(variant.epochs):
            order = m.train[orders[e][i, : len(m.train)]]
            h = model.fit(
                X[order], y[order], batch_size=variant.batch_size, epochs=1,
                shuffle=False, verbose=0,
            )  # fmt: skip
            history.append(h.history["loss"][0])
        weights.append([w.numpy() for w in model.trainable_weights])
        losses.append(history)
    return weights, np.array(losses)


def run_program(variant, X, y, mem):
    prog = fused.Program(variant, chunk=variant.epochs)
    data = fused.stack(X, y, mem, variant.batch_size)
    keys = fused.stream_keys(mem, variant)
    initial = fused.initial_weights(mem)
    weights, curves, _, _ = prog.run(
        initial, data, fused.hyperparameters(mem), keys, lambda done: None
    )
    return data, keys, initial, weights, curves


@pytest.mark.parametrize("case", list(CASES))
def test_matches_separate_keras_fits_without_dropout(case, tiny_data):
    variant = CASES[case]
    X, y, mem = members(variant, tiny_data)
    data, keys, initial, trained, curves = run_program(variant, X, y, mem)

    rows = data.x_train.shape[1]
    order_of = tf.function(
        lambda e: fused.epoch_order(tf.constant(keys["order"]), e, tf.constant(data.n_train), rows),
        jit_compile=True,
    )
    orders = [order_of(tf.constant(e)).numpy() for e in range(variant.epochs)]
    for order, n in zip(orders[0], data.n_train, strict=True):  # real rows first, permuted
        assert sorted(order[:n]) == list(range(n))
    ref_weights, ref_losses = keras_reference(variant, X, y, mem, orders)

    np.testing.assert_allclose(curves[:, :, 0].T, ref_losses, rtol=1e-5, atol=1e-6)
    for i in range(3):
        for got, want in zip(trained, ref_weights[i], strict=True):
            np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)
    # and training moved the weights: the comparison is not between two initial states
    assert not np.allclose(trained[0], initial[0], atol=1e-3)


def test_threefry_matches_the_known_answers_of_random123():
    """Known-answer vectors of Threefry-2x32-20 (Random123's kat_vectors)."""
    cases = [
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xC4923A9C, 0x483DF7A0)),
    ]
    for (x0, x1), (k0, k1), want in cases:
        c = [tf.constant(v, tf.uint32) for v in (k0, k1, x0, x1)]
        got = tuple(int(v) for v in fused.threefry2x32(*c))
        assert got == want


def test_uniform_draws_are_uniform_and_keyed_per_member():
    keys = tf.constant([1, 2, 1], tf.uint32)
    u = fused.uniform(keys, tf.constant(3), tf.constant(5), [3, 200, 50]).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.003
    np.testing.assert_array_equal(u[0], u[2])  # same key, epoch and step: same draws
    assert not np.array_equal(u[0], u[1])
    other_step = fused.uniform(keys, tf.constant(3), tf.constant(6), [3, 200, 50]).numpy()
    assert not np.array_equal(u[0], other_step[0])


def same_outcome(a, b) -> bool:
    return (
        all(np.array_equal(x, w) for x, w in zip(a.weights, b.weights, strict=True))
        and np.array_equal(a.curves, b.curves)
        and np.array_equal(a.p_train, b.p_train)
        and np.array_equal(a.p_test, b.p_test)
    )


@pytest.mark.parametrize("make", [mlp, lstm], ids=["mlp", "lstm"])
def test_a_member_trains_the_same_alone_at_any_position_and_among_thirty(make, tiny_data):
    X, y = tiny_data
    if make is mlp:
        variant = make(input_dropout=0.2, hidden_dropout=0.3, max_norm=3.0)
    else:
        variant = make(dropout=0.2, recurrent_dropout=0.3)
    prepared = prepare(X, y, CVConfig(folds=3, repeats=10, seed=2))
    mem = [
        Member(variant, s.train, s.test, sc, 1000 + i)
        for i, (s, sc) in enumerate(zip(prepared.splits, prepared.scalers, strict=True))
    ]
    final = Member(variant, np.arange(len(y)), np.arange(0), prepared.full, 7)
    among = fused.train_stacked([*mem, final], X, y)  # 31 members, of unequal sizes
    alone = fused.train_stacked([mem[4]], X, y)[0]
    moved = fused.train_stacked([mem[9], final, mem[4]], X, y)[2]
    assert same_outcome(among[4], alone)
    assert same_outcome(among[4], moved)
    assert not np.array_equal(among[4].curves, among[5].curves)  # members do differ
    # 45 members: past the stack size (33-40) where XLA's code for the whole stack
    # changed its rounding, and in a second block
    many = fused.train_stacked([*mem, final, *mem[:14]], X, y)
    assert same_outcome(many[4], alone) and same_outcome(many[31 + 4], alone)


@pytest.mark.parametrize("make", [mlp, lstm], ids=["mlp", "lstm"])
def test_k_configurations_in_one_program_equal_k_one_configuration_programs(make, tiny_data):
    X, y = tiny_data
    prepared = prepare(X, y, CVConfig(folds=3, seed=4))
    split, scaler = prepared.splits[0], prepared.scalers[0]
    if make is mlp:
        models = [ModelConfig("mlp", hidden=(12, 6), input_dropout=r, hidden_dropout=h,
                              max_norm=n) for r, h, n in ((0.1, 0.2, 3.0), (0.3, 0.1, 0.5),
                                                          (0.2, 0.5, 2.0))]  # fmt: skip
        schedule = ScheduleConfig("step", drop=0.5, every=2)
        schedules = [schedule, dataclasses.replace(schedule, drop=0.8, every=1), schedule]
    else:
        models = [ModelConfig("lstm", units=5, dropout=d, recurrent_dropout=r)
                  for d, r in ((0.1, 0.2), (0.4, 0.1), (0.2, 0.5))]  # fmt: skip
        schedules = [ScheduleConfig("time", decay=d) for d in (0.01, 0.1, 0.0)]
    optimizers = [OptimizerConfig(0.05, 0.9), OptimizerConfig(0.2, 0.5), OptimizerConfig(0.01, 0)]
    variants = [
        VariantConfig(model=m, optimizer=o, schedule=s, epochs=EPOCHS, batch_size=16)
        for m, o, s in zip(models, optimizers, schedules, strict=True)
    ]
    mem = [Member(v, split.train, split.test, scaler, 11) for v in variants]
    together = fused.train_stacked(mem, X, y)
    assert len({shape_key(v) for v in variants}) == 1  # one program for all three
    for m, outcome in zip(mem, together, strict=True):
        assert same_outcome(outcome, fused.train_stacked([m], X, y)[0])
    assert not np.array_equal(together[0].curves, together[1].curves)


def test_members_of_other_shapes_are_grouped_into_programs_not_refused(tiny_data):
    X, y = tiny_data
    prepared = prepare(X, y, CVConfig(folds=3, seed=4))
    split, scaler = prepared.splits[0], prepared.scalers[0]
    variants = [mlp(), mlp(hidden_dropout=0.2), dataclasses.replace(mlp(), batch_size=8), lstm()]
    assert len({shape_key(v) for v in variants}) == 4
    mem = [Member(v, split.train, split.test, scaler, 5) for v in variants]
    outcomes = fused.train_stacked(mem, X, y)
    for m, outcome in zip(mem, outcomes, strict=True):
        assert same_outcome(outcome, fused.train_stacked([m], X, y)[0])


def test_dropout_is_random_in_training_and_off_in_inference(tiny_data):
    variant = mlp(input_dropout=0.3, hidden_dropout=0.3)
    X, y, mem = members(variant, tiny_data)
    params = [tf.constant(p) for p in fused.initial_weights(mem)]
    hyper = {k: tf.constant(v) for k, v in fused.hyperparameters(mem).items()}
    keys = {k: tf.constant(v) for k, v in fused.stream_keys(mem, variant).items()}
    x = tf.constant(fused.stack(X, y, mem, 16).x_train[:, :16])
    infer = tf.function(lambda: fused.forward(variant, params, x, hyper, None), jit_compile=True)
    np.testing.assert_array_equal(infer().numpy(), infer().numpy())
    train = tf.function(
        lambda step: fused.forward(
            variant, params, x, hyper, fused.Noise(keys, tf.constant(0), step)
        ),
        jit_compile=True,
    )
    a, b = (train(tf.constant(k)).numpy() for k in (1, 2))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, train(tf.constant(1)).numpy())  # the key decides


def test_cross_validate_is_deterministic_and_shaped_like_the_keras_engine(tiny_data):
    X, y = tiny_data
    variant = mlp(hidden_dropout=0.2, max_norm=3.0)
    sonar = Sonar(X, y, labels=())

    def run(seed):
        return fused.cross_validate_fused(
            variant, sonar, prepare(X, y, CVConfig(folds=3, repeats=1, seed=seed))
        )

    first, again, other = run(4), run(4), run(5)
    assert [f.curves for f in first.folds] == [f.curves for f in again.folds]
    assert [f.test_metrics for f in first.folds] == [f.test_metrics for f in again.folds]
    for a, b in zip(first.final.model.get_weights(), again.final.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [f.curves for f in other.folds] != [f.curves for f in first.folds]

    prepared = prepare(X, y, CVConfig(folds=3, repeats=1, seed=4))
    assert len(first.folds) == 3
    for f, split in zip(first.folds, prepared.splits, strict=True):
        assert (f.split.repeat, f.split.fold) == (split.repeat, split.fold)
        np.testing.assert_array_equal(f.split.test, split.test)
        assert len(f.p_test) == len(split.test)
        assert {k: len(v) for k, v in f.curves.items()} == dict.fromkeys(
            ("train_loss", "train_accuracy", "test_loss", "test_accuracy"), EPOCHS
        )
        assert f.curves["test_accuracy"][-1] == pytest.approx(f.test_metrics["accuracy"])
        assert f.curves["test_loss"][-1] == pytest.approx(f.test_metrics["log_loss"], rel=1e-5)
    # the final model is a Keras model of the variant, and predicts what the engine computed
    p = predict_proba(first.final.model, X)
    assert first.final.train_metrics["accuracy"] == pytest.approx(np.mean((p > 0.5) == y))


def test_epochs_per_call_divides_the_epochs():
    assert fused.epochs_per_call(300) == 25
    assert fused.epochs_per_call(7) == 7
    assert fused.epochs_per_call(29) == 1
    assert fused.epochs_per_call(2) == 2
