"""Grid studies against the alternatives, side by side in one invocation.

    python -m benchmarks.grid queue      # default grids: dvc repro vs queued experiments
    python -m benchmarks.grid big        # a 324-trial grid in-process, and cv@hidden's rate
    python -m benchmarks.grid stage      # cv@baseline, whole process: fused vs keras
    python -m benchmarks.grid cluster    # one grid in-process vs a local Dask cluster
    python -m benchmarks.grid all        # the four (make bench-grid)
    python -m benchmarks.grid stage big  # any of them, in that order (make bench: these two)

Each measurement runs in a fresh clone of the committed code (in a temporary folder,
deleted afterwards), with the data from SONAR_SOURCE or data/raw/sonar.csv, and times
the whole command a user types; peak RSS is that command's tree's largest process.
The machine is shared and noisy: compare the ratios measured in one run.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks.common import BIN, clone, run

RATES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
QUEUED = {"visible": "model.input_dropout", "hidden": "model.hidden_dropout"}
BIG = {  # 6 x 3 x 3 x 2 x 3 = 324 trials
    "variant": "hidden",
    "axes": {
        "model.hidden_dropout": RATES,
        "optimizer.learning_rate": [0.01, 0.05, 0.1],
        "optimizer.momentum": [0.5, 0.8, 0.9],
        "model.max_norm": [None, 3.0],
        "seed": [0, 1, 2],
    },
}


def queue(args) -> None:
    """The 12 default grid points: two grid stages against 12 queued DVC experiments."""
    with clone() as (root, env):
        grids = run(["dvc", "repro", "grid@input_dropout", "grid@hidden_dropout"], root, env)
        ours = {}
        for name, (variant, axis) in zip(("input_dropout", "hidden_dropout"), QUEUED.items(),
                                          strict=True):  # fmt: skip
            t = pd.read_csv(root / "results" / "grid" / name / "trials.csv")
            ours[variant] = dict(zip(t[axis], t["accuracy_mean"], strict=True))
        t0 = time.perf_counter()
        for variant, axis in QUEUED.items():
            values = ",".join(str(r) for r in RATES)
            run(["dvc", "exp", "run", "--queue", "-S",
                 f"variants.{variant}.{axis}={values}", f"cv@{variant}"], root, env)  # fmt: skip
        run(["dvc", "queue", "start", "-j", "2"], root, env)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            status = subprocess.run(["dvc", "queue", "status"], cwd=root, env=env,
                                    capture_output=True, text=True).stdout  # fmt: skip
            if not any(s in status for s in ("Queued", "Running")):
                break
            time.sleep(5)
        else:
            raise SystemExit(f"the queue did not finish in {args.timeout} s")
        queued_seconds = time.perf_counter() - t0
        theirs = queued_accuracies(root, env)
    print(f"| way | wall time | trials |\n|---|---|---|\n"
          f"| `dvc repro grid@input_dropout grid@hidden_dropout` | {grids['seconds']:.0f} s "
          f"| 12 |\n"
          f"| 12 queued experiments, `dvc queue start -j 2` | {queued_seconds:.0f} s | "
          f"{sum(len(v) for v in theirs.values())} |\n\n"
          f"ratio: **{queued_seconds / grids['seconds']:.1f}x** (target >= 10x)\n")  # fmt: skip
    print("| variant | rate | grid accuracy | queued experiment accuracy |\n|---|---|---|---|")
    for variant in QUEUED:
        for rate in RATES:
            q = theirs[variant].get(rate)
            print(
                f"| {variant} | {rate} | {100 * ours[variant][rate]:.2f}% | "
                + (f"{100 * q:.2f}% |" if q is not None else "— |")
            )


def queued_accuracies(root: Path, env: dict) -> dict[str, dict[float, float]]:
    """Each experiment's accuracy_mean, read from the MLflow runs it logged."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sonar-dropout")
    out: dict[str, dict[float, float]] = {v: {} for v in QUEUED}
    for r in client.search_runs([exp.experiment_id], "tags.`dvc.exp_name` != ''",
                                max_results=1000):  # fmt: skip
        variant = r.data.params.get("variant")
        if variant in QUEUED and "accuracy_mean" in r.data.metrics:
            rate = float(r.data.params[f"variant.{QUEUED[variant]}"])
            out[variant][rate] = r.data.metrics["accuracy_mean"]
    return out


def big(args) -> None:
    """The 324-trial grid in-process, beside the single-variant stage's training rate."""

    def edit(params: dict) -> None:
        params["grids"]["big"] = copy.deepcopy(BIG)
        if args.trials:  # a subset, for a quick look: one seed of the product
            params["grids"]["big"]["axes"]["seed"] = [0]

    with clone(edit) as (root, env):
        cmd = [str(BIN / "python"), "-m", "sonarlab.stages.grid", "big"]
        grid = run(cmd, root, env)
        single = run([str(BIN / "python"), "-m", "sonarlab.stages.cv", "hidden"], root, env)
        trials = pd.read_csv(root / "results" / "grid" / "big" / "trials.csv")
        metrics = json.loads((root / "results" / "grid" / "big" / "metrics.json").read_text())
    splits, epochs = 30, 300
    n = len(trials)
    grid_rate = n * splits * epochs / grid["seconds"]
    single_rate = (splits + 1) * epochs / single["seconds"]
    print(f"| run | trials | models | wall time | model-epochs/s | peak RSS |\n"
          f"|---|---|---|---|---|---|\n"
          f"| grid (in-process) | {n} | {n * splits} | {grid['seconds'] / 60:.1f} min | "
          f"{grid_rate:.0f} | {grid['peak_rss_mib']:.0f} MiB |\n"
          f"| cv@hidden (whole stage) | 1 | {splits + 1} | {single['seconds']:.1f} s | "
          f"{single_rate:.0f} | {single['peak_rss_mib']:.0f} MiB |\n\n"
          f"best trial: {json.dumps(metrics['best'])}")  # fmt: skip


def stage(args) -> None:
    """cv@baseline end to end, the fused engine against the keras engine, same clone."""
    with clone() as (root, env):
        cv = [str(BIN / "python"), "-m", "sonarlab.stages.cv", "baseline"]
        fused = [run(cv, root, env) for _ in range(args.repeat)]
        keras = run([*cv, "--set", "cv.engine=keras"], root, env)
    best = min(r["seconds"] for r in fused)
    runs = ", ".join(f"{r['seconds']:.1f} s" for r in fused)
    print(f"| engine | cv@baseline, whole process |\n|---|---|\n"
          f"| fused | {runs} |\n"
          f"| keras | {keras['seconds']:.0f} s |\n\nratio (keras / fastest fused): "
          f"**{keras['seconds'] / best:.0f}x** (target >= 40x)")  # fmt: skip


CLUSTER_GRID = {  # 6 x 2 x 2 = 24 trials, 720 models: 23 blocks of 32
    "variant": "hidden",
    "axes": {"model.hidden_dropout": RATES, "optimizer.learning_rate": [0.05, 0.1],
             "seed": [0, 1]},
}  # fmt: skip


def cluster(args) -> None:
    """The same grid's shards in this process (TensorFlow's 2 threads) and on a local
    cluster of 2 workers x 1 thread (a scheduler and workers on 127.0.0.1, warmed up by
    a first run): throughput, and the per-shard overhead (dispatch, transfer, result
    collection, waiting) as a share of the shards' own time."""
    import resource as res
    import socket

    from distributed import Client

    from sonarlab.core.params import load_section
    from sonarlab.data import folds, uci
    from sonarlab.design import grids
    from sonarlab.grid import shards
    from sonarlab.grid.cluster import DaskCluster, InProcess

    with clone() as (root, env):
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["grids"]["bench"] = CLUSTER_GRID
        study = grids.load_grid(params, "bench")
        cv = load_section(params, "cv")
        sonar = uci.read_local(root / "data" / "raw" / "sonar.csv")
        prepared = folds.prepared_for(cv, sonar, root / "data" / "prepared" / "folds.csv",
                                      root / "data" / "prepared" / "scalers.json")  # fmt: skip
        planned = shards.plan(study, sonar, prepared, workers=2)
        t0 = time.perf_counter()
        here = InProcess().run(planned, lambda r: None)
        here_wall = time.perf_counter() - t0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        scheduler = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"]  # fmt: skip
        procs = [subprocess.Popen(scheduler, **quiet)]
        address = f"tcp://127.0.0.1:{port}"
        time.sleep(3)
        worker = [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny",
                  "--host", "127.0.0.1", "--no-dashboard"]  # fmt: skip
        procs += [subprocess.Popen(worker, **quiet) for _ in range(2)]
        try:
            with Client(address, timeout=30, set_as_default=False) as c:
                c.wait_for_workers(2, timeout=120)
            DaskCluster(address).run(planned[:2], lambda r: None)  # warm-up: TF, programs
            t0 = time.perf_counter()
            there = DaskCluster(address).run(planned, lambda r: None)
            there_wall = time.perf_counter() - t0
            with Client(address, timeout=30, set_as_default=False) as c:
                rss = c.run(lambda: res.getrusage(res.RUSAGE_SELF).ru_maxrss / 1024)
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=30)
    same = all(
        np.array_equal(x.p_train, y.p_train) and np.array_equal(x.p_test, y.p_test)
        for r, q in zip(sorted(here, key=lambda r: r.shard), sorted(there, key=lambda r: r.shard),
                        strict=True)
        for x, y in zip(r.outcomes, q.outcomes, strict=True)
    )  # fmt: skip
    busy = sum(r.seconds for r in there)
    ideal = busy / 2
    models = sum(len(s.members) for s in planned)
    print(f"grid: {len(study.trials)} trials, {models} models, {len(planned)} shards; "
          f"identical probabilities in both: {same}\n\n"
          f"| where | wall time | models/s |\n|---|---|---|\n"
          f"| this process (2 threads) | {here_wall:.1f} s | {models / here_wall:.1f} |\n"
          f"| local cluster, 2 workers x 1 thread | {there_wall:.1f} s | "
          f"{models / there_wall:.1f} |\n\n"
          f"throughput ratio (cluster / in-process): {here_wall / there_wall:.2f}\n"
          f"shard time on the workers: {busy:.1f} s in all, {busy / len(planned):.1f} s a shard "
          f"({sum(r.seconds for r in here) / len(planned):.1f} s in-process)\n"
          f"overhead (wall - shard time / 2 workers) / (shard time / 2): "
          f"{100 * (there_wall - ideal) / ideal:.1f}% (target <= 5%)\n"
          f"peak RSS per worker: {', '.join(f'{v:.0f} MiB' for v in rss.values())}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", nargs="+", choices=["queue", "big", "stage", "cluster", "all"])
    parser.add_argument("--timeout", type=float, default=1800, help="for the queue (seconds)")
    parser.add_argument("--trials", action="store_true", help="big: one seed only (108 trials)")
    parser.add_argument("--repeat", type=int, default=2, help="stage: fused runs (the first "
                        "fills the compilation cache)")  # fmt: skip
    args = parser.parse_args(argv)
    for what in ("queue", "big", "stage", "cluster") if "all" in args.what else args.what:
        {"queue": queue, "big": big, "stage": stage, "cluster": cluster}[what](args)
        print(flush=True)


if __name__ == "__main__":
    main()
