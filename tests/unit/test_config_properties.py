"""Property-based: whatever a user writes into a variant or the ``cv`` and ``fetch`` sections,
the outcome is a valid config or a ConfigError naming a key, never another exception from
deep inside."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sonarlab.core.params import ConfigError, load_section, read_params
from sonarlab.design.variants import ModelConfig, VariantConfig, load_variant
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
# Numbers at and around the documented bounds (0, 1, 2): where a check is most likely off
# by one, and too rare among `values` to be drawn for a given key.
near_bounds = st.integers(-2, 3) | st.floats(-2, 3)


def paths(node, prefix=()):
    """Every key path in a nested mapping."""
    for key, value in node.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from paths(value, (*prefix, key))


@st.composite
def edited(draw, tree):
    """A copy of ``tree`` with one edit at a random key path: its value replaced by an
    arbitrary one, the key deleted, or an unknown key added beside it. Returns the copy and
    the dotted path of the key replaced, deleted or added."""
    tree = copy.deepcopy(tree)
    path = draw(st.sampled_from(list(paths(tree))))
    node = tree
    for key in path[:-1]:
        node = node[key]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        node[path[-1]] = draw(values | near_bounds)
    elif action == "delete":
        del node[path[-1]]
    else:
        path = (*path[:-1], draw(st.text(min_size=1, max_size=8)))
        node[path[-1]] = draw(values)
    return tree, ".".join(path)


@st.composite
def edited_variant(draw):
    name = draw(st.sampled_from(VARIANTS))
    variant, key = draw(edited(PARAMS["variants"][name]))
    return name, variant, key


def assert_names(message: str, key: str) -> None:
    """``message`` has the shape "<key>: got <value>; <what is allowed>", its key being
    ``key`` or a key inside it."""
    assert message.startswith(key), message
    rest = message[len(key) :]
    assert rest.startswith((": got ", ".", "[")), message
    assert "; " in rest.partition(": got ")[2], message


@settings(max_examples=400, deadline=None)
@given(edited_variant())
def test_any_edit_gives_a_config_or_a_config_error_naming_a_key(case):
    name, variant, _ = case
    params = {"variants": {name: variant}}
    try:
        cfg = load_variant(params, name)
    except ConfigError as exc:
        # Not always the edited key: a new kind, say, makes other keys unused.
        assert_names(str(exc), f"variants.{name}")
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


def assert_is_the_input(cfg, section) -> None:
    """``cfg`` is frozen and holds what ``section`` says, defaults for what it leaves out."""
    section = section or {}
    assert set(section) <= {f.name for f in dataclasses.fields(cfg)}  # nothing ignored
    for f in dataclasses.fields(cfg):
        expected = section.get(f.name, f.default)
        assert getattr(cfg, f.name) == (tuple(expected) if isinstance(expected, list) else expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, dataclasses.fields(cfg)[0].name, None)


def at_bounds(section: str, bounds: dict[str, tuple]):
    """Explicit examples, besides the random ones: each key of ``section`` set to each of
    its ``bounds`` (just inside and just outside the documented range)."""

    def decorate(test):
        for key, vals in bounds.items():
            for value in vals:
                params = {section: copy.deepcopy(PARAMS[section])}
                params[section][key] = value
                test = example((params, f"{section}.{key}"))(test)
        return test

    return decorate


@at_bounds("cv", {"folds": (1, 2), "repeats": (0, 1), "seed": (-1, 0), "engine": ("keras", "")})
@settings(max_examples=300, deadline=None)
@given(edited({"cv": PARAMS["cv"]}))
def test_any_edit_of_cv_gives_a_valid_config_or_names_the_edited_key(case):
    params, key = case
    try:
        cfg = load_section(params, "cv")
    except ConfigError as exc:
        assert_names(str(exc), key)  # CV has no rule across keys: the error is the edit's
    else:
        assert_is_the_input(cfg, params["cv"])
        for n in (cfg.folds, cfg.repeats, cfg.seed):
            assert type(n) is int
        assert cfg.folds >= 2 and cfg.repeats >= 1 and cfg.seed >= 0
        assert cfg.engine in ("fused", "keras")


@at_bounds(
    "fetch",
    {"urls": ([], ["x"]), "timeout_seconds": (0, -0.0, 1e-300), "retries": (-1, 0)},
)
@settings(max_examples=300, deadline=None)
@given(edited({"fetch": PARAMS["fetch"]}))
def test_any_edit_of_fetch_gives_a_valid_config_or_names_the_edited_key(case):
    params, key = case
    try:
        cfg = load_section(params, "fetch")
    except ConfigError as exc:
        assert_names(str(exc), key)
    else:
        assert_is_the_input(cfg, params["fetch"])
        assert type(cfg.urls) is tuple and cfg.urls
        assert all(type(url) is str for url in cfg.urls)
        assert type(cfg.timeout_seconds) is float and cfg.timeout_seconds > 0
        assert type(cfg.retries) is int and cfg.retries >= 0


@pytest.mark.parametrize(
    "text",
    [
        "cv: {1: a, b: c}",  # unknown keys of types that do not sort together (YAML allows)
        "fetch: {urls: [x], timeout_seconds: 1" + "0" * 400 + "}",  # an int beyond a float
        "fetch: {urls: [x], timeout_seconds: .inf}",  # socket.settimeout refuses it
    ],
    ids=["keys-that-do-not-sort", "int-too-large-for-a-float", "infinite-timeout"],
)
def test_yaml_that_once_escaped_config_error(text):
    params = yaml.safe_load(text)
    (section,) = params
    with pytest.raises(ConfigError, match=f"^{section}"):
        load_section(params, section)
