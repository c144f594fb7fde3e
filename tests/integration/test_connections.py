"""Every connection a stage makes is bounded from connecting to the answer: a Dask
scheduler address and a tracking server that accept a connection and then say nothing,
trickle, close it or answer in another protocol fail a real stage within a stated time,
in one line naming the address and what was expected, before any training and any
run. Every server here is a socket of this process on 127.0.0.1, closed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from sonarlab.grid.cluster import CONNECT_SECONDS
from tests.integration.conftest import BIN, Project, free_port
from tests.integration.test_cluster import Cluster
from tests.integration.test_store_failures import (  # noqa: F401 (fixtures)
    TF_NOISE,
    fresh,
    prepared,
)

pytestmark = pytest.mark.integration

TRICKLE_BYTES = 400  # at most this many, one every TRICKLE_GAP: 80 s for all of them
TRICKLE_GAP = 0.2
HTTP_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n"


POSTGRES_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _postgres_message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


# PostgreSQL's answer to a startup message: authentication ok, the parameters libpq and
# psycopg2 read, a cancel key, ready for a query
POSTGRES_LOGGED_IN = b"".join(
    [_postgres_message(b"R", struct.pack("!i", 0))]
    + [_postgres_message(b"S", f"{k}\0{v}\0".encode())
       for k, v in {"server_version": "16.4", "server_encoding": "UTF8",
                    "client_encoding": "UTF8", "DateStyle": "ISO, MDY",
                    "integer_datetimes": "on", "standard_conforming_strings": "on"}.items()]
    + [_postgres_message(b"K", struct.pack("!ii", 1, 1)), _postgres_message(b"Z", b"I")]
)  # fmt: skip


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
    if mode == "postgres":  # logs a client in (no TLS, no password), then says nothing
        if request == POSTGRES_SSL_REQUEST:
            conn.sendall(b"N")
            conn.recv(65536)  # the startup message
        conn.sendall(POSTGRES_LOGGED_IN)
    elif mode == "http":  # a web server (a scheduler's dashboard, say)
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


def said_within(
    project: Project, proc, seconds: float, name: str, expected: str, bound: float, case: str
) -> None:
    """``the_line`` is ``expected``, said within ``bound`` seconds of the stage's start."""
    line = the_line(project, proc, name)
    assert line == expected
    assert seconds < bound, f"{seconds:.1f} s"
    print(f"\n{case}: {seconds:.1f} s: {line}")


def grid_with_scheduler(project: Project, address: str) -> tuple[object, float]:
    return stage(project, "grid", {"DASK_SCHEDULER_ADDRESS": address})


OR_UNSET = "unset DASK_SCHEDULER_ADDRESS to run the shards in this process"


def grid_said(
    project: Project, proc, seconds: float, expected: str, case: str, connects: int = 1
) -> None:
    """The grid stage said ``expected`` within ``connects`` connection bounds of starting."""
    said_within(project, proc, seconds, "grid@hidden_dropout", expected,
                START_SECONDS + connects * CONNECT_SECONDS, case)  # fmt: skip


def not_reachable(address: str, why: str) -> str:
    return (
        f"Dask scheduler {address} is not reachable ({why}); start it, or unset "
        "DASK_SCHEDULER_ADDRESS to run the shards in this process"
    )


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
        proc, seconds = grid_with_scheduler(fresh, address)
    expected = (
        f"DASK_SCHEDULER_ADDRESS {address} {says}; check the address (a scheduler listens on "
        "8786 by default, its dashboard on 8787)"
    )
    said_within(fresh, proc, seconds, "grid@hidden_dropout", expected,
                START_SECONDS + CONNECT_SECONDS, mode)  # fmt: skip


def test_a_scheduler_whose_host_never_answers_the_connection(fresh):  # noqa: F811
    with full_backlog() as port:
        address = f"tcp://127.0.0.1:{port}"
        proc, seconds = grid_with_scheduler(fresh, address)
    expected = not_reachable(address, f"no answer to a connection within {CONNECT_SECONDS:g} s")
    said_within(fresh, proc, seconds, "grid@hidden_dropout", expected,
                START_SECONDS + CONNECT_SECONDS, "no SYN answer")  # fmt: skip


@contextlib.contextmanager
def stalling_scheduler() -> Iterator[str]:
    """Dask's own listener on 127.0.0.1: it answers Dask's handshake on every connection
    (so the probe passes), then never answers a message, as a scheduler that hangs. Its
    address; its loop and connections end afterwards."""
    from distributed.comm import listen

    stop, box = threading.Event(), {}

    async def handler(comm) -> None:
        for _ in range(1200):  # at most 120 s, and until the test is done
            if stop.is_set():
                break
            await asyncio.sleep(0.1)
        comm.abort()

    async def serve() -> None:
        listener = listen("tcp://127.0.0.1:0", handler)
        await listener.start()
        box["address"] = listener.contact_address
        started.set()
        for _ in range(1500):
            if stop.is_set():
                break
            await asyncio.sleep(0.1)
        listener.stop()

    started = threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert started.wait(30), "the listener did not start"
    try:
        yield box["address"]
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_scheduler_that_answers_the_probe_then_hangs(fresh):  # noqa: F811
    with stalling_scheduler() as address:
        proc, seconds = grid_with_scheduler(fresh, address)
    grid_said(fresh, proc, seconds, (
        f"DASK_SCHEDULER_ADDRESS {address} answered Dask's handshake but did not take a client "
        f"within {CONNECT_SECONDS:g} s; check the scheduler (its log, its load), or {OR_UNSET}"
    ), "probe answered, then silent", connects=2)  # fmt: skip


def test_a_scheduler_whose_worker_does_not_answer(fresh, tmp_path):  # noqa: F811
    """A real scheduler and a real worker, stopped (SIGSTOP): the scheduler lists it for
    minutes, and Client.run would wait for it for ever."""
    cluster = Cluster(tmp_path / "cluster", fresh.env)
    try:
        cluster.add_worker("worker-1")
        cluster.wait_for_workers(1)
        worker = cluster.procs["worker-1"].pid
        os.kill(worker, signal.SIGSTOP)
        try:
            proc, seconds = grid_with_scheduler(fresh, cluster.address)
        finally:
            os.kill(worker, signal.SIGCONT)
    finally:
        cluster.stop()
    grid_said(fresh, proc, seconds, (
        f"Dask scheduler {cluster.address} has a worker that did not answer within "
        f"{CONNECT_SECONDS:g} s (stopped, or overloaded?); restart or remove it, or {OR_UNSET}"
    ), "stopped worker", connects=2)  # fmt: skip


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("tcp://127.0.0.1:{port}", "Connection refused"),  # nothing listens there
        # a name that cannot resolve (RFC 2606): the resolver's words vary, online or not
        ("tcp://no-such-host.invalid:8786", None),
    ],
)
def test_a_scheduler_address_with_nothing_there(fresh, address, why):  # noqa: F811
    address = address.format(port=free_port())
    proc, seconds = grid_with_scheduler(fresh, address)
    if why is None:
        line = the_line(fresh, proc, "grid@hidden_dropout")
        why = line.split(" is not reachable (", 1)[1].split(");", 1)[0]
        assert why and "Traceback" not in why, line
    said_within(fresh, proc, seconds, "grid@hidden_dropout", not_reachable(address, why),
                START_SECONDS + CONNECT_SECONDS, address)  # fmt: skip


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
    said_within(fresh, proc, seconds, "cv@baseline", f"MLflow tracking server {uri} {says}",
                START_SECONDS + 2 * PROBE_SECONDS, mode)  # fmt: skip
