"""Stage ``standardize``: stratified folds and in-fold standardization statistics.

Reads: ``data/raw/sonar.csv``; params ``cv.folds``, ``cv.repeats``, ``cv.seed``.
Writes: ``data/prepared/folds.csv`` (row, repeat, fold) and
``data/prepared/scalers.json`` (per split: mean and std of its training rows only;
``full``: of all rows, for the final models).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sonarlab.cli.command import main_without_arguments
from sonarlab.core.params import CVConfig, load_protocol, read_params
from sonarlab.core.paths import workspace_paths
from sonarlab.data import uci
from sonarlab.data.folds import prepare, write_prepared

log = logging.getLogger(__name__)


def standardize_settings(params: Mapping[str, Any]) -> CVConfig:
    """What ``standardize`` reads of params, validated: the splits' protocol."""
    return load_protocol(params)


def standardize() -> None:
    paths = workspace_paths()
    cv = standardize_settings(read_params(paths.params))
    sonar = uci.read_local(paths.raw_data)
    prepared = prepare(sonar.X, sonar.y, cv)
    write_prepared(prepared, paths.folds, paths.scalers)
    log.info(
        "standardize: %d repeat(s) x %d folds over %d rows (seed %d)",
        cv.repeats,
        cv.folds,
        len(sonar.labels),
        cv.seed,
    )


def main(argv: list[str] | None = None) -> int:
    return main_without_arguments("standardize", __doc__, standardize, argv)


if __name__ == "__main__":
    raise SystemExit(main())
