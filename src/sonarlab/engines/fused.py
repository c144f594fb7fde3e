"""The fused CV engine: every fold of a variant (and its final model) trained at once.

Per-fold Keras ``fit`` spends nearly all its time in per-step overhead: a batch of
16 rows through a 60-60-30-1 network is a few thousand multiply-adds. Here the K
fold models and the final model become one stacked model whose weights carry a
leading *member* axis, trained in one XLA-compiled TensorFlow program that runs
many epochs per host call.

What stays exactly as in the keras engine (``engines.keras``):

- initial weights: each member's network is built by ``model.build_network`` after
  ``seed_everything(<the same seed the keras engine uses>)`` and its weights stacked;
  the final model is a Keras model again, with the trained weights assigned;
- the update: per member, mini-batches of ``batch_size`` rows in a fresh order every
  epoch, the last short batch kept and averaged over its real rows only (padding is
  masked, never counted); binary cross-entropy on the logits as Keras computes it;
  SGD with momentum as Keras 3 applies it (m = momentum*m - lr*g; w += m), then the
  kernel constraint (Keras' ``MaxNorm``, over the stacked kernel's input axis); the
  learning rate from the same Keras schedule object, at each member's own update
  count; a member with no rows left in a step makes no update at all;
- losses are summed over members, so each member's gradient is exactly its own.

What differs: the random streams. Batch orders and dropout masks come from
TensorFlow's stateless ThreeFry generator (ThreeFry was 3x faster than Philox for
dropout masks under XLA on CPU), keyed by the seed, the epoch and the step, so
results are deterministic but not bit-identical to the keras engine's; with
identical orders and no dropout the two agree to float32 round-off (tested).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from sonarlab.config import VariantConfig
from sonarlab.data import Sonar
from sonarlab.folds import Prepared, Scaler
from sonarlab.model import (
    build_network,
    make_learning_rate,
    seed_everything,
    steps_per_epoch,
)
from sonarlab.results import (
    CURVE_KEYS,
    EPS,
    CVResult,
    FinalResult,
    FoldResult,
    binary_metrics,
)
from sonarlab.seeds import Stream, final_seed, fold_seed, fused_streams_seed, stream_seed

ALG = tf.random.Algorithm.THREEFRY
# The random streams. A key is (seed, counter): the counter is the epoch (row orders)
# or the global step (dropout masks); each draw's stream (and layer) is folded into
# the seed on the host (``seeds.stream_seed``), so no two draws share bits and the
# compiled program holds no key-derivation ops (with TensorFlow's stateless_fold_in,
# compilation took ~1 s longer).
Key = tuple[int, tf.Tensor]


def _key(key: Key, stream: Stream, *path: int) -> tf.Tensor:
    seed, counter = key
    return tf.stack([tf.constant(stream_seed(seed, stream, *path), tf.int32), counter])


@dataclass(frozen=True)
class Stacked:
    """The members' data, standardized with each member's own statistics and padded.

    Training rows are padded to ``steps * batch_size``; padded rows never enter a
    loss (they sort last in every epoch's order and are masked out of batches).
    """

    x_train: np.ndarray  # (M, steps * batch_size, 60) float32
    y_train: np.ndarray  # (M, steps * batch_size) float32
    n_train: np.ndarray  # (M,) int32
    x_test: np.ndarray  # (M, T, 60), T = the largest held-out part (at least 1)
    y_test: np.ndarray  # (M, T)
    n_test: np.ndarray  # (M,) int32: 0 for the final model
    steps: int  # updates per epoch for the member with the most rows


def stack(
    X: np.ndarray,
    y: np.ndarray,
    members: list[tuple[np.ndarray, np.ndarray, Scaler]],
    batch_size: int,
) -> Stacked:
    """Stack ``(train rows, test rows, scaler)`` members into padded arrays."""
    n_train = np.array([len(tr) for tr, _, _ in members], dtype=np.int32)
    n_test = np.array([len(te) for _, te, _ in members], dtype=np.int32)
    steps = steps_per_epoch(int(n_train.max()), batch_size)
    rows, cols = steps * batch_size, max(1, int(n_test.max()))
    m = len(members)
    x_train = np.zeros((m, rows, X.shape[1]), np.float32)
    y_train = np.zeros((m, rows), np.float32)
    x_test = np.zeros((m, cols, X.shape[1]), np.float32)
    y_test = np.zeros((m, cols), np.float32)
    for i, (tr, te, scaler) in enumerate(members):
        x_train[i, : len(tr)] = (X[tr] - scaler.mean) / scaler.std
        y_train[i, : len(tr)] = y[tr]
        x_test[i, : len(te)] = (X[te] - scaler.mean) / scaler.std
        y_test[i, : len(te)] = y[te]
    return Stacked(x_train, y_train, n_train, x_test, y_test, n_test, steps)


def initial_weights(variant: VariantConfig, member_seeds: list[int], scalers):
    """Each member's Keras-initialized trainable weights, stacked on a leading axis."""
    per_member = []
    for seed, scaler in zip(member_seeds, scalers, strict=True):
        seed_everything(seed)
        network = build_network(variant, scaler)  # what build_model compiles: same weights
        per_member.append([w.numpy() for w in network.trainable_weights])
    return [np.stack(ws) for ws in zip(*per_member, strict=True)]


def kernel_constraints(variant: VariantConfig) -> list[keras.constraints.Constraint | None]:
    """The constraint of each trainable weight, as ``build_model`` sets it, for stacked weights."""
    m = variant.model
    if m.kind == "mlp":
        hidden = keras.constraints.MaxNorm(m.max_norm, axis=1) if m.max_norm else None
        per_layer = [[hidden, None] for _ in m.hidden]
        return [c for layer in per_layer for c in layer] + [None, None]
    return [None] * 5  # LSTM kernel, recurrent kernel, bias; head kernel, bias


def _dropout(x: tf.Tensor, rate: float, seed: tf.Tensor) -> tf.Tensor:
    """Inverted dropout as Keras does it: keep with probability 1 - rate, scale by 1/(1 - rate)."""
    keep = tf.random.stateless_uniform(tf.shape(x), seed=seed, alg=ALG) >= rate
    return tf.where(keep, x / (1.0 - rate), tf.zeros_like(x))


def _dense(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.einsum("mbi,mio->mbo", x, w) + b[:, None, :]


def forward(
    variant: VariantConfig, params: list[tf.Tensor], x: tf.Tensor, key: Key | None
) -> tf.Tensor:
    """Logits (M, B) of every member for its rows ``x`` (M, B, 60).

    ``key`` turns dropout on, as in training; ``None`` is inference.
    """
    m = variant.model
    if m.kind == "mlp":
        if key is not None and m.input_dropout > 0:
            x = _dropout(x, m.input_dropout, _key(key, Stream.DROP_INPUT))
        for i in range(len(m.hidden)):
            x = tf.nn.relu(_dense(x, params[2 * i], params[2 * i + 1]))
            if key is not None and m.hidden_dropout > 0:
                x = _dropout(x, m.hidden_dropout, _key(key, Stream.DROP_HIDDEN, i))
        return _dense(x, params[-2], params[-1])[..., 0]
    return _lstm_forward(variant, params, x, key)


def _lstm_forward(variant, params, x, key):
    """Keras 3's LSTM cell (gates i, f, c, o; sigmoid/tanh), stacked over members.

    With ``recurrent_dropout`` Keras uses its per-gate path: four input masks and four
    recurrent masks, each drawn once per batch and reused at every timestep.
    """
    m = variant.model
    kernel, recurrent, bias, w_out, b_out = params
    shape = tf.shape(x)
    members, batch = shape[0], shape[1]
    seq = tf.reshape(x, [members, batch, m.timesteps, m.features])
    h = tf.zeros([members, batch, m.units], x.dtype)
    c = tf.zeros_like(h)
    in_masks = rec_masks = None
    if key is not None and m.dropout > 0:
        ones = tf.ones([4, members, batch, m.features], x.dtype)
        in_masks = tf.unstack(_dropout(ones, m.dropout, _key(key, Stream.DROP_LSTM, 0)))
    if key is not None and m.recurrent_dropout > 0:
        ones = tf.ones([4, members, batch, m.units], x.dtype)
        rec_masks = tf.unstack(_dropout(ones, m.recurrent_dropout, _key(key, Stream.DROP_LSTM, 1)))
    # Keras lays the gates side by side in the kernels' last axis: [i | f | c | o].
    k4 = tf.reshape(kernel, [-1, m.features, 4, m.units])
    u4 = tf.reshape(recurrent, [-1, m.units, 4, m.units])
    b4 = tf.reshape(bias, [-1, 4, 1, m.units])  # (M, gate, 1, units)
    # The input masks are the same at every timestep, so the input part of every gate
    # at every step is one contraction, outside the time loop: (T, M, gate, B, units).
    if in_masks is not None:
        masked = tf.stack(in_masks)[:, :, :, None, :] * seq[None]  # (gate, M, B, T, F)
        xz = tf.einsum("gmbtf,mfgu->tmgbu", masked, k4)
    else:
        xz = tf.einsum("mbtf,mfgu->tmgbu", seq, k4)
    for t in range(m.timesteps):
        if rec_masks is not None:
            hz = tf.einsum("gmbu,mugv->mgbv", tf.stack(rec_masks) * h[None], u4)
        else:
            hz = tf.einsum("mbu,mugv->mgbv", h, u4)
        z = xz[t] + hz + b4
        i, f, o = tf.sigmoid(z[:, 0]), tf.sigmoid(z[:, 1]), tf.sigmoid(z[:, 3])
        c = f * c + i * tf.tanh(z[:, 2])
        h = o * tf.tanh(c)
    return _dense(h, w_out, b_out)[..., 0]


def epoch_order(seed: int, epoch: tf.Tensor, n_train: tf.Tensor, rows: int) -> tf.Tensor:
    """Each member's row order for one epoch, (M, rows): a permutation of its real rows
    first, then the padding."""
    members = tf.shape(n_train)[0]
    keys = tf.random.stateless_uniform(
        [members, rows], seed=_key((seed, epoch), Stream.ORDER), alg=ALG
    )
    real = tf.range(rows)[None, :] < n_train[:, None]
    return tf.argsort(tf.where(real, keys, 2.0), axis=1, stable=True)


class FusedTrainer:
    """Builds and runs the compiled program for one variant and one stacked problem."""

    def __init__(self, variant: VariantConfig, data: Stacked, seed: int, chunk: int):
        self.variant, self.data, self.seed, self.chunk = variant, data, seed, chunk
        self.constraints = kernel_constraints(variant)
        # One Keras schedule object, evaluated at each member's own update count. A step
        # schedule counts epochs, and members may differ in updates per epoch (the final
        # model sees every row), so it is evaluated at each member's own epoch:
        # floor(t / (every * steps)) == floor(floor(t / steps) / every).
        per_epoch = variant.schedule.kind == "step"
        self.learning_rate = make_learning_rate(
            variant.optimizer, variant.schedule, variant.epochs, 1 if per_epoch else data.steps
        )
        self.member_steps = -(-data.n_train // variant.batch_size) if per_epoch else None
        self._train = tf.function(self._train_chunk, jit_compile=True, reduce_retracing=True)

    def _lr(self, iters: tf.Tensor) -> tf.Tensor:
        lr = self.learning_rate
        if self.member_steps is not None:
            iters = iters // tf.constant(self.member_steps, tf.int32)
        if callable(lr):
            return tf.cast(lr(iters), tf.float32)
        return tf.fill(tf.shape(iters), tf.constant(lr, tf.float32))

    def _step(self, params, moms, iters, xb, yb, valid, key):
        with tf.GradientTape() as tape:
            tape.watch(params)
            logits = forward(self.variant, params, xb, key)
            per_row = tf.nn.sigmoid_cross_entropy_with_logits(labels=yb, logits=logits)
            count = tf.reduce_sum(valid, axis=1)
            member_loss = tf.reduce_sum(per_row * valid, axis=1) / tf.maximum(count, 1.0)
            total = tf.reduce_sum(member_loss)
        grads = tape.gradient(total, params)
        active = count > 0
        lr = self._lr(iters)
        momentum = tf.constant(self.variant.optimizer.momentum, tf.float32)
        new_params, new_moms = [], []
        for p, m, g, constraint in zip(params, moms, grads, self.constraints, strict=True):
            bshape = tf.concat([[-1], tf.ones([tf.rank(p) - 1], tf.int32)], axis=0)
            m2 = m * momentum - g * tf.reshape(lr, bshape)
            p2 = p + m2
            if constraint is not None:
                p2 = constraint(p2)
            on = tf.reshape(active, bshape)
            new_params.append(tf.where(on, p2, p))
            new_moms.append(tf.where(on, m2, m))
        correct = tf.cast((logits > 0) == (yb > 0.5), tf.float32) * valid
        stats = tf.stack([tf.reduce_sum(per_row * valid, 1), tf.reduce_sum(correct, 1)], 1)
        return new_params, new_moms, iters + tf.cast(active, tf.int32), stats

    def _held_out(self, params):
        d = self.data
        logits = forward(self.variant, params, tf.constant(d.x_test), None)
        p = tf.clip_by_value(tf.sigmoid(logits), EPS, 1 - EPS)
        y = tf.constant(d.y_test)
        valid = tf.cast(tf.range(d.x_test.shape[1])[None, :] < d.n_test[:, None], tf.float32)
        n = tf.maximum(tf.cast(d.n_test, tf.float32), 1.0)
        loss = -tf.reduce_sum(valid * (y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p)), 1) / n
        acc = tf.reduce_sum(valid * tf.cast((p > 0.5) == (y > 0.5), tf.float32), 1) / n
        return loss, acc

    def _train_chunk(self, params, moms, iters, first_epoch):
        d, bs = self.data, self.variant.batch_size
        x_train, y_train = tf.constant(d.x_train), tf.constant(d.y_train)
        n_train = tf.constant(d.n_train)
        n_float = tf.cast(n_train, tf.float32)
        rows = d.x_train.shape[1]
        members = d.x_train.shape[0]

        def epoch_body(e, params, moms, iters, curves):
            epoch = first_epoch + e
            order = epoch_order(self.seed, epoch, n_train, rows)

            def step_body(s, params, moms, iters, sums):
                idx = tf.slice(order, [0, s * bs], [members, bs])
                xb = tf.gather(x_train, idx, batch_dims=1)
                yb = tf.gather(y_train, idx, batch_dims=1)
                valid = tf.cast((s * bs + tf.range(bs))[None, :] < n_train[:, None], tf.float32)
                key = (self.seed, epoch * d.steps + s)
                params, moms, iters, stats = self._step(params, moms, iters, xb, yb, valid, key)
                return s + 1, params, moms, iters, sums + stats

            _, params, moms, iters, sums = tf.while_loop(
                lambda s, *_: s < d.steps,
                step_body,
                (tf.constant(0), params, moms, iters, tf.zeros([members, 2])),
            )
            test_loss, test_acc = self._held_out(params)
            row = tf.stack([sums[:, 0] / n_float, sums[:, 1] / n_float, test_loss, test_acc], 1)
            curves = tf.tensor_scatter_nd_update(curves, [[e]], row[None])
            return e + 1, params, moms, iters, curves

        _, params, moms, iters, curves = tf.while_loop(
            lambda e, *_: e < self.chunk,
            epoch_body,
            (tf.constant(0), params, moms, iters, tf.zeros([self.chunk, members, 4])),
        )
        return params, moms, iters, curves

    def run(self, params: list[np.ndarray], tick: Callable[[int], None]):
        """Train from ``params`` for ``variant.epochs``; return the final weights and the
        curves, shape (epochs, members, 4): train loss, train accuracy, held-out loss and
        accuracy."""
        params = [tf.constant(p) for p in params]
        moms = [tf.zeros_like(p) for p in params]
        iters = tf.zeros([self.data.x_train.shape[0]], tf.int32)
        curves = []
        for first in range(0, self.variant.epochs, self.chunk):
            params, moms, iters, chunk_curves = self._train(params, moms, iters, tf.constant(first))
            curves.append(chunk_curves.numpy())
            tick(first + self.chunk)
        return [p.numpy() for p in params], np.concatenate(curves)

    def probabilities(self, params: list[np.ndarray], x: np.ndarray) -> np.ndarray:
        """P(mine) per member and row, inference mode; ``x`` is (M, n, 60) standardized.

        Eager: one call per shape does not repay an XLA compilation."""
        logits = forward(self.variant, [tf.constant(p) for p in params], tf.constant(x), None)
        return tf.sigmoid(logits).numpy()


def epochs_per_call(epochs: int, target: int = 25) -> int:
    """The largest divisor of ``epochs`` not above ``target``: one compiled chunk size."""
    return max(d for d in range(1, min(epochs, target) + 1) if epochs % d == 0)


def cross_validate_fused(
    variant: VariantConfig,
    sonar: Sonar,
    prepared: Prepared,
    tick: Callable[[int], None] = lambda epoch: None,
) -> CVResult:
    """Every split and the final model in one program; ``tick`` gets the epochs done."""
    t0 = time.perf_counter()
    X, y, splits, seed = sonar.X, sonar.y, prepared.splits, prepared.seed
    all_rows = np.arange(len(y))
    members = [(s.train, s.test, sc) for s, sc in zip(splits, prepared.scalers, strict=True)]
    members.append((all_rows, all_rows[:0], prepared.full))
    data = stack(X, y, members, variant.batch_size)
    seeds = [fold_seed(seed, s.repeat, s.fold) for s in splits] + [final_seed(seed)]
    params = initial_weights(variant, seeds, [sc for *_, sc in members])
    trainer = FusedTrainer(variant, data, fused_streams_seed(seed), epochs_per_call(variant.epochs))
    params, curves = trainer.run(params, tick)

    p_train = trainer.probabilities(params, data.x_train)
    p_test = trainer.probabilities(params, data.x_test)
    seconds = time.perf_counter() - t0
    folds = []
    for i, split in enumerate(splits):
        n_tr, n_te = int(data.n_train[i]), int(data.n_test[i])
        folds.append(
            FoldResult(
                split=split,
                curves=_curves(curves[:, i]),
                y_test=y[split.test],
                p_test=p_test[i, :n_te],
                train_metrics=binary_metrics(data.y_train[i, :n_tr], p_train[i, :n_tr]),
                test_metrics=binary_metrics(y[split.test], p_test[i, :n_te]),
                seconds=seconds / len(members),  # one program trains all: an equal share
            )
        )
    # An inference model: compiling it would save an optimizer that never trained it.
    final_model = build_network(variant, prepared.full)
    for var, value in zip(final_model.trainable_weights, params, strict=True):
        var.assign(value[-1])
    final_curves = _curves(curves[:, -1])
    final = FinalResult(
        model=final_model,
        curves={k: final_curves[k] for k in ("train_loss", "train_accuracy")},
        train_metrics=binary_metrics(y, p_train[-1, : len(y)]),
        seconds=seconds / len(members),
    )
    return CVResult(folds, final)


def _curves(per_epoch: np.ndarray) -> dict[str, list[float]]:
    """Columns of the program's per-epoch rows, which are stacked in ``CURVE_KEYS`` order."""
    return {k: per_epoch[:, j].astype(float).tolist() for j, k in enumerate(CURVE_KEYS)}
