"""Atomic file output (write to a temporary file beside the target, then rename), CSV
formats whose columns are declared once and checked on every read, and reads of inputs
from outside the project bounded in size and time (``read_file_within``)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
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
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.filename in (None, str(tmp_path), tmp_path):  # name the file meant, not ours
            raise OSError(exc.errno, f"cannot write {target}: {exc.strerror}") from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


# Free space a stage wants on the disk of each output folder before it trains: its
# files are well under 1 MiB each (the model, a figure, tables), and a disk this full
# would fail the MLflow store and the DVC cache beside them too.
MIN_FREE_BYTES = 32 * 2**20


def check_writable(target: Path, what: str = "", min_free: int = 0) -> None:
    """Fail now, naming ``target``, if it cannot be written, rather than after the work
    that makes it: a folder at ``target``, a file where a folder must be, a folder that
    does not let us create files (tried with a temporary file: permissions, a read-only
    mount, an immutable attribute), or fewer than ``min_free`` bytes free on its disk.
    ``what`` names where the path came from (``--output``)."""
    label = f"{what} {target}" if what else str(target)
    if target.is_dir():
        raise OSError(f"{label}: is a folder; name a file")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OSError(f"{label}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OSError(f"{label}: cannot write in {folder} ({exc.strerror})") from None
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    if free < min_free:
        raise OSError(
            f"{label}: only {free / 2**20:.1f} MiB free on the disk of {folder} (a stage "
            f"wants {min_free / 2**20:.0f} MiB); free some space and run again"
        )


def check_outputs(targets: list[Path]) -> None:
    """``check_writable`` for every output of a stage, with ``MIN_FREE_BYTES`` free."""
    for target in targets:
        check_writable(target, min_free=MIN_FREE_BYTES)


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

    ``write`` writes exactly these columns, in this order, atomically, floats with
    ``float_format`` (6 significant digits; 9 keep a float32 exactly); ``read`` refuses
    a file with a missing or an extra column, naming the file and the column.
    """

    columns: Mapping[str, str]  # name -> pandas dtype ("int64", "float64", "str")
    index: str | None = None  # a column that is the table's index when read
    float_format: str = "%.6g"

    def write(self, target: Path, table: pd.DataFrame) -> None:
        write_text(target, self.text(table))

    def text(self, table: pd.DataFrame) -> str:
        """``table`` as this format's CSV text."""
        table = table.reset_index() if self.index is not None else table
        missing = [c for c in self.columns if c not in table.columns]
        if missing:  # a bug in the writer, not in any input
            raise ValueError(f"no column {missing[0]!r} to write")
        return table[list(self.columns)].to_csv(
            index=False, float_format=self.float_format, na_rep="nan", lineterminator="\n"
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


# --- inputs from outside the project ---------------------------------------------------

READ_CHUNK = 64 * 1024  # bytes asked for per read: a bounded input never needs one big read


class InputLimitError(OSError):
    """An input from outside the project went past its size or its time limit."""

    def __init__(self, message: str, *, over: str):
        super().__init__(message)
        self.over = over  # "size" or "time"


@dataclass(frozen=True)
class InputLimits:
    """How much of one kind of input may be read, and for how long.

    ``size_why`` and ``seconds_why`` say where each limit comes from (a constant and
    why, a parameter's key), so the one-line error names the limit it hit."""

    size: int  # bytes
    seconds: float
    size_why: str = ""
    seconds_why: str = ""

    def too_large(self) -> InputLimitError:
        message = f"larger than {_bytes_text(self.size)}{_why(self.size_why)}"
        return InputLimitError(message, over="size")

    def too_slow(self) -> InputLimitError:
        message = f"not complete within {self.seconds:g} s{_why(self.seconds_why)}"
        return InputLimitError(message, over="time")


def _bytes_text(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def _why(text: str) -> str:
    return f" ({text})" if text else ""


def read_within(
    read_some: Callable[[int], bytes | None],
    limits: InputLimits,
    end: float,
    ready: Callable[[float], bool] | None = None,
) -> bytes:
    """Everything ``read_some(n)`` gives until it returns ``b""``: at most ``limits.size``
    bytes, before ``time.monotonic()`` reaches ``end``.

    ``read_some`` returns at most ``n`` bytes, or None when nothing is there yet;
    ``ready(seconds)`` (optional) waits up to that long for data and says whether any
    came. Reading stops at ``limits.size + 1`` bytes, so memory stays bounded by the
    limit whatever the source sends."""
    buf = bytearray()
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise limits.too_slow()
        if ready is not None and not ready(left):
            continue
        chunk = read_some(min(READ_CHUNK, limits.size + 1 - len(buf)))
        if chunk is None:
            continue
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limits.size:
            raise limits.too_large()


def read_file_within(path: Path, limits: InputLimits) -> bytes:
    """The bytes of ``path`` (a regular file, a device such as ``/dev/zero``, or a FIFO)
    within ``limits``.

    The file is opened non-blocking: opening a FIFO for reading otherwise waits, without
    end, for a writer. A FIFO's reads then wait in ``poll`` up to the time left, so a
    writer that never comes, or trickles, or never stops, meets the time limit; a
    source that never ends (``/dev/zero``) meets the size limit."""
    end = time.monotonic() + limits.seconds
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)

        def ready(seconds: float) -> bool:
            # Linux reports no event on a FIFO until a writer has come; then POLLHUP
            # (with or without POLLIN) when it has gone: the read sees the end.
            return bool(poller.poll(max(1, math.ceil(seconds * 1000))))

        def read_some(n: int) -> bytes | None:
            try:
                return os.read(fd, n)
            except BlockingIOError:
                return None

        return read_within(read_some, limits, end, ready)
    finally:
        os.close(fd)
