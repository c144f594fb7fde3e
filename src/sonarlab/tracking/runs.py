"""MLflow wiring: where the store is, which experiment, what every run is tagged with,
and what a stage's runs hold.

Default store: ``sqlite:///<store root>/mlflow.db`` with artifacts in
``<store root>/mlartifacts``, the store root being ``$DVC_ROOT`` when DVC runs the
stage (see ``paths``). ``MLFLOW_TRACKING_URI`` overrides it.

A ``cv@<variant>`` stage logs one parent run named after the variant (``stage_run``):
the flattened config and its input data set as params and input (``log_cv_config``,
``log_training_input``), one run per fold (``log_fold``), then the summary, the mean
per-epoch curves and the final model, registered with the variant as its alias
(``log_cv_result``), and the output files (``log_outputs``).

What goes where, so that the experiment's first page in the UI (the 100 newest runs)
holds every variant's parent run and its chart view compares only them:

- ``<experiment>``: the variants' parent runs, the grids' parent runs and ``report``;
- ``<experiment>-folds``: one run per fold, each a child (``mlflow.parentRunId``) of
  its variant's parent run, with its split, scores and per-epoch curves (a table);
- ``<experiment>-trials``: one run per grid trial, a child of its grid's parent run.

The registered model is named after the experiment (``registered_model_name``): one
version per ``cv@<variant>`` run, with the alias ``@<variant>``; the report stage sets
``@champion``. A cv run with overrides of params.yaml registers nothing and is tagged
``OVERRIDES_TAG`` (``stage_run``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import filelock
import mlflow
import numpy as np
import pandas as pd
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from sqlalchemy.exc import SQLAlchemyError

from sonarlab.cli.interrupts import Terminated
from sonarlab.core.params import N_BANDS, ConfigError, CVConfig, flatten
from sonarlab.core.paths import GridPaths, SearchPaths, git_commit
from sonarlab.data.uci import FINGERPRINT, Sonar
from sonarlab.design.grids import GridConfig
from sonarlab.design.searches import SearchConfig
from sonarlab.design.variants import CHAMPION, VariantConfig
from sonarlab.results import tables
from sonarlab.tracking import stores
from sonarlab.training.outcomes import FoldResult, epoch_table

log = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
FOLDS_SUFFIX = "-folds"  # the experiment of the fold runs: <experiment>-folds
TRIALS_SUFFIX = "-trials"  # the experiment of the grid trials' runs
DATASET_NAME = "uci-sonar"
DATASET_SOURCE = "data/raw/sonar.csv"  # the pipeline's copy, relative to the project root
# MLflow caps a dataset's digest at 36 characters: the digest is the pinned sha256
# fingerprint's first 36 hex digits, and the input's tag FINGERPRINT_TAG has all 64.
DATASET_DIGEST = FINGERPRINT[:36]
FINGERPRINT_TAG = "sonarlab.fingerprint"
# A run with overrides of params.yaml (``cv --set``/``--epochs``/``--folds``): tagged with
# them, named ``<variant> (override)``, its model logged but never registered
OVERRIDES_TAG = "sonarlab.overrides"
OVERRIDE_SUFFIX = "(override)"


def default_tracking_uri(store_root: Path) -> str:
    return f"sqlite:///{store_root / 'mlflow.db'}"


def resolve_tracking_uri(store_root: Path, env: Mapping[str, str] | None = None) -> str:
    """``MLFLOW_TRACKING_URI``, or the default store; as MLflow is given it
    (``stores.sqlalchemy_uri``: ``postgresql://`` names the locked driver)."""
    env = os.environ if env is None else env
    return stores.sqlalchemy_uri(env.get("MLFLOW_TRACKING_URI") or default_tracking_uri(store_root))


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts beside a SQLite store (an absolute ``file:`` URI); servers choose their own."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        return (Path(tracking_uri[len(prefix) :]).parent / "mlartifacts").resolve().as_uri()
    return None


def check_reachable(tracking_uri: str, timeout: float = 5.0, experiment: str = "Default") -> None:
    """Fail fast, naming the URI, when a tracking server does not answer as MLflow does.

    MLflow's own client retries an unreachable server for minutes; this probe asks the
    server's /health and MLflow's REST API once, before any training, and raises
    ``StoreError`` (an ``OSError``) if it is down or is not an MLflow server. Local
    stores are probed by ``open_experiment``.
    """
    stores.check_scheme(tracking_uri)  # a store MLflow has, with a port that is a number
    if tracking_uri.startswith(("http://", "https://")):
        stores.probe_server(tracking_uri, experiment, timeout)
    else:
        stores.probe_folder_store(tracking_uri)
        stores.probe_database(tracking_uri)  # PostgreSQL, MySQL, SQL Server: one connection
        stores.bound_database_sessions(tracking_uri, stores.store_timeout(), os.environ)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file of a ``sqlite:///`` store; None for other stores."""
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix) :]) if tracking_uri.startswith(prefix) else None


@contextlib.contextmanager
def store_lock(tracking_uri: str, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite store (no-op for other stores).

    MLflow creates and migrates a SQLite store's schema on first use; four stages
    starting at once on a new store (``dvc queue start -j 4``) raced in that migration
    and all failed ("table _alembic_tmp_tags already exists"), leaving the store
    broken. Opening the store under this lock makes the first use one at a time.
    A lock held by another process for over ``timeout`` seconds (default
    ``stores.store_timeout()``) raises ``StoreError``.
    """
    path = sqlite_path(tracking_uri)
    if path is None:
        yield
        return
    timeout = stores.store_timeout() if timeout is None else timeout
    lock_path = Path(f"{path}.lock")
    # an flock on the file, as before and as other stages (and `fuser`) see it: never a
    # "soft" lock (a file whose existence is the lock would outlive a kill -9), and the
    # file is kept on release, so a lock never changes hands by a file being replaced
    lock = filelock.FileLock(
        lock_path, timeout=timeout, fallback_to_soft=False, preserve_lock_file=True
    )
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except filelock.Timeout:
        raise stores.StoreError(
            f"MLflow store {tracking_uri} is locked: another process has held "
            f"its lock {lock_path} for over {timeout:g} s (see `fuser {lock_path}`); "
            f"end it or wait, then run the stage again ({stores.TIMEOUT_ENV} sets the wait)"
        ) from None
    except OSError as exc:
        raise stores.StoreError(
            f"MLflow store {tracking_uri}: cannot open its lock file {lock_path} "
            f"({exc.strerror or exc}); make {lock_path.parent} writable"
        ) from None
    try:
        yield
    finally:
        lock.release()


def ensure_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The experiment's id, creating it (artifacts beside the store) if it does not exist.

    An experiment's artifact location is fixed at creation, so it is set explicitly
    here rather than left to MLflow's cwd-relative default.
    """
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(tracking_uri))
    except MlflowException:
        # A parallel stage may have created it between our lookup and create.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def open_experiment(
    store_root: Path, name: str, stage: str | None = None
) -> tuple[MlflowClient, str, str]:
    """Point MLflow at the store and return the client, the experiment's id and the
    tracking URI. Safe for stages starting at once.

    Before any training: a store that cannot be used (damaged, read-only, locked for too
    long, a server that is not MLflow or answers too slowly, a database that does not
    answer or whose driver is not installed, another MLflow's schema, artifacts that
    cannot be written) raises ``StoreError`` with one line naming it and what to do; and
    runs left RUNNING by processes that are gone are ended KILLED
    (``stores.mark_dead_runs``, by ``stage``). The URI returned is the one to show: a
    password in it is masked (``stores.shown``)."""
    stores.close_interrupted_statements()  # so that an interrupt can still end the runs
    uri = resolve_tracking_uri(store_root)
    timeout = stores.store_timeout()
    check_reachable(uri, experiment=name)
    path = sqlite_path(uri)
    with store_lock(uri, timeout):  # the first use of a new SQLite store migrates it
        if path is not None:
            stores.probe_sqlite(path, uri, timeout)
            if not path.exists() or path.stat().st_size == 0:
                log.info("creating the MLflow store %s", uri)
        mlflow.set_tracking_uri(uri)
        try:
            with quiet_mlflow():  # its failures are said in one line below
                client = MlflowClient(uri)
                experiment_id = ensure_experiment(client, name, uri)
                mlflow.search_experiments(max_results=1)  # the fluent API's store, opened here too
                stores.probe_artifacts(client.get_experiment(experiment_id).artifact_location, uri)
                stores.mark_dead_runs(client, stage or f"sonarlab (pid {os.getpid()})")
        except (MlflowException, SQLAlchemyError) as exc:
            raise stores.StoreError(
                f"MLflow store {stores.shown(uri)} cannot be used: {root_cause(exc)}"
            ) from None
    _opened.append(uri)
    return client, experiment_id, stores.shown(uri)


_opened: list[str] = []  # the stores this process opened, for end_runs_of_this_process


@dataclass(frozen=True)
class Launch:
    """How a stage's top-level run relates to a run ``mlflow run`` made (``MLFLOW_RUN_ID``)."""

    resume: str | None = None  # log into this run (an entry point ran the stage itself)
    parent: str | None = None  # hang a new run under this one (DVC ran it for `-e main`)

    def start_args(
        self, client: MlflowClient, experiment_id: str, name: str, rename: bool = False
    ) -> dict:
        """Arguments for ``mlflow.start_run`` (beside tags). A launched run keeps the
        name ``mlflow run`` gave it unless ``rename``."""
        launched = self.resume or self.parent
        if launched:  # the run `mlflow run` made decides the experiment
            try:
                with quiet_mlflow():
                    experiment_id = client.get_run(launched).info.experiment_id
            except MlflowException:
                raise ConfigError(
                    f"MLFLOW_RUN_ID: got {launched!r}; no such run in the store "
                    f"{client.tracking_uri} (`mlflow run` sets it; unset it to start a new run)"
                ) from None
        return {
            "run_id": self.resume,
            "experiment_id": experiment_id,
            "run_name": name if rename or not self.resume else None,
        }

    def tags(self) -> dict[str, str]:
        return {"mlflow.parentRunId": self.parent} if self.parent else {}


def take_launch(env: MutableMapping[str, str] | None = None) -> Launch:
    """Take ``MLFLOW_RUN_ID`` out of the environment (so that nested runs do not resume
    it too) and say what to do with it. Under DVC (``-e main`` runs ``dvc repro``)
    several stages share one launched run, so each makes its own run under it."""
    env = os.environ if env is None else env
    launched = env.pop("MLFLOW_RUN_ID", None)
    if not launched:
        return Launch()
    return Launch(parent=launched) if env.get("DVC_STAGE") else Launch(resume=launched)


def run_tags(stage: str, workspace: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a stage's top-level run is tagged with: the stage, the commit, the DVC
    experiment, and who made it (``stores.liveness_tags``: a run whose process is gone is
    found by the next stage that opens the store)."""
    env = os.environ if env is None else env
    tags = {"dvc.stage": env.get("DVC_STAGE") or stage, **stores.liveness_tags()}
    # what XLA compiled for (sonarlab/__init__ caps the instruction set): it decides bits
    tags["sonarlab.xla_flags"] = env.get("XLA_FLAGS", "")
    commit = git_commit(workspace)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if env.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = env["DVC_EXP_NAME"]
    if env.get("DVC_EXP_BASELINE_REV"):
        tags["dvc.exp_baseline_rev"] = env["DVC_EXP_BASELINE_REV"]
    return tags


def log_series(
    client: MlflowClient, run_id: str, series: Mapping[str, list[float]], timestamp_ms: int
) -> None:
    """Log per-epoch series (step = epoch) in as few ``log_batch`` calls as the limit allows."""
    metrics = [
        Metric(key, float(v), timestamp_ms, step)
        for key, values in series.items()
        for step, v in enumerate(values)
    ]
    for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])


def model_requirements() -> list[str]:
    """What serving the logged Keras model needs, at the versions that trained it."""
    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "tensorflow", "keras")]


@contextlib.contextmanager
def stage_run(
    client: MlflowClient,
    experiment_id: str,
    name: str,
    stage: str,
    workspace: Path,
    overrides: Sequence[str] = (),
) -> Iterator[mlflow.ActiveRun]:
    """A stage's top-level run: a new run named ``name``, or the run ``mlflow run`` made
    (see ``take_launch``); tagged with the stage, the commit and the DVC experiment; ended
    KILLED by an interrupt and tagged with the error on a failure.

    A run with ``overrides`` (of params.yaml, for this run only) is tagged
    ``OVERRIDES_TAG`` with them and named ``<name> (override)``, a launched run too: it
    is not the stage's run, and what looks for a stage's newest run by name skips it."""
    launch = take_launch()
    tags = {**run_tags(stage, workspace), **launch.tags()}
    if overrides:
        name = f"{name} {OVERRIDE_SUFFIX}"
        tags[OVERRIDES_TAG] = ", ".join(overrides)
    with (
        mlflow.start_run(
            **launch.start_args(client, experiment_id, name, rename=bool(overrides)), tags=tags
        ) as run,
        closing_run_on_failure(),
    ):
        yield run


def log_cv_config(name: str, variant: VariantConfig, cv: CVConfig) -> None:
    """The variant's and the CV's settings as params (only the fields its kind reads)."""
    mlflow.log_params({"variant": name, **flatten(variant, "variant."), **flatten(cv, "cv.")})


def detail_experiment(client: MlflowClient, experiment: str, suffix: str, uri: str) -> str:
    """The id of ``<experiment><suffix>`` (``FOLDS_SUFFIX``, ``TRIALS_SUFFIX``), created
    if needed: the runs that would otherwise push the variants off the UI's first page."""
    return ensure_experiment(client, experiment + suffix, uri)


def sonar_dataset(sonar: Sonar) -> PandasDataset:
    """The data set as MLflow's dataset entity: the 60 bands and the M/R label, named
    ``uci-sonar``, its source the pipeline's copy, its digest the pinned fingerprint's
    prefix ``DATASET_DIGEST`` (``data.read_local`` has checked the content against it)."""
    frame = pd.DataFrame(sonar.X, columns=[f"band_{i + 1:02d}" for i in range(N_BANDS)])
    frame["label"] = list(sonar.labels)
    with warnings.catch_warnings():
        # MLflow 3.17 registers its local-file source class twice and warns that a path
        # "can be interpreted in multiple ways" (both the same class): noise, not news
        warnings.filterwarnings("ignore", "The specified dataset source", UserWarning)
        return mlflow.data.from_pandas(
            frame, source=DATASET_SOURCE, name=DATASET_NAME, digest=DATASET_DIGEST,
            targets="label",
        )  # fmt: skip


def log_training_input(
    dataset: PandasDataset, client: MlflowClient | None = None, run_id: str | None = None
) -> None:
    """``dataset`` as the training input of the active run, or of ``run_id`` (a run made
    with the client, such as a grid trial's), tagged with the whole fingerprint."""
    if run_id is None:
        mlflow.log_input(dataset, context="training", tags={FINGERPRINT_TAG: FINGERPRINT})
        return
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, "training"), InputTag(FINGERPRINT_TAG, FINGERPRINT)]
    client.log_inputs(run_id, [DatasetInput(dataset._to_mlflow_entity(), tags)])


def registered_model_name(experiment: str) -> str:
    """One registered model per experiment, named like it (no knob of its own)."""
    return experiment


def set_champion(client: MlflowClient, registered: str, variant: str) -> str:
    """Point ``@champion`` at the version that ``@<variant>`` names; its version number.

    Raises ``LookupError`` if the store has no such alias (the variant's ``cv`` stage
    has not logged to this store, e.g. DVC restored its outputs from its cache)."""
    try:
        version = client.get_model_version_by_alias(registered, variant).version
    except MlflowException:
        raise LookupError(
            f"registered model {registered!r} has no version @{variant} in this store; "
            f"run `dvc repro --force cv@{variant}` to log and register it"
        ) from None
    client.set_registered_model_alias(registered, CHAMPION, version)
    return version


def clear_champion(client: MlflowClient, registered: str) -> bool:
    """Remove ``@champion`` (no variant may be served); whether it was set."""
    try:
        client.get_model_version_by_alias(registered, CHAMPION)
    except MlflowException:
        return False
    client.delete_registered_model_alias(registered, CHAMPION)
    return True


def log_fold(experiment_id: str, variant: str, result: FoldResult) -> None:
    """One fold as a child of the active run, in the folds' experiment ``experiment_id``
    (see the module's docstring): its split and scores, and its per-epoch curves as the
    artifact ``curves.csv`` (``tables.FOLD_CURVES``).

    The curves are a table, not metric series: 30 folds x 4 curves x 300 epochs as
    metrics were 36,000 rows through the store, 3.2 s measured alone, more than a fused
    stage's training."""
    s = result.split
    with (
        mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"{variant} r{s.repeat} f{s.fold}",
            nested=True,
            tags=stores.liveness_tags(),
        ),
        closing_run_on_failure(),
    ):
        mlflow.log_params(
            {"repeat": s.repeat, "fold": s.fold, "n_train": len(s.train), "n_test": len(s.test)}
        )
        mlflow.log_metrics(
            {**result.test_metrics, "train_accuracy": result.train_metrics["accuracy"],
             "seconds": result.seconds}
        )  # fmt: skip
        mlflow.log_text(tables.FOLD_CURVES.text(epoch_table(result.curves)), "curves.csv")


# What every logged model takes and gives: raw 60-band rows in, P(mine) out.
MODEL_SIGNATURE = ModelSignature(
    inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, N_BANDS))]),
    outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1))]),
)


def log_cv_result(
    client: MlflowClient,
    run_id: str,
    settings: Mapping,
    metrics: Mapping[str, float],
    curves: pd.DataFrame,
    model,
    registered: str,
    variant: str,
    register: bool = True,
) -> None:
    """What the active run of a ``cv@<variant>`` stage keeps of its result, logged as soon
    as training is done (before any output file is written, so that a failed write loses
    none of it): the summary as metrics, the mean curves as per-epoch series, the
    ``params.yaml`` sections it read, and the final model, as a new version of the
    registered model ``registered`` that the alias ``@<variant>`` then names.

    Without ``register`` (a run with overrides) the model is an artifact of the run only:
    no version of ``registered`` is made and no alias moves."""
    mlflow.log_metrics(dict(metrics))
    series = {f"epoch_{k}": curves[k].tolist() for k in curves.columns if k.endswith("_mean")}
    log_series(client, run_id, series, int(time.time() * 1000))
    mlflow.log_dict(dict(settings), "params.json")
    # MLflow announces a registration with print() on stderr ("Successfully registered
    # model ...", "Created version ..."): said once below, in the stage's own log
    with contextlib.redirect_stderr(io.StringIO()):
        info = mlflow.keras.log_model(
            model,
            name="model",
            signature=MODEL_SIGNATURE,
            # Pinned from this environment: MLflow's own inference re-imports the
            # model in a subprocess, which costs more than the rest of a short stage.
            pip_requirements=model_requirements(),
            registered_model_name=registered if register else None,
        )
    if not register:
        log.info("%s: final model logged with run %s, not registered", variant, run_id)
        return
    version = info.registered_model_version
    client.set_model_version_tag(registered, version, "variant", variant)
    client.set_registered_model_alias(registered, variant, version)
    log.info("%s: final model registered as %s version %s (@%s)",
             variant, registered, version, variant)  # fmt: skip


def log_outputs(paths: Sequence[Path]) -> None:
    """A stage's output files, as artifacts of the active run."""
    for path in paths:
        mlflow.log_artifact(str(path))


def log_comparison(numbers: Mapping[str, float], artifact_file: str = "comparison.json") -> None:
    """The report's numbers (``<variant>.<quantity>`` keys) as a table artifact of the
    active run, one row per variant: viewable in the run's artifacts, kept out of the
    experiment's chart view (which draws one chart per metric key)."""
    table: dict[str, dict[str, float]] = {}
    for key, value in numbers.items():
        variant, quantity = key.split(".", 1)
        table.setdefault(variant, {})[quantity] = value
    frame = pd.DataFrame.from_dict(table, orient="index")
    mlflow.log_table(frame.rename_axis("variant").reset_index(), artifact_file)


def log_grid_result(
    client: MlflowClient,
    parent: str,
    trials_experiment_id: str,
    dataset: PandasDataset,
    grid: GridConfig,
    cv: CVConfig,
    trials: pd.DataFrame,
    metrics: Mapping,
    outputs: GridPaths,
) -> None:
    """A grid's parent run (``grid@<name>``, active) gets the grid's axes and the best
    trial as params and metrics, and its tables and figure as artifacts; every trial
    becomes a child run, in the trials' experiment ``trials_experiment_id``, whose params
    are every field of its variant (plus the grid's axes, so MLflow's run comparison
    plots them), whose metrics are its summary and whose input is ``dataset``.
    The per-split numbers stay in the artifact ``splits.csv``, not in runs."""
    mlflow.log_params({"grid": grid.name, "variant": grid.variant,
                       "axes": ",".join(grid.axis_names), **flatten(cv, "cv.")})  # fmt: skip
    best = {f"best_{k}": v for k, v in (metrics["best"] or {}).items() if isinstance(v, float)}
    corrected = {f"best_corrected_{k}": v for k, v in (metrics["best_corrected"] or {}).items()}
    reference = {f"no_skill_{k}": v for k, v in metrics["reference"].items()}
    mlflow.log_metrics(
        {"n_trials": metrics["n_trials"], "n_beat_reference": metrics["n_beat_reference"],
         **best, **corrected, **reference}
    )  # fmt: skip
    log_outputs(outputs.outputs)
    by_index = {t.index: t for t in grid.trials}
    rows = [(by_index[int(row["trial"])], row) for row in trials.to_dict("records")]
    log_trial_runs(client, parent, trials_experiment_id, dataset, ("grid", grid.name), cv, rows)


def trial_run_name(study: str, values: Mapping[str, Any]) -> str:
    """A trial's run name: its study and its values, the last part of each key (so the
    UI's run table and parallel-coordinates view read ``hidden_dropout=0.2``, not ``#5``)."""

    def text(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return f"{study}: " + ", ".join(f"{k.rsplit('.', 1)[-1]}={text(v)}" for k, v in values.items())


def log_trial_runs(
    client: MlflowClient,
    parent: str,
    experiment_id: str,
    dataset: PandasDataset,
    study: tuple[str, str],
    cv: CVConfig,
    rows: Sequence[tuple[Any, Mapping[str, Any]]],
) -> None:
    """One child run of ``parent`` per trial (a ``Trial`` and its row of ``trials.csv``),
    named by its values: every field of its variant as params, its row's numbers as
    metrics, ``dataset`` as its input. ``study`` is (``grid`` or ``search``, its name)."""
    kind, name = study
    now = int(time.time() * 1000)
    for trial, row in rows:
        run = client.create_run(
            experiment_id,
            run_name=trial_run_name(name, trial.values),
            tags={"mlflow.parentRunId": parent, f"sonarlab.{kind}": name, **stores.liveness_tags()},
        )
        params = {"trial": trial.index, "seed": trial.replicate,
                  **flatten(trial.variant, "variant."), **flatten(cv, "cv.")}  # fmt: skip
        values = [
            Metric(k, float(v), now, 0) for k, v in row.items()
            if k not in trial.values and k != "trial" and isinstance(v, int | float)
        ]  # fmt: skip
        tags = [RunTag("sonarlab.state", str(row["state"]))] if "state" in row else []
        client.log_batch(
            run.info.run_id, metrics=values, tags=tags,
            params=[Param(k, str(v)) for k, v in params.items()],
        )  # fmt: skip
        log_training_input(dataset, client, run.info.run_id)
        client.set_terminated(run.info.run_id)


def log_search_result(
    client: MlflowClient,
    parent: str,
    trials_experiment_id: str,
    dataset: PandasDataset,
    search: SearchConfig,
    cv: CVConfig,
    trials: Sequence[Any],
    table: pd.DataFrame,
    metrics: Mapping,
    outputs: SearchPaths,
) -> None:
    """A search's parent run (``search@<name>``, active) gets its settings and the
    chosen trial as params and metrics, its outputs as artifacts; each trial (the
    driver's ``SearchTrial``s) a child run as a grid's trials do (``log_trial_runs``)."""
    halving = search.halving
    mlflow.log_params({
        "search": search.name, "variant": search.variant, "sampler": search.sampler,
        "trials": search.trials, "seed": search.seed, "space": ",".join(search.axis_names),
        "rungs": ",".join(map(str, search.rungs)),
        "reduction": halving.reduction if halving else "none", **flatten(cv, "cv."),
    })  # fmt: skip
    best = {f"best_{k}": v for k, v in (metrics["best"] or {}).items() if isinstance(v, float)}
    corrected = {f"best_corrected_{k}": v for k, v in (metrics["best_corrected"] or {}).items()}
    reference = {f"no_skill_{k}": v for k, v in metrics["reference"].items()}
    counts = {k: v for k, v in metrics.items() if isinstance(v, int)}
    mlflow.log_metrics({**counts, **best, **corrected, **reference})
    log_outputs(outputs.outputs)
    rows_by = {int(row["trial"]): row for row in table.to_dict("records")}
    rows = [(t.trial, rows_by[t.number]) for t in trials]
    log_trial_runs(client, parent, trials_experiment_id, dataset, ("search", search.name), cv, rows)


@contextlib.contextmanager
def closing_run_on_failure() -> Iterator[None]:
    """Inside ``mlflow.start_run()``: an interrupt ends the active run as KILLED (MLflow
    would say FAILED); an error is recorded on it as the tag ``error`` before MLflow ends
    it as FAILED."""
    try:
        yield
    except (KeyboardInterrupt, Terminated):
        end_active_run_killed()
        raise
    except Exception as exc:
        mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
        raise


def end_active_run_killed() -> bool:
    """End the active run KILLED, as an interrupt unwinds; False if that failed. If it
    fails (the store went away), one line says so and the interrupt goes on; the run is
    then left RUNNING until the next stage opens the store and finds its process gone
    (``stores.mark_dead_runs``)."""
    run = mlflow.active_run()
    try:
        with quiet_mlflow():
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
    except (Exception, KeyboardInterrupt, Terminated) as exc:
        run_id = run.info.run_id if run else "?"
        log.warning(
            "run %s could not be ended KILLED (%s); the next stage to open the store will",
            run_id, root_cause(exc),
        )  # fmt: skip
        return False
    return True


def end_runs_of_this_process() -> None:
    """After an interrupt: end KILLED every run of this process still RUNNING: those still
    active, and one that ``start_run`` had made but not yet made active when the signal
    came (nothing else would end it before the next stage finds this process gone)."""
    while mlflow.active_run() is not None:
        if not end_active_run_killed():
            return
    if not _opened:
        return
    own = stores.liveness_tags()
    same = (stores.HOST_TAG, stores.PID_NS_TAG, stores.BOOT_TAG, stores.PID_TAG, stores.START_TAG)
    try:
        with quiet_mlflow():
            client = MlflowClient(_opened[-1])
            for run in stores.running_runs(client):
                if all(run.data.tags.get(k) == own[k] for k in same):
                    client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
    except Exception as exc:
        log.warning("runs of this process could not be ended KILLED (%s); the next stage to "
                    "open the store will", root_cause(exc))  # fmt: skip


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow logs a store's failure at ERROR, with a traceback, before raising it; here
    the caller says it in one line instead."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def root_cause(exc: BaseException) -> str:
    """The first line of the innermost explicit cause (SQLAlchemy and MLflow wrap the
    driver's error in lines of their own)."""
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__
    inner = seen[-1]
    text = str(getattr(inner, "message", inner)).strip()
    return f"{type(inner).__name__}: {text.splitlines()[0] if text else ''}"[:300]
