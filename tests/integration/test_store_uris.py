"""Every form of store URI MLflow takes, given as MLFLOW_TRACKING_URI to a real stage
(the report stage, the cheapest that opens a store), either works, its runs FINISHED,
or stops the stage before it writes anything with one line: SQLite, a folder (``file:``
or a path), a tracking server (a real ``mlflow server``), PostgreSQL (a real one, as
``postgresql://``, which names a driver that is not installed until the stage rewrites
it), and databases whose drivers are not installed (MySQL, SQL Server, psycopg 3).
Nothing is written outside the project; every server is stopped by its pid."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from sonarlab.tracking.stores import CONNECT_SECONDS, sqlalchemy_uri
from tests.integration.conftest import BIN, Project, free_port, serving
from tests.integration.test_connections import hostile_server
from tests.integration.test_store_failures import TF_NOISE
from tests.integration.test_team_server import postgres  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

START_SECONDS = 45  # Python, TensorFlow, the results, before the store is opened


def report(copy: Project, uri: str | None, env: dict | None = None):
    """The report stage with ``uri`` as MLFLOW_TRACKING_URI (None: the default store);
    the process, its seconds, and what it left in the system's temporary folder."""
    env = {"MLFLOW_TRACKING_URI": uri, **(env or {})} if uri else dict(env or {})
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.iterdir())
    t0 = time.monotonic()
    proc = copy.run(str(BIN / "python"), "-m", "sonarlab.stages.report", env=env, check=False)
    seconds = time.monotonic() - t0
    # no saved traceback (a temporary folder sonarlab-* may be another process's)
    left = {p for p in set(tmp.iterdir()) - before if p.name.startswith("sonarlab-report-")}
    assert not left, left
    return proc, seconds


def finished(store: str, experiment: str) -> None:
    """The report's run FINISHED, and no run of the store RUNNING."""
    client = MlflowClient(store)
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], "attributes.run_name = 'report'")
    assert run.info.status == "FINISHED"
    ids = [e.experiment_id for e in client.search_experiments(ViewType.ALL)]
    assert not client.search_runs(ids, "attributes.status = 'RUNNING'")


def one_line(proc, code: int = 1) -> str:
    assert proc.returncode == code, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if not TF_NOISE.match(line)]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0].split(" ERROR report: ", 1)[1]


@pytest.fixture
def copy(scratch) -> Project:
    reports = scratch.root / "reports"
    scratch.before = {p: p.stat().st_mtime_ns for p in reports.iterdir()}
    return scratch


def untouched(copy: Project) -> None:
    """A failed report wrote nothing: no report, no store."""
    reports = copy.root / "reports"
    assert {p: p.stat().st_mtime_ns for p in reports.iterdir()} == copy.before
    assert not (copy.root / "mlflow.db").exists()


def refused(copy: Project, proc, expected: str, code: int = 1) -> None:
    """The report stopped with ``expected`` as its one line, exit ``code``, no password
    shown, nothing written."""
    assert one_line(proc, code) == expected
    assert "s3cret" not in proc.stderr
    untouched(copy)


def experiment(copy: Project) -> str:
    return copy.params()["mlflow"]["experiment"]


@pytest.mark.parametrize("form", ["default", "sqlite", "file", "folder"])
def test_local_stores_work(copy, form, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this process's client too
    root = copy.root
    uri = {"default": None, "sqlite": f"sqlite:///{root / 'other.db'}",
           "file": (root / "file-store").as_uri(),
           "folder": str(root / "folder-store")}[form]  # fmt: skip
    env = {"MLFLOW_ALLOW_FILE_STORE": "true"} if form in ("file", "folder") else {}
    proc, seconds = report(copy, uri, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    finished(uri or copy.store, experiment(copy))
    print(f"\n{form}: worked in {seconds:.1f} s")


@pytest.mark.parametrize("form", ["file", "folder"])
def test_a_folder_store_mlflow_refuses(copy, form):
    uri = (copy.root / "mlruns").as_uri() if form == "file" else "mlruns"
    from importlib.metadata import version

    proc, seconds = report(copy, uri)
    assert one_line(proc) == (
        f"MLflow store {uri} is a folder, MLflow's file store, which MLflow {version('mlflow')} "
        "refuses unless MLFLOW_ALLOW_FILE_STORE=true; set that, or use "
        "sqlite:///<folder>/mlflow.db (`mlflow migrate-filestore` moves a folder's runs)"
    )
    untouched(copy)
    assert not (copy.root / "mlruns").exists()
    print(f"\n{form}: {seconds:.1f} s")


@pytest.mark.parametrize(
    ("uri", "package", "module", "driver"),
    [
        ("mysql://sonarlab:s3cret@127.0.0.1:{port}/mlflow", "mysqlclient", "MySQLdb",
         "mysql driver mysqldb"),
        ("mysql+pymysql://sonarlab@127.0.0.1:{port}/mlflow", "PyMySQL", "pymysql",
         "mysql driver pymysql"),
        ("mssql://sonarlab@127.0.0.1:{port}/mlflow", "pyodbc", "pyodbc", "mssql driver pyodbc"),
        ("postgresql+psycopg://sonarlab@127.0.0.1:{port}/mlflow", "psycopg[binary]", "psycopg",
         "postgresql driver psycopg"),
    ],
)  # fmt: skip
def test_a_database_whose_driver_is_not_installed(copy, uri, package, module, driver):
    uri = uri.format(port=free_port())
    proc, seconds = report(copy, uri)
    shown = uri.replace(":s3cret@", ":***@")
    refused(copy, proc, (
        f"MLflow store {shown} needs the Python package {package} (module {module}, the "
        f"{driver}), which is not installed; add it to the environment, or set "
        "MLFLOW_TRACKING_URI to another store"
    ))  # fmt: skip
    print(f"\n{uri}: {seconds:.1f} s")


@pytest.mark.parametrize("uri", ["oracle://sonarlab:s3cret@127.0.0.1:1521/mlflow", "s3://bucket/x"])
def test_a_scheme_mlflow_has_no_store_for(copy, uri):
    proc, seconds = report(copy, uri)
    scheme = uri.split("://")[0]
    refused(copy, proc, (
        f"invalid parameter: MLFLOW_TRACKING_URI: got {uri.replace(':s3cret@', ':***@')!r}, a "
        f"scheme MLflow has no store for ({scheme}://); allowed: sqlite:///<file>, "
        "postgresql://, mysql://, mssql:// (with their drivers), http(s)://<tracking server>, "
        "file:<folder> or a folder"
    ), code=2)  # fmt: skip
    print(f"\n{uri}: {seconds:.1f} s")


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("http://127.0.0.1:notaport", "Port could not be cast to integer value as 'notaport'"),
        ("postgresql://sonarlab:s3cret@127.0.0.1:99999/mlflow", "Port out of range 0-65535"),
    ],
)
def test_a_uri_whose_port_is_not_a_port(copy, uri, why):
    """Not "a server that does not speak HTTP" (urllib's InvalidURL), nor SQLAlchemy's
    ValueError: a setting to correct, exit 2."""
    proc, seconds = report(copy, uri)
    refused(copy, proc, (
        f"invalid parameter: MLFLOW_TRACKING_URI: got "
        f"{sqlalchemy_uri(uri).replace(':s3cret@', ':***@')!r} ({why}); allowed: a port "
        "from 1 to 65535, or none (the scheme's default)"
    ), code=2)  # fmt: skip
    print(f"\n{uri}: {seconds:.1f} s")


@pytest.mark.parametrize("uri", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_store(copy, uri):
    """MLflow takes it, and the stage would run to the end: its runs then vanish."""
    proc, seconds = report(copy, uri)
    refused(copy, proc, (
        f"invalid parameter: MLFLOW_TRACKING_URI: got {uri!r}, an in-memory SQLite store: its "
        "runs would be gone when the stage ends; allowed: sqlite:///<file>, or unset for the "
        "project's store"
    ), code=2)  # fmt: skip
    print(f"\n{uri}: {seconds:.1f} s")


@pytest.mark.parametrize("form", ["file", "folder"])
def test_a_folder_store_that_cannot_be_made(copy, form):
    """A folder store where no folder can be made (/proc): not "missing input ... run `dvc
    repro`", which is what MLflow's FileNotFoundError read as."""
    folder = "/proc/sonarlab-store"
    uri = Path(folder).as_uri() if form == "file" else folder
    proc, seconds = report(copy, uri, {"MLFLOW_ALLOW_FILE_STORE": "true"})
    refused(copy, proc, (
        f"MLflow store {uri} cannot be used: {folder} is not writable (No such file or "
        "directory); make it writable"
    ))  # fmt: skip
    print(f"\n{uri}: {seconds:.1f} s")


def test_postgresql_works(copy, postgres):  # noqa: F811
    assert postgres.startswith("postgresql://")
    proc, seconds = report(copy, postgres)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    finished(sqlalchemy_uri(postgres), experiment(copy))
    client = MlflowClient(sqlalchemy_uri(postgres))
    location = client.get_experiment_by_name(experiment(copy)).artifact_location
    print(f"\npostgresql://: worked in {seconds:.1f} s; artifacts at {location}")


@pytest.mark.parametrize("server", ["down", "silent"])
def test_postgresql_that_does_not_answer(copy, server):
    if server == "down":
        port = free_port()
        proc, seconds = report(copy, f"postgresql://sonarlab:s3cret@127.0.0.1:{port}/mlflow")
        why = (f'connection to server at "127.0.0.1", port {port} failed: Connection refused Is '
               "the server running on that host and accepting TCP/IP connections?")  # fmt: skip
    else:
        with hostile_server("silent") as port:
            proc, seconds = report(copy, f"postgresql://sonarlab:s3cret@127.0.0.1:{port}/mlflow")
        why = f'connection to server at "127.0.0.1", port {port} failed: timeout expired'
    refused(copy, proc, (
        f"MLflow store postgresql+psycopg2://sonarlab:***@127.0.0.1:{port}/mlflow does not "
        f"answer ({why}); start the database, or check the host, port, user, password and "
        "database name in MLFLOW_TRACKING_URI"
    ))  # fmt: skip
    assert seconds < START_SECONDS + CONNECT_SECONDS
    print(f"\npostgresql {server}: {seconds:.1f} s")


def test_postgresql_that_logs_in_but_never_answers_a_query(copy):
    """A server that completes PostgreSQL's start-up (no TLS, logged in, ready for a
    query) and then says nothing: libpq's connect_timeout has passed, and psycopg2 has no
    bound of its own on a query."""
    with hostile_server("postgres") as port:
        uri = f"postgresql://sonarlab:s3cret@127.0.0.1:{port}/mlflow"
        proc, seconds = report(copy, uri)
    refused(copy, proc, (
        f"MLflow store postgresql+psycopg2://sonarlab:***@127.0.0.1:{port}/mlflow accepted a "
        f"connection but did not answer a query within {CONNECT_SECONDS:g} s; check the "
        "database server (its log, its load) and the host and port in MLFLOW_TRACKING_URI"
    ))  # fmt: skip
    assert seconds < START_SECONDS + CONNECT_SECONDS
    print(f"\npostgresql, logged in then silent: {seconds:.1f} s")


def test_postgresql_whose_tables_another_session_holds_locked(copy, postgres):  # noqa: F811
    """A real PostgreSQL answers the probe, but another session holds MLflow's tables
    locked: MLflow's queries would wait for ever; libpq's PGOPTIONS (lock_timeout,
    statement_timeout of SONARLAB_STORE_TIMEOUT) end them, and the stage says so."""
    import psycopg2

    store = sqlalchemy_uri(postgres)
    MlflowClient(store).search_experiments()  # MLflow's schema, made before the lock
    holder = psycopg2.connect(postgres)
    try:
        with holder.cursor() as cur:  # a transaction left open: the lock is held
            cur.execute("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE")
        proc, seconds = report(copy, postgres, {"SONARLAB_STORE_TIMEOUT": "3"})
    finally:
        holder.rollback()
        holder.close()
    line = one_line(proc)
    assert line.startswith(f"MLflow store {store} cannot be used: "), line
    # lock_timeout and statement_timeout are equal: whichever the server checks first
    ended = ("QueryCanceled: canceling statement due to statement timeout",
             "LockNotAvailable: canceling statement due to lock timeout")  # fmt: skip
    assert line.endswith(ended), line
    untouched(copy)
    assert seconds < START_SECONDS + CONNECT_SECONDS + 2 * 3
    running = MlflowClient(store).search_runs(
        [e.experiment_id for e in MlflowClient(store).search_experiments(ViewType.ALL)],
        "attributes.status = 'RUNNING'",
    )
    assert not running
    print(f"\npostgresql, tables locked: {seconds:.1f} s: {line}")


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 with a SQLite store in its own folder."""
    port, folder = free_port(), tmp_path / "server"
    folder.mkdir()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        cwd=folder, env=env, stdout=open(folder / "log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    with serving(server, f"http://127.0.0.1:{port}", folder / "log") as uri:
        yield uri


def test_a_tracking_server_works(copy, mlflow_server):
    proc, seconds = report(copy, mlflow_server, {"no_proxy": "127.0.0.1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    finished(mlflow_server, experiment(copy))
    print(f"\nhttp://: worked in {seconds:.1f} s")


def test_the_script_and_the_stages_share_one_rewrite():
    assert sqlalchemy_uri("postgresql://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert sqlalchemy_uri("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert sqlalchemy_uri("sqlite:///x.db") == "sqlite:///x.db"
    script = (Path(__file__).resolve().parents[2] / "scripts" / "tracking-server").read_text()
    assert "sqlalchemy_uri" in script and "postgresql+psycopg2://${" not in script
