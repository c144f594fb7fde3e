"""The study's arms: ``variants.<name>`` of ``params.yaml`` as typed, frozen configs.

A variant is a network (``ModelConfig``), its optimizer and schedule, and its training
length; ``cv@<variant>`` cross-validates one, a grid (``design.grids``) varies one.
Validated by the strict loader of ``core.params``: every error names its dotted key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sonarlab.core.params import (
    IDENTIFIER,
    N_BANDS,
    build_config,
    check_positive,
    check_range,
    reject,
)


@dataclass(frozen=True)
class ModelConfig:
    """The network. ``kind: mlp`` reads the MLP fields, ``kind: lstm`` the LSTM ones.

    A field that belongs to the other kind must keep its default: a value set
    there would be silently ignored, so it is an error instead.
    """

    kind: Literal["mlp", "lstm"]
    # mlp: Dense(relu) layers of these widths, Dropout on the inputs and/or after
    # each hidden layer, MaxNorm on the hidden kernels (null: no constraint).
    hidden: tuple[int, ...] = (60, 30)
    input_dropout: float = 0.0
    hidden_dropout: float = 0.0
    max_norm: float | None = None
    # lstm: the 60 bands read as `timesteps` steps of `features` adjacent bands.
    units: int = 32
    timesteps: int = 10
    features: int = 6
    dropout: float = 0.0
    recurrent_dropout: float = 0.0

    _MLP_FIELDS = ("hidden", "input_dropout", "hidden_dropout", "max_norm")
    _LSTM_FIELDS = ("units", "timesteps", "features", "dropout", "recurrent_dropout")

    def unused(self) -> tuple[str, ...]:
        """Fields the other kind reads: they keep their defaults and mean nothing here."""
        return self._LSTM_FIELDS if self.kind == "mlp" else self._MLP_FIELDS

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        for name in self.unused():
            if name in given:
                reject(f"{key}.{name}", given[name], f"not used by kind {self.kind!r}; remove it")
        if self.kind == "mlp":
            if not self.hidden or any(u < 1 for u in self.hidden):
                reject(
                    f"{key}.hidden", list(self.hidden), "allowed: a non-empty list of widths >= 1"
                )
            check_range(f"{key}.input_dropout", self.input_dropout, 0.0, 1.0, hi_open=True)
            check_range(f"{key}.hidden_dropout", self.hidden_dropout, 0.0, 1.0, hi_open=True)
            if self.max_norm is not None:
                check_positive(f"{key}.max_norm", self.max_norm)
        else:
            if self.units < 1:
                reject(f"{key}.units", self.units, "allowed: an integer >= 1")
            if self.timesteps < 1 or self.features < 1 or self.timesteps * self.features != N_BANDS:
                reject(
                    f"{key}.timesteps",
                    f"{self.timesteps}x{self.features}",
                    f"allowed: timesteps x features == {N_BANDS} (e.g. 60x1, 10x6)",
                )
            check_range(f"{key}.dropout", self.dropout, 0.0, 1.0, hi_open=True)
            check_range(f"{key}.recurrent_dropout", self.recurrent_dropout, 0.0, 1.0, hi_open=True)


@dataclass(frozen=True)
class OptimizerConfig:
    """SGD with momentum (the tutorial's optimizer)."""

    learning_rate: float
    momentum: float = 0.0

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        check_range(f"{key}.learning_rate", self.learning_rate, 0.0, 10.0)
        check_positive(f"{key}.learning_rate", self.learning_rate)
        check_range(f"{key}.momentum", self.momentum, 0.0, 1.0, hi_open=True)


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, applied per optimizer update.

    - ``constant``: no schedule.
    - ``time``: Keras 2's ``decay`` argument, lr_t = lr0 / (1 + decay * t), t the
      update count; ``decay: null`` means lr0 / epochs.
    - ``step``: lr = lr0 * drop ** floor(epoch / every), epochs counted from 0, so
      the first ``every`` epochs run at lr0.
    """

    kind: Literal["constant", "time", "step"] = "constant"
    decay: float | None = None
    drop: float = 0.5
    every: int = 10

    def unused(self) -> tuple[str, ...]:
        used = {"constant": (), "time": ("decay",), "step": ("drop", "every")}[self.kind]
        return tuple(n for n in ("decay", "drop", "every") if n not in used)

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        for name in self.unused():
            if name in given:
                reject(f"{key}.{name}", given[name], f"not used by kind {self.kind!r}; remove it")
        if self.decay is not None and (not self.decay >= 0 or math.isinf(self.decay)):
            reject(f"{key}.decay", self.decay, "allowed: a finite value >= 0, or null")
        check_range(f"{key}.drop", self.drop, 0.0, 1.0)
        check_positive(f"{key}.drop", self.drop)
        if self.every < 1:
            reject(f"{key}.every", self.every, "allowed: an integer >= 1")


@dataclass(frozen=True)
class VariantConfig:
    """One experiment arm: a network, its optimizer and schedule, and its training length."""

    model: ModelConfig
    optimizer: OptimizerConfig
    epochs: int
    batch_size: int
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        if self.epochs < 1:
            reject(f"{key}.epochs", self.epochs, "allowed: an integer >= 1")
        if self.batch_size < 1:
            reject(f"{key}.batch_size", self.batch_size, "allowed: an integer >= 1")


def load_variant(params: Mapping[str, Any], name: str) -> VariantConfig:
    """Validate ``variants.<name>``."""
    names = variant_names(params)  # the names only: no other variant's value is read
    if name not in names:
        reject(f"variants.{name}", "<missing>", f"defined variants: {', '.join(names)}")
    return build_config(VariantConfig, params["variants"][name], f"variants.{name}")


def variant_names(params: Mapping[str, Any]) -> list[str]:
    """The variants' names. Each becomes a folder (``results/<name>``), a word of a
    stage's command and an alias of the registered model, so each must be a plain
    identifier; ``grid`` and ``search`` are the grids' and searches' folders;
    ``RESERVED_ALIAS`` are MLflow's and ours."""
    variants = params.get("variants")
    if not isinstance(variants, Mapping) or not variants:
        reject("variants", variants, "allowed: a non-empty mapping of variant name to settings")
    for name in variants:
        if (not isinstance(name, str) or not IDENTIFIER.match(name) or name in ("grid", "search")
                or RESERVED_ALIAS.match(name)):  # fmt: skip
            reject(f"variants.{name}", name,
                  "allowed: a plain identifier (letters, digits, _), not 'grid', "
                  "'search', 'champion', 'latest' or v<digits>")  # fmt: skip
    return list(variants)


CHAMPION = "champion"  # the registered model's alias for the report's pick
# A variant's name is also an alias of the registered model: MLflow reserves ``latest``
# (any case) and ``v<digits>`` (version references); ``champion`` is the report's.
RESERVED_ALIAS = re.compile(rf"(?i:latest|v\d+|{CHAMPION})\Z")
