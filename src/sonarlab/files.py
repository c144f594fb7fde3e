"""Atomic file output (write to a temporary file beside the target, then rename), and
CSV formats whose columns are declared once and checked on every read."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``target``, on error it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix: writers such as matplotlib and Keras choose the format by it.
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    # mkstemp makes the file private (0600); give it the mode a plain open() would, so
    # that outputs (and the MLflow artifacts copied from them) are readable as usual.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class FormatError(ValueError):
    """A file the pipeline wrote is not in the format its reader declares."""


@dataclass(frozen=True)
class CsvFormat:
    """One CSV file's format: its columns and their types, declared once.

    ``write`` writes exactly these columns, in this order, atomically, floats with 6
    significant digits; ``read`` refuses a file with a missing or an extra column,
    naming the file and the column.
    """

    columns: Mapping[str, str]  # name -> pandas dtype ("int64", "float64", "str")
    index: str | None = None  # a column that is the table's index when read

    def write(self, target: Path, table: pd.DataFrame) -> None:
        write_text(target, self.text(table))

    def text(self, table: pd.DataFrame) -> str:
        """``table`` as this format's CSV text."""
        table = table.reset_index() if self.index is not None else table
        missing = [c for c in self.columns if c not in table.columns]
        if missing:  # a bug in the writer, not in any input
            raise ValueError(f"no column {missing[0]!r} to write")
        return table[list(self.columns)].to_csv(
            index=False, float_format="%.6g", na_rep="nan", lineterminator="\n"
        )

    def read(self, path: Path) -> pd.DataFrame:
        try:
            header = pd.read_csv(path, nrows=0).columns
        except pd.errors.EmptyDataError:
            raise FormatError(
                f"{path}: empty, expected columns {', '.join(self.columns)}"
            ) from None
        for name in self.columns:
            if name not in header:
                raise FormatError(f"{path}: no column {name!r}")
        for name in header:
            if name not in self.columns:
                raise FormatError(f"{path}: unexpected column {name!r}")
        try:
            table = pd.read_csv(path, dtype=dict(self.columns))
        except (ValueError, pd.errors.ParserError) as exc:
            raise FormatError(f"{path}: {exc}") from None
        table = table[list(self.columns)]
        return table.set_index(self.index) if self.index is not None else table
