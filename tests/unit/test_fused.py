"""The fused engine against per-member Keras ``fit``, and its own contracts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from sonarlab.config import (
    CVConfig,
    ModelConfig,
    OptimizerConfig,
    ScheduleConfig,
    VariantConfig,
)
from sonarlab.data import Sonar
from sonarlab.engines import fused
from sonarlab.folds import Scaler, prepare
from sonarlab.model import build_model, predict_proba, seed_everything


def xla(fn):
    """The engine's random streams (ThreeFry) exist only under XLA, as in the engine."""
    return tf.function(fn, jit_compile=True)


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


CASES = {
    "mlp": mlp(),
    "mlp-maxnorm-time-decay": dataclasses.replace(
        mlp(max_norm=0.5), schedule=ScheduleConfig("time", decay=0.05)
    ),
    "mlp-step-decay": dataclasses.replace(
        mlp(), schedule=ScheduleConfig("step", drop=0.5, every=2)
    ),
    "lstm": VariantConfig(
        model=ModelConfig("lstm", units=5, timesteps=10, features=6),
        optimizer=OptimizerConfig(0.05, 0.9),
        schedule=ScheduleConfig("time", decay=0.01),
        epochs=EPOCHS,
        batch_size=16,
    ),
}


def members(tiny_data):
    X, y = tiny_data
    X = (X - X.mean(0)) / X.std(0)  # already standardized: both engines see the same floats
    rng = np.random.default_rng(3)
    rows = [rng.choice(len(y), n, replace=False) for n in SIZES]
    return X.astype(np.float32), y, [(r, r[:0], IDENTITY) for r in rows]


def keras_reference(variant, X, y, member_rows, seeds, orders):
    """Each member trained by Keras ``fit``, one epoch per call, in the given row order."""
    weights, losses = [], []
    for i, (rows, seed) in enumerate(zip(member_rows, seeds, strict=True)):
        seed_everything(seed)
        model = build_model(variant, IDENTITY, len(rows))
        history = []
        for e in range(variant.epochs):
            order = rows[orders[e][i, : len(rows)]]
            h = model.fit(
                X[order], y[order], batch_size=variant.batch_size, epochs=1,
                shuffle=False, verbose=0,
            )  # fmt: skip
            history.append(h.history["loss"][0])
        weights.append([w.numpy() for w in model.trainable_weights])
        losses.append(history)
    return weights, np.array(losses)


@pytest.mark.parametrize("case", list(CASES))
def test_matches_separate_keras_fits_without_dropout(case, tiny_data):
    variant = CASES[case]
    X, y, mem = members(tiny_data)
    data = fused.stack(X, y, mem, variant.batch_size)
    seeds = [101, 202, 303]
    params = fused.initial_weights(variant, seeds, [IDENTITY] * 3)
    trainer = fused.FusedTrainer(variant, data, seed=9, chunk=variant.epochs)
    trained, curves = trainer.run(params, tick=lambda done: None)

    rows = data.x_train.shape[1]
    order_of = xla(lambda e: fused.epoch_order(9, e, tf.constant(data.n_train), rows))
    orders = [order_of(tf.constant(e)).numpy() for e in range(variant.epochs)]
    for order, n in zip(orders[0], data.n_train, strict=True):  # real rows first, permuted
        assert sorted(order[:n]) == list(range(n))
    ref_weights, ref_losses = keras_reference(variant, X, y, [m[0] for m in mem], seeds, orders)

    np.testing.assert_allclose(curves[:, :, 0].T, ref_losses, rtol=1e-5, atol=1e-6)
    for i in range(3):
        for got, want in zip(trained, ref_weights[i], strict=True):
            np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)
    # and training moved the weights: the comparison is not between two initial states
    assert not np.allclose(trained[0], params[0], atol=1e-3)


def test_dropout_is_random_in_training_and_off_in_inference(tiny_data):
    variant = dataclasses.replace(mlp(input_dropout=0.3, hidden_dropout=0.3))
    X, y, mem = members(tiny_data)
    data = fused.stack(X, y, mem, 16)
    params = [tf.constant(p) for p in fused.initial_weights(variant, [1, 2, 3], [IDENTITY] * 3)]
    x = tf.constant(data.x_train[:, :16])
    infer = xla(lambda: fused.forward(variant, params, x, None))
    np.testing.assert_array_equal(infer().numpy(), infer().numpy())
    train = xla(lambda step: fused.forward(variant, params, x, (5, step)))
    a, b = (train(tf.constant(k)).numpy() for k in (1, 2))
    assert not np.allclose(a, b)
    again = train(tf.constant(1)).numpy()
    np.testing.assert_array_equal(a, again)  # stateless: the key decides the mask


def test_cross_validate_is_deterministic_and_shaped_like_the_keras_engine(tiny_data):
    X, y = tiny_data
    prepared = prepare(X, y, CVConfig(folds=3, repeats=1, seed=4))
    variant = mlp(hidden_dropout=0.2, max_norm=3.0)

    sonar = Sonar(X, y, labels=())

    def run(seed):
        cv = CVConfig(folds=3, repeats=1, seed=seed)
        result = fused.cross_validate_fused(variant, sonar, prepare(X, y, cv))
        return result.folds, result.final

    folds, final = run(4)
    folds2, final2 = run(4)
    assert [f.curves for f in folds] == [f.curves for f in folds2]
    assert [f.test_metrics for f in folds] == [f.test_metrics for f in folds2]
    for a, b in zip(final.model.get_weights(), final2.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other, _ = run(5)
    assert [f.curves for f in other] != [f.curves for f in folds]

    assert len(folds) == 3
    for f, split in zip(folds, prepared.splits, strict=True):
        assert (f.split.repeat, f.split.fold) == (split.repeat, split.fold)
        np.testing.assert_array_equal(f.split.test, split.test)
        assert len(f.p_test) == len(split.test)
        assert {k: len(v) for k, v in f.curves.items()} == dict.fromkeys(
            ("train_loss", "train_accuracy", "test_loss", "test_accuracy"), EPOCHS
        )
        assert f.curves["test_accuracy"][-1] == pytest.approx(f.test_metrics["accuracy"])
    # the final model is a Keras model of the variant, and predicts what the engine computed
    p = predict_proba(final.model, X)
    assert final.train_metrics["accuracy"] == pytest.approx(np.mean((p > 0.5) == y))


def test_epochs_per_call_divides_the_epochs():
    assert fused.epochs_per_call(300) == 25
    assert fused.epochs_per_call(7) == 7
    assert fused.epochs_per_call(29) == 1
    assert fused.epochs_per_call(2) == 2
