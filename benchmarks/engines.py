"""Both CV engines on the same work, side by side in one invocation.

    python benchmarks/engines.py speed        # the table for the README (make bench)
    python benchmarks/engines.py agreement    # fused vs keras accuracy over seeds

Each measurement runs in its own process (so peak RSS is that engine's alone); the
time is the CV call's wall time inside that process, interpreter start-up and
imports excluded. The data is data/raw/sonar.csv (run ``dvc repro fetch`` first) or
the file named by SONAR_SOURCE. The machine is shared and noisy: compare the ratio
measured in one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MLP_VARIANTS = ("baseline", "visible", "hidden", "lr_decay")


def data_path() -> Path:
    local = ROOT / "data" / "raw" / "sonar.csv"
    if local.is_file():
        return local
    source = os.environ.get("SONAR_SOURCE")
    if source and Path(source).is_file():
        return Path(source)
    raise SystemExit("no data: run `dvc repro fetch` or set SONAR_SOURCE to a local copy")


def worker(args: argparse.Namespace) -> None:
    """One engine on one variant; prints a JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    from sonarlab.core.params import CVConfig, read_params
    from sonarlab.data import uci
    from sonarlab.data.folds import prepare
    from sonarlab.design.variants import load_variant
    from sonarlab.training import engines

    sonar = uci.read_local(data_path())
    variant = load_variant(read_params(ROOT / "params.yaml"), args.variant)
    variant = dataclasses.replace(variant, epochs=args.epochs)
    prepared = prepare(sonar.X, sonar.y, CVConfig(folds=args.folds, repeats=1, seed=args.seed))
    prepared = prepared.first(args.take or len(prepared.splits))  # reduced work
    t0 = time.perf_counter()
    folds = engines.cross_validate(args.engine, variant, sonar, prepared).folds
    seconds = time.perf_counter() - t0
    acc = np.array([f.test_metrics["accuracy"] for f in folds])
    print(json.dumps({"seconds": seconds, "acc_mean": acc.mean(), "acc_std": acc.std(),
                      "n_folds": len(folds)}))  # fmt: skip


def measure(engine: str, variant: str, folds: int, epochs: int, seed: int = 7, take: int = 0):
    cmd = [sys.executable, __file__, "worker", engine, variant, str(folds), str(epochs),
           "--seed", str(seed), "--take", str(take)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (status {status})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


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
    {"speed": speed, "agreement": agreement, "worker": worker}[args.command](args)


if __name__ == "__main__":
    main()
