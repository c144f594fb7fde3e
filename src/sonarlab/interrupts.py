"""SIGINT and SIGTERM as exceptions, so that runs end KILLED and temporary files are
removed."""

from __future__ import annotations

import signal


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt: not caught as an error."""


def raise_on_interrupts() -> None:
    """From now on SIGINT raises ``KeyboardInterrupt`` and SIGTERM raises ``Terminated``
    in the main thread. SIGINT too is set explicitly: a process started in the
    background by a shell inherits SIGINT ignored, and Python then leaves it ignored, so
    `kill -INT` did nothing to a stage started that way."""

    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, handler)
