"""What the benchmarks share: where the project and its data are, a fresh clone to
measure in, and one command run with its wall time and its own peak RSS.

The benchmarks run as modules from the project's root (``python -m benchmarks.grid``),
so that each can import this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCAL_DATA = ROOT / "data" / "raw" / "sonar.csv"  # what `dvc repro fetch` writes
# where the fresh clones go (each deleted afterwards): the system temp folder by default
TRY = Path(os.environ.get("SONARLAB_BENCH_DIR") or tempfile.gettempdir())


def data_source() -> str:
    """SONAR_SOURCE (a local copy or a URL), else this checkout's data/raw/sonar.csv."""
    fetched = str(LOCAL_DATA) if LOCAL_DATA.is_file() else ""
    source = os.environ.get("SONAR_SOURCE") or fetched
    if not source:
        raise SystemExit("no data: set SONAR_SOURCE to a local copy (or run dvc repro fetch)")
    return str(Path(source).resolve()) if "://" not in source else source


def local_data(given: str | None = None) -> Path:
    """A file of the data for code that reads it directly: ``given``, else this checkout's
    data/raw/sonar.csv, else SONAR_SOURCE if it names a file (relative to the project)."""
    if given:
        return Path(given)
    if LOCAL_DATA.is_file():
        return LOCAL_DATA
    source = os.environ.get("SONAR_SOURCE")
    if source and "://" not in source and (ROOT / source).is_file():
        return ROOT / source  # an absolute SONAR_SOURCE stays itself
    raise SystemExit("no data: run `dvc repro fetch` or set SONAR_SOURCE to a local copy")


def run(
    cmd: list[str], cwd: Path = ROOT, env: dict | None = None, lines: bool = False,
    echo: bool = False,
) -> dict:  # fmt: skip
    """Run ``cmd``: its wall time, its peak RSS in MiB, its stderr and, with ``lines``, the
    JSON lines it printed on stdout (``echo``: passed on as they come; without ``lines``
    stdout goes nowhere, so that a background process it leaves, such as DVC's queue
    workers, holds no pipe open). A failure stops the benchmark with the end of that
    stderr; an interrupted benchmark stops the command too.

    The peak is this command's own: ``os.wait4``'s usage of the child and the processes it
    waited for (the largest of them), not the largest of every command run so far."""
    out = subprocess.PIPE if lines else subprocess.DEVNULL
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        found = []
        try:
            for line in proc.stdout if lines else ():
                if line.startswith("{"):
                    found.append(json.loads(line))
                    if echo:
                        print(line, end="", flush=True)
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed (exit {code}):\n{stderr[-3000:]}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024, "lines": found,
            "stderr": stderr}  # fmt: skip


def last_line(result: dict, cmd: list[str]) -> dict:
    """The last JSON line a command printed (a worker's result)."""
    if not result["lines"]:
        raise SystemExit(f"{' '.join(map(str, cmd))} printed no JSON line")
    return result["lines"][-1]


@contextmanager
def clone(edit: Callable[[dict], None] | None = None) -> Iterator[tuple[Path, dict]]:
    """A fresh clone of HEAD in ``TRY``, its params.yaml changed by ``edit(params)``, with
    fetch and standardize done; yields (root, environment). Deleted afterwards.

    The environment puts the clone's ``src`` first on ``PYTHONPATH``: the project is
    installed editable, from this checkout, and a benchmark measures the committed code,
    not this checkout's working tree."""
    TRY.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sonarlab-bench-", dir=TRY) as tmp:
        root = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(root)], check=True)
        if edit is not None:
            edit_params(root, edit)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
        path = os.pathsep.join(p for p in (str(root / "src"), env.get("PYTHONPATH")) if p)
        env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", SONAR_SOURCE=data_source(),
                   PYTHONPATH=path, DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true",
                   TF_CPP_MIN_LOG_LEVEL="3")  # fmt: skip
        run(["dvc", "repro", "standardize"], root, env)
        yield root, env


def edit_params(root: Path, edit: Callable[[dict], None]) -> dict:
    """``root``'s params.yaml changed in place by ``edit(params)``; the new params."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    edit(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params
