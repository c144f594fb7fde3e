"""A deadline for a whole exchange over sockets, from connecting to the last byte.

A socket timeout bounds each read, not the exchange: a server that sends a byte a
second, or that answers the handshake and then says nothing more, never trips it. A
``Watchdog`` shuts every socket it watches down at its deadline, from a timer's thread;
a read blocked on one of them in the main thread then wakes and sees the end of the
stream, and the caller asks ``expired`` to tell that from a server that hung up.

Used by the data download (``data.uci``), the tracking-server probe and the database
probe (``tracking.stores``). Standard library only: ``core`` imports nothing above it.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import threading
import time
import urllib.request


class Watchdog:
    """Shuts the sockets it ``watch``es down ``seconds`` after it is entered."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline (at once if it has passed)."""
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def watched_opener(watchdog: Watchdog) -> urllib.request.OpenerDirector:
    """A new urllib opener whose HTTP(S) connections ``watchdog`` watches. New, so that it
    reads the proxy variables now (``urlopen``'s shared one keeps those of its first use)."""
    return urllib.request.build_opener(WatchedHTTPHandler(watchdog), WatchedHTTPSHandler(watchdog))


class _Watched:
    """An HTTP(S) connection whose socket a ``Watchdog`` may shut down."""

    def __init__(self, *args, watchdog: Watchdog, **kwargs):
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog

    def connect(self) -> None:
        super().connect()  # for HTTPS, TLS included: self.sock is then the TLS socket
        self._watchdog.watch(self.sock)


class WatchedHTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class WatchedHTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: Watchdog):
        super().__init__()
        self.watchdog = watchdog

    def http_open(self, req):
        return self.do_open(functools.partial(WatchedHTTPConnection, watchdog=self.watchdog), req)


class WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: Watchdog):
        super().__init__()
        self.watchdog = watchdog

    def https_open(self, req):
        return self.do_open(functools.partial(WatchedHTTPSConnection, watchdog=self.watchdog), req)
