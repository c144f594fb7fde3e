"""Which RUNNING runs belong to dead processes, and which SQLite stores can be used:
judged against a real SQLite MLflow store, real processes and a real SQLite lock."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from sonarlab.cli.interrupts import Terminated
from sonarlab.data.folds import Split
from sonarlab.tracking import runs, stores
from sonarlab.tracking.stores import (
    BOOT_TAG,
    FOUND_DEAD_TAG,
    HOST_TAG,
    START_TAG,
    Machine,
    StoreError,
    dead_process,
    liveness_tags,
    mark_dead_runs,
    probe_sqlite,
    process_start,
)
from sonarlab.training.outcomes import CURVE_KEYS, FoldResult
from tests.conftest import lock_held


@pytest.fixture(autouse=True)
def own_tracking_uri(monkeypatch):
    """``mlflow.set_tracking_uri`` also sets ``MLFLOW_TRACKING_URI``: restored after each
    test, so that each test's ``open_experiment`` opens its own store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")


@pytest.fixture(scope="module")
def made_store(tmp_path_factory):
    """A real store MLflow made (its schema at this MLflow's head): copied by each test."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    client = MlflowClient(f"sqlite:///{path}")
    client.create_experiment("made", artifact_location=(path.parent / "mlartifacts").as_uri())
    return path


@pytest.fixture
def store(made_store, tmp_path):
    path = tmp_path / "mlflow.db"
    shutil.copy(made_store, path)
    return path, f"sqlite:///{path}"


def dead_pid_tags() -> dict[str, str]:
    """The liveness tags of a real process that has since exited."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    tags = liveness_tags(proc.pid)
    proc.kill()
    proc.wait(timeout=10)
    return tags


def test_a_process_start_identifies_it():
    assert process_start(os.getpid()) == process_start(os.getpid())
    assert process_start(os.getpid()).isdigit()
    assert process_start(2**22 + 1) is None  # above pid_max: no such process
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert process_start(zombie.pid) is None  # ended, not yet waited for
    zombie.wait()
    assert liveness_tags()[START_TAG] == process_start(os.getpid())


def test_the_liveness_rule():
    here = Machine.here()
    alive = liveness_tags()
    assert dead_process(alive, here) is None
    dead = dead_pid_tags()
    assert dead_process(dead, here) == (
        f"process {dead['sonarlab.pid']} on host {here.host} "
        f"(started {dead['sonarlab.started']}) no longer exists"
    )
    reused = dead_process({**alive, START_TAG: str(int(alive[START_TAG]) - 1)}, here)
    assert reused.endswith(f"no longer exists (pid {os.getpid()} is now another process)")
    rebooted = dead_process({**alive, BOOT_TAG: "another-boot"}, here)
    assert "ended with a reboot (boot id another-boot" in rebooted
    assert dead_process({**dead_pid_tags(), HOST_TAG: "elsewhere"}, here) is None
    assert dead_process({**alive, stores.PID_NS_TAG: "pid:[1]"}, here) is None
    assert dead_process({"mlflow.user": "someone"}, here) is None


def test_opening_a_store_marks_every_run_of_a_dead_process_killed(store):
    path, uri = store
    client = MlflowClient(uri)
    experiments = [client.create_experiment("one"), client.create_experiment("two")]
    alive = liveness_tags()
    cases = {
        "alive": alive,
        "dead": dead_pid_tags(),
        "reused": {**alive, START_TAG: str(int(alive[START_TAG]) - 1)},
        "rebooted": {**alive, BOOT_TAG: "another-boot"},
        "other_host": {**dead_pid_tags(), HOST_TAG: "elsewhere"},
        "untagged": {},
    }
    run_ids = {}
    for i, (name, tags) in enumerate(cases.items()):
        run = client.create_run(experiments[i % 2], run_name=name, tags=tags)
        run_ids[name] = run.info.run_id
    parent = client.create_run(experiments[1], run_name="dead_parent", tags=cases["dead"])
    child = client.create_run(
        experiments[1],
        run_name="dead_child",
        tags={**cases["dead"], "mlflow.parentRunId": parent.info.run_id},
    )
    run_ids.update(dead_parent=parent.info.run_id, dead_child=child.info.run_id)
    finished = client.create_run(experiments[0], run_name="finished", tags=cases["dead"])
    client.set_terminated(finished.info.run_id)

    runs.open_experiment(path.parent, "sonar-dropout", stage="cv@test")

    killed = {"dead", "reused", "rebooted", "dead_parent", "dead_child"}
    for name, run_id in run_ids.items():
        run = client.get_run(run_id)
        if name in killed:
            assert run.info.status == "KILLED", name
            assert run.info.end_time is not None, name
            note = run.data.tags[FOUND_DEAD_TAG]
            assert "; marked KILLED by cv@test at " in note and note.endswith(" UTC"), note
        else:
            assert run.info.status == "RUNNING", name
            assert FOUND_DEAD_TAG not in run.data.tags, name
    assert client.get_run(finished.info.run_id).info.status == "FINISHED"
    assert mark_dead_runs(client, "again") == []  # nothing left to mark


def test_every_run_a_stage_makes_carries_liveness_tags(store, tmp_path):
    path, _ = store
    client, experiment_id, _ = runs.open_experiment(path.parent, "tags", stage="cv@t")
    with runs.stage_run(client, experiment_id, "t", "cv@t", tmp_path) as run:
        pass
    tags = client.get_run(run.info.run_id).data.tags
    assert {k: tags[k] for k in liveness_tags()} == liveness_tags()


# --- probes ---------------------------------------------------------------------------


def probe(path, timeout=5.0):
    probe_sqlite(path, f"sqlite:///{path}", timeout)


def test_a_good_store_and_a_new_one_pass(store, tmp_path):
    path, _ = store
    before = path.read_bytes()
    probe(path)
    probe(tmp_path / "new" / "mlflow.db")  # a new store: its folder is made and writable
    assert not (tmp_path / "new" / "mlflow.db").exists()  # the probe makes no store
    assert path.read_bytes()[100:] == before[100:]  # the no-op write changed no data


@pytest.mark.parametrize("damage", ["truncated", "random", "text"])
def test_a_damaged_store_is_named_with_what_to_do(store, damage):
    path, uri = store
    data = path.read_bytes()
    damaged = {
        "truncated": data[:4096],
        "random": os.urandom(8192),
        "text": b"not a database\n" * 300,
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(StoreError) as err:
        probe(path)
    message = str(err.value)
    assert message.startswith(f"MLflow store {uri} is damaged (")
    assert message.endswith("); restore it from a backup, or move it away to start a new store")
    assert path.read_bytes() == damaged  # untouched


def test_an_older_schema_says_to_upgrade(store):
    path, uri = store
    head = stores.mlflow_schema_head()
    older = stores._migrations().get_revision(head).down_revision
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (older,))
    with pytest.raises(StoreError) as err:
        probe(path)
    assert str(err.value).startswith(f"MLflow store {uri} has an older schema ({older}; MLflow ")
    assert str(err.value).endswith(
        f"writes {head}); back it up, then run `mlflow db upgrade {uri}`"
    )


def test_an_unknown_schema_says_which_mlflow_to_use(store):
    path, uri = store
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeed1234'")
    with pytest.raises(StoreError) as err:
        probe(path)
    assert str(err.value).startswith(f"MLflow store {uri} has a schema MLflow ")
    assert str(err.value).endswith(
        " does not know (f00dfeed1234), written by another (newer?) MLflow; use that MLflow "
        "version, or move the store away to start a new one"
    )


def test_a_sqlite_file_that_is_not_a_store(tmp_path):
    path = tmp_path / "mlflow.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (x)")
    with pytest.raises(StoreError, match="is a SQLite database but not an MLflow store"):
        probe(path)


def test_a_store_locked_by_another_connection_is_given_up_after_the_bound(store):
    path, uri = store
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreError) as err:
            probe(path, timeout=0.5)
        waited = time.monotonic() - t0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert 0.5 <= waited < 3
    assert str(err.value).startswith(
        f"MLflow store {uri} is locked: another process has held a write lock on it for over 0.5 s"
    )
    probe(path)  # free again


def test_the_store_lock_is_given_up_after_the_bound(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with lock_held(tmp_path / "mlflow.db.lock", seconds=60):
        t0 = time.monotonic()
        locked = r"is locked: another process has held its lock "
        with pytest.raises(StoreError, match=locked), runs.store_lock(uri, timeout=0.5):
            pass
        assert 0.5 <= time.monotonic() - t0 < 3
    with runs.store_lock(uri, timeout=0.5):  # free once its holder is gone
        pass


@pytest.mark.parametrize(("raw", "ok"), [("", 60.0), ("2.5", 2.5), ("0", None), ("x", None)])
def test_the_wait_is_configurable(raw, ok):
    env = {stores.TIMEOUT_ENV: raw}
    if ok is None:
        with pytest.raises(StoreError, match=f"{stores.TIMEOUT_ENV}={raw!r}: expected seconds"):
            stores.store_timeout(env)
    else:
        assert stores.store_timeout(env) == ok


def test_an_interrupt_whose_run_cannot_be_ended_says_so_in_one_line(tmp_path, caplog):
    """The store's folder turns immutable mid-run (``chattr +i``: SQLite cannot make its
    journal, for root too), so ending the run fails: one warning, the interrupt goes on."""
    import logging

    import mlflow

    folder = tmp_path / "store"
    client, experiment_id, _ = runs.open_experiment(folder, "interrupted", stage="t")
    try:
        with (
            pytest.raises(KeyboardInterrupt),
            caplog.at_level(logging.DEBUG),
            mlflow.start_run(experiment_id=experiment_id) as run,
            runs.closing_run_on_failure(),
        ):
            done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
            if done.returncode != 0:
                pytest.skip(f"chattr +i not possible here: {done.stderr!r}")
            caplog.clear()
            raise KeyboardInterrupt
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage() == (
        f"run {run.info.run_id} could not be ended KILLED (OperationalError: unable to open "
        "database file); the next stage to open the store will"
    )
    assert mlflow.active_run() is None
    assert client.get_run(run.info.run_id).info.status == "RUNNING"  # for mark_dead_runs


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, Terminated])
def test_a_signal_inside_a_statement_leaves_the_store_free_to_end_the_runs(tmp_path, interrupt):
    """The signal lands inside the driver's ``executemany``, between two rows of a fold
    run's params (in a real SQLite store, while the interrupt's traceback still holds the
    statement): the store is not left locked, and both runs end KILLED."""
    import mlflow
    import sqlalchemy

    folder = tmp_path / "store"
    client, experiment_id, _ = runs.open_experiment(folder, "interrupted", stage="t")
    fold = FoldResult(
        Split(0, 0, np.arange(8), np.arange(8, 10)), {k: [0.5] * 3 for k in CURVE_KEYS},
        np.zeros(2), np.zeros(2), {"accuracy": 0.5}, {"accuracy": 0.5}, 1.0, [],
    )  # fmt: skip
    landed = []

    def executemany(cursor, statement, parameters, context):
        if landed or not statement.startswith("INSERT INTO params"):
            return None  # SQLAlchemy runs it as usual

        def rows():
            yield parameters[0]
            landed.append(statement)
            raise interrupt()

        cursor.executemany(statement, rows())
        return True

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "do_executemany", executemany)
    try:
        with (
            pytest.raises(interrupt) as caught,
            mlflow.start_run(experiment_id=experiment_id, tags=liveness_tags()) as parent,
            runs.closing_run_on_failure(),
        ):
            runs.log_fold(experiment_id, "v", fold)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "do_executemany", executemany)
    assert landed and caught.traceback  # it landed there, and its frames are still alive
    other = sqlite3.connect(folder / "mlflow.db", timeout=0)
    with other:
        other.execute("UPDATE experiments SET name = name")  # a write, at once: no lock held
    other.close()
    statuses = {r.info.run_name: r.info.status for r in client.search_runs([experiment_id])}
    assert statuses == {parent.info.run_name: "KILLED", "v r0 f0": "KILLED"}
    assert mlflow.active_run() is None
