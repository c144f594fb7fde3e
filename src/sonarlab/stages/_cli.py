"""What every stage CLI shares: logging set-up and turning known errors into one line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from sonarlab.config import ConfigError
from sonarlab.data import DataError
from sonarlab.errors import StageError
from sonarlab.files import FormatError
from sonarlab.interrupts import Terminated, raise_on_interrupts

log = logging.getLogger("sonarlab")


def run(stage: str, body: Callable[[], None]) -> int:
    """Run ``body``; a bad parameter or bad data ends it with one line and exit code 2 or 1."""
    logging.basicConfig(
        level=os.environ.get("SONARLAB_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )

    raise_on_interrupts()
    try:
        body()
    except KeyboardInterrupt:
        log.error("%s: interrupted", stage)
        return 130
    except Terminated:
        log.error("%s: terminated", stage)
        return 143
    except ConfigError as exc:
        log.error("%s: invalid parameter: %s", stage, exc)
        return 2
    except FileNotFoundError as exc:
        log.error("%s: missing input %s (run `dvc repro` to make it)", stage, exc.filename)
        return 1
    except (DataError, FormatError, StageError, OSError) as exc:
        log.error("%s: %s", stage, exc)
        return 1
    return 0


def main_without_arguments(stage: str, doc: str | None, body: Callable[[], None], argv) -> int:
    """The CLI of a stage that takes no arguments (its settings are in params.yaml)."""
    argparse.ArgumentParser(prog=f"python -m sonarlab.stages.{stage}", description=doc).parse_args(
        argv
    )
    return run(stage, body)
