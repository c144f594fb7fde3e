"""What every stage CLI shares: logging set-up and turning known errors into one line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from sonarlab import interrupts
from sonarlab.config import IDENTIFIER, ConfigError
from sonarlab.data import DataError
from sonarlab.errors import StageError
from sonarlab.files import FormatError

log = logging.getLogger("sonarlab")


def run(stage: str, body: Callable[[], None]) -> int:
    """Run ``body``; a bad parameter or bad data ends it with one line and exit code 2 or 1,
    an interrupt with one line and 130 (SIGINT) or 143 (SIGTERM)."""
    return interrupts.exit_command(_run(stage, body))


def _run(stage: str, body: Callable[[], None]) -> int:
    logging.basicConfig(
        level=os.environ.get("SONARLAB_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )

    interrupts.begin_work(stage)
    try:
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
        log.error("%s: missing input %s (run `dvc repro` to make it)", stage, exc.filename)
        return 1
    except (DataError, FormatError, StageError, OSError) as exc:
        interrupts.end_work()
        log.error("%s: %s", stage, exc)
        return 1
    except BaseException:
        interrupts.end_work()
        raise
    return 0


def end_active_runs() -> None:
    """After an interrupt: end this process's runs KILLED, if it opened a store at all."""
    tracking = sys.modules.get("sonarlab.tracking")
    if tracking is not None:
        tracking.end_runs_of_this_process()


def main_without_arguments(stage: str, doc: str | None, body: Callable[[], None], argv) -> int:
    """The CLI of a stage that takes no arguments (its settings are in params.yaml)."""
    argparse.ArgumentParser(prog=f"python -m sonarlab.stages.{stage}", description=doc).parse_args(
        argv
    )
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
