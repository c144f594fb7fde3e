import http.server
import io
import time
import zipfile
from typing import ClassVar

import numpy as np
import pytest

from sonarlab.data import uci
from tests.conftest import loopback_server, sonar_csv_text, synthetic_sonar

GOOD = sonar_csv_text(*synthetic_sonar())


def zipped(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, text)
        zf.writestr("sonar.names", "description")
    return buf.getvalue()


def test_real_copy_matches_the_pinned_fingerprint(shared_sonar):
    sonar = uci.load(shared_sonar.read_bytes())
    assert len(sonar.labels) == 208 and sonar.X.shape == (208, 60)
    assert int(sonar.y.sum()) == 111  # mines are the positive class
    # canonical text is the file itself, give or take the final newline
    assert uci.canonical_text(sonar).strip() == shared_sonar.read_text().strip()


def test_parsed_values_are_python_floats_in_row_major_order():
    """What the statistics are computed from: the same doubles as ``float()`` of each cell,
    laid out row by row (a column-major copy sums columns in another order)."""
    text = GOOD.replace(GOOD.split(",")[0], "0.1234567890123456", 1)
    X, labels = uci.parse_rows(text)
    expected = [[float(c) for c in line.split(",")[:60]] for line in text.splitlines()]
    assert X.tolist() == expected and X.flags.c_contiguous
    assert labels == [line.rsplit(",", 1)[1] for line in text.splitlines()]
    assert uci.parse(text).X.flags.c_contiguous


def test_line_endings_do_not_change_the_fingerprint(shared_sonar):
    crlf = shared_sonar.read_text().replace("\n", "\r\n").encode()
    assert uci.fingerprint(uci.load(crlf)) == uci.FINGERPRINT


def test_zip_download_is_unpacked(shared_sonar):
    payload = zipped("sonar.all-data", shared_sonar.read_text())
    assert uci.fingerprint(uci.load(payload)) == uci.FINGERPRINT


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "no rows"),
        (b"<!DOCTYPE html><html><body>Service unavailable</body></html>", "HTML"),
        (GOOD.replace(",M\n", ",0.1,M\n", 1).encode(), "row 1: 62 columns"),
        (GOOD.replace("0.", "x.", 1).encode(), "not a number"),
        (GOOD.replace(GOOD.split(",")[0], "nan", 1).encode(), "NaN"),
        (GOOD.replace(GOOD.split(",")[0], "1.5", 1).encode(), "outside [0, 1]"),
        (GOOD.replace(",R\n", ",X\n", 1).encode(), "labels ['X']"),
        (b"PK\x03\x04 this is not really a zip", "corrupt zip"),
        (zipped("other.csv", GOOD), "zip holds no sonar.all-data"),
        (GOOD.encode(), "rows, expected 208"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(payload, message):
    with pytest.raises(uci.DataError) as err:
        uci.load(payload)
    assert message in str(err.value)


def test_truncated_real_copy_is_rejected(shared_sonar):
    lines = shared_sonar.read_text().splitlines()
    with pytest.raises(uci.DataError, match="207 rows, expected 208"):
        uci.load("\n".join(lines[:-1]).encode())


def test_edited_value_fails_the_fingerprint(shared_sonar):
    text = shared_sonar.read_text()
    edited = text.replace("0.0200,", "0.0201,", 1)
    with pytest.raises(uci.DataError, match="fingerprint"):
        uci.load(edited.encode())


def test_fetch_first_falls_through_to_the_next_source(shared_sonar):
    calls = []

    def reader(source):
        calls.append(source)
        if source == "broken":
            raise OSError("connection refused")
        return shared_sonar.read_bytes()

    source, sonar = uci.fetch_first(["broken", "good"], reader)
    assert source == "good" and calls == ["broken", "good"]
    assert np.isclose(sonar.X[0, 0], 0.02)


def test_fetch_first_names_every_failure():
    def reader(source):
        return b"<html>oops</html>" if source == "a" else b""

    with pytest.raises(OSError, match=r"a: got an HTML.*; b: no rows"):
        uci.fetch_first(["a", "b"], reader)


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []
    body = b""

    def do_GET(self):
        self.hits.append(self.path)
        if self.path == "/missing":
            self.send_error(404)
            return
        if self.path == "/flaky" and len(self.hits) <= 2:  # fails twice, then serves
            self.send_error(503)
            return
        if self.path == "/slow":
            time.sleep(2)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(shared_sonar):
    _Handler.hits = []
    _Handler.body = zipped("sonar.all-data", shared_sonar.read_text())
    with loopback_server(_Handler) as url:
        yield url


def test_http_download_of_the_zip(server, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    payload = uci.http_get(f"{server}/sonar.zip", timeout=5, retries=0)
    assert uci.fingerprint(uci.load(payload)) == uci.FINGERPRINT


def test_client_errors_are_not_retried(server, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with pytest.raises(OSError, match="Not Found"):
        uci.http_get(f"{server}/missing", timeout=5, retries=3, backoff=0.01)
    assert _Handler.hits == ["/missing"]


def test_server_errors_are_retried_with_backoff(server, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    payload = uci.http_get(f"{server}/flaky", timeout=5, retries=2, backoff=0.01)
    assert uci.fingerprint(uci.load(payload)) == uci.FINGERPRINT
    assert _Handler.hits == ["/flaky"] * 3


def test_a_stalled_server_times_out(server, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    t0 = time.monotonic()
    with pytest.raises(OSError, match=r"not complete within 0.3 s \(fetch.timeout_seconds"):
        uci.http_get(f"{server}/slow", timeout=0.3, retries=1, backoff=0.01)
    assert time.monotonic() - t0 < 1.9  # two attempts of 0.3 s, not the server's 2 s each
    assert _Handler.hits == ["/slow", "/slow"]


def test_downloads_go_through_the_proxy_variable(server, monkeypatch):
    monkeypatch.setenv("http_proxy", server)  # our server plays the proxy
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    payload = uci.http_get("http://uci.example.invalid/sonar.zip", timeout=5, retries=0)
    assert uci.fingerprint(uci.load(payload)) == uci.FINGERPRINT
    assert _Handler.hits == ["http://uci.example.invalid/sonar.zip"]  # a proxy request


def test_relative_local_source_is_taken_from_the_base(tmp_path):
    (tmp_path / "copy.csv").write_text("x")
    assert uci.read_source("copy.csv", tmp_path, 1, 0) == b"x"
