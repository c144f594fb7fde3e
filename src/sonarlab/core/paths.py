"""Every path the pipeline reads or writes, relative to the project root.

Two roots matter. The *workspace* is the directory DVC runs the stage in (the repo,
or the temporary copy that ``dvc exp run --temp``/``--queue`` makes); stage inputs
and outputs live there so DVC can collect them. The *store root* is where the
MLflow store lives: ``DVC_ROOT`` (the real repository, even for a temporary copy),
so that every run of every experiment lands in one store.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sonarlab.core.params import ConfigError


def find_workspace(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) holding ``dvc.yaml``."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no dvc.yaml in {here} or above: run sonarlab from inside the project")


def store_root(workspace: Path, env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """Where the default MLflow store lives: ``$DVC_ROOT`` when DVC runs us, else the workspace."""
    env = os.environ if env is None else env
    if not env.get("DVC_ROOT"):
        return workspace
    root = Path(env["DVC_ROOT"]).resolve()
    if not root.is_dir():
        raise ConfigError(
            f"DVC_ROOT: got {env['DVC_ROOT']!r}; allowed: an existing folder (DVC sets it to "
            "the repository's root; unset it outside DVC)"
        )
    return root


SCRATCH = "scratch"  # runs with overrides write here (git- and DVC-ignored), never results/


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def raw_data(self) -> Path:
        return self.root / "data" / "raw" / "sonar.csv"

    @property
    def folds(self) -> Path:
        return self.root / "data" / "prepared" / "folds.csv"

    @property
    def scalers(self) -> Path:
        return self.root / "data" / "prepared" / "scalers.json"

    def results(self, variant: str) -> Path:
        return self.root / "results" / variant

    def variant(self, variant: str) -> VariantPaths:
        """The outputs of ``cv@<variant>`` (as ``dvc.yaml`` lists them)."""
        return VariantPaths(self.results(variant))

    def scratch_variant(self, variant: str) -> VariantPaths:
        """Where a ``cv`` run with overrides (``--set``, ``--epochs``, ``--folds``) writes
        the files ``cv@<variant>`` writes: ``scratch/cv/<variant>/``, which git and DVC
        ignore, so such a run never changes an output DVC owns."""
        return VariantPaths(self.root / SCRATCH / "cv" / variant)

    def grid(self, name: str) -> GridPaths:
        """The outputs of ``grid@<name>`` (as ``dvc.yaml`` lists them)."""
        return GridPaths(self.root / "results" / "grid" / name)

    def search(self, name: str) -> SearchPaths:
        """The outputs of ``search@<name>`` (as ``dvc.yaml`` lists them)."""
        return SearchPaths(self.root / "results" / "search" / name)

    @property
    def reports(self) -> Path:
        return self.root / "reports"


@dataclass(frozen=True)
class VariantPaths:
    root: Path  # results/<variant> (or scratch/cv/<variant>)

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def folds(self) -> Path:
        return self.root / "folds.csv"

    @property
    def curves(self) -> Path:
        return self.root / "curves.csv"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.csv"

    @property
    def learning_curves(self) -> Path:
        return self.root / "learning_curves.png"

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def outputs(self) -> list[Path]:
        return [
            self.metrics, self.folds, self.predictions, self.curves, self.learning_curves,
            self.model,
        ]  # fmt: skip


@dataclass(frozen=True)
class GridPaths:
    root: Path  # results/grid/<name>

    @property
    def trials(self) -> Path:
        return self.root / "trials.csv"

    @property
    def splits(self) -> Path:
        return self.root / "splits.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.csv"

    @property
    def figure(self) -> Path:
        return self.root / "grid.png"

    @property
    def outputs(self) -> list[Path]:
        return [self.trials, self.splits, self.predictions, self.metrics, self.figure]


@dataclass(frozen=True)
class SearchPaths:
    root: Path  # results/search/<name>

    trials = property(lambda self: self.root / "trials.csv")
    splits = property(lambda self: self.root / "splits.csv")
    predictions = property(lambda self: self.root / "predictions.csv")
    metrics = property(lambda self: self.root / "metrics.json")
    study = property(lambda self: self.root / "study.journal")  # Optuna's JournalFileBackend

    def figure(self, name: str) -> Path:
        """``history``, ``importance`` or ``slices`` (``search.figures``)."""
        return self.root / f"{name}.png"

    @property
    def figures(self) -> list[Path]:
        return [self.figure(n) for n in ("history", "importance", "slices")]

    @property
    def outputs(self) -> list[Path]:
        return [self.trials, self.splits, self.predictions, self.metrics, self.study,
                *self.figures]  # fmt: skip


def git_commit(cwd: Path) -> str | None:
    """The commit checked out at ``cwd``, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def workspace_paths() -> Paths:
    return Paths(find_workspace())
