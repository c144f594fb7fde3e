"""SIGINT and SIGTERM, at any moment of a command's life.

A command goes through three phases, and one handler knows which it is in:

- *starting*: from the first import of ``sonarlab`` when run with ``python -m``
  (``guard_start``) until its work begins. Nothing exists yet to clean up, so a signal
  ends the process at once with one line;
- *working* (``begin_work`` .. ``end_work``): the first signal raises
  ``KeyboardInterrupt`` (SIGINT) or ``Terminated`` (SIGTERM) in the main thread, so that
  runs end KILLED and temporary files are removed on the way out. A second signal during
  that clean-up ends the process at once: it is never ignored, never a traceback;
- *done*: the work ended (outputs complete, or the error reported); a signal ends the
  process at once with one line.

Exit codes are the shell's: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt: not caught as an error."""


class _State:
    label = "sonarlab"
    phase = "library"  # starting | working | cleaning | done | library (not a command)
    previous: dict | None = None  # the importer's handlers, when not run as a command
    signum = 0  # the signal raised as an exception in the working phase
    unraisable_hook = None  # Python's, while ours is installed


def _resend() -> None:
    """Send the signal again shortly, from another thread (sent from here it would land
    in the hook again), with the handler back in the working phase."""
    timer = threading.Timer(0.01, os.kill, (os.getpid(), _State.signum))
    timer.daemon = True
    try:
        _State.phase = "working"
        timer.start()
    except (KeyboardInterrupt, Terminated):  # it landed in the hook after all: again
        _resend()


def _unraisable(unraisable) -> None:
    """A signal's exception raised inside a finalizer or weakref callback (SQLAlchemy
    has some) is printed by Python as "Exception ignored ... Traceback" and lost, and
    the work went on to exit 0. Here it is sent again, to land in the main flow."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt | Terminated) and (
        _State.phase == "cleaning"
    ):
        _resend()
        return
    (_State.unraisable_hook or sys.__unraisablehook__)(unraisable)


def _exit_now(signum: int, when: str) -> None:
    for s in EXIT_CODES:
        signal.signal(s, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    line = f"{time.strftime('%H:%M:%S')} ERROR {_State.label}: {WORDS[signum]} {when}\n"
    os.write(2, line.encode(errors="replace"))
    os._exit(EXIT_CODES[signum])


def _handler(signum, frame):
    phase = _State.phase
    if phase == "working":
        _State.phase, _State.signum = "cleaning", signum
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated()
    when = {
        "starting": "while starting",
        "cleaning": "again, during the clean-up",
        "done": "after its work had ended",
    }.get(phase, "")
    _exit_now(signum, when)


def guard_start() -> None:
    """Called by ``sonarlab/__init__``: when the process is ``python -m sonarlab...``,
    handle signals from now on. While ``-m`` imports the module's packages
    ``sys.argv[0]`` is ``"-m"`` (Python's documented behaviour); imported as a library,
    the importer's handlers are left alone."""
    if sys.argv[:1] != ["-m"]:
        return
    argv = sys.orig_argv
    i = argv.index("-m") if "-m" in argv else -1
    _State.label = argv[i + 1] if 0 <= i < len(argv) - 1 else "sonarlab"
    _State.phase = "starting"
    for s in EXIT_CODES:
        signal.signal(s, _handler)


def begin_work(label: str) -> None:
    """From now on the first SIGINT raises ``KeyboardInterrupt`` and the first SIGTERM
    ``Terminated`` in the main thread.

    SIGINT too is set explicitly: a process started in the background by a shell
    inherits SIGINT ignored, and Python then leaves it ignored, so `kill -INT` did
    nothing to a stage started that way."""
    if _State.phase == "library":
        _State.previous = {s: signal.getsignal(s) for s in EXIT_CODES}
    _State.label, _State.phase = label, "working"
    if sys.unraisablehook is not _unraisable:
        _State.unraisable_hook, sys.unraisablehook = sys.unraisablehook, _unraisable
    for s in EXIT_CODES:
        signal.signal(s, _handler)


def end_work() -> None:
    """The work has ended: a command now exits at once on a signal; a library caller
    gets its own handlers back."""
    if _State.previous is None:
        _State.phase = "done"
        return
    for s, h in _State.previous.items():
        signal.signal(s, h)
    sys.unraisablehook = _State.unraisable_hook or sys.__unraisablehook__
    _State.phase, _State.previous = "library", None


def exit_command(code: int) -> int:
    """The end of a command: exit now with ``code``, skipping Python's finalization.

    Finalization first puts SIGINT and SIGTERM back to the system's defaults, then
    tears TensorFlow down, which takes seconds: a signal in that window killed the
    process without a word (exit -15). Everything is written and closed by now: the
    stage's files (atomically), its runs (ended), the log (flushed here). A library
    caller gets ``code`` back."""
    if _State.phase != "done":
        return code
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
