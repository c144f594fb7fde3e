"""A dropout-rate sweep as DVC experiments: queue a grid, run it in parallel, summarize it.

``python -m sonarlab.sweep run`` (``make sweep``) does what you would type by hand::

    dvc exp run --queue -S 'variants.visible.model.input_dropout=0.0,0.1,0.2,0.3,0.4,0.5'
    dvc exp run --queue -S 'variants.hidden.model.hidden_dropout=0.0,0.1,0.2,0.3,0.4,0.5'
    dvc queue start -j 2

then waits for the queue to drain and writes the summary. Every experiment runs in a
temporary copy of the repo; its MLflow runs land in the repo-root store (``DVC_ROOT``)
tagged ``dvc.exp_name``.

``python -m sonarlab.sweep summary [--rev COMMIT]`` only writes the summary, from the
experiments based on the current commit (or COMMIT), as ``dvc exp show`` lists them:
for each swept parameter, one point per rate, the variant's
mean held-out accuracy with its 95% interval (from ``results/<variant>/metrics.json``).
Points are kept only from experiments whose other settings (the rest of the variant and
the ``cv`` section) equal the workspace's, so older, incomparable experiments drop out.
Writes ``reports/sweep/{sweep.md,sweep.csv,sweep.png}``.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sonarlab import files
from sonarlab.config import ConfigError, read_params
from sonarlab.paths import workspace_paths
from sonarlab.stages._cli import run

log = logging.getLogger(__name__)

# reports/sweep/sweep.csv: one row per (swept key, rate)
SWEEP = files.CsvFormat(
    {"key": "str", "variant": "str", "rate": "float64", "accuracy_mean": "float64",
     "accuracy_ci_low": "float64", "accuracy_ci_high": "float64", "experiment": "str"}
)  # fmt: skip
KEYS = ("variants.visible.model.input_dropout", "variants.hidden.model.hidden_dropout")
RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
ACTIVE = ("Queued", "Running")


@dataclass(frozen=True)
class Point:
    key: str
    variant: str
    rate: float
    mean: float
    low: float
    high: float
    experiment: str


def variant_of(key: str) -> str:
    parts = key.split(".")
    if len(parts) < 3 or parts[0] != "variants":
        raise ConfigError(f"sweep key {key}: got {key!r}; allowed: variants.<variant>.<field...>")
    return parts[1]


def flat(node: Mapping, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in node.items():
        if isinstance(v, Mapping):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def same(a: object, b: object) -> bool:
    """Equal as params: ``dvc.api.exp_show`` gives numbers as floats and lists as text."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return float(a) == float(b)
    return str(a) == str(b)


def _metric(row: Mapping, variant: str, name: str) -> float | None:
    """A metric of ``results/<variant>/metrics.json`` in a ``dvc.api.exp_show`` row
    (prefixed with the file when several files share the name)."""
    for column in (f"results/{variant}/metrics.json:{name}", name):
        value = row.get(column)
        if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
            return float(value)
    return None


def points(rows: Iterable[Mapping], keys: Sequence[str], params: Mapping) -> list[Point]:
    """One point per (key, rate), from the experiment rows comparable with ``params``."""
    reference = flat(params)
    out: dict[tuple[str, float], Point] = {}
    for key in keys:
        variant = variant_of(key)
        held = [
            k for k in reference if (k.startswith((f"variants.{variant}.", "cv.")) and k != key)
        ]
        for row in rows:
            if not row.get("Experiment"):
                continue  # the workspace or the commit itself, not an experiment
            rate = row.get(key)
            if not isinstance(rate, int | float) or not all(
                same(row.get(k), reference[k]) for k in held
            ):
                continue
            found = [_metric(row, variant, f"accuracy_{m}") for m in ("mean", "ci_low", "ci_high")]
            if None in found:
                continue  # an experiment that failed, or one from before the CIs existed
            name = str(row["Experiment"])
            out.setdefault((key, float(rate)), Point(key, variant, float(rate), *found, name))
    return sorted(out.values(), key=lambda p: (keys.index(p.key), p.rate))


def summary_markdown(pts: Sequence[Point], keys: Sequence[str]) -> str:
    lines = [
        "# Dropout-rate sweep\n",
        "Mean held-out accuracy over the repeated CV folds, with its 95% corrected "
        "resampled t interval; one DVC experiment per point. Everything else is as in "
        "params.yaml.\n",
    ]
    for key in keys:
        lines += [f"## {key}\n", "| rate | accuracy | 95% CI | experiment |", "|---|---|---|---|"]
        lines += [
            f"| {p.rate:g} | {100 * p.mean:.2f}% | [{100 * p.low:.2f}%, {100 * p.high:.2f}%] "
            f"| {p.experiment} |"
            for p in pts
            if p.key == key
        ]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_summary(pts: Sequence[Point], keys: Sequence[str], out: Path) -> None:
    from sonarlab import plots

    files.write_text(out / "sweep.md", summary_markdown(pts, keys))
    table = pd.DataFrame(
        [(p.key, p.variant, p.rate, p.mean, p.low, p.high, p.experiment) for p in pts],
        columns=list(SWEEP.columns),
    )
    SWEEP.write(out / "sweep.csv", table)
    series = {key: [(p.rate, p.mean, p.low, p.high) for p in pts if p.key == key] for key in keys}
    plots.save(
        plots.sweep(series, "Held-out accuracy vs dropout rate (95% corrected CI)"),
        out / "sweep.png",
    )


def experiment_rows(root: Path, rev: str) -> list[dict]:
    """The workspace and every experiment based on commit ``rev``, one flat row each."""
    import dvc.api

    return dvc.api.exp_show(repo=str(root), revs=[rev])


def head(root: Path) -> str:
    from sonarlab.tracking import git_commit

    commit = git_commit(root)
    if commit is None:
        raise OSError(f"{root}: no git commit; DVC experiments are based on one")
    return commit


# This environment's dvc, whatever is on PATH.
DVC = (sys.executable, "-m", "dvc")


def summarize(keys: Sequence[str], rev: str | None = None) -> list[Point]:
    """Summarize the experiments based on ``rev`` (default: the current commit)."""
    paths = workspace_paths()
    rev = rev or head(paths.root)
    rows = experiment_rows(paths.root, rev)
    pts = points(rows, keys, read_params(paths.params))
    if not pts:
        raise OSError(
            f"no finished experiment based on commit {rev[:7]} sets {' or '.join(keys)}; "
            "run `make sweep` first, or name the commit the sweep ran on with --rev"
        )
    write_summary(pts, keys, paths.reports / "sweep")
    for key in keys:
        found = sorted(p.rate for p in pts if p.key == key)
        log.info("sweep %s: %d rates %s", key, len(found), ", ".join(f"{r:g}" for r in found))
    log.info("sweep summary -> %s", paths.reports / "sweep" / "sweep.md")
    return pts


def queued_names(output: str) -> list[str]:
    """The experiments a ``dvc exp run --queue`` call says it queued."""
    return re.findall(r"Queued experiment '([^']+)' for future execution", output)


def queue_status(
    runner: Callable[..., subprocess.CompletedProcess], names: Sequence[str]
) -> dict[str, str]:
    """The status of each of ``names`` in ``dvc queue status`` (columns: task, name,
    created, status); other tasks in the queue, from earlier sweeps, are ignored."""
    out = runner([*DVC, "queue", "status"]).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            for name in {parts[0], parts[1]} & set(names):
                found[name] = parts[-1]
    return found


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    # Output through a file, not a pipe: `dvc queue start` leaves workers running that
    # inherit its output, and reading a pipe would wait for them to finish.
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        out.seek(0)
        proc.stdout = out.read()
    if proc.returncode != 0:
        raise OSError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stdout.strip()[-2000:]}")
    return proc


def run_sweep(
    keys: Sequence[str],
    rates: Sequence[float],
    jobs: int,
    timeout: float = 0.0,
    poll: float = 5.0,
) -> None:
    """Queue the grid, start ``jobs`` workers, wait (at most ``timeout`` seconds if > 0)
    and summarize; raise ``OSError`` naming the experiments that failed or never ended."""
    for key in keys:
        variant_of(key)
    if not rates or any(not 0 <= r < 1 for r in rates):
        raise ConfigError(f"sweep rates: got {list(rates)}; allowed: values in [0, 1)")
    base = head(workspace_paths().root)  # DVC bases the experiments on this commit
    grid = ",".join(f"{r:g}" for r in rates)
    names: list[str] = []
    for key in keys:
        log.info("queueing %s = %s", key, grid)
        names += queued_names(_run([*DVC, "exp", "run", "--queue", "-S", f"{key}={grid}"]).stdout)
    if not names:
        raise OSError("dvc queued no experiment (no 'Queued experiment' line in its output)")
    log.info("starting %d queue workers: dvc queue start -j %d", jobs, jobs)
    _run([*DVC, "queue", "start", "-j", str(jobs)])
    try:
        status = wait(names, poll, timeout)
    except KeyboardInterrupt:
        log.error(
            "sweep: stopped waiting; the queue goes on in the background. "
            "`dvc queue status` shows it, `dvc queue kill %s` stops these experiments",
            " ".join(names),
        )
        raise
    failed = sorted(n for n in names if status.get(n) not in (*ACTIVE, "Success"))
    pending = sorted(n for n in names if status.get(n, "Queued") in ACTIVE)
    summarize(keys, base)
    problems = []
    if failed:
        problems.append(f"{len(failed)} failed ({', '.join(failed)}; `dvc queue logs <name>`)")
    if pending:
        problems.append(
            f"{len(pending)} still queued or running after {timeout:g} s ({', '.join(pending)}; "
            "`dvc queue kill <name>` stops them)"
        )
    if problems:
        raise OSError(f"of {len(names)} experiments, " + " and ".join(problems))


def wait(names: Sequence[str], poll: float, timeout: float = 0.0) -> dict[str, str]:
    """Poll ``dvc queue status`` until none of ``names`` is queued or running, or until
    ``timeout`` seconds have passed (if > 0). Returns the last status of each."""
    deadline = time.monotonic() + timeout if timeout > 0 else math.inf
    while True:
        status = queue_status(_run, names)
        pending = [n for n in names if status.get(n, "Queued") in ACTIVE]
        running = sum(status.get(n) == "Running" for n in names)
        log.info(
            "sweep: %d/%d experiments done (%d running)",
            len(names) - len(pending), len(names), running,
        )  # fmt: skip
        if not pending or time.monotonic() >= deadline:
            return status
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sonarlab.sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser(
        "run",
        help="queue the grid, run it with N workers, summarize",
        description="Queue one DVC experiment per rate and swept key, run them with "
        "`dvc queue start -j N`, wait, and write reports/sweep/.",
    )
    run_p.add_argument(
        "--rates",
        type=lambda s: [float(v) for v in s.split(",")],
        default=list(RATES),
        help=f"comma-separated dropout rates (default: {','.join(f'{r:g}' for r in RATES)})",
    )
    run_p.add_argument("--jobs", "-j", type=int, default=2, help="parallel workers (default 2)")
    run_p.add_argument(
        "--timeout", type=float, default=0, help="stop waiting after this many seconds (0: never)"
    )
    sum_p = sub.add_parser("summary", help="summarize the experiments DVC knows")
    sum_p.add_argument(
        "--rev", help="the commit the experiments were based on (default: the current one)"
    )
    for p in (run_p, sum_p):
        p.add_argument(
            "keys",
            nargs="*",
            default=list(KEYS),
            help=f"dotted variant parameters to sweep (default: {' '.join(KEYS)})",
        )
    args = parser.parse_args(argv)
    if args.command == "run":
        return run("sweep", lambda: run_sweep(args.keys, args.rates, args.jobs, args.timeout))
    return run("sweep", lambda: summarize(args.keys, args.rev))


if __name__ == "__main__":
    raise SystemExit(main())
