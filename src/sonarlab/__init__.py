"""sonarlab: a reproducible study of dropout regularization on the UCI Sonar data.

The package, bottom up (each layer imports only the ones above it in this list):

- ``core``: errors, files (atomic writes, bounded reads, table formats), paths and the
  ``params.yaml`` loader with the sections every stage shares;
- ``design``: the study's variants and grids, as typed configs;
- ``data``: the UCI data (fetch, verify, read), the folds and every seed;
- ``results``: how a model is scored, summarized and its tables and figures written;
- ``training``: the network, the members of a program, the engines, their outcomes;
- ``grid``: a grid study's shards, in process or on a Dask cluster;
- ``report``: the comparison of the variants, its page and figures;
- ``tracking`` and ``cli``: MLflow runs and stores; the command line, signals and
  progress. Neither changes a byte of a DVC output, so no stage depends on them.
- ``stages``: one thin module per DVC stage; ``predict``: the model-serving CLI.
"""

import os

# No call home from a process of ours, however it was launched: MLflow reads this when
# it is imported. And TensorFlow's C++ start-up chatter (oneDNN, CUDA probing on a
# CPU-only machine) would drown the stage's own log. Set before anything imports
# either; an explicit value in the environment wins.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# XLA compiles the fused engine for the CPU it runs on: AVX-512 code here, AVX2 code on
# a machine without it, and the last bits of a result could differ between the two.
# Capped at AVX2, every machine with AVX2 or more runs the same code (measured here: the
# same weights, bit for bit, as the uncapped default, and no slower; README,
# "Determinism"). A --xla_cpu_max_isa of your own in XLA_FLAGS wins.
XLA_ISA = "AVX2"
if "--xla_cpu_max_isa" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_max_isa={XLA_ISA}".strip()
    )

# XLA's compiled programs are kept on disk and loaded by later processes
# (core.xla_cache: SONARLAB_XLA_CACHE, off to disable); set before TensorFlow starts.
from sonarlab.core import xla_cache  # noqa: E402

xla_cache.configure()

from sonarlab.cli import interrupts  # noqa: E402

# Run as `python -m sonarlab...`: from this first import on, Ctrl-C or SIGTERM ends the
# command with one line (nothing exists yet to clean up), never an import's traceback.
# Imported as a library, the importer's handlers are left alone.
interrupts.guard_start()

__version__ = "0.1.0"
