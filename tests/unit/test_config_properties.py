"""Property-based: whatever a user writes into a variant, the outcome is a valid config or
a ConfigError naming a key, never another exception from deep inside."""

from __future__ import annotations

import copy
import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from sonarlab.config import ConfigError, ModelConfig, VariantConfig, load_variant, read_params
from tests.conftest import ROOT

PARAMS = read_params(ROOT / "params.yaml")
VARIANTS = list(PARAMS["variants"])

values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


def paths(node, prefix=()):
    """Every key path in a nested mapping."""
    for key, value in node.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from paths(value, (*prefix, key))


@st.composite
def edited_variant(draw):
    name = draw(st.sampled_from(VARIANTS))
    variant = copy.deepcopy(PARAMS["variants"][name])
    path = draw(st.sampled_from(list(paths(variant))))
    node = variant
    for key in path[:-1]:
        node = node[key]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        node[path[-1]] = draw(values)
    elif action == "delete":
        del node[path[-1]]
    else:
        node[draw(st.text(min_size=1, max_size=8))] = draw(values)
    return name, variant, ".".join(path)


@settings(max_examples=400, deadline=None)
@given(edited_variant())
def test_any_edit_gives_a_config_or_a_config_error_naming_a_key(case):
    name, variant, _ = case
    params = {"variants": {name: variant}}
    try:
        cfg = load_variant(params, name)
    except ConfigError as exc:
        assert str(exc).startswith(f"variants.{name}"), str(exc)
        assert "; " in str(exc)  # "<key>: got <value>; <what is allowed>"
    else:
        assert isinstance(cfg, VariantConfig)
        assert 0 <= cfg.model.input_dropout < 1 and cfg.epochs >= 1 and cfg.batch_size >= 1


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(VARIANTS), st.text(min_size=1, max_size=10), values)
def test_an_unknown_key_is_always_named(name, key, value):
    if key in {f.name for f in dataclasses.fields(ModelConfig)}:
        return  # a real field (perhaps of the other kind): not what this property is about
    variant = copy.deepcopy(PARAMS["variants"][name])
    variant["model"][key] = value
    try:
        load_variant({"variants": {name: variant}}, name)
    except ConfigError as exc:
        assert f"variants.{name}.model.{key}: got" in str(exc) and "unknown key" in str(exc)
    else:
        raise AssertionError(f"unknown key {key!r} was accepted")
