"""Predict with a variant's final model; optionally with MC-dropout uncertainty.

``python -m sonarlab.predict hidden rows.csv`` prints, for every row of ``rows.csv``
(the Sonar format: 60 band values in [0, 1], an optional trailing M/R label, no
header), the
probability that it is a mine, from ``results/hidden/model.keras`` in inference mode
(dropout off, so the output is deterministic).

With ``--samples N`` it also runs the model N times with dropout left on (Monte Carlo
dropout, Gal & Ghahramani 2016) and reports the mean and std of those N
probabilities: a spread that is large where the network is unsure. ``--seed`` makes
the N dropout masks reproducible. The sampler is ``training.sampling.mc_dropout``, the
one ``cv@<variant>`` scores its folds' held-out rows with. A variant without dropout has std 0.

Limits: ``rows.csv`` may hold at most 16 MiB (about 40,000 rows) and must be read
within ``--read-timeout`` seconds (default 60; a FIFO that never ends stops there).
``--samples`` is at most 10,000 (the mean's standard error is then 1% of the spread),
and samples times rows at most 10,000,000. The largest case, 10,000 samples of 1,000
rows, took 10 s with an MLP variant and 130 s with the LSTM on a 2-core machine;
10,000 samples of 3 rows, 0.04 s and 0.2 s. Long sampling reports its progress.
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sonarlab.cli.command import CliParser, run
from sonarlab.cli.progress import Progress
from sonarlab.core import files
from sonarlab.core.errors import DataError
from sonarlab.core.params import IDENTIFIER, MAX_MC_SAMPLES, ConfigError, read_params
from sonarlab.core.paths import workspace_paths
from sonarlab.data import uci
from sonarlab.design.variants import variant_names

log = logging.getLogger(__name__)


ROWS_MAX_BYTES = 16 * 2**20  # about 40,000 rows of 60 values
ROWS_READ_SECONDS = 60.0
MAX_SAMPLES = MAX_MC_SAMPLES
MAX_SAMPLED_ROWS = 10_000_000  # samples x rows: about 2 minutes of the LSTM's work


def read_rows(path: Path, seconds: float = ROWS_READ_SECONDS) -> np.ndarray:
    """Rows in the Sonar format (60 band values in [0, 1], an optional M/R label that is
    ignored), checked as the fetch stage checks the data set; read within
    ``ROWS_MAX_BYTES`` and ``seconds``."""
    limits = files.InputLimits(
        ROWS_MAX_BYTES, seconds, "the limit for predict's rows, about 40,000 rows", "--read-timeout"
    )
    try:
        payload = files.read_file_within(path, limits)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror or exc}") from None
    try:
        X, _ = uci.parse_rows(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    return X.astype(np.float32)


def predict(
    variant: str,
    rows: Path,
    samples: int,
    seed: int,
    output: Path | None,
    read_timeout: float = ROWS_READ_SECONDS,
) -> None:
    if not 0 <= samples <= MAX_SAMPLES:
        raise ConfigError(f"--samples: got {samples}; allowed: an integer from 0 to {MAX_SAMPLES}")
    if not 0 < read_timeout < math.inf:
        raise ConfigError(f"--read-timeout: got {read_timeout}; allowed: a finite value > 0")
    paths = workspace_paths()
    names = variant_names(read_params(paths.params))
    if variant not in names:
        raise ConfigError(f"variant: got {variant!r}; defined variants: {', '.join(names)}")
    if output is not None:
        files.check_writable(output, "--output")
    X = read_rows(rows, read_timeout)
    if samples * len(X) > MAX_SAMPLED_ROWS:
        raise ConfigError(
            f"--samples: got {samples} for {len(X)} rows; allowed: samples x rows at most "
            f"{MAX_SAMPLED_ROWS:,} (here --samples {MAX_SAMPLED_ROWS // len(X)})"
        )
    model_path = paths.variant(variant).model
    if not model_path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no model", str(model_path))
    import keras

    from sonarlab.training.model import predict_proba
    from sonarlab.training.sampling import mc_dropout

    model = keras.saving.load_model(model_path, compile=False)  # inference only
    table = pd.DataFrame({"p_mine": predict_proba(model, X).astype(np.float64)})
    if samples:
        progress = Progress("predict: MC dropout", samples)
        table["mc_mean"], table["mc_std"] = mc_dropout(model, X, samples, seed, progress)
        progress.close(f"{samples} samples of {len(X)} rows")
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
        "--samples",
        type=int,
        default=0,
        help=f"MC-dropout passes, 0 to {MAX_SAMPLES:,} and samples x rows at most "
        f"{MAX_SAMPLED_ROWS:,} (default 0: inference mode only)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the MC-dropout masks (default: 0)"
    )
    parser.add_argument("--output", type=Path, help="write the CSV here instead of stdout")
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=ROWS_READ_SECONDS,
        metavar="SECONDS",
        help=f"time limit for reading ROWS (default {ROWS_READ_SECONDS:g}); "
        f"ROWS may hold at most {ROWS_MAX_BYTES // 2**20} MiB",
    )
    args = parser.parse_args(argv)
    return run(
        # the variant's name only once it is known to be one word of one line
        f"predict {args.variant}" if IDENTIFIER.match(args.variant) else "predict",
        lambda: predict(
            args.variant, args.rows, args.samples, args.seed, args.output, args.read_timeout
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
