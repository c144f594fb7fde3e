"""TensorFlow running out of memory during training, for real, in a real stage process:
one error line naming the variant and what to reduce, exit 1, no traceback, the MLflow
run FAILED (not RUNNING), nothing under results/ (``design.sizes.ran_out_of_memory``)."""

from __future__ import annotations

import sys
import time

import pytest

from tests.integration.test_size_limits import error_lines
from tests.integration.test_store_failures import fresh, prepared  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration


# A child that runs a stage with its address space capped at what importing TensorFlow
# took plus EXTRA bytes: room to start, not to train a network of 12,000-wide layers
# (576 MB of weights a copy), which the static check lets through (~9 GB planned, under
# sizes.MEMORY_LIMIT). TensorFlow's CPU allocator then really fails: ResourceExhaustedError.
LIMITED = """
import resource, runpy, sys
import tensorflow  # its own reservations first
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith("VmSize"))
limit = size + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = [sys.argv[2], *sys.argv[3:]]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
EXTRA = 1500 * 2**20
WIDE = "variants.baseline.model.hidden=[12000,12000]"


def test_tensorflow_running_out_of_memory_in_training_is_one_line(fresh):  # noqa: F811
    from mlflow.tracking import MlflowClient

    from sonarlab.design import sizes

    t0 = time.perf_counter()
    proc = fresh.run(
        sys.executable, "-c", LIMITED, str(EXTRA), "sonarlab.stages.cv", "baseline",
        "--epochs", "1", "--folds", "2", "--set", "cv.engine=keras", "--set", WIDE,
        env={"MLFLOW_TRACKING_URI": fresh.store}, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    (error,) = error_lines(proc, 1)
    assert error.split(" ", 1)[1] == (
        "ERROR cv@baseline: out of memory training 5 models of variants.baseline "
        "(ResourceExhaustedError); make variants.baseline.model's layers smaller or its "
        "batch_size smaller"
    )
    assert sizes.MEMORY_LIMIT > 9 * 10**9  # the static check let it through
    client = MlflowClient(fresh.store)
    (run,) = client.search_runs(
        [client.get_experiment_by_name(fresh.params()["mlflow"]["experiment"]).experiment_id]
    )
    assert run.info.status == "FAILED"
    assert not (fresh.root / "results" / "baseline").exists()
    print(f"\nout of memory in training: {seconds:.1f} s: {error}")
