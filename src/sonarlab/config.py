"""Typed, frozen configuration loaded from ``params.yaml`` and validated once.

Each stage loads only the sections it declares in ``dvc.yaml`` (``load_section``),
so a stage never reads a parameter DVC does not track for it. Unknown keys,
missing required keys, wrong types and out-of-range values raise ``ConfigError``
with the dotted key, the value and what is allowed, before any training starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sonarlab import files

N_BANDS = 60  # the Sonar data's 60 frequency bands
# fused: all folds and the final model in one compiled program (fast);
# keras: one Keras `fit` per fold (the reference path). See ``sonarlab.engines``.
Engine = Literal["fused", "keras"]


class ConfigError(ValueError):
    """A parameter is unknown, missing, of the wrong type or out of range."""


# A value quoted in an error is cut short: YAML aliases let a 1 KB params file hold a
# list of 10^8 numbers, whose full repr would be a 500 MB error line.
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxtuple, _QUOTE.maxdict = 2, 12, 12, 12
_QUOTE.maxstring = _QUOTE.maxother = _QUOTE.maxlong = 120


def _fail(key: str, value: Any, allowed: str) -> typing.NoReturn:
    raise ConfigError(f"{key}: got {_QUOTE.repr(value)}; {allowed}")


def _check_range(key: str, value: float, lo: float, hi: float, *, hi_open: bool = False) -> None:
    ok = lo <= value < hi if hi_open else lo <= value <= hi
    if not ok or (isinstance(value, float) and math.isnan(value)):
        _fail(key, value, f"allowed: {lo} <= value {'<' if hi_open else '<='} {hi}")


def _check_positive(key: str, value: float) -> None:
    if not value > 0:
        _fail(key, value, "allowed: a value > 0")


# --- sections -------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchConfig:
    """Where the ``fetch`` stage looks for the data (``SONAR_SOURCE`` is tried first)."""

    urls: tuple[str, ...]
    timeout_seconds: float = 30.0
    retries: int = 2

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        if not self.urls:
            _fail(f"{key}.urls", list(self.urls), "allowed: a non-empty list of URLs")
        _check_positive(f"{key}.timeout_seconds", self.timeout_seconds)
        if math.isinf(self.timeout_seconds):
            _fail(f"{key}.timeout_seconds", self.timeout_seconds, "allowed: a finite value > 0")
        if self.retries < 0:
            _fail(f"{key}.retries", self.retries, "allowed: an integer >= 0")


@dataclass(frozen=True)
class CVConfig:
    """Stratified k-fold protocol shared by every variant (splits made once)."""

    folds: int = 10
    repeats: int = 3
    seed: int = 7
    engine: Engine = "fused"

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        if self.folds < 2:
            _fail(f"{key}.folds", self.folds, "allowed: an integer >= 2")
        if self.repeats < 1:
            _fail(f"{key}.repeats", self.repeats, "allowed: an integer >= 1")
        if self.seed < 0:
            _fail(f"{key}.seed", self.seed, "allowed: an integer >= 0")


@dataclass(frozen=True)
class MlflowConfig:
    experiment: str = "sonar-dropout"

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        if not self.experiment.strip():
            _fail(f"{key}.experiment", self.experiment, "allowed: a non-empty name")


@dataclass(frozen=True)
class ReportConfig:
    """What the ``report`` stage compares every other variant with, split by split."""

    baseline: str = "baseline"

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        if not self.baseline.strip():
            _fail(f"{key}.baseline", self.baseline, "allowed: the name of a variant")


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
                _fail(f"{key}.{name}", given[name], f"not used by kind {self.kind!r}; remove it")
        if self.kind == "mlp":
            if not self.hidden or any(u < 1 for u in self.hidden):
                _fail(
                    f"{key}.hidden", list(self.hidden), "allowed: a non-empty list of widths >= 1"
                )
            _check_range(f"{key}.input_dropout", self.input_dropout, 0.0, 1.0, hi_open=True)
            _check_range(f"{key}.hidden_dropout", self.hidden_dropout, 0.0, 1.0, hi_open=True)
            if self.max_norm is not None:
                _check_positive(f"{key}.max_norm", self.max_norm)
        else:
            if self.units < 1:
                _fail(f"{key}.units", self.units, "allowed: an integer >= 1")
            if self.timesteps < 1 or self.features < 1 or self.timesteps * self.features != N_BANDS:
                _fail(
                    f"{key}.timesteps",
                    f"{self.timesteps}x{self.features}",
                    f"allowed: timesteps x features == {N_BANDS} (e.g. 60x1, 10x6)",
                )
            _check_range(f"{key}.dropout", self.dropout, 0.0, 1.0, hi_open=True)
            _check_range(f"{key}.recurrent_dropout", self.recurrent_dropout, 0.0, 1.0, hi_open=True)


@dataclass(frozen=True)
class OptimizerConfig:
    """SGD with momentum (the tutorial's optimizer)."""

    learning_rate: float
    momentum: float = 0.0

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        _check_range(f"{key}.learning_rate", self.learning_rate, 0.0, 10.0)
        _check_positive(f"{key}.learning_rate", self.learning_rate)
        _check_range(f"{key}.momentum", self.momentum, 0.0, 1.0, hi_open=True)


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
                _fail(f"{key}.{name}", given[name], f"not used by kind {self.kind!r}; remove it")
        if self.decay is not None and (not self.decay >= 0 or math.isinf(self.decay)):
            _fail(f"{key}.decay", self.decay, "allowed: a finite value >= 0, or null")
        _check_range(f"{key}.drop", self.drop, 0.0, 1.0)
        _check_positive(f"{key}.drop", self.drop)
        if self.every < 1:
            _fail(f"{key}.every", self.every, "allowed: an integer >= 1")


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
            _fail(f"{key}.epochs", self.epochs, "allowed: an integer >= 1")
        if self.batch_size < 1:
            _fail(f"{key}.batch_size", self.batch_size, "allowed: an integer >= 1")


# --- generic strict loading -------------------------------------------------------------


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists to tuples."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            _fail(key, value, f"allowed: one of {', '.join(map(repr, typing.get_args(tp)))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner)
    if origin is tuple:
        (inner, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            _fail(key, value, "allowed: a list")
        return tuple(_coerce(f"{key}[{i}]", v, inner) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            _fail(key, value, "allowed: true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, value, "allowed: an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(key, value, "allowed: a number")
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float
            _fail(key, value, "allowed: a number that fits a float")
    if tp is str:
        if not isinstance(value, str):
            _fail(key, value, "allowed: a string")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # a bug here, not in params


def _build(cls: type, data: Any, key: str) -> Any:
    if not isinstance(data, Mapping):
        _fail(key, data, f"allowed: a mapping with keys {', '.join(_field_names(cls))}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=repr)  # YAML keys may be of any type
    if unknown:
        _fail(f"{key}.{unknown[0]}", data[unknown[0]], f"unknown key; allowed: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _coerce(f"{key}.{name}", data[name], hints[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            _fail(f"{key}.{name}", "<missing>", "this key is required")
    obj = cls(**kwargs)
    obj.validate(key, data)  # nested sections were validated when they were built
    return obj


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


SECTIONS: dict[str, type] = {
    "fetch": FetchConfig,
    "cv": CVConfig,
    "mlflow": MlflowConfig,
    "report": ReportConfig,
}


# params.yaml is a few KB; 1 MiB is far more than any grid needs, and a file that never
# ends (or a FIFO that never closes) stops at it, or at the time limit, with memory flat.
PARAMS_MAX_BYTES = 2**20
PARAMS_READ_SECONDS = 10.0
PARAMS_LIMITS = files.InputLimits(
    PARAMS_MAX_BYTES,
    PARAMS_READ_SECONDS,
    "the limit for a params file",
    "the limit for a params file",
)


def read_params(path: Path) -> dict[str, Any]:
    """Read ``params.yaml`` as a plain mapping (no validation), within ``PARAMS_LIMITS``."""
    try:
        data = yaml.safe_load(files.read_file_within(path, PARAMS_LIMITS).decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except files.InputLimitError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def load_section(params: Mapping[str, Any], name: str) -> Any:
    """Validate one top-level section (``fetch``, ``cv``, ``mlflow`` or ``report``)."""
    if name not in params:
        _fail(name, "<missing>", "this section is required in params.yaml")
    return _build(SECTIONS[name], params[name] if params[name] is not None else {}, name)


def load_variant(params: Mapping[str, Any], name: str) -> VariantConfig:
    """Validate ``variants.<name>``."""
    variants = {n: params["variants"][n] for n in variant_names(params)}
    if name not in variants:
        _fail(f"variants.{name}", "<missing>", f"defined variants: {', '.join(variants)}")
    return _build(VariantConfig, variants[name], f"variants.{name}")


def variant_names(params: Mapping[str, Any]) -> list[str]:
    """The variants' names. Each becomes a folder (``results/<name>``), a word of a
    stage's command and an alias of the registered model, so each must be a plain
    identifier; ``grid`` is the grids' folder; ``RESERVED_ALIAS`` are MLflow's and ours."""
    variants = params.get("variants")
    if not isinstance(variants, Mapping) or not variants:
        _fail("variants", variants, "allowed: a non-empty mapping of variant name to settings")
    for name in variants:
        if (not isinstance(name, str) or not IDENTIFIER.match(name) or name == "grid"
                or RESERVED_ALIAS.match(name)):  # fmt: skip
            _fail(f"variants.{name}", name,
                  "allowed: a plain identifier (letters, digits, _), not 'grid', "
                  "'champion', 'latest' or v<digits>")  # fmt: skip
    return list(variants)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted ``key -> value`` pairs of a config object, for logging as MLflow params.

    Fields that the object's kind does not read are left out."""
    out: dict[str, Any] = {}
    unused = obj.unused() if hasattr(obj, "unused") else ()
    for f in dataclasses.fields(obj):
        if f.name in unused:
            continue
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{key}."))
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = value
    return out


def apply_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``params`` with ``dotted.key=yaml_value`` overrides applied."""
    import copy

    out = copy.deepcopy(params)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. cv.folds=5")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {key}: {part!r} is not a section in params.yaml")
            node = node[part]
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ConfigError(f"override {key}: {raw!r} is not a YAML value ({problem})") from None
    return out


# --- grids -----------------------------------------------------------------------------

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
CHAMPION = "champion"  # the registered model's alias for the report's pick
# A variant's name is also an alias of the registered model: MLflow reserves ``latest``
# (any case) and ``v<digits>`` (version references); ``champion`` is the report's.
RESERVED_ALIAS = re.compile(rf"(?i:latest|v\d+|{CHAMPION})\Z")
REPLICATE_AXIS = "seed"  # an axis of training seeds (0: the pipeline's own), not a field


@dataclass(frozen=True)
class Trial:
    """One configuration of a grid: its axis values and the variant they make."""

    index: int
    values: dict[str, Any]  # axis -> value, in the grid's axis order
    variant: VariantConfig
    replicate: int  # the training seed (seeds.fold_seed's ``replicate``)


@dataclass(frozen=True)
class GridConfig:
    """``grids.<name>``: a base variant and its axes; the trials are their product."""

    name: str
    variant: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]  # (dotted key or "seed", values)
    trials: tuple[Trial, ...]

    @property
    def axis_names(self) -> list[str]:
        return [key for key, _ in self.axes]


def grid_names(params: Mapping[str, Any]) -> list[str]:
    grids = params.get("grids", {})
    if not isinstance(grids, Mapping):
        _fail("grids", grids, "allowed: a mapping of grid name to {variant, axes}")
    for name in grids:
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            _fail(f"grids.{name}", name, "allowed: a plain identifier (letters, digits, _)")
    return list(grids)


def _field_type(key: str) -> Any:
    """The annotation of a dotted field of ``VariantConfig`` (None if there is none)."""
    cls: Any = VariantConfig
    for part in key.split("."):
        if not dataclasses.is_dataclass(cls):
            return None
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return None
        cls = hints[part]
    return cls


def _numeric(tp: Any) -> bool:
    args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_args(tp) else []
    return tp in (int, float) or (len(args) == 1 and args[0] in (int, float))


def load_grid(params: Mapping[str, Any], name: str) -> GridConfig:
    """Validate ``grids.<name>`` and build every trial's variant: an unknown or
    non-numeric axis, an axis the variant's kind does not read, an empty or duplicated
    value list, or a value the variant does not allow is a ``ConfigError`` naming it."""
    import copy
    import itertools

    names = grid_names(params)
    key = f"grids.{name}"
    if name not in names:
        _fail(key, "<missing>", f"defined grids: {', '.join(names) or 'none'}")
    spec = params["grids"][name]
    if not isinstance(spec, Mapping):
        _fail(key, spec, "allowed: a mapping with keys variant, axes")
    for unknown in sorted(set(spec) - {"variant", "axes"}, key=repr):
        _fail(f"{key}.{unknown}", spec[unknown], "unknown key; allowed: variant, axes")
    base_name = spec.get("variant")
    if base_name not in variant_names(params):
        _fail(f"{key}.variant", base_name, f"defined variants: {', '.join(variant_names(params))}")
    base = load_variant(params, base_name)
    axes = spec.get("axes")
    if not isinstance(axes, Mapping) or not axes:
        _fail(f"{key}.axes", axes, "allowed: a non-empty mapping of a variant's key to values")
    readable = flatten(base)
    checked: list[tuple[str, tuple[Any, ...]]] = []
    for axis, values in axes.items():
        where = f"{key}.axes.{axis}"
        if not isinstance(values, list) or not values:
            _fail(where, values, "allowed: a non-empty list of values")
        if any(v == w for i, v in enumerate(values) for w in values[:i]):
            _fail(where, values, "duplicate values")
        if axis == REPLICATE_AXIS:
            for i, v in enumerate(values):
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    _fail(f"{where}[{i}]", v, "allowed: an integer >= 0 (a training seed)")
        elif axis not in readable:
            unread = (
                f"not read by variants.{base_name} (model kind {base.model.kind!r}, "
                f"schedule kind {base.schedule.kind!r})"
            )
            known = _field_type(axis) is not None
            allowed = f"unknown key; allowed: {', '.join(_axes_of(base))}"
            _fail(where, values, unread if known else allowed)
        elif not _numeric(_field_type(axis)):
            _fail(where, values, f"not a numeric field; allowed: {', '.join(_axes_of(base))}")
        checked.append((axis, tuple(values)))
    raw = params["variants"][base_name]
    trials = []
    for index, combination in enumerate(itertools.product(*(v for _, v in checked))):
        values = dict(zip([a for a, _ in checked], combination, strict=True))
        data = copy.deepcopy(raw)
        for axis, value in values.items():
            if axis == REPLICATE_AXIS:
                continue
            node = data
            *parents, last = axis.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        try:
            variant = _build(VariantConfig, data, f"variants.{base_name}")
        except ConfigError as exc:
            prefix = f"variants.{base_name}."
            bad = next((a for a in values if str(exc).startswith(f"{prefix}{a}:")), None)
            if bad is None:  # a combination of values, not one value, is out of range
                raise ConfigError(f"{key}.axes {values}: {exc}") from None
            position = dict(checked)[bad].index(values[bad])
            detail = str(exc).split(": ", 1)[1]
            raise ConfigError(f"{key}.axes.{bad}[{position}]: {detail}") from None
        trials.append(Trial(index, values, variant, values.get(REPLICATE_AXIS, 0)))
    return GridConfig(name, base_name, tuple(checked), tuple(trials))


def _axes_of(variant: VariantConfig) -> list[str]:
    """The keys a grid of ``variant`` may vary: its numeric fields, and ``seed``."""
    keys = [k for k in flatten(variant) if _numeric(_field_type(k))]
    return [*keys, REPLICATE_AXIS]
