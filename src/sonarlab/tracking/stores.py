"""Whether an MLflow store can be used, and which of its runs belong to dead processes.

Probes (before any training, so that a stage stops with one line naming the store and
what to do, never a traceback from MLflow, SQLAlchemy or alembic):

- a SQLite store (``probe_sqlite``): the file is a whole SQLite database, can be written
  (a no-op write in a transaction: the file and the folder holding it, whose journal
  SQLite must create), is not locked by another process for longer than
  ``store_timeout()`` seconds, and its schema is the one this MLflow writes;
- a store's artifact folder (``probe_artifacts``) can be written;
- a tracking server (``probe_server``) answers MLflow's REST API with MLflow's JSON,
  each request within its time from connecting to the last byte;
- a database store (``probe_database``): its driver is installed, and the database
  answers a connection and a query within ``CONNECT_SECONDS``; after the probe, libpq's
  own bounds hold for MLflow's connections too (``bound_database_sessions``);
- a URI's port is a port, an in-memory SQLite store is refused (its runs would vanish),
  and a folder store's folder can be made (``check_scheme``, ``probe_folder_store``).

A URI in a message is ``shown``: a password in it is masked.

Interrupts: a statement a signal interrupts has its cursor closed at once
(``close_interrupted_statements``), so that the store's lock is free to end the runs.

Liveness: every run sonarlab creates carries ``liveness_tags()`` (host, pid namespace,
boot id, pid and the pid's start time), so that ``mark_dead_runs`` can tell, from the
same machine, whether the process that left a run RUNNING still exists.
"""

from __future__ import annotations

import datetime
import http.client
import json
import logging
import os
import socket
import sqlite3
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from sonarlab.core.watchdog import Watchdog, watched_opener

log = logging.getLogger(__name__)

# How long a stage waits for a store another process holds (its lock file or a SQLite
# write lock) before it gives up. Parallel stages hold either for a few seconds at most
# (a new store's migration, a batch of metrics); a minute covers a loaded machine.
DEFAULT_STORE_TIMEOUT = 60.0
TIMEOUT_ENV = "SONARLAB_STORE_TIMEOUT"


class StoreError(OSError):
    """The MLflow store cannot be used; the message names it and says what to do."""


def store_timeout(env: Mapping[str, str] | None = None) -> float:
    """Seconds to wait for a store held by another process (``$SONARLAB_STORE_TIMEOUT``)."""
    env = os.environ if env is None else env
    raw = env.get(TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_STORE_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise StoreError(f"{TIMEOUT_ENV}={raw!r}: expected seconds, a number in (0, 86400)")
    return seconds


# --- SQLite stores ------------------------------------------------------------------


def mlflow_schema_head() -> str:
    """The schema revision this MLflow writes (the head of its alembic migrations)."""
    return _migrations().get_current_head()


def _migrations():
    import mlflow
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(mlflow.__file__).parent / "store" / "db_migrations"))


def _known_revision(revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return _migrations().get_revision(revision) is not None
    except (CommandError, KeyError, ValueError):
        return False


def probe_sqlite(path: Path, uri: str, timeout: float) -> None:
    """Raise ``StoreError`` unless the SQLite store at ``path`` can be read and written
    within ``timeout`` seconds and has this MLflow's schema (a missing or empty file is a
    new store: its folder must be writable)."""
    if not path.exists() or path.stat().st_size == 0:
        _probe_folder(path.parent, f"MLflow store {uri} cannot be created")
        return
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=timeout,
                               isolation_level=None)  # fmt: skip
    except sqlite3.Error as exc:
        raise StoreError(_sqlite_message(uri, path, exc, timeout)) from None
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed ({check and check[0]})")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        found = None
        if "alembic_version" in tables:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            found = row[0] if row else None
        if tables and found is None:
            raise StoreError(
                f"MLflow store {uri} is a SQLite database but not an MLflow store (no schema "
                "version); point MLFLOW_TRACKING_URI elsewhere, or move it away to start a "
                "new store"
            )
        if found is not None:
            _check_schema(uri, found)
        # A write that changes nothing (but the file's change counter): it needs the
        # file, the folder (for the journal) and the write lock, like MLflow's writes.
        conn.execute("BEGIN IMMEDIATE")
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA user_version = {int(user_version)}")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(_sqlite_message(uri, path, exc, timeout)) from None
    finally:
        conn.close()


def _check_schema(uri: str, found: str) -> None:
    from importlib.metadata import version

    head = mlflow_schema_head()
    if found == head:
        return
    mlflow_version = version("mlflow")
    if _known_revision(found):
        raise StoreError(
            f"MLflow store {uri} has an older schema ({found}; MLflow {mlflow_version} "
            f"writes {head}); back it up, then run `mlflow db upgrade {uri}`"
        )
    raise StoreError(
        f"MLflow store {uri} has a schema MLflow {mlflow_version} does not know ({found}), "
        "written by another (newer?) MLflow; use that MLflow version, or move the store "
        "away to start a new one"
    )


def _sqlite_message(uri: str, path: Path, exc: sqlite3.Error, timeout: float) -> str:
    code = getattr(exc, "sqlite_errorname", "")
    if code in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return (
            f"MLflow store {uri} is locked: another process has held a write lock on it for "
            f"over {timeout:g} s (see `fuser {path}`); end it or wait, then run the stage "
            f"again ({TIMEOUT_ENV} sets the wait)"
        )
    if code in ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"):
        return (
            f"MLflow store {uri} cannot be written ({exc}): make {path} and its folder "
            "writable (a read-only file or folder, mount or immutable attribute?)"
        )
    if code in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or isinstance(exc, sqlite3.DatabaseError):
        return (
            f"MLflow store {uri} is damaged ({exc}); restore it from a backup, or move it "
            "away to start a new store"
        )
    return f"MLflow store {uri} cannot be used ({exc})"


def _probe_folder(folder: Path, what: str) -> None:
    """Create a file in ``folder`` (made if missing) and remove it: a real write."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".sonarlab-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StoreError(f"{what}: {folder} is not writable ({reason}); make it writable") from None


def probe_artifacts(artifact_uri: str | None, uri: str) -> None:
    """A local (``file:``) artifact folder must be writable; remote ones are the server's."""
    if not artifact_uri or not artifact_uri.startswith("file:"):
        return
    folder = Path(urllib.parse.unquote(urllib.parse.urlparse(artifact_uri).path))
    _probe_folder(folder, f"MLflow store {uri} cannot keep artifacts")


# --- tracking servers -----------------------------------------------------------------


def probe_server(uri: str, experiment: str, timeout: float) -> None:
    """The server answers ``/health`` and MLflow's ``experiments/get-by-name`` with
    MLflow's JSON (an experiment, or MLflow's RESOURCE_DOES_NOT_EXIST error)."""
    base = uri.rstrip("/")
    _http_get(uri, f"{base}/health", timeout)
    query = urllib.parse.urlencode({"experiment_name": experiment})
    url = f"{base}/api/2.0/mlflow/experiments/get-by-name?{query}"
    status, body = _http_get(uri, url, timeout, accept_error=True)
    try:
        reply = json.loads(body)
    except ValueError:
        reply = None
    ok = isinstance(reply, dict) and (
        (status == 200 and isinstance(reply.get("experiment"), dict))
        or reply.get("error_code") == "RESOURCE_DOES_NOT_EXIST"
    )
    if not ok:
        raise StoreError(
            f"MLflow tracking server {uri} answers, but not as MLflow does (GET "
            f"/api/2.0/mlflow/experiments/get-by-name gave HTTP {status}, "
            f"{_excerpt(body)}); check the URI (host, port and path) in MLFLOW_TRACKING_URI"
        )


def _http_get(uri: str, url: str, timeout: float, accept_error: bool = False) -> tuple[int, str]:
    """One GET of ``url``, from connecting to the last byte within ``timeout`` seconds
    (urllib's own timeout bounds each socket operation, not the answer: a server that
    trickles its answer would never trip it). The watchdog is the data download's."""
    path = urllib.parse.urlsplit(url).path
    with Watchdog(timeout) as watchdog:
        opener = watched_opener(watchdog)
        try:
            with opener.open(url, timeout=timeout) as reply:
                status, body = reply.status, reply.read(65536).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            if watchdog.expired:
                raise StoreError(_too_slow(uri, path, timeout)) from None
            try:
                body = exc.read(65536).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                body = ""
            if watchdog.expired:  # the error's body was cut short
                raise StoreError(_too_slow(uri, path, timeout)) from None
            if accept_error:
                return exc.code, body
            raise StoreError(
                f"MLflow tracking server {uri} answers HTTP {exc.code} to {url}: it is not a "
                "working MLflow server; check the URI in MLFLOW_TRACKING_URI and the server's log"
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if watchdog.expired or isinstance(reason, TimeoutError):
                raise StoreError(_too_slow(uri, path, timeout)) from None
            if isinstance(reason, (ConnectionResetError, BrokenPipeError)):  # it hung up
                raise StoreError(
                    f"MLflow tracking server {uri} accepted a connection but closed it without "
                    f"answering GET {path}; check the URI (host, port, http or https) in "
                    "MLFLOW_TRACKING_URI and the server's log"
                ) from None
            if isinstance(reason, http.client.HTTPException):  # not HTTP at all
                raise StoreError(
                    f"MLflow tracking server {uri} answers GET {path}, but not in HTTP "
                    f"({type(reason).__name__}: {_excerpt(str(reason))}); check the URI (host, "
                    "port, http or https) in MLFLOW_TRACKING_URI"
                ) from None
            raise StoreError(
                f"MLflow tracking server {uri} is not reachable ({reason}); start it, "
                "or unset MLFLOW_TRACKING_URI to log to the local store"
            ) from None
        if watchdog.expired:  # the shutdown ended the body early: it is not all there
            raise StoreError(_too_slow(uri, path, timeout))
        return status, body


def _too_slow(uri: str, path: str, timeout: float) -> str:
    return (
        f"MLflow tracking server {uri} did not answer GET {path} within {timeout:g} s (from "
        "connecting to the last byte); check the server (its log, its load) and the URI in "
        "MLFLOW_TRACKING_URI"
    )


def _excerpt(body: str) -> str:
    text = " ".join(body.split())
    return repr(text[:60] + ("..." if len(text) > 60 else "")) if text else "an empty body"


# --- database stores (SQLAlchemy) ----------------------------------------------------

CONNECT_SECONDS = 10  # a database store that does not answer fails the stage within this
# The package that provides a driver's module, where it is not named like it.
DRIVER_PACKAGES = {"MySQLdb": "mysqlclient", "pymysql": "PyMySQL", "cx_Oracle": "cx_Oracle",
                   "psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]"}  # fmt: skip


def sqlalchemy_uri(uri: str) -> str:
    """The URI MLflow is given for the store ``uri``: ``postgresql://`` is made to name the
    locked driver, ``postgresql+psycopg2://`` (SQLAlchemy 2.1 would pick psycopg 3, which
    is not installed); any other URI is kept. The one place of this rewrite: the stages
    (``runs.resolve_tracking_uri``) and ``scripts/tracking-server`` call it."""
    head = "postgresql://"
    return "postgresql+psycopg2://" + uri[len(head) :] if uri.startswith(head) else uri


def database_dialect(uri: str) -> str | None:
    """The SQLAlchemy dialect of a database store MLflow takes (``postgresql``, ``mysql``,
    ``mssql``; not SQLite, probed by ``probe_sqlite``), or None for other stores."""
    from mlflow.store.db.db_types import DATABASE_ENGINES, SQLITE

    scheme = uri.partition("://")[0] if "://" in uri else ""
    dialect = scheme.partition("+")[0].lower()
    return dialect if dialect in DATABASE_ENGINES and dialect != SQLITE else None


def check_scheme(uri: str) -> None:
    """Raise ``ConfigError`` (a bad environment variable) unless MLflow takes a store of
    ``uri``'s scheme (its own error lists schemes of the model registry, in 300 chars),
    and ``StoreError`` for a folder (``file:``) store MLflow would refuse."""
    from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
    from mlflow.store.db.db_types import DATABASE_ENGINES

    from sonarlab.core.params import ConfigError

    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    try:
        parts.port  # noqa: B018 (urllib checks it when asked: "nonnumeric port", "out of range")
    except ValueError as exc:
        raise ConfigError(
            f"MLFLOW_TRACKING_URI: got {shown(uri)!r} ({exc}); allowed: a port from 1 to 65535, "
            "or none (the scheme's default)"
        ) from None
    if scheme.partition("+")[0] == "sqlite" and parts.path in ("", "/", "/:memory:"):
        raise ConfigError(
            f"MLFLOW_TRACKING_URI: got {uri!r}, an in-memory SQLite store: its runs would be "
            "gone when the stage ends; allowed: sqlite:///<file>, or unset for the project's "
            "store"
        )
    if scheme in ("", "file") and not MLFLOW_ALLOW_FILE_STORE.get():
        raise StoreError(
            f"MLflow store {uri} is a folder, MLflow's file store, which MLflow "
            f"{_mlflow_version()} refuses unless MLFLOW_ALLOW_FILE_STORE=true; set that, or "
            "use sqlite:///<folder>/mlflow.db (`mlflow migrate-filestore` moves a folder's runs)"
        )
    if scheme in ("", "file", "http", "https", "databricks", "databricks-uc", "uc"):
        return
    if scheme.partition("+")[0] in DATABASE_ENGINES:
        return
    raise ConfigError(
        f"MLFLOW_TRACKING_URI: got {shown(uri)!r}, a scheme MLflow has no store for "
        f"({scheme}://); allowed: sqlite:///<file>, postgresql://, mysql://, mssql:// (with "
        "their drivers), http(s)://<tracking server>, file:<folder> or a folder"
    )


def probe_folder_store(uri: str) -> None:
    """A folder store (``file:`` or a path, relative to the working folder as MLflow takes
    it) can be made and written: MLflow's own failure is a FileNotFoundError or
    PermissionError from deep inside its FileStore, which would read as a missing input."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() not in ("", "file"):
        return
    path = Path(urllib.request.url2pathname(parts.path) if parts.scheme else uri)
    _probe_folder(path, f"MLflow store {shown(uri)} cannot be used")


def _mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")


def shown(uri: str) -> str:
    """``uri`` as a message may show it: a password in it masked (``user:***@host``)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def probe_database(uri: str, seconds: float = CONNECT_SECONDS) -> None:
    """Raise ``StoreError`` unless the database store ``uri`` (``database_dialect``) has
    its driver installed and answers one connection within ``seconds``: MLflow itself
    tries a database that refuses 10 times over about 100 s, waits for a silent one
    for ever (no connect timeout), and a missing driver is a ``ModuleNotFoundError``
    from deep inside SQLAlchemy."""
    check_scheme(uri)
    dialect = database_dialect(uri)
    if dialect is None:
        return
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        url = sqlalchemy.engine.make_url(uri)
        dbapi = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StoreError(
            f"MLflow store {shown(uri)} is not a URI SQLAlchemy takes ({exc})"
        ) from None
    try:
        dbapi.import_dbapi()
    except ImportError as exc:
        module = (exc.name or str(exc)).partition(".")[0]
        package = DRIVER_PACKAGES.get(module, module)
        raise StoreError(
            f"MLflow store {shown(uri)} needs the Python package {package} (module {module}, "
            f"the {url.get_backend_name()} driver {dbapi.driver}), which is not installed; "
            f"add it to the environment, or set MLFLOW_TRACKING_URI to another store"
        ) from None
    # libpq's and MySQL's connect_timeout bound the whole connection (and its log-in);
    # the watchdog bounds the rest, SQLAlchemy's first queries and ours, from connecting
    # to the last answer (a server that logs in and then says nothing, or a stopped one)
    args = {"connect_timeout": max(1, round(seconds))} if dialect in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, connect_args=args)
    watched: list[socket.socket] = []

    with Watchdog(seconds) as watchdog:

        @sqlalchemy.event.listens_for(engine, "do_connect")
        def connect(dialect, record, cargs, cparams):  # the driver's own connect, then watched
            conn = dialect.loaded_dbapi.connect(*cargs, **cparams)
            fileno = getattr(conn, "fileno", None)
            if callable(fileno):
                watched.append(socket.socket(fileno=os.dup(fileno())))
                watchdog.watch(watched[-1])
            return conn

        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
        except SQLAlchemyError as exc:
            if watchdog.expired and watched:  # logged in (else libpq's connect_timeout)
                raise StoreError(
                    f"MLflow store {shown(uri)} accepted a connection but did not answer a "
                    f"query within {seconds:g} s; check the database server (its log, its "
                    "load) and the host and port in MLFLOW_TRACKING_URI"
                ) from None
            inner = getattr(exc, "orig", None) or exc
            text = " ".join(str(inner).split()) or type(inner).__name__
            raise StoreError(
                f"MLflow store {shown(uri)} does not answer ({text[:200]}); start the "
                "database, or check the host, port, user, password and database name in "
                "MLFLOW_TRACKING_URI"
            ) from None
        finally:
            engine.dispose()
            for sock in watched:
                sock.close()


def bound_database_sessions(uri: str, seconds: float, env: MutableMapping[str, str]) -> None:
    """libpq's own bounds on every PostgreSQL connection of this process, MLflow's too
    (it makes its engine without ``connect_args``, so libpq's environment variables are
    the way in): ``PGCONNECT_TIMEOUT`` (``CONNECT_SECONDS``), and in ``PGOPTIONS`` the
    server's ``lock_timeout`` and ``statement_timeout`` of ``seconds``
    (``store_timeout()``): a table another session holds locked, or a query the server
    does not finish, fails the stage in one line instead of waiting for ever. MLflow's
    own statements take milliseconds; only a new store's migration is longer (seconds).
    A value the user set is kept."""
    if database_dialect(uri) != "postgresql":
        return
    env.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_SECONDS))
    options = env.get("PGOPTIONS", "")
    for name in ("lock_timeout", "statement_timeout"):
        if name not in options:
            options += f" -c {name}={max(1, round(seconds * 1000))}"
    env["PGOPTIONS"] = options.strip()


def close_interrupted_statements() -> None:
    """From now on, a statement that a signal interrupts (``KeyboardInterrupt`` or
    ``Terminated`` raised inside the driver's ``execute``) has its cursor closed there.

    SQLAlchemy invalidates the connection on such an exception but leaves the cursor
    open, and SQLite cannot close a connection whose statement is still running: it
    lingers, holding the store's lock for as long as the interrupt's traceback keeps the
    cursor alive, which is all the time the runs are being ended KILLED. Those writes then
    failed with "database is locked" and left the runs RUNNING. Idempotent."""
    import sqlalchemy

    if not sqlalchemy.event.contains(sqlalchemy.engine.Engine, "handle_error", _close_cursor):
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "handle_error", _close_cursor)


def _close_cursor(context) -> None:
    if isinstance(context.original_exception, Exception):
        return  # an error, not an interrupt: SQLAlchemy's own handling is right
    # ExceptionContext.cursor is documented but never set (SQLAlchemy 2.1.9): the
    # execution context holds the cursor. An exception raised here would replace the
    # interrupt (SQLAlchemy raises a handler's exception instead), so none escapes.
    try:
        cursor = getattr(context.execution_context, "cursor", None)
        if cursor is not None:
            cursor.close()
    except Exception as exc:  # a driver that refuses: the lock then lasts as before
        log.debug("an interrupted statement's cursor could not be closed: %s", exc)


# --- liveness -----------------------------------------------------------------------

HOST_TAG = "sonarlab.host"
PID_NS_TAG = "sonarlab.pid_namespace"
BOOT_TAG = "sonarlab.boot_id"
PID_TAG = "sonarlab.pid"
START_TAG = "sonarlab.pid_start"  # clock ticks after boot, /proc/<pid>/stat field 22
STARTED_TAG = "sonarlab.started"  # the same, as a UTC time for people
FOUND_DEAD_TAG = "sonarlab.found_dead"


def process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks after boot), or None if there is no such process
    or it has ended (a zombie). A pid the kernel has reused has a different start."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 2 (the command) is in parentheses and may hold spaces or ')': split after it.
    fields = stat.rpartition(")")[2].split()
    if fields[0] in ("Z", "X"):  # field 3, the state: ended, not yet reaped by its parent
        return None
    return fields[19]


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Machine:
    """Where runs are judged from: only runs recorded on the same host and in the same
    pid namespace can be checked against this machine's processes."""

    host: str
    pid_namespace: str
    boot_id: str

    @classmethod
    def here(cls) -> Machine:
        try:
            namespace = os.readlink("/proc/self/ns/pid")
        except OSError:
            namespace = ""
        return cls(socket.gethostname(), namespace, _read("/proc/sys/kernel/random/boot_id"))


def liveness_tags(pid: int | None = None) -> dict[str, str]:
    """Tags that identify the process making a run (this one by default): put on every
    run sonarlab creates, so that ``mark_dead_runs`` can tell whether it is gone."""
    pid = os.getpid() if pid is None else pid
    machine = Machine.here()
    start = process_start(pid) or ""
    tags = {HOST_TAG: machine.host, PID_NS_TAG: machine.pid_namespace,
            BOOT_TAG: machine.boot_id, PID_TAG: str(pid), START_TAG: start}  # fmt: skip
    if start:
        tags[STARTED_TAG] = _started_utc(int(start))
    return tags


def _started_utc(ticks: int) -> str:
    boot = next(
        (int(line.split()[1]) for line in _read("/proc/stat").splitlines()
         if line.startswith("btime ")), 0,
    )  # fmt: skip
    seconds = boot + ticks / os.sysconf("SC_CLK_TCK")
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def dead_process(tags: Mapping[str, str], machine: Machine) -> str | None:
    """Why the process that made a run with ``tags`` is gone, or None if it may be alive
    or cannot be judged: runs without liveness tags (older code, other tools) and runs
    from another host or pid namespace are never judged dead."""
    if PID_TAG not in tags or HOST_TAG not in tags or BOOT_TAG not in tags:
        return None
    if tags[HOST_TAG] != machine.host or tags.get(PID_NS_TAG, "") != machine.pid_namespace:
        return None
    pid = tags[PID_TAG]
    who = f"process {pid} on host {machine.host}"
    if tags.get(STARTED_TAG):
        who += f" (started {tags[STARTED_TAG]})"
    if tags[BOOT_TAG] != machine.boot_id:
        return f"{who} ended with a reboot (boot id {tags[BOOT_TAG]}, now {machine.boot_id})"
    start = process_start(int(pid)) if pid.isdigit() else None
    if start is None:
        return f"{who} no longer exists"
    if start != tags.get(START_TAG):
        return f"{who} no longer exists (pid {pid} is now another process)"
    return None


def running_runs(client) -> Iterator:
    """Every RUNNING run of every active experiment in the store."""
    from mlflow.entities import ViewType

    experiments, token = [], None
    while True:
        page = client.search_experiments(ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        experiments += [e.experiment_id for e in page]
        token = page.token
        if not token:
            break
    for i in range(0, len(experiments), 100):
        token = None
        while True:
            page = client.search_runs(
                experiments[i : i + 100], "attributes.status = 'RUNNING'",
                ViewType.ACTIVE_ONLY, max_results=1000, page_token=token,
            )  # fmt: skip
            yield from page
            token = page.token
            if not token:
                break


def mark_dead_runs(client, by: str) -> list[str]:
    """End KILLED every RUNNING run whose process is gone (``dead_process``), tagged
    ``sonarlab.found_dead`` with how it was found; the ids of the runs marked.

    Runs from another host (or pid namespace) are left alone: their processes cannot be
    seen from here. So are runs without liveness tags."""
    machine = Machine.here()
    marked = []
    for run in running_runs(client):
        reason = dead_process(run.data.tags, machine)
        if reason is None:
            continue
        now = datetime.datetime.now(datetime.UTC)
        note = f"{reason}; marked KILLED by {by} at {now:%Y-%m-%d %H:%M:%S} UTC"
        client.set_tag(run.info.run_id, FOUND_DEAD_TAG, note)
        client.set_terminated(run.info.run_id, "KILLED", end_time=int(now.timestamp() * 1000))
        log.info("run %s (%s) left RUNNING: %s", run.info.run_id, run.info.run_name, note)
        marked.append(run.info.run_id)
    return marked
