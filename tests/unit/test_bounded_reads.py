"""Inputs from outside the project are read within a size and a time limit: a source that
never ends, never starts or trickles stops at a limit, with an error naming it."""

from __future__ import annotations

import http.server
import io
import os
import threading
import time
import zipfile
from typing import ClassVar

import pytest
import yaml

from sonarlab.core import files, params
from sonarlab.core.params import ConfigError
from sonarlab.data import uci
from sonarlab.design import grids
from tests.conftest import ROOT, loopback_server

LIMITS = files.InputLimits(1000, 0.5, "a test's size", "a test's time")


def test_a_file_within_the_limits_is_read_whole(tmp_path):
    path = tmp_path / "small"
    path.write_bytes(b"x" * 1000)  # exactly the limit
    assert files.read_file_within(path, LIMITS) == b"x" * 1000
    (tmp_path / "empty").write_bytes(b"")
    assert files.read_file_within(tmp_path / "empty", LIMITS) == b""


def test_a_file_one_byte_past_the_limit_is_refused(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * 1001)
    with pytest.raises(files.InputLimitError, match=r"larger than 1000 bytes \(a test's size\)"):
        files.read_file_within(path, LIMITS)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_that_never_ends_stops_at_the_size_limit(device):
    limits = files.InputLimits(2**20, 10, "why")
    t0 = time.monotonic()
    with pytest.raises(files.InputLimitError, match=r"larger than 1 MiB \(why\)") as err:
        files.read_file_within(device, limits)
    assert err.value.over == "size" and time.monotonic() - t0 < 5


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        files.read_file_within(tmp_path / "nothing", LIMITS)


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def test_a_fifo_without_a_writer_stops_at_the_time_limit(fifo):
    """Opening a FIFO for reading waits for a writer: opened non-blocking, it cannot hang."""
    t0 = time.monotonic()
    with pytest.raises(files.InputLimitError, match=r"not complete within 0.5 s \(a test's time\)"):
        files.read_file_within(fifo, LIMITS)
    assert 0.5 <= time.monotonic() - t0 < 3


def writer(fifo, payload: bytes, pause: float, count: int, stop: threading.Event):
    """Writes ``payload`` ``count`` times, ``pause`` apart, then closes (or stops early)."""

    def run():
        fd = os.open(fifo, os.O_WRONLY)  # waits for the reader
        try:
            for _ in range(count):
                if stop.is_set():
                    break
                os.write(fd, payload)
                time.sleep(pause)
        except BrokenPipeError:
            pass  # the reader gave up
        finally:
            os.close(fd)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_fifo_that_trickles_stops_at_the_time_limit(fifo):
    stop = threading.Event()
    thread = writer(fifo, b"0", pause=0.05, count=200, stop=stop)  # 10 s if never stopped
    t0 = time.monotonic()
    try:
        with pytest.raises(files.InputLimitError, match=r"not complete within 0\.5 s") as err:
            files.read_file_within(fifo, LIMITS)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert err.value.over == "time" and time.monotonic() - t0 < 3


def test_a_fifo_that_floods_stops_at_the_size_limit(fifo):
    stop = threading.Event()
    thread = writer(fifo, b"0" * 4096, pause=0, count=10_000, stop=stop)
    try:
        with pytest.raises(files.InputLimitError, match="larger than 1000 bytes"):
            files.read_file_within(fifo, LIMITS)
    finally:
        stop.set()
        thread.join(timeout=5)


def test_a_fifo_whose_writer_finishes_is_read_whole(fifo):
    stop = threading.Event()
    thread = writer(fifo, b"abc", pause=0.01, count=3, stop=stop)
    assert files.read_file_within(fifo, LIMITS) == b"abc" * 3
    thread.join(timeout=5)


def test_a_zip_whose_member_inflates_past_the_limit_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("sonar.all-data", b"0" * (uci.SOURCE_MAX_BYTES + 1))
    assert len(buf.getvalue()) < 10_000  # a small download
    with pytest.raises(uci.DataError, match=r"zip member sonar.all-data: larger than 1 MiB"):
        uci.decode(buf.getvalue())


def test_params_larger_than_the_limit_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("fetch:\n" + "  # padding\n" * (params.PARAMS_MAX_BYTES // 12 + 1))
    with pytest.raises(ConfigError, match=rf"{path}: larger than 1 MiB \(the limit for a params"):
        params.read_params(path)


def test_params_from_a_fifo_that_never_ends_stop_at_the_time_limit(fifo, monkeypatch):
    monkeypatch.setattr(params, "PARAMS_LIMITS", files.InputLimits(2**20, 0.3))
    with pytest.raises(ConfigError, match=rf"{fifo}: not complete within 0.3 s"):
        params.read_params(fifo)


def test_params_that_are_not_utf8_are_one_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"fetch: \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        params.read_params(path)
    path.write_text(yaml.safe_dump({"fetch": {"retries": 1}}))
    assert params.read_params(path) == {"fetch": {"retries": 1}}


def test_a_file_url_is_read_within_the_limits(tmp_path, fifo):
    (tmp_path / "copy.csv").write_text("x")
    assert uci.read_source((tmp_path / "copy.csv").as_uri(), tmp_path, 1, 0) == b"x"
    with pytest.raises(files.InputLimitError, match="larger than 1 MiB"):
        uci.read_source("file:///dev/zero", tmp_path, 5, 0)
    with pytest.raises(files.InputLimitError, match=r"not complete within 0\.3 s"):
        uci.read_source(fifo.as_uri(), tmp_path, 0.3, 0)


def test_other_url_schemes_are_refused(tmp_path):
    with pytest.raises(OSError, match="unsupported URL scheme 'ftp'"):
        uci.read_source("ftp://example.invalid/sonar.zip", tmp_path, 1, 0)


class _Endless(http.server.BaseHTTPRequestHandler):
    """``/flood``: data without end; ``/trickle``: a byte every 50 ms; ``/huge``: says a
    gigabyte is coming; ``/slow-headers``: a header byte every 50 ms. Each is bounded
    in count so that no server thread outlives the test by long."""

    hits: ClassVar[list[str]] = []

    def do_GET(self):
        self.hits.append(self.path)
        try:
            if self.path == "/slow-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(200):
                    self.wfile.write(b"a")
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            self.send_response(200)
            if self.path == "/huge":
                self.send_header("Content-Length", str(2**30))
            self.end_headers()
            if self.path == "/flood":
                for _ in range(10_000):  # 640 MB at most; the client stops at 1 MiB
                    self.wfile.write(b"0" * 65536)
            elif self.path in ("/trickle", "/huge"):
                for _ in range(200):  # 10 s at most
                    self.wfile.write(b"0")
                    self.wfile.flush()
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what it should do

    def log_message(self, *args):
        pass


@pytest.fixture
def endless(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    _Endless.hits = []
    with loopback_server(_Endless) as url:
        yield url


@pytest.mark.parametrize("path", ["/flood", "/huge"])
def test_a_response_larger_than_the_limit_stops_early_and_is_not_retried(endless, path):
    t0 = time.monotonic()
    with pytest.raises(OSError, match=r"larger than 1 MiB \(the limit for a data source"):
        uci.http_get(endless + path, timeout=5, retries=2, backoff=0.01)
    assert time.monotonic() - t0 < 4  # /huge is refused by its Content-Length at once
    assert _Endless.hits == [path]


@pytest.mark.parametrize("path", ["/trickle", "/slow-headers"])
def test_a_trickling_response_stops_at_the_whole_download_time_limit(endless, path):
    """A byte every 50 ms never trips a socket timeout of 0.5 s: the deadline does."""
    t0 = time.monotonic()
    with pytest.raises(OSError, match=r"not complete within 0.5 s \(fetch.timeout_seconds"):
        uci.http_get(endless + path, timeout=0.5, retries=1, backoff=0.01)
    assert 1.0 <= time.monotonic() - t0 < 4  # two attempts of 0.5 s
    assert _Endless.hits == [path, path]


def test_a_params_file_of_yaml_aliases_gives_a_short_error(tmp_path):
    """A 1 KB file whose aliases nest to 10^8 numbers: the error quotes the value cut short
    (its whole repr would be a 500 MB line)."""
    levels = ["a: &a [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]"]
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    grid = "grids:\n  bomb:\n    variant: visible\n    axes:\n      model.input_dropout: *h\n"
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(levels) + "\n" + grid)
    assert path.stat().st_size < 2000
    values = params.read_params(path)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"grids.bomb.axes.model.input_dropout: got \[\[\[") as e:
        grids.load_grid({**yaml.safe_load((ROOT / "params.yaml").read_text()), **values}, "bomb")
    assert len(str(e.value)) < 2000 and time.monotonic() - t0 < 5
