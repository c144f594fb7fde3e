"""The permutation check of the selection rule and its bias-corrected estimate.

    python -m benchmarks.permutation           # 5 permutations + the true labels
    python -m benchmarks.permutation --seeds 1 --epochs 50 --no-true   # a quick look

With the labels permuted at random the bands carry no signal: no configuration can do
better than the no-skill reference, so what a grid's best trial scores above chance is
the optimism of picking the best of many noisy CV scores. For each labelling (each
permutation has its own seed; the true labels are the contrast) the pipeline's
protocol is kept: params.yaml's cv folds, repeats and seed, stratified folds made on
the labels in use, and a grid of configurations of ``hidden`` (``GRID``, 24 trials;
``epochs``: the variant's 300 unless ``--epochs``) trained in fused programs by
``sonarlab.grid.shards``. Printed for each:

- the naive best of the grid: the highest mean CV accuracy over the trials, and the
  accuracy of the trial with the lowest mean Brier score (the rule's score, without
  its no-skill guard), each with its corrected 95% interval;
- how many trials the rule's no-skill guard lets through and what the rule chooses;
- BBC-CV (``sonarlab.selection.rule.bbc``) of choosing by Brier among ALL the trials: its
  accuracy and Brier with their 95% bootstrap intervals;
- chance: the majority-class rate and the no-skill reference's accuracy and Brier.

A summary table ends the output. Same arguments, same numbers (the seconds aside).
The data is ``--data``, else data/raw/sonar.csv, else the file SONAR_SOURCE names.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.common import ROOT, local_data
from sonarlab.core.params import CVConfig, load_protocol, plain, read_params
from sonarlab.data.folds import prepare
from sonarlab.data.seeds import bootstrap_seed
from sonarlab.data.uci import Sonar
from sonarlab.design.grids import GridConfig, load_grid
from sonarlab.grid import shards
from sonarlab.selection import rule

SEEDS = (1, 2, 3, 4, 5)  # one permutation of the labels per seed
GRID = {  # 6 x 2 x 2 = 24 trials of `hidden`, the tutorial's two optimizers among them
    "variant": "hidden",
    "axes": {
        "model.hidden_dropout": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
        "optimizer.learning_rate": [0.01, 0.1],
        "optimizer.momentum": [0.8, 0.9],
    },
}


def permuted(y: np.ndarray, seed: int) -> np.ndarray:
    """``y`` in an order drawn from ``seed``: the same class counts, no link to the rows."""
    return np.asarray(y)[np.random.default_rng(seed).permutation(len(y))]


@dataclass(frozen=True)
class Naive:
    """One trial's own CV accuracy, as a grid would report it."""

    trial: int
    accuracy: float
    low: float  # corrected 95% interval (Nadeau & Bengio)
    high: float
    brier: float


@dataclass(frozen=True)
class Check:
    """One labelling's grid, judged."""

    trials: int
    majority: float  # the majority-class rate of the labels
    reference_accuracy: float  # the no-skill reference, mean over splits
    reference_brier: float
    mean_accuracy: float  # the trials' mean CV accuracies, averaged over trials
    best_accuracy: Naive  # the trial with the highest mean CV accuracy
    lowest_brier: Naive  # the trial with the lowest mean CV Brier (no guard)
    eligible: int  # trials that beat the no-skill reference (the rule's guard)
    chosen: int | None  # the rule's choice
    corrected: dict[str, rule.Corrected]  # BBC-CV of choosing by Brier among all trials
    seconds: float  # training, summed over shards


def check(sonar: Sonar, grid: GridConfig, cv: CVConfig, bootstraps: int = rule.BOOTSTRAPS) -> Check:
    """Cross-validate every trial of ``grid`` on ``sonar`` (folds made on its labels by
    ``cv``) and judge the grid: naive best, the rule, and BBC-CV over all trials."""
    prepared = prepare(sonar.X, sonar.y, cv)
    planned = shards.plan(grid, sonar, prepared)
    results = [shards.run_shard(s) for s in planned]
    out = shards.judged(grid, planned, results, prepared, cv.seed)
    trials, oof, assessment = out.trials, out.predictions, out.assessment
    matrix, labels = rule.probability_matrix(oof, [f"p_{t.index}" for t in grid.trials])
    counts = rule.bootstrap_counts(len(labels), bootstraps, bootstrap_seed(cv.seed))

    def naive(i: int) -> Naive:
        row = trials.loc[i]
        return Naive(int(row["trial"]), float(row["accuracy_mean"]), float(row["accuracy_ci_low"]),
                     float(row["accuracy_ci_high"]), float(row["brier_mean"]))  # fmt: skip

    reference = assessment.reference_means()
    share = float(np.mean(sonar.y))
    return Check(
        trials=len(trials),
        majority=max(share, 1 - share),
        reference_accuracy=reference["accuracy"],
        reference_brier=reference[rule.SCORE],
        mean_accuracy=float(trials["accuracy_mean"].mean()),
        best_accuracy=naive(int(trials["accuracy_mean"].idxmax())),  # the first of equals
        lowest_brier=naive(int(trials["brier_mean"].idxmin())),
        eligible=len(assessment.choice.eligible),
        chosen=assessment.choice.chosen,
        corrected=rule.bbc(matrix, labels, counts),
        seconds=sum(r.seconds for r in results),
    )


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def interval(low: float, high: float, percent: bool = True) -> str:
    f = pct if percent else (lambda v: f"{v:.4f}")
    return f"[{f(low)}, {f(high)}]"


def describe(name: str, c: Check, grid: GridConfig) -> str:
    """The lines of one labelling."""

    def values(trial: int) -> str:
        return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in grid.trials[trial].values.items())

    b, w = c.best_accuracy, c.lowest_brier
    acc, brier = c.corrected["accuracy"], c.corrected["brier"]
    chosen = "nothing" if c.chosen is None else f"trial #{c.chosen} ({values(c.chosen)})"
    return "\n".join([
        f"## {name}: {c.trials} trials",
        f"  chance: majority class {pct(c.majority)}; no-skill reference accuracy "
        f"{pct(c.reference_accuracy)}, Brier {c.reference_brier:.4f}",
        f"  trials' mean CV accuracy, averaged over trials: {pct(c.mean_accuracy)}",
        f"  naive best accuracy: trial #{b.trial} ({values(b.trial)}) {pct(b.accuracy)} "
        f"{interval(b.low, b.high)}",
        f"  lowest Brier (no guard): trial #{w.trial} ({values(w.trial)}) Brier {w.brier:.4f}, "
        f"accuracy {pct(w.accuracy)} {interval(w.low, w.high)}",
        f"  the rule's no-skill guard lets through {c.eligible} of {c.trials}; it chooses {chosen}",
        f"  BBC-CV, choosing by Brier among all {c.trials}: accuracy {pct(acc.mean)} "
        f"{interval(acc.low, acc.high)}, Brier {brier.mean:.4f} "
        f"{interval(brier.low, brier.high, percent=False)}",
    ])  # fmt: skip


def summary(rows: Sequence[tuple[str, Check]]) -> str:
    """A markdown table, one row per labelling and the mean over the permutations."""
    head = ("| labels | trials | majority | no-skill Brier | trials' mean accuracy | "
            "naive best accuracy [95% CI] | lowest-Brier trial's accuracy [95% CI] | "
            "guard lets through | rule chooses | BBC-CV accuracy [95% CI] | "
            "BBC-CV Brier [95% CI] |\n|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    lines = [head]
    for name, c in rows:
        b, w = c.best_accuracy, c.lowest_brier
        acc, br = c.corrected["accuracy"], c.corrected["brier"]
        lines.append(
            f"| {name} | {c.trials} | {pct(c.majority)} | {c.reference_brier:.4f} | "
            f"{pct(c.mean_accuracy)} | {pct(b.accuracy)} {interval(b.low, b.high)} | "
            f"{pct(w.accuracy)} {interval(w.low, w.high)} | {c.eligible} | "
            f"{'nothing' if c.chosen is None else f'#{c.chosen}'} | {pct(acc.mean)} "
            f"{interval(acc.low, acc.high)} | {br.mean:.4f} {interval(br.low, br.high, False)} |"
        )
    perms = [c for name, c in rows if name.startswith("permutation")]
    if perms:

        def mean(get) -> float:
            return float(np.mean([get(c) for c in perms]))

        lines.append(
            f"| mean of {len(perms)} permutations | {perms[0].trials} | "
            f"{pct(mean(lambda c: c.majority))} | {mean(lambda c: c.reference_brier):.4f} | "
            f"{pct(mean(lambda c: c.mean_accuracy))} | "
            f"{pct(mean(lambda c: c.best_accuracy.accuracy))} | "
            f"{pct(mean(lambda c: c.lowest_brier.accuracy))} | "
            f"{mean(lambda c: c.eligible):.1f} | "
            f"{sum(c.chosen is None for c in perms)} of {len(perms)}: nothing | "
            f"{pct(mean(lambda c: c.corrected['accuracy'].mean))} | "
            f"{mean(lambda c: c.corrected['brier'].mean):.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="the Sonar CSV (default: data/raw/sonar.csv, SONAR_SOURCE)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS),
                        help="one permutation of the labels per seed")  # fmt: skip
    parser.add_argument("--epochs", type=int, help="epochs per model (default: the variant's)")
    parser.add_argument("--bootstraps", type=int, default=rule.BOOTSTRAPS)
    parser.add_argument("--no-true", action="store_true", help="skip the true labels' contrast")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from sonarlab.data import uci

    sonar = uci.read_local(local_data(args.data))
    params = read_params(ROOT / "params.yaml")
    cv = load_protocol(params)
    spec = plain(GRID)
    if args.epochs:
        base = spec["variant"]
        variant = {**params["variants"][base], "epochs": args.epochs}
        params["variants"] = {**params["variants"], base: variant}
    params["grids"] = {"permutation": spec}
    grid = load_grid(params, "permutation", cv)
    epochs = grid.trials[0].variant.epochs
    print(f"{len(grid.trials)} trials of `{grid.variant}` ("
          + " x ".join(f"{a} {list(v)}" for a, v in grid.axes)
          + f"), {cv.repeats} x {cv.folds} stratified folds (cv.seed {cv.seed}), {epochs} epochs, "
          f"{args.bootstraps} bootstraps\n", flush=True)  # fmt: skip
    labellings = [(f"permutation {s}", permuted(sonar.y, s)) for s in args.seeds]
    if not args.no_true:
        labellings.append(("true labels", sonar.y))
    rows = []
    t0 = time.perf_counter()
    for name, y in labellings:
        c = check(Sonar(sonar.X, y, ()), grid, cv, args.bootstraps)
        rows.append((name, c))
        print(describe(name, c, grid) + f"\n  ({c.seconds:.0f} s of training)\n", flush=True)
    print(summary(rows))
    print(f"\nwall time of the checks: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
