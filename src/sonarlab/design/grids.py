"""Grid studies: ``grids.<name>`` of ``params.yaml``, a base variant and its axes.

The trials are the product of the axes; each trial's variant is built and validated
like any variant, so a value out of range names the axis and its position.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sonarlab.core.params import (
    IDENTIFIER,
    ConfigError,
    CVConfig,
    build_config,
    flatten,
    plain,
    reject,
)
from sonarlab.design import sizes
from sonarlab.design.variants import VariantConfig, load_variant, variant_names

REPLICATE_AXIS = "seed"  # an axis of training seeds (0: the pipeline's own), not a field


@dataclass(frozen=True)
class Trial:
    """One configuration of a grid: its axis values and the variant they make."""

    index: int
    values: dict[str, Any]  # axis -> value, in the grid's axis order
    variant: VariantConfig
    replicate: int  # the training seed (seeds.fold_seed's ``replicate``)


class TrialSet(Protocol):
    """What ``grid.shards`` plans, trains and judges together: a grid's trials, or one
    rung of a search's block (``search.driver``)."""

    @property
    def trials(self) -> tuple[Trial, ...]: ...


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
        reject("grids", grids, "allowed: a mapping of grid name to {variant, axes}")
    for name in grids:
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            reject(f"grids.{name}", name, "allowed: a plain identifier (letters, digits, _)")
    return list(grids)


def field_type(key: str) -> Any:
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


def load_grid(params: Mapping[str, Any], name: str, protocol: CVConfig | None = None) -> GridConfig:
    """Validate ``grids.<name>`` and build every trial's variant: an unknown or
    non-numeric axis, an axis the variant's kind does not read, an empty or duplicated
    value list, or a value the variant does not allow is a ``ConfigError`` naming it.
    With the splits' ``protocol`` (the grid stage's), a grid whose work or memory is over
    ``design.sizes``' limits is one too, before any trial is built."""
    import itertools

    names = grid_names(params)
    key = f"grids.{name}"
    if name not in names:
        reject(key, "<missing>", f"defined grids: {', '.join(names) or 'none'}")
    spec = params["grids"][name]
    if not isinstance(spec, Mapping):
        reject(key, spec, "allowed: a mapping with keys variant, axes")
    for unknown in sorted(set(spec) - {"variant", "axes"}, key=repr):
        reject(f"{key}.{unknown}", spec[unknown], "unknown key; allowed: variant, axes")
    base_name = spec.get("variant")
    if base_name not in variant_names(params):
        reject(f"{key}.variant", base_name, f"defined variants: {', '.join(variant_names(params))}")
    base = load_variant(params, base_name)
    axes = spec.get("axes")
    if not isinstance(axes, Mapping) or not axes:
        reject(f"{key}.axes", axes, "allowed: a non-empty mapping of a variant's key to values")
    checked: list[tuple[str, tuple[Any, ...]]] = []
    for axis, values in axes.items():
        where = f"{key}.axes.{axis}"
        if not isinstance(values, list) or not values:
            reject(where, values, "allowed: a non-empty list of values")
        if any(v == w for i, v in enumerate(values) for w in values[:i]):
            reject(where, values, "duplicate values")
        if axis == REPLICATE_AXIS:
            for i, v in enumerate(values):
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    reject(f"{where}[{i}]", v, "allowed: an integer >= 0 (a training seed)")
        else:
            check_field(where, axis, values, base_name, base)
        checked.append((axis, tuple(values)))
    if protocol is not None:
        sizes.check_grid(key, base_name, base, checked, protocol.folds, protocol.repeats)
    trials = []
    for index, combination in enumerate(itertools.product(*(v for _, v in checked))):
        values = dict(zip([a for a, _ in checked], combination, strict=True))
        fields = {a: v for a, v in values.items() if a != REPLICATE_AXIS}
        try:
            variant = variant_with(params, base_name, fields)
        except ConfigError as exc:
            bad = failed_field(exc, base_name, fields)
            if bad is None:  # a combination of values, not one value, is out of range
                raise ConfigError(f"{key}.axes {values}: {exc}") from None
            position = dict(checked)[bad].index(values[bad])
            detail = str(exc).split(": ", 1)[1]
            raise ConfigError(f"{key}.axes.{bad}[{position}]: {detail}") from None
        trials.append(Trial(index, values, variant, values.get(REPLICATE_AXIS, 0)))
    return GridConfig(name, base_name, tuple(checked), tuple(trials))


def check_field(
    where: str, field: str, value: Any, base_name: str, base: VariantConfig, seeds: bool = True
) -> None:
    """Refuse ``where`` (an axis or a search dimension of ``field``, given ``value``)
    unless ``field`` is a numeric field of ``variants.<base_name>`` its kind reads."""
    if field not in flatten(base):
        unread = (
            f"not read by variants.{base_name} (model kind {base.model.kind!r}, "
            f"schedule kind {base.schedule.kind!r})"
        )
        known = field_type(field) is not None
        reject(
            where,
            value,
            unread if known else f"unknown key; allowed: {', '.join(_axes_of(base, seeds))}",
        )
    if not _numeric(field_type(field)):
        reject(where, value, f"not a numeric field; allowed: {', '.join(_axes_of(base, seeds))}")


def variant_with(
    params: Mapping[str, Any], base_name: str, fields: Mapping[str, Any]
) -> VariantConfig:
    """``variants.<base_name>`` with its dotted ``fields`` set to these values, built and
    validated as any variant (a ``ConfigError`` names the variant's key)."""
    data = plain(params["variants"][base_name])
    for dotted, value in fields.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return build_config(VariantConfig, data, f"variants.{base_name}")


def failed_field(exc: ConfigError, base_name: str, fields: Mapping[str, Any]) -> str | None:
    """Which of ``fields`` a ``variant_with`` error is about (None: their combination)."""
    prefix = f"variants.{base_name}."
    return next((f for f in fields if str(exc).startswith(f"{prefix}{f}:")), None)


def _axes_of(variant: VariantConfig, seeds: bool = True) -> list[str]:
    """The keys a grid of ``variant`` may vary: its numeric fields, and ``seed`` (not a
    search's: ``seeds=False``)."""
    keys = [k for k in flatten(variant) if _numeric(field_type(k))]
    return [*keys, REPLICATE_AXIS] if seeds else keys
