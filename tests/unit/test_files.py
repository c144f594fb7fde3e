"""Atomic writes: all or nothing, and the file mode a plain open() would give."""

from __future__ import annotations

import os

import pytest

from sonarlab import files


def test_atomic_write_replaces_the_target_and_respects_the_umask(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    old = os.umask(0o027)
    try:
        files.write_json(target, {"a": 1})
    finally:
        os.umask(old)
    assert files.read_json(target) == {"a": 1}
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), files.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]
