"""Predict with a variant's final model; optionally with MC-dropout uncertainty.

``python -m sonarlab.predict hidden rows.csv`` prints, for every row of ``rows.csv``
(the Sonar format: 60 band values in [0, 1], an optional trailing M/R label, no
header), the
probability that it is a mine, from ``results/hidden/model.keras`` in inference mode
(dropout off, so the output is deterministic).

With ``--samples N`` it also runs the model N times with dropout left on (Monte Carlo
dropout, Gal & Ghahramani 2016) and reports the mean and std of those N
probabilities: a spread that is large where the network is unsure. ``--seed`` makes
the N dropout masks reproducible. A variant without dropout has std 0.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sonarlab import data, files
from sonarlab.config import ConfigError, read_params, variant_names
from sonarlab.data import DataError
from sonarlab.paths import workspace_paths
from sonarlab.seeds import mc_dropout_seed
from sonarlab.stages._cli import CliParser, run

log = logging.getLogger(__name__)


def read_rows(path: Path) -> np.ndarray:
    """Rows in the Sonar format (60 band values in [0, 1], an optional M/R label that is
    ignored), checked as the fetch stage checks the data set."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        X, _ = data.parse_rows(path.read_text(encoding="utf-8"))
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    return X.astype(np.float32)


def mc_dropout(model, X: np.ndarray, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over ``samples`` forward passes with dropout on (``training=True``).

    The masks come from the model's own dropout layers, whose random state is reset
    from ``seed`` first, so the same seed gives the same masks. Nothing else in these
    models behaves differently in training mode (no batch norm), so the spread is the
    dropout's alone.
    """
    import keras

    if samples < 1:
        raise ValueError(f"samples: got {samples}; allowed: an integer >= 1")
    # Each dropout layer (and LSTM cell) draws its masks from a SeedGenerator whose
    # state, [seed, counter], is a variable of the model: reset every one of them.
    states = [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]
    for i, state in enumerate(states):
        state.assign(np.array([mc_dropout_seed(seed, i), 0], dtype=state.dtype))
    draws = np.stack(
        [keras.ops.convert_to_numpy(model(X, training=True)).ravel() for _ in range(samples)]
    ).astype(np.float64)
    return draws.mean(axis=0), draws.std(axis=0)


def predict(variant: str, rows: Path, samples: int, seed: int, output: Path | None) -> None:
    paths = workspace_paths()
    names = variant_names(read_params(paths.params))
    if variant not in names:
        raise ConfigError(f"variant: got {variant!r}; defined variants: {', '.join(names)}")
    X = read_rows(rows)
    model_path = paths.variant(variant).model
    if not model_path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no model", str(model_path))
    import keras

    from sonarlab.model import predict_proba

    model = keras.saving.load_model(model_path, compile=False)  # inference only
    table = pd.DataFrame({"p_mine": predict_proba(model, X).astype(np.float64)})
    if samples:
        table["mc_mean"], table["mc_std"] = mc_dropout(model, X, samples, seed)
    table.index.name = "row"
    csv = files.CsvFormat({"row": "int64", **dict.fromkeys(table.columns, "float64")}, "row")
    if output is None:
        sys.stdout.write(csv.text(table))
    else:
        csv.write(output, table)
        log.info("predict: %d rows -> %s", len(X), output)


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(
        prog="python -m sonarlab.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("variant", help="a key of `variants`: uses results/<variant>/model.keras")
    parser.add_argument("rows", type=Path, help="CSV of rows in the Sonar format")
    parser.add_argument(
        "--samples", type=int, default=0, help="MC-dropout passes (0: inference mode only)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the MC-dropout masks (default: 0)"
    )
    parser.add_argument("--output", type=Path, help="write the CSV here instead of stdout")
    args = parser.parse_args(argv)
    if args.samples < 0:
        parser.error(f"--samples: got {args.samples}; allowed: an integer >= 0")
    return run(
        f"predict {args.variant}",
        lambda: predict(args.variant, args.rows, args.samples, args.seed, args.output),
    )


if __name__ == "__main__":
    raise SystemExit(main())
