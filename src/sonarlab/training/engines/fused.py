"""The fused engine: many models trained at once, in one XLA-compiled TensorFlow program.

Per-fold Keras ``fit`` spends nearly all its time in per-step overhead: a batch of
16 rows through a 60-60-30-1 network is a few thousand multiply-adds. Here the
*members* (``members.Member``: the fold models and the final model of a variant, or
every split of every trial of a grid) become one stacked model whose weights carry a
leading member axis, trained by one compiled program that runs many epochs per host
call. Members whose networks have the same shape share a program; everything else is
a per-member value: learning rate, momentum, the schedule's constants, dropout rates,
MaxNorm, the training rows, the standardization and the seed.

What stays exactly as in the keras engine (``engines.keras``):

- initial weights: each member's are ``model.build_network``'s from the member's seed,
  drawn without building it (``model.initial_values``, equal bit for bit), and stacked;
  a final model is a Keras model again, with the trained weights assigned;
- the update: per member, mini-batches of ``batch_size`` rows in a fresh order every
  epoch, the last short batch kept and averaged over its real rows only (padding is
  masked, never counted); binary cross-entropy on the logits as Keras computes it;
  SGD with momentum as Keras 3 applies it (m = momentum*m - lr*g; w += m), then
  Keras' ``MaxNorm`` over each kernel's input axis; the learning rate by Keras'
  schedule formulas at each member's own update count; a member with no rows left in
  a step makes no update at all;
- losses are summed over members, so each member's gradient is exactly its own.

What differs: the random streams. Batch orders and dropout masks come from a
counter-based generator (Threefry-2x32, 20 rounds; Salmon et al. 2011) keyed per
member: by a seed derived from the member's own seed for each stream
(``seeds.stream_seed``), the epoch, the step and the element. A member's numbers
therefore depend on the member alone, not on its neighbours in the stack, its
position, or how members were grouped into programs (tested bit for bit). They are
deterministic but not the keras engine's; with identical orders and no dropout the
two agree to float32 round-off (tested).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from sonarlab.core import xla_cache
from sonarlab.data.folds import Prepared
from sonarlab.data.seeds import Stream, final_seed, stream_seed
from sonarlab.data.uci import Sonar
from sonarlab.design.variants import VariantConfig
from sonarlab.results.metrics import EPS, binary_metrics
from sonarlab.training.members import Member, Outcome, shape_key, split_members
from sonarlab.training.model import build_network, initial_values, steps_per_epoch
from sonarlab.training.outcomes import CVResult, FinalResult, curve_columns, fold_result

log = logging.getLogger(__name__)

Tick = Callable[[int], None]  # called with the number of epochs done


# --- the random streams --------------------------------------------------------------

_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = 0x1BD11BDA


def threefry2x32(k0, k1, x0, x1, rounds: int = 20):
    """Threefry-2x32 of counter (x0, x1) under key (k0, k1); uint32 tensors, broadcast.

    The generator of Random123 (Salmon et al., SC 2011), in TensorFlow ops so that XLA
    compiles it over a whole tensor of per-member keys at once."""

    def rotl(x, r):
        return tf.bitwise.bitwise_or(
            tf.bitwise.left_shift(x, tf.constant(r, tf.uint32)),
            tf.bitwise.right_shift(x, tf.constant(32 - r, tf.uint32)),
        )

    ks = (k0, k1, tf.bitwise.bitwise_xor(tf.bitwise.bitwise_xor(k0, k1), _PARITY))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for r in range(rounds):
        x0 = x0 + x1
        x1 = tf.bitwise.bitwise_xor(rotl(x1, _ROTATIONS[r % 8]), x0)
        if r % 4 == 3:
            s = r // 4 + 1
            x0 = x0 + ks[s % 3]
            x1 = x1 + ks[(s + 1) % 3] + tf.constant(s, tf.uint32)
    return x0, x1


def uniform(keys: tf.Tensor, epoch: tf.Tensor, step: tf.Tensor, shape) -> tf.Tensor:
    """Uniform floats in [0, 1) of ``shape`` (members first): element i of member m is
    drawn from key (keys[m], epoch) and counter (i, step), so it depends on nothing else."""
    n = int(np.prod(shape[1:]))
    index = tf.reshape(tf.cast(tf.range(n), tf.uint32), [1, *shape[1:]])
    k0 = tf.reshape(keys, [-1] + [1] * (len(shape) - 1))
    bits, _ = threefry2x32(k0, tf.cast(epoch, tf.uint32), index, tf.cast(step, tf.uint32))
    return tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)), tf.float32) * (
        1.0 / (1 << 24)
    )


# --- what a program is made of --------------------------------------------------------


@dataclass(frozen=True)
class Stacked:
    """The members' data, standardized with each member's own statistics and padded.

    Training rows are padded to ``steps * batch_size``; padded rows never enter a
    loss (they sort last in every epoch's order and are masked out of batches).
    """

    x_train: np.ndarray  # (M, steps * batch_size, 60) float32
    y_train: np.ndarray  # (M, steps * batch_size) float32
    n_train: np.ndarray  # (M,) int32
    x_test: np.ndarray  # (M, T, 60): T, the largest held-out part in whole batches
    y_test: np.ndarray  # (M, T)
    n_test: np.ndarray  # (M,) int32: 0 for a final model


def stack(X: np.ndarray, y: np.ndarray, members: Sequence[Member], batch_size: int) -> Stacked:
    n_train = np.array([len(m.train) for m in members], dtype=np.int32)
    n_test = np.array([len(m.test) for m in members], dtype=np.int32)
    rows = steps_per_epoch(int(n_train.max()), batch_size) * batch_size
    # held-out rows padded to whole batches too: see ``Program.infer``
    cols = steps_per_epoch(max(1, int(n_test.max())), batch_size) * batch_size
    k = len(members)
    x_train = np.zeros((k, rows, X.shape[1]), np.float32)
    y_train = np.zeros((k, rows), np.float32)
    x_test = np.zeros((k, cols, X.shape[1]), np.float32)
    y_test = np.zeros((k, cols), np.float32)
    for i, m in enumerate(members):
        x_train[i, : len(m.train)] = (X[m.train] - m.scaler.mean) / m.scaler.std
        y_train[i, : len(m.train)] = y[m.train]
        x_test[i, : len(m.test)] = (X[m.test] - m.scaler.mean) / m.scaler.std
        y_test[i, : len(m.test)] = y[m.test]
    return Stacked(x_train, y_train, n_train, x_test, y_test, n_test)


def hyperparameters(members: Sequence[Member]) -> dict[str, np.ndarray]:
    """Every per-member value of a program, one array each (float32 unless said)."""
    f32 = lambda values: np.array(values, dtype=np.float32)  # noqa: E731
    v = [m.variant for m in members]
    lr0 = [x.optimizer.learning_rate for x in v]
    out = {
        "learning_rate": f32(lr0),
        "momentum": f32([x.optimizer.momentum for x in v]),
        # the schedules' constants; time decay's default, lr0 / epochs, as the config says
        "decay": f32([_decay(x) for x in v]),
        "drop": f32([x.schedule.drop for x in v]),
        "every": f32([x.schedule.every for x in v]),
        "updates_per_epoch": np.array(
            [max(1, steps_per_epoch(len(m.train), m.variant.batch_size)) for m in members],
            np.int32,
        ),
    }
    if v[0].model.kind == "mlp":
        out["input_dropout"] = f32([x.model.input_dropout for x in v])
        out["hidden_dropout"] = f32([x.model.hidden_dropout for x in v])
        out["max_norm"] = f32([x.model.max_norm or 0.0 for x in v])
    else:
        out["dropout"] = f32([x.model.dropout for x in v])
        out["recurrent_dropout"] = f32([x.model.recurrent_dropout for x in v])
    return out


def _decay(variant: VariantConfig) -> float:
    decay = variant.schedule.decay
    return decay if decay is not None else variant.optimizer.learning_rate / variant.epochs


def stream_keys(members: Sequence[Member], template: VariantConfig) -> dict[str, np.ndarray]:
    """Each member's key for each of its streams (uint32), from the member's own seed."""
    paths = {"order": (Stream.ORDER,)}
    m = template.model
    if m.kind == "mlp":
        paths["drop_input"] = (Stream.DROP_INPUT,)
        paths.update({f"drop_hidden_{i}": (Stream.DROP_HIDDEN, i) for i in range(len(m.hidden))})
    else:
        paths["drop_lstm_input"] = (Stream.DROP_LSTM, 0)
        paths["drop_lstm_recurrent"] = (Stream.DROP_LSTM, 1)
    return {
        name: np.array([stream_seed(mb.seed, *path) for mb in members], dtype=np.uint32)
        for name, path in paths.items()
    }


def initial_weights(members: Sequence[Member]) -> list[np.ndarray]:
    """Each member's Keras-initialized trainable weights, stacked on a leading axis."""
    built: dict[int, list[np.ndarray]] = {}  # a block's idle members are one member
    for m in members:
        if id(m) not in built:  # build_network's weights, bit for bit, without building it
            built[id(m)] = initial_values(m.variant, m.seed)
    return [np.stack(ws) for ws in zip(*(built[id(m)] for m in members), strict=True)]


# --- the network, stacked --------------------------------------------------------------


def _per_member(v: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """A (M,) vector shaped to broadcast against ``like`` (members first)."""
    return tf.reshape(v, tf.concat([[-1], tf.ones([tf.rank(like) - 1], tf.int32)], axis=0))


def _dropout(x: tf.Tensor, rate: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """Inverted dropout as Keras does it: keep with probability 1 - rate, scale by
    1/(1 - rate); ``rate`` per member, ``u`` uniform draws shaped as ``x``."""
    rate = _per_member(rate, x)
    return tf.where(u >= rate, x / (1.0 - rate), tf.zeros_like(x))


def _dense(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.einsum("mbi,mio->mbo", x, w) + b[:, None, :]


@dataclass(frozen=True)
class Noise:
    """What turns dropout on in a forward pass: per-member keys, the epoch and the step."""

    keys: dict[str, tf.Tensor]
    epoch: tf.Tensor
    step: tf.Tensor

    def uniform(self, stream: str, shape) -> tf.Tensor:
        return uniform(self.keys[stream], self.epoch, self.step, shape)


def forward(
    template: VariantConfig,
    params: list[tf.Tensor],
    x: tf.Tensor,
    hyper: dict[str, tf.Tensor],
    noise: Noise | None,
) -> tf.Tensor:
    """Logits (M, B) of every member for its rows ``x`` (M, B, 60); ``noise`` turns
    dropout on, as in training; ``None`` is inference."""
    m = template.model
    if m.kind == "lstm":
        return _lstm_forward(template, params, x, hyper, noise)
    members, batch = x.shape[0], x.shape[1]
    if noise is not None and m.input_dropout > 0:
        u = noise.uniform("drop_input", [members, batch, x.shape[2]])
        x = _dropout(x, hyper["input_dropout"], u)
    for i, units in enumerate(m.hidden):
        x = tf.nn.relu(_dense(x, params[2 * i], params[2 * i + 1]))
        if noise is not None and m.hidden_dropout > 0:
            u = noise.uniform(f"drop_hidden_{i}", [members, batch, units])
            x = _dropout(x, hyper["hidden_dropout"], u)
    return _dense(x, params[-2], params[-1])[..., 0]


def _lstm_forward(template, params, x, hyper, noise):
    """Keras 3's LSTM cell (gates i, f, c, o; sigmoid/tanh), stacked over members.

    With ``recurrent_dropout`` Keras uses its per-gate path: four input masks and four
    recurrent masks, each drawn once per batch and reused at every timestep.

    The timesteps are a ``tf.while_loop``, not a Python loop: unrolled, XLA fused the
    backward pass's cell-state recursion into every timestep's gradient, recomputing
    it from the last step each time (quadratic in the timesteps; 55% of a training
    step, profiled). In a loop each step's gradient is computed once: 2.6x faster (a
    block of 32 models x 25 epochs, 11.1 s -> 4.2 s).
    """
    m = template.model
    kernel, recurrent, bias, w_out, b_out = params
    members, batch = x.shape[0], x.shape[1]
    seq = tf.reshape(x, [members, batch, m.timesteps, m.features])
    h = tf.zeros([members, batch, m.units], x.dtype)
    c = tf.zeros_like(h)
    in_masks = rec_masks = None
    if noise is not None and m.dropout > 0:
        u = noise.uniform("drop_lstm_input", [members, 4, batch, m.features])
        ones = tf.ones([members, 4, batch, m.features], x.dtype)
        in_masks = tf.transpose(_dropout(ones, hyper["dropout"], u), [1, 0, 2, 3])
    if noise is not None and m.recurrent_dropout > 0:
        u = noise.uniform("drop_lstm_recurrent", [members, 4, batch, m.units])
        ones = tf.ones([members, 4, batch, m.units], x.dtype)
        rec_masks = tf.transpose(_dropout(ones, hyper["recurrent_dropout"], u), [1, 0, 2, 3])
    # Keras lays the gates side by side in the kernels' last axis: [i | f | c | o].
    k4 = tf.reshape(kernel, [-1, m.features, 4, m.units])
    u4 = tf.reshape(recurrent, [-1, m.units, 4, m.units])
    b4 = tf.reshape(bias, [-1, 4, 1, m.units])  # (M, gate, 1, units)
    # The input masks are the same at every timestep, so the input part of every gate
    # at every step is one contraction, outside the time loop: (T, M, gate, B, units).
    if in_masks is not None:
        masked = in_masks[:, :, :, None, :] * seq[None]  # (gate, M, B, T, F)
        xz = tf.einsum("gmbtf,mfgu->tmgbu", masked, k4)
    else:
        xz = tf.einsum("mbtf,mfgu->tmgbu", seq, k4)

    def step(t, h, c):
        if rec_masks is not None:
            hz = tf.einsum("gmbu,mugv->mgbv", rec_masks * h[None], u4)
        else:
            hz = tf.einsum("mbu,mugv->mgbv", h, u4)
        z = tf.gather(xz, t) + hz + b4
        i, f, o = tf.sigmoid(z[:, 0]), tf.sigmoid(z[:, 1]), tf.sigmoid(z[:, 3])
        c = f * c + i * tf.tanh(z[:, 2])
        return t + 1, o * tf.tanh(c), c

    _, h, _ = tf.while_loop(
        lambda t, *_: t < m.timesteps, step, (tf.constant(0), h, c),
        maximum_iterations=m.timesteps,  # XLA needs the bound to keep the gradient's stacks
    )  # fmt: skip
    return _dense(h, w_out, b_out)[..., 0]


def epoch_order(key: tf.Tensor, epoch: tf.Tensor, n_train: tf.Tensor, rows: int) -> tf.Tensor:
    """Each member's row order for one epoch, (M, rows): a permutation of its real rows
    first, then the padding. ``key``: each member's order key."""
    u = uniform(key, epoch, tf.constant(0), [key.shape[0], rows])
    real = tf.range(rows)[None, :] < n_train[:, None]
    return tf.argsort(tf.where(real, u, 2.0), axis=1, stable=True)


def learning_rate(kind: str, hyper: dict[str, tf.Tensor], iters: tf.Tensor) -> tf.Tensor:
    """Each member's learning rate at its own update count ``iters``, by the formulas of
    Keras' schedules: ``time`` InverseTimeDecay(lr0, 1, decay), ``step`` a staircase
    ExponentialDecay(lr0, every, drop) counted in the member's own epochs."""
    lr0 = hyper["learning_rate"]
    if kind == "constant":
        return lr0
    if kind == "time":
        return lr0 / (1.0 + hyper["decay"] * tf.cast(iters, tf.float32))
    epochs = tf.cast(iters // hyper["updates_per_epoch"], tf.float32)
    return lr0 * tf.pow(hyper["drop"], tf.floor(epochs / hyper["every"]))


def max_norm(w: tf.Tensor, limit: tf.Tensor) -> tf.Tensor:
    """Keras' ``MaxNorm(limit, axis=0)`` of each member's kernel (members first)."""
    norms = tf.sqrt(tf.reduce_sum(tf.square(w), axis=1, keepdims=True))
    desired = tf.clip_by_value(norms, 0.0, _per_member(limit, w))
    return w * (desired / (1e-7 + norms))


# --- the program --------------------------------------------------------------------


class Program:
    """The compiled training program of one ``members.shape_key``: data, per-member values and
    keys are its arguments, so a program compiled once serves every set of members of
    its key and of the same stack shape."""

    def __init__(self, template: VariantConfig, chunk: int):
        self.template, self.chunk = template, chunk
        self.kind = template.schedule.kind
        m = template.model
        # which trainable weights carry MaxNorm: the hidden kernels of an MLP
        self.constrained = (
            [i % 2 == 0 for i in range(2 * len(m.hidden))] + [False, False]
            if m.kind == "mlp" and m.max_norm is not None
            else None
        )
        # one compilation per stack shape: XLA compiles static shapes
        self.train = tf.function(self._train_chunk, jit_compile=True)

    def _step(self, params, moms, iters, xb, yb, valid, hyper, noise):
        with tf.GradientTape() as tape:
            tape.watch(params)
            logits = forward(self.template, params, xb, hyper, noise)
            per_row = tf.nn.sigmoid_cross_entropy_with_logits(labels=yb, logits=logits)
            count = tf.reduce_sum(valid, axis=1)
            member_loss = tf.reduce_sum(per_row * valid, axis=1) / tf.maximum(count, 1.0)
            total = tf.reduce_sum(member_loss)
        grads = tape.gradient(total, params)
        active = count > 0
        lr = learning_rate(self.kind, hyper, iters)
        new_params, new_moms = [], []
        for i, (p, m, g) in enumerate(zip(params, moms, grads, strict=True)):
            m2 = m * _per_member(hyper["momentum"], p) - g * _per_member(lr, p)
            p2 = p + m2
            if self.constrained and self.constrained[i]:
                p2 = max_norm(p2, hyper["max_norm"])
            on = _per_member(active, p)
            new_params.append(tf.where(on, p2, p))
            new_moms.append(tf.where(on, m2, m))
        correct = tf.cast((logits > 0) == (yb > 0.5), tf.float32) * valid
        stats = tf.stack([tf.reduce_sum(per_row * valid, 1), tf.reduce_sum(correct, 1)], 1)
        return new_params, new_moms, iters + tf.cast(active, tf.int32), stats

    def infer(self, params, x, hyper):
        """P(mine) (M, R) of rows ``x`` (M, R, 60), R a multiple of the batch size, in
        inference mode, one batch-sized block at a time: every product then has the
        shape it has in training, whatever R is. (XLA rounds a product over more rows
        differently, so a member's probabilities would depend on the padding that the
        largest member of its stack sets.)"""
        bs = self.template.batch_size
        blocks = tf.reshape(x, [x.shape[0], x.shape[1] // bs, bs, x.shape[2]])
        logits = tf.map_fn(
            lambda xb: forward(self.template, params, xb, hyper, None),
            tf.transpose(blocks, [1, 0, 2, 3]),
        )  # (blocks, M, bs)
        return tf.sigmoid(tf.reshape(tf.transpose(logits, [1, 0, 2]), [x.shape[0], -1]))

    def _held_out(self, params, x_test, y_test, hyper):
        """Per-row held-out loss and correctness (M, T): summed on the host over each
        member's own rows, so that the padding of other members changes no sum."""
        p = tf.clip_by_value(self.infer(params, x_test, hyper), EPS, 1 - EPS)
        loss = -(y_test * tf.math.log(p) + (1 - y_test) * tf.math.log(1 - p))
        return loss, tf.cast((p > 0.5) == (y_test > 0.5), tf.float32)

    def _train_chunk(self, params, moms, iters, first_epoch, data, hyper, keys):
        bs = self.template.batch_size
        x_train, y_train, n_train, x_test, y_test = data
        n_float = tf.cast(n_train, tf.float32)
        members, rows = x_train.shape[0], x_train.shape[1]
        steps = rows // bs

        def epoch_body(e, params, moms, iters, curves, held):
            epoch = first_epoch + e
            order = epoch_order(keys["order"], epoch, n_train, rows)

            def step_body(s, params, moms, iters, sums):
                idx = tf.slice(order, [0, s * bs], [members, bs])
                xb = tf.gather(x_train, idx, batch_dims=1)
                yb = tf.gather(y_train, idx, batch_dims=1)
                valid = tf.cast((s * bs + tf.range(bs))[None, :] < n_train[:, None], tf.float32)
                noise = Noise(keys, epoch, s)
                params, moms, iters, stats = self._step(
                    params, moms, iters, xb, yb, valid, hyper, noise
                )
                return s + 1, params, moms, iters, sums + stats

            _, params, moms, iters, sums = tf.while_loop(
                lambda s, *_: s < steps,
                step_body,
                (tf.constant(0), params, moms, iters, tf.zeros([members, 2])),
            )
            loss, correct = self._held_out(params, x_test, y_test, hyper)
            row = tf.stack([sums[:, 0] / n_float, sums[:, 1] / n_float], 1)
            curves = tf.tensor_scatter_nd_update(curves, [[e]], row[None])
            held = tf.tensor_scatter_nd_update(held, [[e]], tf.stack([loss, correct])[None])
            return e + 1, params, moms, iters, curves, held

        _, params, moms, iters, curves, held = tf.while_loop(
            lambda e, *_: e < self.chunk,
            epoch_body,
            (tf.constant(0), params, moms, iters, tf.zeros([self.chunk, members, 2]),
             tf.zeros([self.chunk, 2, *x_test.shape[:2]])),
        )  # fmt: skip
        # P(mine) of every row with the weights reached, inference mode
        p_train, p_test = (self.infer(params, x, hyper) for x in (x_train, x_test))
        return params, moms, iters, curves, held, p_train, p_test

    def run(self, params, data: Stacked, hyper, keys, tick: Tick):
        """Train from ``params``; return the final weights, the curves, shape (epochs,
        members, 4): train loss, train accuracy, held-out loss and accuracy; and P(mine)
        of the training and held-out rows (padded as ``data``) in inference mode."""
        params = [tf.constant(p) for p in params]
        moms = [tf.zeros_like(p) for p in params]
        iters = tf.zeros([data.x_train.shape[0]], tf.int32)
        args = [tf.constant(a) for a in
                (data.x_train, data.y_train, data.n_train, data.x_test, data.y_test)]  # fmt: skip
        hyper = {k: tf.constant(v) for k, v in hyper.items()}
        keys = {k: tf.constant(v) for k, v in keys.items()}
        valid = np.arange(data.x_test.shape[1])[None, :] < data.n_test[:, None]
        n_test = np.maximum(data.n_test, 1)[None, :]
        curves = []
        for first in range(0, self.template.epochs, self.chunk):
            params, moms, iters, train, held, p_train, p_test = self.train(
                params, moms, iters, tf.constant(first), args, hyper, keys
            )
            held = held.numpy().astype(np.float64)
            test = [np.where(valid, held[:, j], 0.0).sum(axis=2) / n_test for j in (0, 1)]
            curves.append(np.concatenate([train.numpy(), np.stack(test, axis=2)], axis=2))
            tick(first + self.chunk)
        weights = [p.numpy() for p in params]
        return weights, np.concatenate(curves), p_train.numpy(), p_test.numpy()


_PROGRAMS: dict[tuple, Program] = {}


def program(template: VariantConfig) -> Program:
    """The program of ``template``'s key, made once per process and kept: a worker that
    trains many shards compiles each program (per stack shape) once."""
    key = (shape_key(template), epochs_per_call(template.epochs))
    if key not in _PROGRAMS:
        _PROGRAMS[key] = Program(template, epochs_per_call(template.epochs))
    return _PROGRAMS[key]


def epochs_per_call(epochs: int, target: int = 25) -> int:
    """The largest divisor of ``epochs`` not above ``target``: one compiled chunk size."""
    return max(d for d in range(1, min(epochs, target) + 1) if epochs % d == 0)


# Members per program run: every program runs a stack of exactly this many members
# (padded with idle members that have no rows). XLA compiles a stack's arithmetic by
# its size: between 33 and 40 members it switched to code that rounds some sums
# differently (by 1 ulp, which training then amplifies), so a member's numbers would
# depend on how many others it trained with. At one fixed size they cannot.
BLOCK = 32


def train_stacked(
    members: Sequence[Member], X: np.ndarray, y: np.ndarray, tick: Tick = lambda done: None
) -> list[Outcome]:
    """Train every member; members that share a ``members.shape_key`` train together, in
    blocks of ``BLOCK``. The outcomes come back in the members' order. ``tick`` counts
    the epochs of the block that is training (blocks run one after another)."""
    cache = xla_cache.active_folder()
    cached, traced = xla_cache.entries(cache), _traces()
    groups: dict[tuple, list[int]] = {}
    for i, m in enumerate(members):
        groups.setdefault(shape_key(m.variant), []).append(i)
    out: list[Outcome | None] = [None] * len(members)
    for index in groups.values():
        for start in range(0, len(index), BLOCK):
            block = index[start : start + BLOCK]
            for i, outcome in zip(block, _train_block([members[i] for i in block], X, y, tick),
                                  strict=False):  # fmt: skip
                out[i] = outcome
    compiled = _traces() - traced  # programs this call needed that this process lacked
    if cache is not None and compiled:
        new = xla_cache.entries(cache) - cached
        log.info("XLA cache %s: %d program(s) loaded, %d compiled and stored",
                 cache, max(0, compiled - new), new)  # fmt: skip
        if new and cache == xla_cache.cache_folder():  # ours, not a TF_XLA_FLAGS folder
            _prune_cache(cache)
    return out


def _prune_cache(cache: Path) -> None:
    """Keep the XLA cache bounded (``xla_cache.prune``) now that it has grown; a cache
    that cannot be pruned (a read-only folder, say) is left as it is."""
    try:
        count, size = xla_cache.prune(cache)
    except OSError as exc:
        log.warning("XLA cache %s: not pruned (%s)", cache, exc)
        return
    if count:
        log.info("XLA cache %s: removed %d program(s), %.1f MiB: the least recently used "
                 "beyond %d MiB, or another key's unused for %d days", cache, count,
                 size / 2**20, xla_cache.LIMIT_BYTES >> 20, xla_cache.STALE_DAYS)  # fmt: skip


def _traces() -> int:
    """How many programs (per stack shape) this process has built so far."""
    return sum(p.train.experimental_get_tracing_count() for p in _PROGRAMS.values())


def _train_block(block: list[Member], X: np.ndarray, y: np.ndarray, tick: Tick) -> list[Outcome]:
    """At most ``BLOCK`` members of one shape, padded to ``BLOCK`` with idle members."""
    first = block[0]
    idle = Member(first.variant, first.train[:0], first.test[:0], first.scaler, first.seed)
    stacked = [*block, *[idle] * (BLOCK - len(block))]
    prog = program(first.variant)
    data = stack(X, y, stacked, first.variant.batch_size)
    hyper = hyperparameters(stacked)
    weights, curves, p_train, p_test = prog.run(
        initial_weights(stacked), data, hyper, stream_keys(stacked, first.variant), tick
    )
    return [
        Outcome(
            weights=[w[j] for w in weights],
            curves=curves[:, j],
            p_train=p_train[j, : len(m.train)],
            p_test=p_test[j, : len(m.test)],
        )
        for j, m in enumerate(block)
    ]


def cross_validate_fused(
    variant: VariantConfig, sonar: Sonar, prepared: Prepared, tick: Tick = lambda done: None
) -> CVResult:
    """Every split and the final model in one program; ``tick`` gets the epochs done."""
    t0 = time.perf_counter()
    X, y, seed = sonar.X, sonar.y, prepared.seed
    splits = prepared.splits
    all_rows = np.arange(len(y))
    members = split_members(variant, prepared)
    members.append(Member(variant, all_rows, all_rows[:0], prepared.full, final_seed(seed)))
    outcomes = train_stacked(members, X, y, tick)
    seconds = time.perf_counter() - t0
    share = seconds / len(members)  # one program trains all: an equal share
    folds = [fold_result(s, o, y, share) for s, o in zip(splits, outcomes, strict=False)]
    final = outcomes[-1]
    return CVResult(folds, final_result(members[-1], final, y, share))


def final_result(member: Member, outcome: Outcome, y: np.ndarray, seconds: float) -> FinalResult:
    # An inference model: compiling it would save an optimizer that never trained it.
    model = build_network(member.variant, member.scaler, member.seed)
    for var, value in zip(model.trainable_weights, outcome.weights, strict=True):
        var.assign(value)
    curves = curve_columns(outcome.curves)
    return FinalResult(
        model=model,
        curves={k: curves[k] for k in ("train_loss", "train_accuracy")},
        train_metrics=binary_metrics(y, outcome.p_train),
        seconds=seconds,
    )
