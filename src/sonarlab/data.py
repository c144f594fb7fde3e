"""Getting, parsing and validating the UCI Sonar (Mines vs. Rocks) data.

Pure functions turn downloaded bytes into a validated table; ``fetch_first`` tries
each source in turn. The fingerprint is taken over the parsed content in a
canonical text form, so copies that differ only in line endings or number
formatting are recognised as the same data.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sonarlab.config import N_BANDS

log = logging.getLogger(__name__)

N_ROWS = 208
CLASS_COUNTS = {"M": 111, "R": 97}
POSITIVE = "M"  # the models output P(mine)
ZIP_MEMBER = "sonar.all-data"
# sha256 of canonical_text() of the UCI data set (208 rows, 4-decimal values).
FINGERPRINT = "e90434cdbf00fcf93ffa911fe447ae25606979658e60f1d32e155c3b5240234d"


class DataError(ValueError):
    """What a source gave is not the Sonar data set."""


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
                return zf.read(names[0]).decode("utf-8")
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
    """The pipeline's own copy (``data/raw/sonar.csv``), validated again on read."""
    return load(path.read_bytes())


def http_get(url: str, timeout: float, retries: int, backoff: float = 0.5) -> bytes:
    """GET with a timeout and a few retries with exponential backoff.

    urllib honours the standard proxy variables (``http_proxy``, ``https_proxy``,
    ``no_proxy``). Client errors (4xx) are not retried.
    """
    last: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "sonarlab-fetch"})
            # A new opener reads the proxy variables now; urlopen's shared one keeps
            # whatever they were at its first use in the process.
            with urllib.request.build_opener().open(req, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            last = exc
            if 400 <= exc.code < 500:
                break
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            last = exc
    reason = getattr(last, "reason", None) or last
    raise OSError(f"{reason}")


def read_source(source: str, base: Path, timeout: float, retries: int) -> bytes:
    """Bytes of a URL (http, https, file) or a local path (relative to ``base``)."""
    if "://" in source:
        return http_get(source, timeout, retries)
    path = Path(source).expanduser()
    return (path if path.is_absolute() else base / path).read_bytes()


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
