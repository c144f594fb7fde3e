"""Typed, frozen configuration loaded from ``params.yaml`` and validated once.

This module reads the file and holds the strict loader every section goes through,
and the sections that are not the study's design (``fetch``, ``cv``, ``mlflow``,
``report``); the variants and grids are ``sonarlab.design``. Each stage loads only the
sections it declares in ``dvc.yaml`` (``load_section``), so a stage never reads a
parameter DVC does not track for it. Unknown keys, missing required keys, wrong types
and out-of-range values raise ``ConfigError`` with the dotted key, the value and what
is allowed, before any training starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from sonarlab.core import files

N_BANDS = 60  # the Sonar data's 60 frequency bands
# fused: all folds and the final model in one compiled program (fast);
# keras: one Keras `fit` per fold (the reference path). See ``sonarlab.training.engines``.
Engine = Literal["fused", "keras"]
# MC-dropout passes (``cv.mc_samples``, ``predict --samples``): at 10,000 the mean's
# standard error is 1% of the passes' spread
MAX_MC_SAMPLES = 10_000


class ConfigError(ValueError):
    """A parameter is unknown, missing, of the wrong type or out of range."""


# A value quoted in an error is cut short: YAML aliases let a 1 KB params file hold a
# list of 10^8 numbers, whose full repr would be a 500 MB error line.
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxtuple, _QUOTE.maxdict = 2, 12, 12, 12
_QUOTE.maxstring = _QUOTE.maxother = _QUOTE.maxlong = 120


def reject(key: str, value: Any, allowed: str) -> typing.NoReturn:
    """Raise the ``ConfigError`` of one key: its value (cut short) and what is allowed."""
    raise ConfigError(f"{key}: got {_QUOTE.repr(value)}; {allowed}")


def check_range(key: str, value: float, lo: float, hi: float, *, hi_open: bool = False) -> None:
    ok = lo <= value < hi if hi_open else lo <= value <= hi
    if not ok or (isinstance(value, float) and math.isnan(value)):
        reject(key, value, f"allowed: {lo} <= value {'<' if hi_open else '<='} {hi}")


def check_positive(key: str, value: float) -> None:
    if not value > 0:
        reject(key, value, "allowed: a value > 0")


# --- sections -------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchConfig:
    """Where the ``fetch`` stage looks for the data (``SONAR_SOURCE`` is tried first)."""

    urls: tuple[str, ...]
    timeout_seconds: float = 30.0
    retries: int = 2

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        if not self.urls:
            reject(f"{key}.urls", list(self.urls), "allowed: a non-empty list of URLs")
        check_positive(f"{key}.timeout_seconds", self.timeout_seconds)
        if math.isinf(self.timeout_seconds):
            reject(f"{key}.timeout_seconds", self.timeout_seconds, "allowed: a finite value > 0")
        if self.retries < 0:
            reject(f"{key}.retries", self.retries, "allowed: an integer >= 0")


@dataclass(frozen=True)
class CVConfig:
    """Stratified k-fold protocol shared by every variant (splits made once)."""

    folds: int = 10
    repeats: int = 3
    seed: int = 7
    engine: Engine = "fused"
    # MC-dropout passes per held-out row of a variant with dropout: at 50 the mean's
    # standard error is 14% of the passes' spread, and the work is inference only
    mc_samples: int = 50

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        if self.folds < 2:
            reject(f"{key}.folds", self.folds, "allowed: an integer >= 2")
        if self.repeats < 1:
            reject(f"{key}.repeats", self.repeats, "allowed: an integer >= 1")
        if self.seed < 0:
            reject(f"{key}.seed", self.seed, "allowed: an integer >= 0")
        if not 1 <= self.mc_samples <= MAX_MC_SAMPLES:
            reject(f"{key}.mc_samples", self.mc_samples,
                   f"allowed: an integer from 1 to {MAX_MC_SAMPLES}")  # fmt: skip


@dataclass(frozen=True)
class MlflowConfig:
    experiment: str = "sonar-dropout"

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        if not self.experiment.strip():
            reject(f"{key}.experiment", self.experiment, "allowed: a non-empty name")


@dataclass(frozen=True)
class ReportConfig:
    """What the ``report`` stage compares every other variant with, split by split."""

    baseline: str = "baseline"

    def validate(self, key: str, given: Mapping[str, Any]) -> None:
        if not self.baseline.strip():
            reject(f"{key}.baseline", self.baseline, "allowed: the name of a variant")


# --- generic strict loading -------------------------------------------------------------


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists to tuples."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            reject(key, value, f"allowed: one of {', '.join(map(repr, typing.get_args(tp)))}")
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
            reject(key, value, "allowed: a list")
        return tuple(_coerce(f"{key}[{i}]", v, inner) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build_config(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            reject(key, value, "allowed: true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            reject(key, value, "allowed: an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            reject(key, value, "allowed: a number")
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float
            reject(key, value, "allowed: a number that fits a float")
    if tp is str:
        if not isinstance(value, str):
            reject(key, value, "allowed: a string")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # a bug here, not in params


def build_config(cls: type, data: Any, key: str) -> Any:
    if not isinstance(data, Mapping):
        reject(key, data, f"allowed: a mapping with keys {', '.join(_field_names(cls))}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=repr)  # YAML keys may be of any type
    if unknown:
        reject(
            f"{key}.{unknown[0]}", data[unknown[0]], f"unknown key; allowed: {', '.join(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _coerce(f"{key}.{name}", data[name], hints[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            reject(f"{key}.{name}", "<missing>", "this key is required")
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
        reject(name, "<missing>", "this section is required in params.yaml")
    return build_config(SECTIONS[name], params[name] if params[name] is not None else {}, name)


PROTOCOL_KEYS = ("folds", "repeats", "seed")


def load_protocol(params: Mapping[str, Any]) -> CVConfig:
    """``cv.folds``, ``cv.repeats`` and ``cv.seed`` alone: the splits, for the stages that
    make or read them but never train with ``cv.engine`` (so they neither read nor
    declare it). The other keys keep their defaults."""
    return load_cv_keys(params, PROTOCOL_KEYS)


def load_cv_keys(params: Mapping[str, Any], keys: Sequence[str]) -> CVConfig:
    """The ``cv`` section with only ``keys`` read (and validated): the others keep their
    defaults, so a stage reads, and declares, just what it uses."""
    if "cv" not in params:
        reject("cv", "<missing>", "this section is required in params.yaml")
    section = params["cv"] if params["cv"] is not None else {}
    if not isinstance(section, Mapping):
        reject("cv", section, f"allowed: a mapping with keys {', '.join(_field_names(CVConfig))}")
    return build_config(CVConfig, {k: section[k] for k in keys if k in section}, "cv")


def plain(value: Any) -> Any:
    """A copy of a value read from params: mappings as new dicts and lists as new
    lists, all the way down (so that it can be edited without touching params)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


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
    """Return ``params`` with ``dotted.key=yaml_value`` overrides applied (a copy, if
    there are any)."""
    import copy

    if not overrides:
        return params
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


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
