"""Getting, parsing and validating the UCI Sonar (Mines vs. Rocks) data.

Pure functions turn downloaded bytes into a validated table; ``fetch_first`` tries
each source in turn. The fingerprint is taken over the parsed content in a
canonical text form, so copies that differ only in line endings or number
formatting are recognised as the same data.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sonarlab.core import files
from sonarlab.core.errors import DataError
from sonarlab.core.params import N_BANDS
from sonarlab.core.watchdog import Watchdog, watched_opener

log = logging.getLogger(__name__)

N_ROWS = 208
CLASS_COUNTS = {"M": 111, "R": 97}
POSITIVE = "M"  # the models output P(mine)
ZIP_MEMBER = "sonar.all-data"
# A data source may hold at most this much: the data set is 87,775 bytes as CSV (and
# less as the UCI zip), so 1 MiB leaves room for other line endings or number formats
# while a source that never ends (/dev/zero, an endless response) stops early, with
# memory flat. The zip's member is held to it too (a small zip can inflate to GBs).
SOURCE_MAX_BYTES = 2**20
SOURCE_SIZE_WHY = "the limit for a data source; the Sonar data is about 86 KiB"
SOURCE_SECONDS_WHY = "fetch.timeout_seconds, the limit for each attempt at a source"
LOCAL_READ_SECONDS = 30.0  # data/raw/sonar.csv is a local file: only a FIFO could be slow
# sha256 of canonical_text() of the UCI data set (208 rows, 4-decimal values).
FINGERPRINT = "e90434cdbf00fcf93ffa911fe447ae25606979658e60f1d32e155c3b5240234d"


@dataclass(frozen=True)
class Sonar:
    """The data set: ``X`` (n, 60) float32 band energies in [0, 1], ``y`` 1 for mine."""

    X: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]


def parse(text: str) -> Sonar:
    """Parse and validate Sonar CSV text (no header; 60 numbers and an M/R label per row)."""
    X, labels = parse_rows(text, labelled=True)
    return Sonar(
        X=X.astype(np.float32),
        y=np.asarray([lab == POSITIVE for lab in labels], dtype=np.float32),
        labels=tuple(labels),
    )


def parse_rows(text: str, labelled: bool | None = None) -> tuple[np.ndarray, list[str]]:
    """Band values (float64, one row per line) and labels of Sonar-format CSV text.

    ``labelled``: True, every row ends with an M/R label; False, none does; None,
    either (all rows alike). Every value is checked: numeric, finite, in [0, 1]."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        raise DataError("no rows (empty or truncated download)")
    if lines[0].startswith("<"):
        raise DataError("got an HTML/XML page, not CSV (an error page served as data?)")
    if labelled is None:
        labelled = lines[0].count(",") + 1 == N_BANDS + 1
    width = N_BANDS + 1 if labelled else N_BANDS
    for i, line in enumerate(lines, start=1):
        if line.count(",") + 1 != width:
            raise DataError(f"row {i}: {line.count(',') + 1} columns, expected {width}")
    body = "\n".join(lines)
    try:
        # pandas 3's parser rounds correctly: the same floats as Python's float()
        table = _read_table(body, {**dict.fromkeys(range(N_BANDS), np.float64), N_BANDS: str})
    except ValueError:
        cells = _read_table(body, str).iloc[:, :N_BANDS]
        numeric = cells.apply(pd.to_numeric, errors="coerce")
        row = int(np.flatnonzero(numeric.isna().to_numpy().any(axis=1))[0]) + 1
        raise DataError(f"row {row}: a band value is not a number") from None
    # row-major, as a list of rows gives: NumPy sums a column in another order in a
    # column-major array, which changes the last bit of a mean (the scalers)
    X = np.ascontiguousarray(table.iloc[:, :N_BANDS].to_numpy(np.float64))
    labels = table[N_BANDS].str.strip().tolist() if labelled else []
    if not np.isfinite(X).all():
        raise DataError("NaN or infinite band values")
    if X.min() < 0.0 or X.max() > 1.0:
        raise DataError(f"band values outside [0, 1] (min {X.min():g}, max {X.max():g})")
    bad = sorted(set(labels) - set(CLASS_COUNTS))
    if bad:
        raise DataError(f"labels {bad} found; expected only M and R")
    return X, labels


def _read_table(body: str, dtype) -> pd.DataFrame:
    return pd.read_csv(
        io.StringIO(body),
        header=None,
        dtype=dtype,
        skipinitialspace=True,
    )


def canonical_text(data: Sonar) -> str:
    """One line a row, values with 4 decimals, LF endings: the form that is fingerprinted."""
    table = pd.DataFrame(data.X.astype(np.float64))
    table[N_BANDS] = data.labels
    return table.to_csv(header=False, index=False, float_format="%.4f", lineterminator="\n")


def fingerprint(data: Sonar) -> str:
    return hashlib.sha256(canonical_text(data).encode()).hexdigest()


def check_is_uci_sonar(data: Sonar, expected: str = FINGERPRINT) -> None:
    """Raise ``DataError`` unless ``data`` is the complete UCI data set."""
    n = len(data.labels)
    if n != N_ROWS:
        raise DataError(f"{n} rows, expected {N_ROWS} (truncated download?)")
    counts = {lab: data.labels.count(lab) for lab in CLASS_COUNTS}
    if counts != CLASS_COUNTS:
        raise DataError(f"class counts {counts}, expected {CLASS_COUNTS}")
    got = fingerprint(data)
    if got != expected:
        raise DataError(
            f"content fingerprint {got[:12]}… does not match the pinned {expected[:12]}…"
        )


def decode(payload: bytes) -> str:
    """The CSV text in ``payload``: the zip's ``sonar.all-data`` member, or the bytes as text."""
    if payload[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(payload)) as zf:
                names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == ZIP_MEMBER]
                if not names:
                    raise DataError(f"zip holds no {ZIP_MEMBER} (members: {zf.namelist()})")
                # The member's declared size can lie: read no more than the limit allows.
                with zf.open(names[0]) as member:
                    text = member.read(SOURCE_MAX_BYTES + 1)
                if len(text) > SOURCE_MAX_BYTES:
                    limits = files.InputLimits(SOURCE_MAX_BYTES, 0, SOURCE_SIZE_WHY)
                    raise DataError(f"zip member {names[0]}: {limits.too_large()}")
                return text.decode("utf-8")
        except (zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"corrupt zip ({exc})") from None
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text and not a zip") from None


def load(payload: bytes) -> Sonar:
    """Bytes from any source → validated, fingerprint-checked data."""
    data = parse(decode(payload))
    check_is_uci_sonar(data)
    return data


def read_local(path: Path) -> Sonar:
    """The pipeline's own copy (``data/raw/sonar.csv``), validated again on read. It may
    have come from a DVC remote, so it is read within the data source's limits too."""
    limits = files.InputLimits(
        SOURCE_MAX_BYTES, LOCAL_READ_SECONDS, SOURCE_SIZE_WHY, "the limit for a local copy"
    )
    return load(files.read_file_within(path, limits))


def source_limits(timeout: float) -> files.InputLimits:
    """The limits of one attempt at reading a data source: ``SOURCE_MAX_BYTES``, and
    ``fetch.timeout_seconds`` for the whole of it (connect to last byte)."""
    return files.InputLimits(SOURCE_MAX_BYTES, timeout, SOURCE_SIZE_WHY, SOURCE_SECONDS_WHY)


def _download(url: str, limits: files.InputLimits) -> bytes:
    """One GET of ``url`` within ``limits``: its size, and its time from connecting to
    the last byte."""
    req = urllib.request.Request(url, headers={"User-Agent": "sonarlab-fetch"})
    with Watchdog(limits.seconds) as watchdog:
        opener = watched_opener(watchdog)
        try:
            with opener.open(req, timeout=limits.seconds) as resp:
                length = resp.headers.get("Content-Length", "").strip()
                if length.isdigit() and int(length) > limits.size:
                    raise limits.too_large()
                body = files.read_within(resp.read1, limits, watchdog.end)
        except files.InputLimitError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            if watchdog.expired or isinstance(getattr(exc, "reason", exc), TimeoutError):
                raise limits.too_slow() from None
            raise
        if watchdog.expired:  # the shutdown ended the body early: it is not all there
            raise limits.too_slow()
        return body


def http_get(url: str, timeout: float, retries: int, backoff: float = 0.5) -> bytes:
    """GET within limits, with a few retries with exponential backoff.

    Each attempt may take ``timeout`` seconds in all, from connecting to the last byte,
    and read at most ``SOURCE_MAX_BYTES`` (a larger ``Content-Length`` fails at once). urllib
    honours the standard proxy variables (``http_proxy``, ``https_proxy``,
    ``no_proxy``). Client errors (4xx) and a response past the size limit are not
    retried.
    """
    limits = source_limits(timeout)
    last: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            return _download(url, limits)
        except urllib.error.HTTPError as exc:
            last = exc
            if 400 <= exc.code < 500:
                break
        except files.InputLimitError as exc:
            last = exc
            if exc.over == "size":  # the same source would send as much again
                break
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            last = exc
    reason = getattr(last, "reason", None) or last
    raise OSError(f"{reason}")


def read_source(source: str, base: Path, timeout: float, retries: int) -> bytes:
    """Bytes of a URL (http, https, file) or a local path (relative to ``base``), within
    ``source_limits(timeout)``."""
    if "://" not in source:
        path = Path(source).expanduser()
        return files.read_file_within(path if path.is_absolute() else base / path,
                                      source_limits(timeout))  # fmt: skip
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        return http_get(source, timeout, retries)
    if scheme == "file":
        # urllib's own file handler opens without a time limit (a FIFO would block)
        parts = urllib.parse.urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise OSError(f"a file URL names a host ({parts.netloc}); use a local path")
        return files.read_file_within(
            Path(urllib.request.url2pathname(parts.path)), source_limits(timeout)
        )
    raise OSError(f"unsupported URL scheme {scheme!r}: use http, https, file or a local path")


def fetch_first(
    sources: Sequence[str],
    reader: Callable[[str], bytes],
) -> tuple[str, Sonar]:
    """Return the first source whose content is the valid data set, and that data.

    Raises ``OSError`` naming every source and why it failed.
    """
    failures = []
    for source in sources:
        try:
            data = load(reader(source))
        except (OSError, DataError) as exc:
            log.warning("fetch: %s: %s", source, exc)
            failures.append(f"{source}: {exc}")
            continue
        return source, data
    raise OSError("; ".join(failures))
