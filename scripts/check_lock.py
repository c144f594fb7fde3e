"""Fail when dvc.lock is stale for the code and params: `make check-lock`, run by CI.

For every stage of dvc.yaml (foreach expanded), compares dvc.lock with the work tree:
the command, each parameter's value, each dependency's hash (DVC's own hashing of the
file or folder as it is here) and, for a dependency that is another stage's output,
that stage's output hash as the lock records it. Outputs are never read: a fresh clone
without data or training (CI's) is checked in seconds. A folder dependency that holds
outputs (the report's `results`) is hashed as DVC would hash it with every output as
the lock records it.

Prints one line per stale stage and item and exits 1; prints one line and exits 0 when
dvc.lock describes the work tree. Usage: python scripts/check_lock.py [PROJECT_ROOT]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from dvc.dependency import ParamsDependency
from dvc.output import Output
from dvc.repo import Repo
from dvc.stage import PipelineStage
from dvc_data.hashfile.build import build
from dvc_data.hashfile.hash_info import HashInfo
from dvc_data.hashfile.meta import Meta
from dvc_data.hashfile.tree import Tree

FIX = "run `dvc repro`, then commit dvc.lock (and `dvc push` its outputs)"


MISSING = object()


def changed_values(old, new, key: str) -> Iterator[str]:
    """One line per deepest dotted key whose value differs between the lock and now."""
    if old is MISSING:
        yield f"param {key}: not in dvc.lock"
    elif new is MISSING:
        yield f"param {key}: in dvc.lock, not in the params file"
    elif isinstance(old, dict) and isinstance(new, dict):
        for sub in sorted(old.keys() | new.keys(), key=str):
            yield from changed_values(old.get(sub, MISSING), new.get(sub, MISSING), f"{key}.{sub}")
    elif old != new and not (isinstance(new, tuple) and list(new) == old):
        yield f"param {key}: {old!r} in dvc.lock, {new!r} now"


def params_problems(dep: ParamsDependency) -> Iterator[str]:
    locked = dep.hash_info.value
    if locked is None:
        yield f"params of {dep.def_path}: not in dvc.lock"
        return
    current = dep.read_params()
    for key in dep.params or sorted(locked.keys() | current.keys()):
        yield from changed_values(locked.get(key, MISSING), current.get(key, MISSING), key)


def locked_folder_hash(dep: Output, outs: dict[str, Output]) -> HashInfo | None:
    """The hash DVC would give the folder ``dep`` if every output in it were as the lock
    records it; None if the folder holds a folder output (its files are not in the lock)."""
    root = Path(dep.fs_path)
    inside = {  # outputs missing from the lock are their own stage's problem
        path.relative_to(root).parts: out
        for path, out in ((Path(p), o) for p, o in outs.items())
        if root in path.parents and out.hash_info
    }
    if any(out.hash_info.isdir for out in inside.values()):
        return None
    tree = Tree()
    if dep.exists:  # the files not owned by a stage (.gitignore), as DVC hashes them
        _, _, built = build(
            dep.local_cache, dep.fs_path, dep.fs, dep.hash_name, ignore=dep.dvcignore, dry_run=True
        )
        for key, meta, hash_info in built:
            tree.add(key, meta, hash_info)
    for key, out in inside.items():
        tree.add(key, Meta(size=out.meta.size), HashInfo(dep.hash_name, out.hash_info.value))
    tree.digest(name=dep.hash_name)
    return tree.hash_info


def dep_problems(dep: Output, outs: dict[str, Output]) -> Iterator[str]:
    locked = dep.hash_info
    if not locked:
        yield f"{dep.def_path}: not in dvc.lock"
        return
    producer = outs.get(dep.fs_path)
    if producer is not None:
        if producer.hash_info.value != locked.value:
            yield (
                f"{dep.def_path}: {locked.value} in this stage's lock entry, "
                f"{producer.hash_info.value} as stage {producer.stage.addressing}'s output"
            )
        return
    if any(Path(dep.fs_path) in Path(path).parents for path in outs):
        current = locked_folder_hash(dep, outs)
        if current is None:
            yield f"{dep.def_path}: holds a folder output; cannot be checked without the data"
            return
    elif not dep.exists:
        yield f"{dep.def_path}: missing from the work tree and no stage outputs it"
        return
    else:
        current = dep.get_hash()
    if current.value != locked.value:
        yield f"{dep.def_path}: changed ({locked.value} in dvc.lock, {current.value} here)"


def stage_problems(stage: PipelineStage, outs: dict[str, Output]) -> Iterator[str]:
    if stage.name not in stage.dvcfile.lockfile_contents.get("stages", {}):
        yield "not in dvc.lock"
        return
    if stage.cmd_changed:
        yield "command changed"
    locked_outs = {
        entry["path"] for entry in stage.dvcfile.lockfile_contents["stages"][stage.name]["outs"]
    }
    for out in stage.outs:
        if out.def_path not in locked_outs:
            yield f"output {out.def_path}: not in dvc.lock"
    for dep in stage.deps:
        if isinstance(dep, ParamsDependency):
            yield from params_problems(dep)
        else:
            yield from dep_problems(dep, outs)


def stale_lines(repo: Repo) -> tuple[list[str], int]:
    """One line per stale item, ``<stage>: <what changed>``; and the number of stages."""
    stages = [s for s in repo.index.stages if isinstance(s, PipelineStage)]
    outs = {out.fs_path: out for stage in stages for out in stage.outs}
    lines = [
        f"{stage.addressing}: {problem}"
        for stage in stages
        for problem in stage_problems(stage, outs)
    ]
    return lines, len(stages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=".", help="the project (default: here)")
    args = parser.parse_args(argv)
    with Repo(args.root) as repo:
        lines, n_stages = stale_lines(repo)
    if lines:
        print(*(f"stale dvc.lock: {line}" for line in lines), sep="\n")
        print(f"dvc.lock is stale for {len(lines)} item(s) above: {FIX}")
        return 1
    print(f"dvc.lock describes the code and params of all {n_stages} stages of dvc.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
