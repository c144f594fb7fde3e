"""The package's layering and names, read from the source: the engines are siblings over
an engine-neutral layer, one name per public function, entry points typed alike."""

from __future__ import annotations

import ast
import collections

import pytest
import yaml

from sonarlab.stages import cv
from tests.conftest import ROOT
from tests.unit.test_stage_deps import SRC, imported_modules

PACKAGE = SRC / "sonarlab"


def module_name(path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def direct_imports(name: str) -> set[str]:
    """Every module ``name`` names in an import statement (inside functions too)."""
    out = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


ENGINES = {"sonarlab.training.engines.keras", "sonarlab.training.engines.fused"}


def test_no_engine_imports_the_other():
    for engine in ENGINES:
        assert not (direct_imports(engine) & (ENGINES - {engine})), engine


@pytest.mark.parametrize("name", sorted(set(MODULES) - ENGINES - {"sonarlab.training.engines"}))
def test_nothing_outside_the_engines_package_imports_an_engine_module(name):
    assert not (direct_imports(name) & ENGINES)


NEUTRAL = sorted(
    m for m in MODULES
    if m.split(".")[1:2] in (["core"], ["design"], ["data"], ["results"], ["report"])
    or m in ("sonarlab.training.outcomes", "sonarlab.training.members")
)  # fmt: skip


@pytest.mark.parametrize("name", NEUTRAL)
def test_the_shared_layer_is_engine_neutral(name):
    """No TensorFlow or Keras below the engines: the core, the data, the results and the
    report load without them (and so does what the engines share)."""
    frameworks = {m.split(".")[0] for m in direct_imports(name)} & {"tensorflow", "keras"}
    assert not frameworks
    assert not (
        imported_modules(name) & {"sonarlab.training.engines", "sonarlab.training.model", *ENGINES}
    )


def test_no_two_public_functions_or_classes_share_a_name():
    """``main`` is exempt: every CLI module has one, ``main(argv=None)``, by convention."""
    where = collections.defaultdict(list)
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(name)
    shared = {n: ms for n, ms in where.items() if len(ms) > 1 and n != "main"}
    assert not shared


def test_mlproject_types_its_parameters_as_the_cli_does():
    spec = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]["cv"]["parameters"]
    actions = {a.dest: a for a in cv.cv_parser()._actions}
    mlflow_type = {int: "int", float: "float", None: "string", str: "string"}
    assert set(spec) == {"variant", "epochs", "folds"}
    for name, param in spec.items():
        assert param["type"] == mlflow_type[actions[name].type], name
    # the CLI's overrides default to 0, "keep params.yaml": MLproject's must say the same
    for name in ("epochs", "folds"):
        assert actions[name].default == 0 and param_default(spec, name) == 0, name
    # the variant is a positional the CLI takes from $DVC_STAGE when it is missing;
    # MLproject has no DVC_STAGE, so its default must name a variant that exists
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert actions["variant"].default is None and spec["variant"]["default"] in params["variants"]


def param_default(spec: dict, name: str):
    return spec[name]["default"]


def test_every_test_module_has_a_name_of_its_own():
    """pytest imports test modules by basename (the test folders are not packages): two
    modules of one name stop the whole run at collection."""
    names = collections.Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert not [n for n, count in names.items() if count > 1]
