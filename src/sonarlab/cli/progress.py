"""Progress of long training loops: a live line on a terminal, a throttled log line elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger(__name__)


def _fmt(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Counts units of work (epochs) and reports position, elapsed time and time left.

    On a TTY it redraws one line; otherwise it logs at most every ``every`` seconds,
    so CI and DVC logs stay short.
    """

    def __init__(
        self,
        label: str,
        total: int,
        every: float = 30.0,
        stream: TextIO | None = None,
        clock=time.monotonic,
    ) -> None:
        self.label, self.total, self.every, self.clock = label, total, every, clock
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.start = clock()
        self.last = self.start

    def advance(self, n: int = 1, where: str = "") -> None:
        self.update(self.done + n, where)

    def update(self, done: int, where: str = "") -> None:
        """Set the units done so far."""
        self.done = done
        now = self.clock()
        if self.tty:
            self.stream.write(f"\r{self.line(where, now)}\033[K")
            self.stream.flush()
        elif now - self.last >= self.every:
            log.info(self.line(where, now))
            self.last = now

    def line(self, where: str, now: float) -> str:
        elapsed = now - self.start
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = _fmt(left) if self.done else "?"
        return f"{self.label}: {where} {pct:5.1f}% elapsed {_fmt(elapsed)}, ~{eta} left"

    def close(self, message: str = "") -> None:
        if self.tty:
            self.stream.write("\n")
        log.info("%s: %s in %s", self.label, message or "done", _fmt(self.clock() - self.start))
