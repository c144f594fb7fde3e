import copy

import pytest

from sonarlab.core.params import ConfigError, apply_overrides, flatten, load_section, read_params
from sonarlab.design.variants import load_variant, variant_names
from tests.conftest import ROOT


@pytest.fixture
def params():
    return read_params(ROOT / "params.yaml")


def test_project_params_load_and_define_the_five_variants(params):
    assert variant_names(params) == ["baseline", "visible", "hidden", "lstm", "lr_decay"]
    for name in variant_names(params):
        load_variant(params, name)
    cv = load_section(params, "cv")
    assert (cv.folds, cv.repeats) == (10, 3)  # the tutorial's 10 folds, repeated 3 times
    assert load_section(params, "mlflow").experiment
    assert load_section(params, "report").baseline in variant_names(params)
    assert load_section(params, "fetch").urls


def test_tutorial_protocol_is_the_default(params):
    base = load_variant(params, "baseline")
    assert base.model.hidden == (60, 30)
    assert (base.optimizer.learning_rate, base.optimizer.momentum) == (0.01, 0.8)
    assert (base.epochs, base.batch_size) == (300, 16)
    for name, where in (("visible", "input_dropout"), ("hidden", "hidden_dropout")):
        v = load_variant(params, name)
        assert getattr(v.model, where) == 0.2
        assert v.model.max_norm == 3.0
        assert (v.optimizer.learning_rate, v.optimizer.momentum) == (0.1, 0.9)
    assert load_variant(params, "lr_decay").schedule.kind == "time"


def _with(params, path, value):
    out = copy.deepcopy(params)
    node = out
    *parents, last = path.split(".")
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return out


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "variants.hidden.model.dropuot",
            0.2,
            "variants.hidden.model.dropuot: got 0.2; unknown key",
        ),
        (
            "variants.hidden.model.hidden_dropout",
            1.0,
            "variants.hidden.model.hidden_dropout: got 1.0",
        ),
        ("variants.hidden.model.hidden_dropout", -0.1, "hidden_dropout: got -0.1"),
        ("variants.hidden.model.hidden_dropout", "0.2", "allowed: a number"),
        ("variants.hidden.epochs", 0, "variants.hidden.epochs: got 0; allowed: an integer >= 1"),
        ("variants.hidden.epochs", 2.5, "variants.hidden.epochs: got 2.5; allowed: an integer"),
        ("variants.hidden.batch_size", -1, "variants.hidden.batch_size: got -1"),
        ("variants.hidden.optimizer.momentum", 1.0, "optimizer.momentum: got 1.0"),
        ("variants.hidden.optimizer.learning_rate", 0.0, "optimizer.learning_rate: got 0.0"),
        ("variants.hidden.optimizer.learning_rate", _DELETE, "learning_rate: got '<missing>'"),
        (
            "variants.hidden.model.kind",
            "cnn",
            "variants.hidden.model.kind: got 'cnn'; allowed: one of",
        ),
        ("variants.hidden.schedule.kind", "cosine", "schedule.kind: got 'cosine'"),
        ("variants.hidden.schedule.every", 3, "schedule.every: got 3; not used by kind 'constant'"),
        ("variants.hidden.model.units", 8, "model.units: got 8; not used by kind 'mlp'"),
        ("variants.lstm.model.timesteps", 7, "variants.lstm.model.timesteps: got '7x6'"),
        ("variants.lstm.model.recurrent_dropout", 1.5, "model.recurrent_dropout: got 1.5"),
        ("variants.hidden.model.max_norm", 0, "model.max_norm: got 0.0"),
        ("variants.hidden.model.hidden", [60, 0], "model.hidden: got [60, 0]"),
    ],
)
def test_invalid_variant_names_key_value_and_what_is_allowed(params, path, value, message):
    name = path.split(".")[1]
    with pytest.raises(ConfigError) as err:
        load_variant(_with(params, path, value), name)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("cv.folds", 1, "cv.folds: got 1; allowed: an integer >= 2"),
        ("cv.repeats", 0, "cv.repeats: got 0"),
        ("cv.seed", True, "cv.seed: got True; allowed: an integer"),
        ("cv.shuffle", True, "cv.shuffle: got True; unknown key"),
        ("cv.mc_samples", 0, "cv.mc_samples: got 0; allowed: an integer from 1 to 10000"),
        ("cv.mc_samples", 10_001, "cv.mc_samples: got 10001; allowed: an integer from 1 to 10000"),
        ("cv.mc_samples", 2.5, "cv.mc_samples: got 2.5; allowed: an integer"),
    ],
)
def test_invalid_cv_section(params, path, value, message):
    with pytest.raises(ConfigError) as err:
        load_section(_with(params, path, value), "cv")
    assert message in str(err.value)


def test_undefined_variant_lists_the_defined_ones(params):
    with pytest.raises(
        ConfigError, match=r"variants.nope: got '<missing>'; defined variants: baseline"
    ):
        load_variant(params, "nope")


def test_overrides_parse_yaml_values_and_reject_unknown_sections(params):
    out = apply_overrides(params, ["cv.folds=3", "variants.hidden.model.max_norm=null"])
    assert out["cv"]["folds"] == 3 and out["variants"]["hidden"]["model"]["max_norm"] is None
    assert params["cv"]["folds"] == 10  # the original is untouched
    with pytest.raises(ConfigError, match="'nosuch' is not a section"):
        apply_overrides(params, ["nosuch.key=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(params, ["cv.folds"])


def test_flatten_gives_dotted_keys(params):
    flat = flatten(load_variant(params, "visible"), "variant.")
    assert flat["variant.model.input_dropout"] == 0.2
    assert flat["variant.model.hidden"] == [60, 30]
    assert flat["variant.schedule.kind"] == "constant"
    # what the kind does not read is not logged
    assert "variant.model.units" not in flat and "variant.schedule.decay" not in flat
    lstm = flatten(load_variant(params, "lstm"), "variant.")
    assert lstm["variant.model.recurrent_dropout"] == 0.2 and "variant.model.hidden" not in lstm
    assert flatten(load_variant(params, "lr_decay"), "")["schedule.decay"] is None


@pytest.mark.parametrize(
    "name", ["../../escape", "a;b", "a/b", "a b", "grid", "1st", "latest", "Latest", "v2", "V10",
             "champion"]
)  # fmt: skip
def test_a_variant_name_must_be_a_plain_identifier(name):
    """A variant's name becomes results/<name>, a word of its stage's command and an alias
    of the registered model (MLflow reserves latest and v<digits>; champion is ours)."""
    params = read_params(ROOT / "params.yaml")
    params["variants"] = {**params["variants"], name: params["variants"]["hidden"]}
    with pytest.raises(ConfigError, match=r"allowed: a plain identifier"):
        variant_names(params)
    with pytest.raises(ConfigError, match=r"allowed: a plain identifier"):
        load_variant(params, "hidden")


@pytest.mark.parametrize("name", ["v2a", "latest_run", "champions", "vx"])
def test_names_near_the_reserved_aliases_are_allowed(name):
    params = read_params(ROOT / "params.yaml")
    params["variants"] = {**params["variants"], name: params["variants"]["hidden"]}
    assert name in variant_names(params)
