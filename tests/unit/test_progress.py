import io
import logging

from sonarlab.cli.progress import Progress


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_logs_are_throttled_and_show_time_left(caplog):
    clock = FakeClock()
    p = Progress("cv@x", total=100, every=10, stream=io.StringIO(), clock=clock)
    with caplog.at_level(logging.INFO, logger="sonarlab.cli.progress"):
        for _ in range(50):
            clock.t += 1
            p.advance(1, "fold 1/2")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5  # one every 10 s over 50 s, not one per epoch
    assert lines[-1] == "cv@x: fold 1/2  50.0% elapsed 50s, ~50s left"


def test_tty_redraws_one_line():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream, clock = Tty(), FakeClock()
    p = Progress("s", total=4, stream=stream, clock=clock)
    for _ in range(4):
        clock.t += 30
        p.advance(1, "e")
    assert stream.getvalue().count("\r") == 4
    assert "100.0% elapsed 2m00s, ~0s left" in stream.getvalue()
