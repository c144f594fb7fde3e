"""Every parameter a stage reads is declared in its ``params:`` in dvc.yaml, and every
parameter declared is read: DVC then re-runs a stage exactly when a value it reads
changes, and no knob is dead.

Each stage reads params.yaml through one function (``<stage>_settings``). It is given
the real params.yaml, wrapped so that every value read is recorded by its dotted key;
iterating a section for its names (``variants``' keys) is not reading a value."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

from sonarlab.stages import cv, fetch, grid, report, search, standardize
from tests.conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())


class Recorded(Mapping):
    """A read-only view of a nested mapping that records the dotted key of every value
    (not mapping) that is read from it."""

    def __init__(self, data: Mapping, reads: set[str], prefix: str = "") -> None:
        self._data, self._reads, self._prefix = data, reads, prefix

    def __getitem__(self, key: Any) -> Any:
        value = self._data[key]
        where = f"{self._prefix}{key}"
        if isinstance(value, Mapping):
            return Recorded(value, self._reads, f"{where}.")
        self._reads.add(where)
        return value

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def declared(stage: str, key: str | None) -> list[str]:
    """The ``params:`` of a stage, with ``${key}`` and ``${item.variant}`` filled in."""
    spec = DVC_YAML["stages"][stage]
    body = spec.get("do", spec)
    item = PARAMS[FOREACH[stage]][key] if key else None
    out = []
    for entry in body.get("params", []):
        entry = entry.replace("${key}", key or "")
        entry = re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), entry)
        out.append(entry)
    return out


def covered(read: str, entries: list[str]) -> bool:
    return any(read == e or read.startswith(e + ".") for e in entries)


READERS = {
    "fetch": lambda p, key: fetch.fetch_settings(p),
    "standardize": lambda p, key: standardize.standardize_settings(p),
    "cv": cv.cv_settings,
    "grid": grid.grid_settings,
    "search": search.search_settings,
    "report": lambda p, key: report.report_settings(p),
}
# a foreach stage's section: `foreach: ${variants}` -> variants
FOREACH = {
    stage: spec["foreach"].strip("${}")
    for stage, spec in DVC_YAML["stages"].items()
    if "foreach" in spec
}
CASES = [
    (stage, key)
    for stage in DVC_YAML["stages"]
    for key in (PARAMS[FOREACH[stage]] if stage in FOREACH else [None])
]


def test_every_stage_has_a_reader():
    assert set(READERS) == set(DVC_YAML["stages"])


@pytest.mark.parametrize(("stage", "key"), CASES)
def test_a_stage_reads_exactly_the_params_it_declares(stage, key):
    reads: set[str] = set()
    READERS[stage](Recorded(PARAMS, reads), key)
    entries = declared(stage, key)
    undeclared = sorted(r for r in reads if not covered(r, entries))
    assert not undeclared, f"{stage}@{key}: reads params it does not declare: {undeclared}"
    unread = [e for e in entries if not any(covered(r, [e]) for r in reads)]
    assert not unread, f"{stage}@{key}: declares params it never reads: {unread}"


def test_the_check_finds_an_undeclared_read():
    reads: set[str] = set()
    view = Recorded({"cv": {"folds": 10, "engine": "fused"}, "variants": {"a": {}}}, reads)
    assert list(view["variants"]) == ["a"] and not reads  # names are not values
    assert view["cv"]["engine"] == "fused"
    assert reads == {"cv.engine"}
    assert not covered("cv.engine", ["cv.folds", "cv.seed"]) and covered("cv.engine", ["cv"])
