"""Searches: ``searches.<name>`` of ``params.yaml``, a base variant, a space over its
fields, a sampler, a budget and an optional successive halving.

A grid names every trial; a search names the space and lets a sampler (Optuna's)
choose ``trials`` of them, a block at a time (``sonarlab.search``). Everything here is
checked from params alone, before any training and before Optuna loads: each
dimension's key is a numeric field the base variant reads, its distribution fits the
field (log-uniform bounds > 0, integer bounds on integer fields, a non-empty list of
choices), and the variant is valid at both of its bounds and at every choice.
"""

from __future__ import annotations

import itertools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sonarlab.core.params import IDENTIFIER, ConfigError, CVConfig, reject
from sonarlab.design import sizes
from sonarlab.design.grids import (
    check_field,
    failed_field,
    field_type,
    variant_with,
)
from sonarlab.design.variants import VariantConfig, load_variant, variant_names

SAMPLERS = ("random", "qmc", "tpe")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "categorical")
KEYS = ("variant", "space", "sampler", "trials", "seed", "halving")
MAX_TRIALS = 10_000  # a budget beyond this is a typo; the work limit refuses big ones anyway


@dataclass(frozen=True)
class Dimension:
    """One key of a search's space: a dotted field of the base variant and where its
    values come from: ``uniform``, ``log_uniform`` or ``int`` in ``[low, high]``
    (bounds included), or one of ``choices`` (``null`` allowed where the field is)."""

    key: str
    distribution: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()

    def optuna(self) -> Any:
        """This dimension as an Optuna distribution (Optuna loads here)."""
        from optuna import distributions as d

        if self.distribution == "categorical":
            return d.CategoricalDistribution(self.choices)
        if self.distribution == "int":
            return d.IntDistribution(int(self.low), int(self.high))
        log = self.distribution == "log_uniform"
        return d.FloatDistribution(float(self.low), float(self.high), log=log)

    def bounds(self) -> list[Any]:
        """The values that bound what this dimension can give."""
        return list(self.choices) if self.distribution == "categorical" else [self.low, self.high]


@dataclass(frozen=True)
class Halving:
    """Successive halving in a block: every trial trains ``rungs[0]`` epochs, the best
    ``1 / reduction`` in the selection rule's order go on to the next rung, and so on."""

    rungs: tuple[int, ...]
    reduction: int

    def kept(self, n: int) -> int:
        """How many of ``n`` trials at a rung go on to the next."""
        return max(1, math.ceil(n / self.reduction))


@dataclass(frozen=True)
class SearchConfig:
    name: str
    variant: str
    base: VariantConfig
    space: tuple[Dimension, ...]
    sampler: str
    trials: int
    seed: int
    halving: Halving | None

    @property
    def axis_names(self) -> list[str]:
        return [d.key for d in self.space]

    @property
    def rungs(self) -> tuple[int, ...]:
        """The epochs a trial trains at each rung: the base variant's alone, unhalved."""
        return self.halving.rungs if self.halving else (self.base.epochs,)


def search_names(params: Mapping[str, Any]) -> list[str]:
    searches = params.get("searches", {})
    if not isinstance(searches, Mapping):
        reject("searches", searches, "allowed: a mapping of search name to its settings")
    for name in searches:
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            reject(f"searches.{name}", name, "allowed: a plain identifier (letters, digits, _)")
    return list(searches)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dimension(where: str, key: str, spec: Any, base_name: str, base: VariantConfig) -> Dimension:
    check_field(where, key, spec, base_name, base, seeds=False)
    allowed = (
        "allowed: one of {uniform: [low, high]}, {log_uniform: [low, high]}, "
        "{int: [low, high]}, {categorical: [values...]}"
    )
    if not isinstance(spec, Mapping) or len(spec) != 1:
        reject(where, spec, allowed)
    ((kind, arg),) = spec.items()
    if kind not in DISTRIBUTIONS:
        reject(f"{where}.{kind}", arg, f"unknown distribution; {allowed}")
    at = f"{where}.{kind}"
    integer_field = int in (field_type(key), *typing.get_args(field_type(key)))
    if kind == "categorical":
        if not isinstance(arg, list) or not arg:
            reject(at, arg, "allowed: a non-empty list of values")
        if any(v == w for i, v in enumerate(arg) for w in arg[:i]):  # 2 == 2.0, as a grid's
            reject(at, arg, "duplicate values")
        for i, v in enumerate(arg):
            if not (v is None or _number(v)):
                reject(f"{at}[{i}]", v, "allowed: a number, or null where the field allows it")
        return Dimension(key, kind, choices=tuple(arg))
    if not isinstance(arg, list) or len(arg) != 2 or not all(_number(v) for v in arg):
        reject(at, arg, "allowed: [low, high], two finite numbers")
    low, high = arg
    if not low < high:
        reject(at, arg, "allowed: low < high")
    if kind == "int":
        if not integer_field:
            reject(at, arg, "integer bounds on a float field; use uniform or log_uniform")
        if not (_integer(low) and _integer(high)):
            reject(at, arg, "allowed: two integers")
    elif integer_field:
        reject(at, arg, f"{kind} on an integer field; use int")
    if kind == "log_uniform" and low <= 0:
        reject(at, arg, "allowed: 0 < low < high (a log scale)")
    return Dimension(key, kind, low, high)


def _halving(key: str, spec: Any, base_name: str) -> Halving | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        reject(key, spec, "allowed: a mapping with keys rungs, reduction (or null)")
    for unknown in sorted(set(spec) - {"rungs", "reduction"}, key=repr):
        reject(f"{key}.{unknown}", spec[unknown], "unknown key; allowed: rungs, reduction")
    rungs = spec.get("rungs")
    if not isinstance(rungs, list) or len(rungs) < 2:
        reject(f"{key}.rungs", rungs, "allowed: a list of two or more epoch counts")
    for i, r in enumerate(rungs):
        if not _integer(r) or r < 1:
            reject(f"{key}.rungs[{i}]", r, "allowed: an integer >= 1 (epochs)")
    if any(b <= a for a, b in itertools.pairwise(rungs)):
        reject(f"{key}.rungs", rungs, "allowed: strictly increasing epochs")
    reduction = spec.get("reduction", 3)
    if not _integer(reduction) or reduction < 2:
        reject(f"{key}.reduction", reduction, "allowed: an integer >= 2")
    return Halving(tuple(rungs), reduction)


def load_search(
    params: Mapping[str, Any], name: str, protocol: CVConfig | None = None
) -> SearchConfig:
    """Validate ``searches.<name>``: every error is a ``ConfigError`` naming its key.
    With the splits' ``protocol`` (the search stage's), a search whose work or memory
    is over ``design.sizes``' limits is refused too."""
    names = search_names(params)
    key = f"searches.{name}"
    if name not in names:
        reject(key, "<missing>", f"defined searches: {', '.join(names) or 'none'}")
    spec = params["searches"][name]
    if not isinstance(spec, Mapping):
        reject(key, spec, f"allowed: a mapping with keys {', '.join(KEYS)}")
    for unknown in sorted(set(spec) - set(KEYS), key=repr):
        reject(f"{key}.{unknown}", spec[unknown], f"unknown key; allowed: {', '.join(KEYS)}")
    base_name = spec.get("variant")
    if base_name not in variant_names(params):
        reject(f"{key}.variant", base_name, f"defined variants: {', '.join(variant_names(params))}")
    base = load_variant(params, base_name)
    sampler = spec.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        reject(f"{key}.sampler", sampler, f"allowed: one of {', '.join(SAMPLERS)}")
    trials = spec.get("trials")
    if not _integer(trials) or not 1 <= trials <= MAX_TRIALS:
        reject(f"{key}.trials", trials, f"allowed: an integer from 1 to {MAX_TRIALS:,}")
    seed = spec.get("seed", 0)
    if not _integer(seed) or seed < 0:
        reject(f"{key}.seed", seed, "allowed: an integer >= 0")
    space = spec.get("space")
    if not isinstance(space, Mapping) or not space:
        reject(f"{key}.space", space, "allowed: a non-empty mapping of a variant's key to a "
               "distribution")  # fmt: skip
    dims = tuple(_dimension(f"{key}.space.{k}", k, v, base_name, base) for k, v in space.items())
    halving = _halving(f"{key}.halving", spec.get("halving"), base_name)
    if halving and "epochs" in space:
        reject(f"{key}.space.epochs", space["epochs"], "the halving's rungs set the epochs")
    config = SearchConfig(name, base_name, base, dims, sampler, trials, seed, halving)
    for dim in dims:  # the variant is valid wherever the space can go
        for i, value in enumerate(dim.bounds()):
            try:
                trial_variant(params, config, {dim.key: value}, config.rungs[-1])
            except ConfigError as exc:
                text, combined = str(exc), f"{key}.space {dict({dim.key: value})}: "
                # a combination error's prefix holds a dict, whose repr has ": " in it
                detail = text.removeprefix(combined) if text.startswith(combined) else (
                    text.split(": ", 1)[1])  # fmt: skip
                where = f"{key}.space.{dim.key}.{dim.distribution}[{i}]"
                raise ConfigError(f"{where}: {detail}") from None
    if protocol is not None:
        sizes.check_search(key, base_name, base, config.rungs, dims, trials,
                           protocol.folds, protocol.repeats)  # fmt: skip
    return config


def trial_variant(
    params: Mapping[str, Any], search: SearchConfig, values: Mapping[str, Any], epochs: int
) -> VariantConfig:
    """The base variant with a trial's ``values`` set, trained ``epochs`` epochs."""
    fields = {**values, "epochs": epochs} if search.halving else dict(values)
    try:
        return variant_with(params, search.variant, fields)
    except ConfigError as exc:
        if failed_field(exc, search.variant, fields) is None:
            raise ConfigError(f"searches.{search.name}.space {dict(values)}: {exc}") from None
        raise
