"""``search@<name>`` against the alternatives, side by side in one invocation.

    python -m benchmarks.search vs-keras   # our search vs an Optuna study, a Keras fit per fold
    python -m benchmarks.search halving    # the tutorial search with and without its halving
    python -m benchmarks.search all        # both (make bench-search); --quick: a smoke check

vs-keras: the same space, sampler (``driver.make_sampler``, the same seed) and budget
(``--trials``), on the tutorial's protocol (10-fold stratified CV, 1 repeat, 300 epochs,
no halving), two ways: the way a user would write it today, an Optuna study whose
objective cross-validates one trial with the keras engine (one ``fit`` per fold, plus
the final model ``cross_validate`` trains) and returns its mean held-out Brier score;
and ours, ``python -m sonarlab.stages.search <name>``, its trials asked a block at a
time and trained together in fused XLA programs. halving: our search at the pipeline's
protocol (``cv`` as params.yaml has it), the search as defined against the same search
with ``halving`` removed (every trial at the full budget), same seed.

Each measurement runs in a fresh clone of the committed code (a temporary folder in
$SONARLAB_BENCH_DIR or the system temp folder, deleted afterwards) with ``dvc repro
standardize`` (and so fetch) done there, the data from SONAR_SOURCE or data/raw/sonar.csv, and
times the whole command (interpreter start-up and imports included); peak RSS is that
command's own process. The XLA compilation cache (``SONARLAB_XLA_CACHE``) is the
user's, as a user's run has it. Intervals are the corrected resampled t intervals the stages report
(``results.summary``). The machine is shared and noisy: compare the ratios measured in
one run, not absolute times across runs. Every measurement prints a JSON line as it ends.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import yaml

from benchmarks.common import BIN, clone, last_line, run

SEARCH = "tutorial"
QUICK_VS = {"trials": 2, "folds": 5, "epochs": 20}
QUICK_HALVING = {"trials": 6, "folds": 5, "repeats": 1, "rungs": [5, 20]}


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def our_search(root: Path, env: dict, name: str = SEARCH) -> dict:
    """``python -m sonarlab.stages.search <name>`` in ``root``: its time and metrics.json."""
    result = run([str(BIN / "python"), "-m", "sonarlab.stages.search", name], root, env)
    metrics = json.loads((root / "results" / "search" / name / "metrics.json").read_text())
    return {"seconds": result["seconds"], "peak_rss_mib": result["peak_rss_mib"],
            "metrics": metrics}  # fmt: skip


def no_halving(params: dict, name: str = SEARCH) -> None:
    """The search with its halving removed: every trial at the base variant's epochs,
    which are set to the last rung (the full budget)."""
    search = params["searches"][name]
    halving = search.pop("halving", None)
    if halving:
        params["variants"][search["variant"]]["epochs"] = halving["rungs"][-1]


def keras_worker(args: argparse.Namespace) -> None:
    """The per-trial search, run in a clone (cwd): an Optuna study with the search's
    sampler, each trial one ``cross_validate("keras", ...)`` on the clone's splits.
    Prints a JSON line per trial and one for the study."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import dataclasses

    import optuna

    from sonarlab.core.params import load_protocol, read_params
    from sonarlab.data import uci
    from sonarlab.data.folds import prepared_for
    from sonarlab.design.searches import load_search, trial_variant
    from sonarlab.results.summary import summarize_folds
    from sonarlab.search.driver import new_study
    from sonarlab.training import engines
    from sonarlab.training.outcomes import per_split

    root = Path.cwd()
    params = read_params(root / "params.yaml")
    cv = load_protocol(params)
    search = dataclasses.replace(load_search(params, args.search), halving=None)
    sonar = uci.read_local(root / "data" / "raw" / "sonar.csv")
    prepared = prepared_for(cv, sonar, root / "data" / "prepared" / "folds.csv",
                            root / "data" / "prepared" / "scalers.json")  # fmt: skip
    epochs = search.base.epochs

    def suggest(trial: optuna.Trial, dim) -> object:
        if dim.distribution == "categorical":
            return trial.suggest_categorical(dim.key, list(dim.choices))
        if dim.distribution == "int":
            return trial.suggest_int(dim.key, int(dim.low), int(dim.high))
        log = dim.distribution == "log_uniform"
        return trial.suggest_float(dim.key, float(dim.low), float(dim.high), log=log)

    def objective(trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        values = {dim.key: suggest(trial, dim) for dim in search.space}
        variant = trial_variant(params, search, values, epochs)
        result = engines.cross_validate("keras", variant, sonar, prepared)
        summary = summarize_folds(per_split(result.folds)).metrics()
        trial.set_user_attr("summary", summary)
        trial.set_user_attr("final_seconds", result.final.seconds)
        scores = {f"{m}_{p}": summary[f"{m}_{p}"] for m in ("brier", "accuracy")
                  for p in ("mean", "ci_low", "ci_high")}  # fmt: skip
        emit({"trial": trial.number, **values, **scores, "seconds": time.perf_counter() - t0,
              "final_seconds": result.final.seconds})  # fmt: skip
        return summary["brier_mean"]

    study = new_study(search)
    study.optimize(objective, n_trials=search.trials)
    best = study.best_trial
    emit({"study": True, "best_trial": best.number, "best_values": best.params,
          "best": best.user_attrs["summary"], "n_folds": len(prepared.splits),
          "final_seconds": sum(t.user_attrs.get("final_seconds", 0.0) for t in study.trials),
          "trials": [t.params for t in study.trials]})  # fmt: skip


def vs_keras(args: argparse.Namespace) -> dict:
    trials = QUICK_VS["trials"] if args.quick else args.trials
    folds = QUICK_VS["folds"] if args.quick else 10
    epochs = QUICK_VS["epochs"] if args.quick else None

    def edit(params: dict) -> None:
        params["cv"].update(folds=folds, repeats=1)
        no_halving(params)
        search = params["searches"][SEARCH]
        search["trials"] = trials
        if epochs:
            params["variants"][search["variant"]]["epochs"] = epochs

    with clone(edit) as (root, env):
        seconds = []
        for i in range(args.repeat):  # the first in this clone compiles what the cache lacks
            mine = our_search(root, env)
            seconds.append(mine["seconds"])
            ours = {**mine, "times": list(seconds)}
            emit({"measure": "vs-keras", "way": "ours", "run": i + 1, "seconds": mine["seconds"],
                  "peak_rss_mib": mine["peak_rss_mib"], "model_epochs":
                  mine["metrics"]["model_epochs"], "best": mine["metrics"]["best"]})  # fmt: skip
        # this module, from the clone: the committed code, as the rest of the measurement
        worker = [str(BIN / "python"), "-m", "benchmarks.search", "keras-worker", SEARCH]
        result = run(worker, root, env, lines=True, echo=True)
        study = last_line(result, worker)
        theirs = {"seconds": result["seconds"], "peak_rss_mib": result["peak_rss_mib"], **study}
        emit({"measure": "vs-keras", "way": "per-trial keras", "seconds": theirs["seconds"],
              "peak_rss_mib": theirs["peak_rss_mib"], "final_seconds": theirs["final_seconds"],
              "best_trial": theirs["best_trial"], "best": theirs["best"]})  # fmt: skip
        ours_trials = (root / "results" / "search" / SEARCH / "trials.csv").read_text()
    same = same_trials(ours_trials, theirs["trials"])
    return {"trials": trials, "folds": folds, "epochs": epochs or 300, "ours": ours,
            "theirs": theirs, "same_trials": same}  # fmt: skip


def same_trials(trials_csv: str, theirs: list[dict]) -> int:
    """How many leading trials both searches drew with the same values (TPE's seeded
    random start-up trials are the same draws, whoever asks for them)."""
    import io

    import pandas as pd

    ours = pd.read_csv(io.StringIO(trials_csv)).sort_values("trial")
    n = 0
    for (_, row), values in zip(ours.iterrows(), theirs, strict=False):
        for key, v in values.items():
            w = row[key]
            if v is None:
                same = bool(pd.isna(w))
            else:  # trials.csv holds 6 significant digits
                same = math.isclose(float(w), v, rel_tol=1e-5, abs_tol=1e-12)
            if not same:
                return n
        n += 1
    return n


def halving(args: argparse.Namespace) -> dict:
    """The search as defined and a copy of it without halving (``<name>_full``), run
    alternately ``--repeat`` times in one clone (the first run of each may compile what
    the XLA cache lacks; the numbers are the same every time)."""
    full = f"{SEARCH}_full"

    def edit(params: dict) -> None:
        search = params["searches"][SEARCH]
        if args.quick:
            params["cv"].update(folds=QUICK_HALVING["folds"], repeats=QUICK_HALVING["repeats"])
            search["trials"] = QUICK_HALVING["trials"]
            search["halving"]["rungs"] = QUICK_HALVING["rungs"]
        params["searches"][full] = copy.deepcopy(search)  # no YAML aliases
        no_halving(params, full)

    runs: dict[str, list[dict]] = {"halving": [], "full": []}
    with clone(edit) as (root, env):
        protocol = yaml.safe_load((root / "params.yaml").read_text())["cv"]
        for i in range(args.repeat):
            for key, name in (("halving", SEARCH), ("full", full)):
                runs[key].append(our_search(root, env, name))
                way = "halving" if key == "halving" else "no halving"
                emit({"measure": "halving", "way": way, "run": i + 1, **summary_of(runs[key][-1])})
    out = {key: {**r[-1], "times": [x["seconds"] for x in r]} for key, r in runs.items()}
    out["protocol"] = f"{protocol['folds']} folds x {protocol['repeats']} repeats"
    return out


def summary_of(result: dict) -> dict:
    m = result["metrics"]
    return {"seconds": result["seconds"], "peak_rss_mib": result["peak_rss_mib"],
            "model_epochs": m["model_epochs"], "model_epochs_full_budget":
            m["model_epochs_full_budget"], "n_complete": m["n_complete"], "n_pruned":
            m["n_pruned"], "n_failed": m["n_failed"], "best": m["best"],
            "best_corrected": m["best_corrected"]}  # fmt: skip


def ci(d: dict | None, metric: str, percent: bool = False) -> str:
    if not d:
        return "none chosen"
    f = 100 if percent else 1
    fmt = ".2f" if percent else ".4f"
    unit = "%" if percent else ""
    return (f"{f * d[f'{metric}_mean']:{fmt}}{unit} [{f * d[f'{metric}_ci_low']:{fmt}}, "
            f"{f * d[f'{metric}_ci_high']:{fmt}}]")  # fmt: skip


def values(d: dict | None, keys: list[str]) -> str:
    if not d:
        return "—"
    return ", ".join(
        f"{k.split('.')[-1]}={d[k]:.3g}" if d[k] is not None else f"{k.split('.')[-1]}=None"
        for k in keys
    )


AXES = ["model.hidden_dropout", "optimizer.learning_rate", "optimizer.momentum",
        "model.max_norm"]  # fmt: skip


def times(result: dict) -> str:
    return ", ".join(f"{t:.0f} s" for t in result["times"])


def print_vs_keras(r: dict) -> None:
    ours, theirs = r["ours"], r["theirs"]
    best = ours["metrics"]["best"]
    first, fastest = ours["times"][0], min(ours["times"])
    no_final = theirs["seconds"] - theirs["final_seconds"]
    print(f"\n### vs-keras: {r['trials']} trials, {r['folds']}-fold CV x 1 repeat, "
          f"{r['epochs']} epochs, no halving, same TPE sampler and seed\n\n"
          "| way | wall time (whole command) | peak RSS | chosen trial | values | "
          "held-out Brier [95% CI] | accuracy [95% CI] |\n|---|---|---|---|---|---|---|\n"
          f"| Optuna study, `cross_validate(\"keras\")` per trial | {theirs['seconds']:.0f} s "
          f"| {theirs['peak_rss_mib']:.0f} MiB | #{theirs['best_trial']} (min Brier) "
          f"| {values(theirs['best_values'], AXES)} | {ci(theirs['best'], 'brier')} "
          f"| {ci(theirs['best'], 'accuracy', True)} |\n"
          f"| `python -m sonarlab.stages.search {SEARCH}` | {times(ours)} "
          f"| {ours['peak_rss_mib']:.0f} MiB | "
          + (f"#{best['trial']} (the rule)" if best else "none (none beats no-skill)")
          + f" | {values(best, AXES)} | {ci(best, 'brier')} | {ci(best, 'accuracy', True)} |\n\n"
          f"ratio (per-trial / ours): **{theirs['seconds'] / first:.1f}x** against our first "
          f"run in the clone, {theirs['seconds'] / fastest:.1f}x against our fastest; without "
          f"the keras side's final-model fits ({theirs['final_seconds']:.0f} s of its "
          f"{theirs['seconds']:.0f} s): {no_final / first:.1f}x and {no_final / fastest:.1f}x\n"
          f"trials drawn with the same values by both (TPE's seeded start-up): "
          f"{r['same_trials']} of {r['trials']}", flush=True)  # fmt: skip


def print_halving(r: dict) -> None:
    h, f = r["halving"], r["full"]
    saving = 1 - h["metrics"]["model_epochs"] / f["metrics"]["model_epochs"]
    print(f"\n### halving: search@{SEARCH} at {r['protocol']}, same seed\n\n"
          "| search | model-epochs | wall time (each run) | complete / pruned / failed "
          "| chosen trial | values | held-out Brier [95% CI] | accuracy [95% CI] "
          "| bias-corrected accuracy [95% CI] |\n|---|---|---|---|---|---|---|---|---|",
          flush=True)  # fmt: skip
    for label, run_of in (("with halving", h), ("halving removed", f)):
        m = run_of["metrics"]
        best = m["best"]
        print(f"| {label} | {m['model_epochs']:,} | {times(run_of)} | "
              f"{m['n_complete']} / {m['n_pruned']} / {m['n_failed']} | "
              + (f"#{best['trial']}" if best else "none")
              + f" | {values(best, AXES)} | {ci(best, 'brier')} | "
              f"{ci(best, 'accuracy', True)} | {ci(m['best_corrected'], 'accuracy', True)} |",
              flush=True)  # fmt: skip
    th, tf = min(h["times"]), min(f["times"])
    print(f"\nmodel-epochs saved by halving: **{100 * saving:.1f}%** "
          f"({h['metrics']['model_epochs']:,} of {f['metrics']['model_epochs']:,}); wall time "
          f"(fastest runs) {th:.0f} s with halving, {tf:.0f} s without: "
          f"**{100 * (1 - th / tf):.1f}%** saved", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("vs-keras", "halving", "all"):
        p = sub.add_parser(name)
        p.add_argument("--trials", type=int, default=16, help="vs-keras: the budget")
        p.add_argument(
            "--repeat", type=int, default=2, help="runs of each of our searches (the first in a "
            "clone may fill the XLA cache)"
        )  # fmt: skip
        p.add_argument(
            "--quick",
            action="store_true",
            help=f"a smoke check: vs-keras {QUICK_VS}, halving {QUICK_HALVING}",
        )
    w = sub.add_parser("keras-worker", help="(internal) the per-trial study, in a clone")
    w.add_argument("search")
    args = parser.parse_args(argv)
    if args.command == "keras-worker":
        return keras_worker(args)
    results = {}
    # halving first: the short one, whose table is there if the long one is cut off
    if args.command in ("halving", "all"):
        results["halving"] = halving(args)
        print_halving(results["halving"])
    if args.command in ("vs-keras", "all"):
        results["vs-keras"] = vs_keras(args)
        print_vs_keras(results["vs-keras"])
    print("\n## summary", flush=True)
    if "halving" in results:
        print_halving(results["halving"])
    if "vs-keras" in results:
        print_vs_keras(results["vs-keras"])


if __name__ == "__main__":
    main()
