"""The signal handler's phases, in this process (a library caller: handlers restored)."""

from __future__ import annotations

import gc
import os
import signal
import time

import pytest

from sonarlab.cli import interrupts


class SignalledWhileCollected:
    """An object whose finalizer receives SIGTERM: Python swallows what a finalizer
    raises, as it did for SQLAlchemy's weakref callbacks in a stage."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs here, inside the finalizer


def test_a_signal_swallowed_by_a_finalizer_is_raised_again_in_the_main_flow(capsys):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    interrupts.begin_work("test")
    try:
        with pytest.raises(interrupts.Terminated):
            SignalledWhileCollected()  # collected at once: its finalizer runs here
            gc.collect()
            for _ in range(100):  # the re-sent signal lands at the next bytecode
                time.sleep(0.01)
    finally:
        interrupts.end_work()
    assert "Exception ignored" not in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_the_first_signal_raises_and_a_library_caller_gets_its_handlers_back():
    before = signal.getsignal(signal.SIGINT)
    interrupts.begin_work("test")
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100):
                time.sleep(0.01)
    finally:
        interrupts.end_work()
    assert signal.getsignal(signal.SIGINT) is before
