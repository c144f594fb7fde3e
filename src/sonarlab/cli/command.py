"""What every CLI shares: its argument parser, logging set-up, and turning every failure
into one line on stderr and an exit code."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from sonarlab.cli import interrupts
from sonarlab.core.errors import DataError, StageError
from sonarlab.core.files import FormatError
from sonarlab.core.params import IDENTIFIER, ConfigError

log = logging.getLogger("sonarlab")

# CRITICAL is not offered: it would hide the one line that says why a stage failed.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def one_line(text: str) -> str:
    """``text`` with every line break and other unprintable character escaped (``\\n``,
    ``\\x1b``, ``\\u2028``): a value from the command line, the environment or a file
    can never break a message into several lines or move the cursor."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class CliParser(argparse.ArgumentParser):
    """``argparse``'s parser, but a bad argument is one line (and exit code 2) instead of
    the usage and then the error; ``--help`` still prints the whole usage."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


class OneLineFormatter(logging.Formatter):
    """One record, one line: the message's line breaks are escaped (a traceback that a
    library attaches to its record still follows on lines of its own)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))


def log_level(env: Mapping[str, str] | None = None) -> str:
    """The level ``SONARLAB_LOG_LEVEL`` names (any case; unset or empty: INFO)."""
    env = os.environ if env is None else env
    given = env.get("SONARLAB_LOG_LEVEL", "")
    level = given.strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ConfigError(
            f"SONARLAB_LOG_LEVEL: got {given!r}; allowed: {', '.join(LOG_LEVELS)} (any case)"
        )
    return level


def set_up_logging() -> ConfigError | None:
    """Log to stderr, one line per record; a bad ``SONARLAB_LOG_LEVEL`` is returned (to be
    reported as any bad parameter) and INFO used meanwhile."""
    try:
        level, problem = log_level(), None
    except ConfigError as exc:
        level, problem = "INFO", exc
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler])
    return problem


def save_traceback(stage: str, exc: BaseException) -> str:
    """Write ``exc``'s traceback to a new file in the system's temporary folder (not the
    command's own, which goes when the command ends); its path."""
    prefix = f"sonarlab-{stage.partition('@')[0]}-"
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".txt", dir=_outer_temp[-1])
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as out:
        out.write(f"{stage}: {' '.join(map(repr, sys.argv))}\n")
        traceback.print_exception(exc, file=out)
    return path


def run(stage: str, body: Callable[[], None]) -> int:
    """Run ``body``; any failure ends it with one line on stderr and a non-zero exit code:
    2 for a bad parameter (params.yaml, an argument, an environment variable), 1 for bad
    data, a missing input or a failed operation, 130/143 for Ctrl-C/SIGTERM."""
    with private_temp_folder():
        code = _run(stage, body)
    return interrupts.exit_command(code)


# the temporary folder outside the command's own (None: the system's), for what must
# outlive the command, such as a bug's traceback
_outer_temp: list[str | None] = [None]


@contextlib.contextmanager
def private_temp_folder() -> Iterator[Path]:
    """A temporary folder of this command's own, removed when it ends: TensorFlow's
    autograph writes a generated module (``__autograph_generated_file*.py``) into the
    temporary folder for every function it converts and never deletes one, and MLflow
    stages artifacts there. Everything the command makes there goes with the folder."""
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    folder = Path(tempfile.mkdtemp(prefix="sonarlab-"))
    _outer_temp.append(tempfile.gettempdir())
    tempfile.tempdir, os.environ["TMPDIR"] = str(folder), str(folder)
    try:
        yield folder
    finally:
        _outer_temp.pop()
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(folder, ignore_errors=True)


def _run(stage: str, body: Callable[[], None]) -> int:
    problem = set_up_logging()
    interrupts.begin_work(stage)
    try:
        if problem is not None:
            raise problem
        body()
        interrupts.end_work()
    except (KeyboardInterrupt, interrupts.Terminated) as exc:
        end_active_runs()
        interrupts.end_work()
        interrupted = isinstance(exc, KeyboardInterrupt)
        log.error("%s: %s", stage, "interrupted" if interrupted else "terminated")
        return 130 if interrupted else 143
    except ConfigError as exc:
        interrupts.end_work()
        log.error("%s: invalid parameter: %s", stage, exc)
        return 2
    except FileNotFoundError as exc:
        interrupts.end_work()
        if exc.filename is None:  # raised with a message of its own
            log.error("%s: %s", stage, exc)
        else:
            log.error("%s: missing input %s (run `dvc repro` to make it)", stage, exc.filename)
        return 1
    except (DataError, FormatError, StageError, OSError) as exc:
        interrupts.end_work()
        log.error("%s: %s", stage, exc)
        return 1
    except Exception as exc:
        interrupts.end_work()
        # A bug: one line that says so, and where its traceback is, rather than the
        # traceback itself on the terminal (at DEBUG it is logged there too).
        log.debug("%s: unexpected error", stage, exc_info=exc)
        try:
            where = f"the traceback is in {save_traceback(stage, exc)}"
        except OSError as save_error:
            where = f"its traceback could not be saved ({save_error})"
        log.error(
            "%s: an unexpected error: %s: %s; %s (please report it)",
            stage, type(exc).__name__, exc, where,
        )  # fmt: skip
        return 1
    except BaseException:
        interrupts.end_work()
        raise
    return 0


def end_active_runs() -> None:
    """After an interrupt: end this process's runs KILLED, if it opened a store at all."""
    tracking = sys.modules.get("sonarlab.tracking.runs")
    if tracking is not None:
        tracking.end_runs_of_this_process()


def main_without_arguments(stage: str, doc: str | None, body: Callable[[], None], argv) -> int:
    """The CLI of a stage that takes no arguments (its settings are in params.yaml)."""
    CliParser(prog=f"python -m sonarlab.stages.{stage}", description=doc).parse_args(argv)
    return run(stage, body)


def run_named(
    kind: str, what: str, section: str, given: str | None, body: Callable[[str], None]
) -> int:
    """Run the stage ``<kind>@<name>`` (``cv@hidden``, ``grid@hidden_dropout``).

    The name is ``given`` (the command line) or, when DVC runs the stage, the part of
    ``$DVC_STAGE`` after ``<kind>@``: ``dvc.yaml``'s commands carry no name, so a name
    never reaches a shell (``dvc.yaml``'s ``foreach`` would paste a key such as
    ``a;rm -rf x`` into the command line as it is). It must be a plain identifier: it
    becomes a folder under ``results/`` and a word of log lines and run names; the
    error names the argument, or the key of ``section`` the stage was made from.
    """
    name, key = given, what
    if name is None:
        stage = os.environ.get("DVC_STAGE", "")
        name = stage.partition("@")[2] if stage.startswith(f"{kind}@") else None
        key = f"{section}.{name}"  # a key of params.yaml made the stage
    if name is None or not IDENTIFIER.match(name):

        def refuse() -> None:
            if name is None:
                raise ConfigError(
                    f"{what}: none given; name one (python -m sonarlab.stages.{kind} <{what}>)"
                    " or run the stage through `dvc repro`"
                )
            raise ConfigError(
                f"{key}: got {name!r}; allowed: a plain identifier (letters, digits, _)"
            )

        return run(kind, refuse)
    return run(f"{kind}@{name}", lambda: body(name))
