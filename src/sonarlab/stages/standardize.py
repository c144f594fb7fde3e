"""Stage ``standardize``: stratified folds and in-fold standardization statistics.

Reads: ``data/raw/sonar.csv``; params ``cv.folds``, ``cv.repeats``, ``cv.seed``.
Writes: ``data/prepared/folds.csv`` (row, repeat, fold) and
``data/prepared/scalers.json`` (per split: mean and std of its training rows only;
``full``: of all rows, for the final models).
"""

from __future__ import annotations

import logging

from sonarlab import data
from sonarlab.config import load_section, read_params
from sonarlab.folds import prepare, write_prepared
from sonarlab.paths import workspace_paths
from sonarlab.stages._cli import main_without_arguments

log = logging.getLogger(__name__)


def standardize() -> None:
    paths = workspace_paths()
    cv = load_section(read_params(paths.params), "cv")
    sonar = data.read_local(paths.raw_data)
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
