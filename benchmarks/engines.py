"""Both CV engines on the same work, side by side in one invocation.

    python -m benchmarks.engines kernel       # one block's GFLOP/s beside SGEMM's (make bench)
    python -m benchmarks.engines speed        # both engines' CV calls (make bench-engines)
    python -m benchmarks.engines agreement    # fused vs keras accuracy over seeds

Each measurement runs in its own process (so peak RSS is that engine's alone); the
time is the CV call's wall time inside that process, interpreter start-up and
imports excluded. The data is data/raw/sonar.csv (run ``dvc repro fetch`` first) or
the file named by SONAR_SOURCE. The machine is shared and noisy: compare the ratio
measured in one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time

from benchmarks.common import ROOT, last_line, local_data, run

SELF = [sys.executable, "-m", "benchmarks.engines"]  # run from ROOT
MLP_VARIANTS = ("baseline", "visible", "hidden", "lr_decay")


def setup(variant_name: str, cv):
    """The data, ``variant_name`` as params.yaml defines it, and its splits under ``cv``."""
    from sonarlab.core.params import read_params
    from sonarlab.data import uci
    from sonarlab.data.folds import prepare
    from sonarlab.design.variants import load_variant

    sonar = uci.read_local(local_data())
    variant = load_variant(read_params(ROOT / "params.yaml"), variant_name)
    return sonar, variant, prepare(sonar.X, sonar.y, cv)


def worker(args: argparse.Namespace) -> None:
    """One engine on one variant; prints a JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    from sonarlab.core.params import CVConfig
    from sonarlab.training import engines

    sonar, variant, prepared = setup(
        args.variant, CVConfig(folds=args.folds, repeats=1, seed=args.seed)
    )
    variant = dataclasses.replace(variant, epochs=args.epochs)
    prepared = prepared.first(args.take or len(prepared.splits))  # reduced work
    t0 = time.perf_counter()
    folds = engines.cross_validate(args.engine, variant, sonar, prepared).folds
    seconds = time.perf_counter() - t0
    acc = np.array([f.test_metrics["accuracy"] for f in folds])
    print(json.dumps({"seconds": seconds, "acc_mean": acc.mean(), "acc_std": acc.std(),
                      "n_folds": len(folds)}))  # fmt: skip


def block(args: argparse.Namespace) -> None:
    """One block of the fused engine (``BLOCK`` split members of one variant, all epochs)
    on one thread: its training time with the program compiled, and its arithmetic."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from sonarlab.core.params import CVConfig
    from sonarlab.training.engines import fused
    from sonarlab.training.members import split_members

    sonar, variant, prepared = setup(args.variant, CVConfig(folds=10, repeats=4, seed=args.seed))
    members = split_members(variant, prepared)[: fused.BLOCK]
    seconds = []
    for _ in range(1 + args.repeat):  # the first compiles the program
        t0 = time.perf_counter()
        fused.train_stacked(members, sonar.X, sonar.y)
        seconds.append(time.perf_counter() - t0)
    rows = sum(len(m.train) for m in members)
    flop = 3 * forward_flop(variant) * rows * variant.epochs  # forward + backward
    print(json.dumps({"seconds": min(seconds[1:]), "first": seconds[0], "gflop": flop / 1e9,
                      "members": len(members), "epochs": variant.epochs}))  # fmt: skip


def forward_flop(variant) -> int:
    """Multiply-adds x 2 of one row's forward pass (the dense and recurrent products)."""
    m = variant.model
    if m.kind == "mlp":
        dims = [60, *m.hidden, 1]
        return sum(2 * a * b for a, b in itertools.pairwise(dims))
    return m.timesteps * 2 * 4 * m.units * (m.features + m.units) + 2 * m.units


SGEMM = """
import json, time, numpy as np
n = 2048
a, b = (np.random.default_rng(0).standard_normal((n, n), dtype=np.float32) for _ in "ab")
a @ b
times = []
for _ in range(5):
    t0 = time.perf_counter(); a @ b; times.append(time.perf_counter() - t0)
print(json.dumps({"gflops": 2 * n**3 / min(times) / 1e9}))
"""


def sgemm_roofline() -> float:
    """numpy's single-thread SGEMM (2048 x 2048) in GFLOP/s: this machine's limit for the
    block's arithmetic. OpenBLAS picks its kernel by ``OPENBLAS_CORETYPE`` (and sizes
    its blocks by ``OPENBLAS_L2_SIZE``); an environment may set them to an older core's
    (this team's machines did), so they are unset for this one command and the CPU's own
    kernel is measured. One thread: two here give about twice the rate."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}  # fmt: skip
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", SGEMM]
    return last_line(run(cmd, env=env, lines=True), cmd)["gflops"]


def kernel(args: argparse.Namespace) -> None:
    roof = sgemm_roofline()
    print(f"single-thread SGEMM (numpy, 2048 x 2048, CPU's own kernel): {roof:.0f} GFLOP/s\n")
    print("| block (one thread) | members x epochs | GFLOP | training s | GFLOP/s | of SGEMM "
          "| first call s (compiles) |\n|---|---|---|---|---|---|---|")  # fmt: skip
    results = {}
    for v in args.variants:
        cmd = [*SELF, "block", v, "--repeat", str(args.repeat)]
        r = results[v] = last_line(run(cmd, lines=True), cmd)
        rate = r["gflop"] / r["seconds"]
        print(
            f"| {v} | {r['members']} x {r['epochs']} | {r['gflop']:.1f} | {r['seconds']:.2f} "
            f"| {rate:.1f} | {100 * rate / roof:.0f}% | {r['first']:.1f} |",
            flush=True,
        )
    mlp = [results[v]["seconds"] for v in results if v != "lstm"]
    if "lstm" in results and mlp:
        print(
            f"\nLSTM block / MLP blocks: {results['lstm']['seconds'] / max(mlp):.1f}x to "
            f"{results['lstm']['seconds'] / min(mlp):.1f}x the time"
        )


def measure(engine: str, variant: str, folds: int, epochs: int, seed: int = 7, take: int = 0):
    """One engine on one variant in its own process: the worker's result and its peak RSS."""
    cmd = [*SELF, "worker", engine, variant, str(folds), str(epochs),
           "--seed", str(seed), "--take", str(take)]  # fmt: skip
    result = run(cmd, lines=True)
    return {**last_line(result, cmd), "peak_rss_mib": result["peak_rss_mib"]}


def speed(args: argparse.Namespace) -> None:
    rows = []

    def row(variant, work, keras, fused):
        ratio = keras["seconds"] / fused["seconds"] if keras else None
        rows.append((variant, work, keras, fused, ratio))
        print(_line(*rows[-1]), flush=True)

    print("| variant | work | keras s | fused s | keras/fused | keras acc | fused acc "
          "| keras peak RSS | fused peak RSS |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for v in args.variants:
        if v == "lstm":
            for work in args.lstm_work:  # the keras engine's full LSTM protocol is too long
                folds, epochs = map(int, work.split("x"))
                label = f"{folds} of 10 folds x {epochs} epochs + final"
                row(v, label, measure("keras", v, 10, epochs, take=folds),
                    measure("fused", v, 10, epochs, take=folds))  # fmt: skip
            row(v, "10 folds x 300 epochs + final (fused alone)", None,
                measure("fused", v, 10, 300))  # fmt: skip
        else:
            row(v, "10 folds x 300 epochs + final", measure("keras", v, 10, 300),
                measure("fused", v, 10, 300))  # fmt: skip


def _line(variant, work, keras, fused, ratio):
    def acc(r):
        return f"{100 * r['acc_mean']:.2f}% ({100 * r['acc_std']:.2f}%)" if r else "—"

    def rss(r):
        return f"{r['peak_rss_mib']:.0f} MiB" if r else "—"

    ks = f"{keras['seconds']:.1f}" if keras else "—"
    rt = f"**{ratio:.0f}x**" if ratio else "—"
    return (f"| {variant} | {work} | {ks} | {fused['seconds']:.2f} | {rt} | {acc(keras)} "
            f"| {acc(fused)} | {rss(keras)} | {rss(fused)} |")  # fmt: skip


def agreement(args: argparse.Namespace) -> None:
    """Mean CV accuracy of each engine over several seeds (dropout on, as configured)."""
    import numpy as np

    print(f"{args.folds} folds x {args.epochs} epochs (lstm: {args.lstm_epochs}), "
          f"seeds {list(range(args.seeds))}")  # fmt: skip
    print("| variant | keras mean acc over seeds (sd) | fused (sd) | difference | "
          "SE of difference | |z| |\n|---|---|---|---|---|---|")  # fmt: skip
    for v in args.variants:
        epochs = args.lstm_epochs if v == "lstm" else args.epochs
        per = {e: np.array([measure(e, v, args.folds, epochs, seed=s)["acc_mean"]
                            for s in range(args.seeds)]) for e in ("keras", "fused")}  # fmt: skip
        k, f = per["keras"], per["fused"]
        diff = f.mean() - k.mean()
        se = np.sqrt(k.var(ddof=1) / len(k) + f.var(ddof=1) / len(f))
        print(f"| {v} | {100 * k.mean():.2f}% ({100 * k.std(ddof=1):.2f}) "
              f"| {100 * f.mean():.2f}% ({100 * f.std(ddof=1):.2f}) | {100 * diff:+.2f} pp "
              f"| {100 * se:.2f} pp | {abs(diff) / se:.2f} |", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("speed", help="time both engines on the same work")
    s.add_argument("--variants", nargs="+", default=[*MLP_VARIANTS, "lstm"])
    s.add_argument("--lstm-work", nargs="+", default=["2x20", "10x50"],
                   help="reduced LSTM work as FOLDSxEPOCHS, timed on both engines")  # fmt: skip
    k = sub.add_parser("kernel", help="one block's GFLOP/s beside SGEMM's, same run")
    k.add_argument("--variants", nargs="+", default=["baseline", "hidden", "lstm"])
    k.add_argument("--repeat", type=int, default=2, help="timed calls after the first")
    b = sub.add_parser("block")
    b.add_argument("variant")
    b.add_argument("--repeat", type=int, default=2)
    b.add_argument("--seed", type=int, default=7)
    a = sub.add_parser("agreement", help="fused vs keras accuracy over seeds")
    a.add_argument("--variants", nargs="+", default=[*MLP_VARIANTS, "lstm"])
    a.add_argument("--seeds", type=int, default=5)
    a.add_argument("--folds", type=int, default=10)
    a.add_argument("--epochs", type=int, default=100)
    a.add_argument("--lstm-epochs", type=int, default=30)
    w = sub.add_parser("worker")
    w.add_argument("engine")
    w.add_argument("variant")
    w.add_argument("folds", type=int)
    w.add_argument("epochs", type=int)
    w.add_argument("--seed", type=int, default=7)
    w.add_argument("--take", type=int, default=0, help="only the first N folds (reduced work)")
    args = parser.parse_args(argv)
    commands = {"speed": speed, "agreement": agreement, "worker": worker, "kernel": kernel,
                "block": block}  # fmt: skip
    commands[args.command](args)


if __name__ == "__main__":
    main()
