"""Every connection a stage makes is bounded from connecting to the answer: a Dask
scheduler address and a tracking server that accept a connection and then say nothing,
trickle, close it or answer in another protocol fail a real stage within a stated time,
in one line naming the address and what was expected, before any training and any
run. Every server here is a socket of this process on 127.0.0.1, closed afterwards."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sonarlab.grid.cluster import CONNECT_SECONDS
from tests.integration.conftest import BIN, Project
from tests.integration.test_store_failures import (  # noqa: F401 (fixtures)
    TF_NOISE,
    fresh,
    prepared,
)

pytestmark = pytest.mark.integration

TRICKLE_BYTES = 400  # at most this many, one every TRICKLE_GAP: 80 s for all of them
TRICKLE_GAP = 0.2
HTTP_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n"


def _trickle(conn: socket.socket, data: bytes, stop: threading.Event) -> None:
    for i in range(min(len(data), TRICKLE_BYTES)):
        if stop.wait(TRICKLE_GAP):
            return
        conn.sendall(data[i : i + 1])


def _answer(conn: socket.socket, mode: str, stop: threading.Event) -> None:
    """What the server does with one connection (each mode bounded in bytes and time)."""
    if mode == "close":
        conn.close()
        return
    if mode == "silent":
        stop.wait(120)
        return
    request = conn.recv(65536)
    if mode == "http":  # a web server (a scheduler's dashboard, say)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    elif mode == "garbage":  # not HTTP at all
        conn.sendall(b"\x00\x01SSH-2.0-OpenSSH_9.6\r\n")
    elif mode == "trickle":  # the whole answer, a byte at a time
        _trickle(conn, HTTP_ANSWER + b" " * 300, stop)
    elif mode == "trickle-api":  # /health at once, MLflow's API call a byte at a time
        if request.startswith(b"GET /health"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
        else:
            _trickle(conn, HTTP_ANSWER + b" " * 300, stop)
    stop.wait(120)


@contextlib.contextmanager
def hostile_server(mode: str) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts every connection and then behaves as
    ``mode`` says; its port. Its sockets are closed and its threads ended afterwards."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    stop, conns, threads = threading.Event(), [], []

    def handle(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            _answer(conn, mode, stop)

    listener.settimeout(0.2)  # closing a listener does not wake its accept()

    def serve() -> None:
        accepted = 0
        while accepted < 100 and not stop.is_set():  # at most 100 connections
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted += 1
            conn.settimeout(None)
            conns.append(conn)
            thread = threading.Thread(target=handle, args=(conn,), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for thread in [acceptor, *threads]:
            thread.join(timeout=10)


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose SYNs go unanswered, as a host that drops them: a listener with a
    backlog of 0 that never accepts, its queue filled by connections of our own."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        with socket.socket() as probe:  # the queue is full: this SYN is dropped
            probe.settimeout(1.5)
            with pytest.raises(TimeoutError):
                probe.connect(("127.0.0.1", port))
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def stage(project: Project, module: str, env: dict) -> tuple[object, float]:
    t0 = time.monotonic()
    proc = project.run(
        str(BIN / "python"), "-m", f"sonarlab.stages.{module}",
        *(["hidden_dropout"] if module == "grid" else ["baseline"]),
        env={"SONARLAB_STORE_TIMEOUT": "1", "no_proxy": "127.0.0.1", **env}, check=False,
    )  # fmt: skip
    return proc, time.monotonic() - t0


def the_line(project: Project, proc, name: str) -> str:
    """Exit 1, one line on stderr (beside TensorFlow's start-up), no traceback, no
    output, no store: nothing was trained and no run was made."""
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if not TF_NOISE.match(line)]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not (project.root / "results" / "baseline").exists()
    assert not (project.root / "results" / "grid").exists()
    assert not (project.root / "mlflow.db").exists()  # no run, RUNNING or otherwise
    head = f" ERROR {name}: "
    assert head in lines[0], lines[0]
    return lines[0].split(head, 1)[1]


# Seconds a stage takes to start (Python, TensorFlow, the data) before it connects.
START_SECONDS = 45


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("silent", f"accepted a connection but did not answer as a Dask scheduler within "
                   f"{CONNECT_SECONDS:g} s"),
        ("http", "accepted a connection but its answer is not Dask's protocol (MemoryError: "
                 "an HTTP server?)"),
        ("close", "accepted a connection but closed it without answering as a Dask scheduler"),
    ],
)  # fmt: skip
def test_a_scheduler_address_that_is_not_a_dask_scheduler(fresh, mode, says):  # noqa: F811
    with hostile_server(mode) as port:
        address = f"tcp://127.0.0.1:{port}"
        proc, seconds = stage(fresh, "grid", {"DASK_SCHEDULER_ADDRESS": address})
    line = the_line(fresh, proc, "grid@hidden_dropout")
    assert line == (
        f"DASK_SCHEDULER_ADDRESS {address} {says}; check the address (a scheduler listens on "
        "8786 by default, its dashboard on 8787)"
    )
    assert seconds < START_SECONDS + CONNECT_SECONDS
    print(f"\n{mode}: {seconds:.1f} s: {line}")


def test_a_scheduler_whose_host_never_answers_the_connection(fresh):  # noqa: F811
    with full_backlog() as port:
        address = f"tcp://127.0.0.1:{port}"
        proc, seconds = stage(fresh, "grid", {"DASK_SCHEDULER_ADDRESS": address})
    line = the_line(fresh, proc, "grid@hidden_dropout")
    assert line == (
        f"Dask scheduler {address} is not reachable (no answer to a connection within "
        f"{CONNECT_SECONDS:g} s); start it, or unset DASK_SCHEDULER_ADDRESS to run the shards "
        "in this process"
    )
    assert seconds < START_SECONDS + CONNECT_SECONDS
    print(f"\nno SYN answer: {seconds:.1f} s: {line}")


PROBE_SECONDS = 5  # runs.check_reachable's bound for each request of the probe
TOO_SLOW = (
    "did not answer GET {path} within 5 s (from connecting to the last byte); check the "
    "server (its log, its load) and the URI in MLFLOW_TRACKING_URI"
)


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("silent", TOO_SLOW.format(path="/health")),
        ("trickle", TOO_SLOW.format(path="/health")),
        ("trickle-api", TOO_SLOW.format(path="/api/2.0/mlflow/experiments/get-by-name")),
        ("close", "accepted a connection but closed it without answering GET /health; check "
                  "the URI (host, port, http or https) in MLFLOW_TRACKING_URI and the server's "
                  "log"),
        ("garbage", "answers GET /health, but not in HTTP (BadStatusLine: "
                    "'\\x00\\x01SSH-2.0-OpenSSH_9.6'); check the URI (host, port, http or "
                    "https) in MLFLOW_TRACKING_URI"),
    ],
)  # fmt: skip
def test_a_tracking_server_that_accepts_but_does_not_answer_in_time(fresh, mode, says):  # noqa: F811
    with hostile_server(mode) as port:
        uri = f"http://127.0.0.1:{port}"
        proc, seconds = stage(fresh, "cv", {"MLFLOW_TRACKING_URI": uri})
    line = the_line(fresh, proc, "cv@baseline")
    assert line == f"MLflow tracking server {uri} {says}"
    assert seconds < START_SECONDS + 2 * PROBE_SECONDS
    print(f"\n{mode}: {seconds:.1f} s: {line}")
