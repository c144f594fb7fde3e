"""SIGTERM as an exception, so that runs end KILLED and temporary files are removed."""

from __future__ import annotations

import signal


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt: not caught as an error."""


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises ``Terminated`` in the main thread."""

    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
