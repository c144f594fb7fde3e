"""How big a stage's work is, known from params alone, and the limits above which a
stage refuses it before any training, before TensorFlow loads and before any MLflow run.

Two estimates, pure arithmetic on what the variants and grids fix:

- memory: one fused program trains ``MODELS_PER_PROGRAM`` models at once (a stack of
  exactly that many, ``engines.fused.BLOCK``; the keras engine trains one at a time),
  so it holds ``WEIGHT_COPIES`` copies of each model's weights, its activations for one
  batch and its stacked rows; every trained model's weights and probabilities are then
  kept until the stage writes its outputs (a grid keeps all of its trials');
- work: models × epochs × optimizer steps per epoch, in model-steps, with the
  throughput this machine measured (``THROUGHPUT``).

An estimate above its limit is a ``ConfigError`` (exit 2) naming the key to change, the
estimate and the limit. They are estimates: a study below the limits can still run out
of memory in TensorFlow, which the stages report in one line too (``ran_out_of_memory``).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from typing import Any

from sonarlab.core.params import N_BANDS, ConfigError
from sonarlab.design.variants import ModelConfig, VariantConfig

ROWS = 208  # the Sonar data's rows (data.uci.N_ROWS; a unit test keeps the two equal)
FLOAT32 = 4  # bytes: every weight, activation and row is float32
# Models in one fused program: engines.fused.BLOCK (a unit test keeps the two equal). A
# program always runs a full stack (short blocks are padded with idle models), and
# blocks run one after another, so this is how many models are in memory at once.
MODELS_PER_PROGRAM = 32
# Copies of a model's weights alive while a program trains: its Keras-built initial
# weights and their stacked copy (fused.initial_weights), the program's weights, their
# gradients, the momentum, the updated weights and momentum of a step (both states
# live at once inside XLA's loop), and the trained weights copied back to NumPy.
WEIGHT_COPIES = 8
# Floats per unit of width per row in a training step: the layer's output, its
# pre-activation (kept for the gradient), the dropout draw (uniform floats from uint32
# bits) and mask, the gradient flowing back, with room for XLA's temporaries.
ACTIVATION_COPIES = 8


def _physical_memory() -> int:
    """This machine's physical memory in bytes (``os.sysconf``; 8 GiB where unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30


# Memory one stage may plan to use: 3/4 of physical memory (18 GiB of this machine's 24),
# leaving the rest for TensorFlow and MLflow themselves (~1 GB a process, README
# "Engines") and the rest of the machine. The README's 324-trial grid plans ~0.3 GB.
MEMORY_LIMIT = _physical_memory() * 3 // 4
# Model-steps per second this 2-core machine trains: README "What a grid costs", the
# 324-trial grid's whole stage ran 4,240 model-epochs/s of 12 steps each (`hidden`,
# batch 16, 188-row training sets): ~50,000 model-steps/s.
THROUGHPUT = 50_000
# Work one stage may ask for: 3 days at THROUGHPUT, 1.3e10 model-steps. The README's
# 324-trial grid is 3.5e7 (12 minutes), the default pipeline's stages ~1e5 each.
WORK_LIMIT = 3 * 24 * 3600 * THROUGHPUT


# --- the estimates ---------------------------------------------------------------------


def parameter_count(model: ModelConfig) -> int:
    """Trainable parameters of the network ``training.model`` builds: an MLP's Dense
    kernels and biases, 60 inputs to one sigmoid output; an LSTM's four gates (kernel,
    recurrent kernel, bias) and its Dense(1) head."""
    if model.kind == "mlp":
        widths = [N_BANDS, *model.hidden, 1]
        return sum(a * b + b for a, b in itertools.pairwise(widths))
    u = model.units
    return 4 * u * (model.features + u + 1) + u + 1


def _widths(model: ModelConfig) -> int:
    """Floats per row of one forward pass: every layer's outputs (an LSTM's at every step)."""
    if model.kind == "mlp":
        return N_BANDS + sum(model.hidden) + 1
    return model.timesteps * (model.features + 6 * model.units) + 1  # 4 gates, c, h


def train_rows(folds: int) -> int:
    """The rows of the largest training part of ``folds``-fold CV."""
    return ROWS - ROWS // folds


def _steps(rows: int, batch_size: int) -> int:
    return math.ceil(rows / batch_size)


def program_memory(variant: VariantConfig, models: int = MODELS_PER_PROGRAM) -> int:
    """Bytes one program of ``models`` models of ``variant`` needs while it trains: the
    weights' copies, one batch's activations, and the stacked rows (training rows
    padded to whole batches, held-out rows too: features and labels)."""
    weights = parameter_count(variant.model) * WEIGHT_COPIES
    activations = variant.batch_size * _widths(variant.model) * ACTIVATION_COPIES
    rows = 2 * _steps(ROWS, variant.batch_size) * variant.batch_size * (N_BANDS + 1)
    return models * (weights + activations + rows) * FLOAT32


def kept_memory(variant: VariantConfig, models: int) -> int:
    """Bytes the trained ``models`` keep until the stage writes its outputs: weights,
    and P(mine) of their training and held-out rows."""
    return models * (parameter_count(variant.model) + 2 * ROWS) * FLOAT32


def sci(x: float) -> str:
    """``x`` in two significant digits: 4.0e10."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" or n >= 10 else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_seconds(s: float) -> str:
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("hours", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.0f} s"


def _work_limit_text() -> str:
    return (
        f"the limit of {sci(WORK_LIMIT)} ({human_seconds(WORK_LIMIT / THROUGHPUT)} at "
        f"{THROUGHPUT:,} model-steps/s; sonarlab.design.sizes.WORK_LIMIT)"
    )


def _memory_limit_text() -> str:
    return f"the limit of {human_bytes(MEMORY_LIMIT)} (sonarlab.design.sizes.MEMORY_LIMIT)"


def _network_key(prefix: str, model: ModelConfig) -> tuple[str, Any, str]:
    """The key that sets a network's size, its value and what to do about it."""
    if model.kind == "mlp":
        return f"{prefix}.model.hidden", list(model.hidden), "make the layers narrower"
    return f"{prefix}.model.units", model.units, "use fewer units"


def _refuse_memory(
    variant: VariantConfig,
    prefix: str,
    together: int,
    kept: int,
    kept_what: str,
    kept_key: str | None = None,
    batch_prefix: str | None = None,
) -> None:
    """Refuse ``together`` models of ``variant`` in a program plus ``kept`` trained ones
    held, if they need more than ``MEMORY_LIMIT``; the key named is what dominates: the
    network's size, the batch size, or (``kept_key``, when given) what makes ``kept``."""
    program = program_memory(variant, together)
    held = kept_memory(variant, kept)
    if program + held <= MEMORY_LIMIT:
        return
    params = parameter_count(variant.model)
    key, value, advice = _network_key(prefix, variant.model)
    what = f"{value} makes {sci(params)} parameters"
    if program >= held:
        per_row = _widths(variant.model) * ACTIVATION_COPIES + 2 * (N_BANDS + 1)
        if variant.batch_size * per_row > params * WEIGHT_COPIES:
            key, advice = f"{batch_prefix or prefix}.batch_size", "use smaller batches"
            what = f"{variant.batch_size:,} rows a batch"
        need = f"{together} models trained together need about {human_bytes(program)}"
    else:
        need = f"{kept_what} keep about {human_bytes(held)} of trained weights"
        if kept_key is not None:
            key, what, advice = kept_key, f"{sci(params)} parameters a model", "use fewer values"
    raise ConfigError(f"{key}: {what}; {need}, over {_memory_limit_text()}; {advice}")


# --- the checks a stage makes ------------------------------------------------------------


def check_cv(name: str, variant: VariantConfig, folds: int, repeats: int, engine: str) -> None:
    """``cv@<name>``: every split's model and the final model of ``variant``."""
    key = f"variants.{name}"
    splits = folds * repeats
    models = splits + 1
    split_steps, final_steps = (
        _steps(train_rows(folds), variant.batch_size), _steps(ROWS, variant.batch_size)
    )  # fmt: skip
    work = variant.epochs * (splits * split_steps + final_steps)
    if work > WORK_LIMIT:
        raise ConfigError(
            f"{key}.epochs: {models} models x {variant.epochs:,} epochs x {split_steps}"
            f"{'' if split_steps == final_steps else f'-{final_steps}'} steps = {sci(work)} "
            f"model-steps (about {human_seconds(work / THROUGHPUT)}), over {_work_limit_text()}; "
            "train fewer epochs"
        )
    together = MODELS_PER_PROGRAM if engine == "fused" else 1
    _refuse_memory(variant, key, together, models, f"{models} models")


# Fields of a variant that a grid's axis may set and that change a trial's size.
_WORK_FIELDS = ("epochs", "batch_size")
_NETWORK_FIELDS = ("model.units", "model.features", "model.timesteps")


def _ints(values: Sequence[Any], default: int) -> list[int]:
    """An axis' values that are valid sizes (the rest are refused when trials are built)."""
    ok = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 1]
    return ok or [default]


def check_grid(
    key: str,
    base_name: str,
    base: VariantConfig,
    axes: Sequence[tuple[str, Sequence[Any]]],
    folds: int,
    repeats: int,
) -> None:
    """``grids.<name>`` (``key``) of ``base``: its trials' work and memory from its axes
    alone, before any trial is built (a million trials take long to build)."""

    splits = folds * repeats
    values = dict(axes)
    trials = math.prod(len(v) for v in values.values())
    epochs = _ints(values.get("epochs", [base.epochs]), base.epochs)
    batches = _ints(values.get("batch_size", [base.batch_size]), base.batch_size)
    steps = [_steps(train_rows(folds), b) for b in batches]
    others = trials // (len(values.get("epochs", [0])) * len(values.get("batch_size", [0])))
    work = others * splits * sum(epochs) * sum(steps)
    if work > WORK_LIMIT:
        epochs_text = f"{epochs[0]:,}" if len(epochs) == 1 else f"{min(epochs)}-{max(epochs)}"
        steps_text = f"{steps[0]}" if len(steps) == 1 else f"{min(steps)}-{max(steps)}"
        raise ConfigError(
            f"{key}.axes: {trials:,} trials x {splits} splits x {epochs_text} epochs x "
            f"{steps_text} steps = {sci(work)} model-steps (about "
            f"{human_seconds(work / THROUGHPUT)}), over {_work_limit_text()}; use fewer values"
        )
    # the largest trial, as an upper bound: each size field at its largest value
    largest = _largest(base, values, max(batches))
    model = largest.model
    own, axis = f"variants.{base_name}", f"{key}.axes"
    _refuse_memory(
        largest, axis if model != base.model else own, MODELS_PER_PROGRAM, trials * splits,
        f"{trials:,} trials x {splits} splits", kept_key=axis,
        batch_prefix=axis if max(batches) != base.batch_size else own,
    )  # fmt: skip


def _largest(base: VariantConfig, values: dict, batch_size: int) -> VariantConfig:
    """``base`` with each network size field at its largest of ``values`` (field ->
    the values it may take) and ``batch_size``: an upper bound of a study's trials."""
    import dataclasses

    model = base.model
    for field in _NETWORK_FIELDS:
        if field in values:
            name = field.split(".")[1]
            model = dataclasses.replace(model, **{name: max(_ints(values[field], 1))})
    return dataclasses.replace(base, model=model, batch_size=batch_size)


def check_search(
    key: str,
    base_name: str,
    base: VariantConfig,
    rungs: Sequence[int],
    space: Sequence[Any],
    trials: int,
    folds: int,
    repeats: int,
) -> None:
    """``searches.<name>`` (``key``) of ``base``: its budget's work, as if every trial
    trained every rung at the space's largest sizes (an upper bound), and the memory of
    its largest trial (a search keeps a block of trials' models at a time)."""

    splits = folds * repeats
    bounds = {d.key: [v for v in d.bounds() if v is not None] for d in space}
    final = max([rungs[-1], *_ints(bounds.get("epochs", []), rungs[-1])])
    epochs = sum(rungs[:-1]) + final
    batch = min(_ints(bounds.get("batch_size", []), base.batch_size))
    steps = _steps(train_rows(folds), batch)
    work = trials * splits * epochs * steps
    if work > WORK_LIMIT:
        raise ConfigError(
            f"{key}.trials: {trials:,} trials x {splits} splits x {epochs:,} epochs x {steps} "
            f"steps = {sci(work)} model-steps (about {human_seconds(work / THROUGHPUT)}), over "
            f"{_work_limit_text()}; ask for fewer trials"
        )
    batches = _ints(bounds.get("batch_size", []), base.batch_size)
    largest = _largest(base, bounds, max(batches))
    model = largest.model
    space_key = f"{key}.space"
    block = min(trials, MODELS_PER_SEARCH_BLOCK // splits or 1)
    _refuse_memory(
        largest, space_key if model != base.model else f"variants.{base_name}",
        MODELS_PER_PROGRAM, block * splits, f"{block} trials x {splits} splits",
        batch_prefix=space_key if max(batches) != base.batch_size else f"variants.{base_name}",
    )  # fmt: skip


# A search trains its trials a block at a time: as many as a grid shard holds
# (grid.shards.MAX_MEMBERS; a unit test keeps the two equal).
MODELS_PER_SEARCH_BLOCK = 480


# --- when TensorFlow runs out of memory anyway --------------------------------------------

OUT_OF_MEMORY = ("ResourceExhaustedError", "MemoryError", "OutOfMemoryError")


def ran_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` or what caused it is running out of memory: TensorFlow's
    ``ResourceExhaustedError`` (matched by name: this layer loads no TensorFlow) or
    Python's ``MemoryError``."""
    return memory_error_name(exc) is not None


def memory_error_name(exc: BaseException) -> str | None:
    """The type name of the out-of-memory error in ``exc`` or what caused it, if any
    (what a one-line message names, rather than TensorFlow's long text)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        for t in type(e).__mro__:
            if t.__name__ in OUT_OF_MEMORY:
                return type(e).__name__
        todo += [e.__cause__, e.__context__]
    return None
