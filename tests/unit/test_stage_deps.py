"""dvc.yaml's stage dependencies cannot drift from the code: every ``sonarlab`` module a
stage's command imports, directly or through other modules (at any depth, inside
functions too), is in that stage's ``deps``, and every source file listed there is
imported. A module missing from ``deps`` means DVC serves stale outputs after it changes;
one listed but not imported re-runs the stage for nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

SRC = ROOT / "src"
COMMAND_MODULE = re.compile(r"python -m (sonarlab(?:\.\w+)+)")


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The source file of module ``name`` (a package's ``__init__.py``), if it is one."""
    base = src.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(name: str, src: Path = SRC) -> set[str]:
    """``name`` and every ``sonarlab`` module it imports, transitively, with the packages
    that importing each one runs (``sonarlab/__init__.py`` and so on)."""
    seen: set[str] = set()
    read: set[str] = set()  # modules whose imports are taken (a package imports itself)
    todo = [name]
    while todo:
        module = todo.pop()
        if module in read:
            continue
        read.add(module)
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            prefix = ".".join(parts[:i])
            if prefix not in seen and module_file(prefix, src):
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


def stages(dvc_yaml: dict) -> dict[str, dict]:
    """Each stage's definition; a ``foreach`` stage by its ``do`` template."""
    return {name: s.get("do", s) for name, s in dvc_yaml["stages"].items()}


def drift(stage: dict, root: Path = ROOT) -> tuple[list[str], list[str]]:
    """(imported but not in deps, in deps but not imported) source files of one stage."""
    src = root / "src"
    modules = set()
    for name in COMMAND_MODULE.findall(stage["cmd"]):
        modules |= imported_modules(name, src)
    needed = {module_file(m, src).relative_to(root).as_posix() for m in modules}
    listed = {d for d in stage.get("deps", []) if d.startswith("src/")}
    return sorted(needed - listed), sorted(listed - needed)


DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())


@pytest.mark.parametrize("name", list(stages(DVC_YAML)))
def test_every_stage_lists_exactly_the_sources_it_imports(name):
    stage = stages(DVC_YAML)[name]
    assert COMMAND_MODULE.search(stage["cmd"]), f"{name}: cmd runs no sonarlab module"
    missing, extra = drift(stage)
    assert not missing, f"{name}: imports these but dvc.yaml does not list them: {missing}"
    assert not extra, f"{name}: dvc.yaml lists these but the stage does not import them: {extra}"


def test_the_check_sees_an_import_made_inside_a_function_and_through_a_package(tmp_path):
    pkg = tmp_path / "src" / "sonarlab"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "stages" / "__init__.py").write_text("")
    (pkg / "stages" / "run.py").write_text(
        "from sonarlab import low\n\ndef main():\n    from sonarlab.deep import thing\n"
    )
    (pkg / "low.py").write_text("import numpy\n")
    (pkg / "deep.py").write_text("from sonarlab.low import x\n")
    (pkg / "unused.py").write_text("")
    stage = {"cmd": "python -m sonarlab.stages.run", "deps": ["src/sonarlab/unused.py", "data/x"]}
    missing, extra = drift(stage, tmp_path)
    assert missing == [
        "src/sonarlab/__init__.py", "src/sonarlab/deep.py", "src/sonarlab/low.py",
        "src/sonarlab/stages/__init__.py", "src/sonarlab/stages/run.py",
    ]  # fmt: skip
    assert extra == ["src/sonarlab/unused.py"]
