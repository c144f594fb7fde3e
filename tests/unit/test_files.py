"""Atomic writes: all or nothing, and the file mode a plain open() would give."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from sonarlab.core import files


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


FORMAT = files.CsvFormat({"name": "str", "n": "int64", "x": "float64"})


def test_a_csv_format_writes_its_columns_in_order_and_reads_them_back(tmp_path):
    table = pd.DataFrame({"x": [1 / 3, float("nan")], "n": [1, 2], "name": ["a", "1e5"]})
    FORMAT.write(tmp_path / "t.csv", table)
    assert (tmp_path / "t.csv").read_text() == "name,n,x\na,1,0.333333\n1e5,2,nan\n"
    back = FORMAT.read(tmp_path / "t.csv")
    assert list(back.columns) == ["name", "n", "x"]
    assert back["name"].tolist() == ["a", "1e5"]  # a string that looks like a number stays one
    assert back["n"].dtype == "int64" and back["x"].iloc[0] == 0.333333


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,n\na,1\n", "t.csv: no column 'x'"),
        ("name,n,x,y\na,1,0.5,2\n", "t.csv: unexpected column 'y'"),
        ("", "t.csv: empty, expected columns name, n, x"),
        ("name,n,x\na,one,0.5\n", "t.csv"),
    ],
)
def test_a_csv_that_is_not_in_its_format_is_refused_naming_file_and_column(tmp_path, text, message):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(files.FormatError, match=message):
        FORMAT.read(tmp_path / "t.csv")
