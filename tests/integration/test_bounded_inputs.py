"""Sources that never end, never start or trickle, fed to the real ``fetch`` stage and
``predict`` processes: each stops at a limit with one line naming the source and the
limit, in bounded time and memory, and writes nothing."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from tests.conftest import ROOT, loopback_server
from tests.integration.conftest import BIN

pytestmark = pytest.mark.integration

TIMEOUT = 2  # fetch.timeout_seconds and predict --read-timeout in these tests
MARGIN = 20  # the interpreter's start and imports on a loaded 2-core machine
MAX_RSS_MB = 600  # an unbounded read of /dev/zero passes this within a second
# Runs a command as its only child and writes the child's peak RSS (KiB) to a file:
# a fresh process, so RUSAGE_CHILDREN holds that one child and nothing else.
MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)
# Writes a line fragment to a FIFO every 50 ms until the reader goes (at most 60 s).
SLOW_WRITER = (
    "import sys, time\n"
    "with open(sys.argv[1], 'w') as fifo:\n"
    "    for _ in range(1200):\n"
    "        fifo.write('0.1,'); fifo.flush(); time.sleep(0.05)\n"
)


@dataclass
class Outcome:
    code: int
    stderr: str
    seconds: float
    peak_rss_mb: float

    @property
    def last_line(self) -> str:
        return self.stderr.strip().splitlines()[-1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A project with nothing but its wiring and params: the stages find it by dvc.yaml."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "dvc.yaml", root)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["fetch"] = {"urls": [f"http://127.0.0.1:{closed_port()}/sonar.zip"],
                       "timeout_seconds": TIMEOUT, "retries": 0}  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def run(root: Path, *args: str, source: str | None = None) -> Outcome:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "SONAR_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", no_proxy="127.0.0.1")
    if source is not None:
        env["SONAR_SOURCE"] = source
    rss_file = root.parent / "peak_rss"
    cmd = [str(BIN / "python"), "-c", MEASURE, str(rss_file), str(BIN / "python"), *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - t0
    peak = int(rss_file.read_text()) / 1024
    print(f"{' '.join(args)} ({source}): exit {proc.returncode}, {seconds:.1f} s, "
          f"peak RSS {peak:.0f} MB: {proc.stderr.strip().splitlines()[-1]}")  # fmt: skip
    return Outcome(proc.returncode, proc.stderr, seconds, peak)


def assert_stopped(outcome: Outcome, *, names: str, limit: str, code: int = 1) -> None:
    assert outcome.code == code, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert names in outcome.last_line and limit in outcome.last_line, outcome.last_line
    assert outcome.peak_rss_mb < MAX_RSS_MB


@pytest.fixture
def slow_fifo(tmp_path):
    """A FIFO fed by another process that writes a little every 50 ms, without end."""
    path = tmp_path / "endless.fifo"
    os.mkfifo(path)
    writer = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(path)],
                              stderr=subprocess.DEVNULL)  # fmt: skip
    yield path
    writer.kill()
    writer.wait(timeout=10)


def fetch(root: Path, source: str) -> Outcome:
    return run(root, "-m", "sonarlab.stages.fetch", source=source)


def test_fetch_from_a_device_that_never_ends_stops_at_the_size_limit(tiny):
    outcome = fetch(tiny, "/dev/zero")
    assert_stopped(
        outcome, names="/dev/zero: larger than 1 MiB", limit="the limit for a data source"
    )
    assert outcome.seconds < MARGIN
    assert not (tiny / "data" / "raw" / "sonar.csv").exists()


def test_fetch_from_a_fifo_that_never_ends_stops_at_the_time_limit(tiny, slow_fifo):
    outcome = fetch(tiny, str(slow_fifo))
    assert_stopped(
        outcome,
        names=f"{slow_fifo}: not complete within {TIMEOUT} s",
        limit="(fetch.timeout_seconds",
    )
    assert TIMEOUT <= outcome.seconds < TIMEOUT + MARGIN
    assert not (tiny / "data" / "raw" / "sonar.csv").exists()


class _Endless(http.server.BaseHTTPRequestHandler):
    """``/flood``: 64 KiB blocks without end; ``/trickle``: a byte every 50 ms. Both stop
    when the client goes, and after a bounded count in any case."""

    chunks: ClassVar[dict[str, tuple[bytes, float, int]]] = {
        "/flood": (b"0" * 65536, 0.0, 20_000),
        "/trickle": (b"0", 0.05, 1200),
    }

    def do_GET(self):
        block, pause, count = self.chunks[self.path]
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(count):
                self.wfile.write(block)
                self.wfile.flush()
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    with loopback_server(_Endless) as url:
        yield url


def test_fetch_of_an_endless_http_response_stops_at_the_size_limit(tiny, server):
    outcome = fetch(tiny, f"{server}/flood")
    assert_stopped(
        outcome, names=f"{server}/flood: larger than 1 MiB", limit="the limit for a data source"
    )
    assert outcome.seconds < MARGIN
    assert not (tiny / "data" / "raw" / "sonar.csv").exists()


def test_fetch_of_a_trickling_http_response_stops_at_the_time_limit(tiny, server):
    outcome = fetch(tiny, f"{server}/trickle")
    assert_stopped(
        outcome,
        names=f"{server}/trickle: not complete within {TIMEOUT} s",
        limit="(fetch.timeout_seconds",
    )
    assert TIMEOUT <= outcome.seconds < TIMEOUT + MARGIN
    assert not (tiny / "data" / "raw" / "sonar.csv").exists()


def predict(root: Path, *args: str) -> Outcome:
    return run(root, "-m", "sonarlab.predict", "hidden", *args)


def test_predict_rows_from_a_device_that_never_ends_stop_at_the_size_limit(tiny):
    outcome = predict(tiny, "/dev/zero")
    assert_stopped(outcome, names="predict hidden: /dev/zero: larger than 16 MiB",
                   limit="the limit for predict's rows")  # fmt: skip


def test_predict_rows_from_a_fifo_that_never_ends_stop_at_the_time_limit(tiny, slow_fifo):
    outcome = predict(tiny, str(slow_fifo), "--read-timeout", str(TIMEOUT))
    assert_stopped(outcome, names=f"predict hidden: {slow_fifo}: not complete within {TIMEOUT} s",
                   limit="(--read-timeout)")  # fmt: skip
    assert TIMEOUT <= outcome.seconds < TIMEOUT + MARGIN


def test_predict_samples_above_the_bound_stop_before_the_rows_or_the_model(tiny):
    """The project has no model and the rows never end: the bound is checked first."""
    outcome = predict(tiny, "/dev/zero", "--samples", "10001")
    assert_stopped(outcome, code=2, names="--samples: got 10001",
                   limit="allowed: an integer from 0 to 10000")  # fmt: skip


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("rows.csv/out.csv", "--output rows.csv/out.csv: rows.csv is a file, not a folder"),
        ("results", "--output results: is a folder; name a file"),
        ("/sys/out.csv", "--output /sys/out.csv: cannot write in /sys ("),
    ],
)
def test_predict_names_an_output_it_cannot_write_before_the_model(tiny, output, message):
    """No model exists here: the output's failure is found before the model is needed."""
    (tiny / "rows.csv").write_text(",".join(["0.5"] * 60) + ",M\n")
    (tiny / "results").mkdir()
    outcome = predict(tiny, "rows.csv", "--output", output)
    assert_stopped(outcome, names=f"predict hidden: {message}", limit="")
