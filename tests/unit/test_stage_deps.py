"""dvc.yaml's stage dependencies are exactly the code that can change a stage's outputs.

A stage's code is every ``sonarlab`` module its command imports, directly or through
other modules (at any depth, inside functions too), with the packages that importing
each one runs. Two packages are left out, and the import walk stops at them:
``sonarlab.cli`` (arguments, one-line errors, signals, progress) and
``sonarlab.tracking`` (MLflow runs and stores). They are side effects that DVC does not
track: no output byte depends on them, which ``test_no_output_code_imports_the_side_
effect_layer`` keeps true. A file that holds only a docstring cannot change anything, so
it need not be listed (a folder listed brings its own along).

A module missing from ``deps`` means DVC serves stale outputs after it changes; one
listed but not in the stage's code re-runs the stage for nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

SRC = ROOT / "src"
COMMAND_MODULE = re.compile(r"python -m (sonarlab(?:\.\w+)+)")
# The side-effect layer: no stage depends on it (see the module docstring).
SIDE_EFFECTS = ("sonarlab.cli", "sonarlab.tracking")


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The source file of module ``name`` (a package's ``__init__.py``), if it is one."""
    base = src.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def in_layer(module: str, layer: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in layer)


def imported_modules(name: str, src: Path = SRC, stop_at: tuple[str, ...] = ()) -> set[str]:
    """``name`` and every ``sonarlab`` module it imports, transitively, with the packages
    that importing each one runs (``sonarlab/__init__.py`` and so on); modules in
    ``stop_at`` (packages and everything below them) are neither followed nor returned."""
    seen: set[str] = set()
    read: set[str] = set()  # modules whose imports are taken (a package imports itself)
    todo = [name]
    while todo:
        module = todo.pop()
        if module in read or in_layer(module, stop_at):
            continue
        read.add(module)
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            prefix = ".".join(parts[:i])
            if prefix not in seen and not in_layer(prefix, stop_at) and module_file(prefix, src):
                seen.add(prefix)
                todo.append(prefix)
        path = module_file(module, src)
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.split(".")[0] == "sonarlab"]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] != "sonarlab":
                    continue
                todo.append(node.module)
                # `from sonarlab import data` imports the module sonarlab.data
                todo += [f"{node.module}.{a.name}" for a in node.names
                         if module_file(f"{node.module}.{a.name}", src)]  # fmt: skip
    return {m for m in seen if m.split(".")[0] == "sonarlab"}


def docstring_only(path: Path) -> bool:
    """A file whose code is a docstring at most: it cannot change any output."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def listed_files(deps: list[str], root: Path = ROOT) -> set[str]:
    """The source files ``deps`` names: a file, or every ``.py`` file under a folder."""
    out = set()
    for dep in deps:
        if not dep.startswith("src/"):
            continue
        path = root / dep
        if not path.exists():
            out.add(dep)  # a name that is no file: reported as listed but not imported
        elif path.is_dir():
            out |= {p.relative_to(root).as_posix() for p in path.rglob("*.py")}
        else:
            out.add(dep)
    return out


def stages(dvc_yaml: dict) -> dict[str, dict]:
    """Each stage's definition; a ``foreach`` stage by its ``do`` template."""
    return {name: s.get("do", s) for name, s in dvc_yaml["stages"].items()}


def drift(stage: dict, root: Path = ROOT) -> tuple[list[str], list[str]]:
    """(in the stage's code but not in deps, in deps but not in its code) source files of
    one stage, docstring-only files left out on both sides."""
    src = root / "src"
    modules = set()
    for name in COMMAND_MODULE.findall(stage["cmd"]):
        modules |= imported_modules(name, src, SIDE_EFFECTS)
    needed = {module_file(m, src).relative_to(root).as_posix() for m in modules}
    listed = listed_files(stage.get("deps", []), root)

    def code(files: set[str]) -> set[str]:
        return {f for f in files if not (root / f).is_file() or not docstring_only(root / f)}

    return sorted(code(needed) - code(listed)), sorted(code(listed) - code(needed))


DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())


@pytest.mark.parametrize("name", list(stages(DVC_YAML)))
def test_every_stage_lists_exactly_the_code_that_can_change_its_outputs(name):
    stage = stages(DVC_YAML)[name]
    assert COMMAND_MODULE.search(stage["cmd"]), f"{name}: cmd runs no sonarlab module"
    missing, extra = drift(stage)
    assert not missing, f"{name}: imports these but dvc.yaml does not list them: {missing}"
    assert not extra, f"{name}: dvc.yaml lists these but the stage does not import them: {extra}"


PACKAGE = SRC / "sonarlab"
OUTPUT_CODE = sorted(
    ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if not in_layer(".".join(p.relative_to(SRC).with_suffix("").parts), SIDE_EFFECTS)
    and p.relative_to(PACKAGE).parts[0] not in ("stages", "predict.py", "__init__.py")
)


def direct_imports(path: Path) -> set[str]:
    """Every ``sonarlab`` module a file names in an import statement (inside functions too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return {m for m in out if m.split(".")[0] == "sonarlab"}


@pytest.mark.parametrize("name", OUTPUT_CODE)
def test_no_output_code_imports_the_side_effect_layer(name):
    """What the stages' outputs are made of never calls into MLflow logging, stores, the
    CLI or signals, so leaving those out of ``deps`` loses nothing. (Only the stage
    modules wire both, and ``sonarlab/__init__`` installs the signal guard.)"""
    reached = direct_imports(module_file(name))
    assert not {m for m in reached if in_layer(m, SIDE_EFFECTS)}, name


def test_the_check_sees_an_import_made_inside_a_function_and_through_a_package(tmp_path):
    pkg = tmp_path / "src" / "sonarlab"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "tracking").mkdir()
    (pkg / "__init__.py").write_text("import os\n")
    (pkg / "stages" / "__init__.py").write_text('"""Only a docstring."""\n')
    (pkg / "stages" / "run.py").write_text(
        "from sonarlab import low\nfrom sonarlab.tracking import log\n\n"
        "def main():\n    from sonarlab.deep import thing\n"
    )
    (pkg / "low.py").write_text("import numpy\n")
    (pkg / "deep.py").write_text("from sonarlab.low import x\n")
    (pkg / "unused.py").write_text("x = 1\n")
    (pkg / "tracking" / "__init__.py").write_text("")
    (pkg / "tracking" / "log.py").write_text("from sonarlab import deep\n")
    stage = {"cmd": "python -m sonarlab.stages.run", "deps": ["src/sonarlab/unused.py", "data/x"]}
    missing, extra = drift(stage, tmp_path)
    assert missing == [
        "src/sonarlab/__init__.py", "src/sonarlab/deep.py", "src/sonarlab/low.py",
        "src/sonarlab/stages/run.py",
    ]  # fmt: skip
    assert extra == ["src/sonarlab/unused.py"]
    # a folder stands for every file in it; the side-effect layer is never needed
    stage["deps"] = ["src/sonarlab/__init__.py", "src/sonarlab/stages", "src/sonarlab/deep.py",
                     "src/sonarlab/low.py"]  # fmt: skip
    assert drift(stage, tmp_path) == ([], [])
    stage["deps"].append("src/sonarlab/tracking")
    assert drift(stage, tmp_path)[1] == ["src/sonarlab/tracking/log.py"]
