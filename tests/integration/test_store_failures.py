"""A store that cannot be used stops a real cv stage before training, with one line naming
the store and what to do: damaged, read-only (for root too: an immutable file, a
read-only bind mount), locked for too long, another MLflow's schema, artifacts that
cannot be written, a server that answers but is not MLflow."""

from __future__ import annotations

import contextlib
import http.server
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sonarlab.tracking import stores
from tests.conftest import lock_held, loopback_server
from tests.integration.conftest import BIN, Project, outputs_ignored

pytestmark = pytest.mark.integration

# TensorFlow's C++ start-up lines (printed on import, before any of ours).
TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d)")


@pytest.fixture(scope="module")
def prepared(project, tmp_path_factory) -> Project:
    """The tiny project with its data fetched and standardized, and no store."""
    root = tmp_path_factory.mktemp("stores") / "repo"
    # (other tests may have run the session's project: leave its results and store)
    outputs = ("mlflow.db*", "mlartifacts", "results", "reports", "data", ".git")
    shutil.copytree(project.root, root, ignore=outputs_ignored(*outputs))
    p = Project(root, project.env)
    for stage in ("fetch", "standardize"):
        p.run(str(BIN / "python"), "-m", f"sonarlab.stages.{stage}")
    return p


@pytest.fixture(scope="module")
def made_store(tmp_path_factory) -> Path:
    """A store this MLflow made, with no experiment (the stage creates its own)."""
    path = tmp_path_factory.mktemp("made") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def fresh(prepared, tmp_path) -> Project:
    root = tmp_path / "repo"
    shutil.copytree(prepared.root, root)
    return Project(root, prepared.env)


def cv_stage(project: Project, env: dict | None = None):
    return project.run(
        str(BIN / "python"), "-m", "sonarlab.stages.cv", "baseline",
        env={"SONARLAB_STORE_TIMEOUT": "1", "no_proxy": "127.0.0.1", **(env or {})}, check=False,
    )  # fmt: skip


def assert_one_line_before_training(project: Project, proc, message: str) -> None:
    """Exit 1, and nothing on stderr but TensorFlow's start-up and one line: no traceback,
    no line from MLflow, alembic or SQLAlchemy; no output, no training."""
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if not TF_NOISE.match(line)]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].endswith(f" ERROR cv@baseline: {message}"), lines[0]
    assert not (project.root / "results" / "baseline").exists()


def store_of(project: Project, made_store: Path) -> tuple[Path, str]:
    path = project.root / "mlflow.db"
    shutil.copy(made_store, path)
    return path, f"sqlite:///{path}"


def runs_in(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.mark.parametrize("damage", ["first 4096 bytes", "random bytes"])
def test_a_damaged_store(fresh, made_store, damage):
    path, uri = store_of(fresh, made_store)
    data = path.read_bytes()
    path.write_bytes(data[:4096] if damage == "first 4096 bytes" else bytes(range(256)) * 40)
    before = path.read_bytes()
    proc = cv_stage(fresh)
    reason = "database disk image is malformed" if damage == "first 4096 bytes" else (
        "file is not a database")  # fmt: skip
    assert_one_line_before_training(
        fresh, proc, f"MLflow store {uri} is damaged ({reason}); restore it from a backup, "
        "or move it away to start a new store",
    )  # fmt: skip
    assert path.read_bytes() == before


@pytest.mark.parametrize("schema", ["older", "unknown"])
def test_a_schema_from_another_mlflow(fresh, made_store, schema):
    from importlib.metadata import version

    path, uri = store_of(fresh, made_store)
    head = stores.mlflow_schema_head()
    found = stores._migrations().get_revision(head).down_revision if schema == "older" else (
        "f00dfeed1234")  # fmt: skip
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (found,))
    before = path.read_bytes()
    proc = cv_stage(fresh)
    if schema == "older":
        message = (f"MLflow store {uri} has an older schema ({found}; MLflow {version('mlflow')} "
                   f"writes {head}); back it up, then run `mlflow db upgrade {uri}`")  # fmt: skip
    else:
        message = (f"MLflow store {uri} has a schema MLflow {version('mlflow')} does not know "
                   "(f00dfeed1234), written by another (newer?) MLflow; use that MLflow "
                   "version, or move the store away to start a new one")  # fmt: skip
    assert_one_line_before_training(fresh, proc, message)
    assert path.read_bytes() == before


@contextlib.contextmanager
def immutable(path: Path):
    """``chattr +i``: not even root may write the file, or add files to the folder."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i not possible here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextlib.contextmanager
def read_only_mount(source: Path, target: Path):
    """A read-only bind mount of ``source`` at ``target`` (EROFS, for root too)."""
    target.mkdir()
    done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"bind mounts not possible here: {done.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True)
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_a_read_only_store_file(fresh, made_store):
    path, uri = store_of(fresh, made_store)
    with immutable(path):
        proc = cv_stage(fresh)
    assert_one_line_before_training(
        fresh, proc, f"MLflow store {uri} cannot be written (attempt to write a readonly "
        f"database): make {path} and its folder writable (a read-only file or folder, mount "
        "or immutable attribute?)",
    )  # fmt: skip
    assert runs_in(path) == 0


def test_a_store_in_a_read_only_folder(fresh, made_store, tmp_path):
    source = tmp_path / "stores"
    source.mkdir()
    shutil.copy(made_store, source / "mlflow.db")
    with read_only_mount(source, tmp_path / "ro") as folder:
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        proc = cv_stage(fresh, {"MLFLOW_TRACKING_URI": uri})
        message = (f"MLflow store {uri}: cannot open its lock file {folder / 'mlflow.db.lock'} "
                   f"(Read-only file system); make {folder} writable")  # fmt: skip
        assert_one_line_before_training(fresh, proc, message)
    assert sorted(p.name for p in source.iterdir()) == ["mlflow.db"]


def test_a_store_in_an_immutable_folder(fresh, made_store, tmp_path):
    """The lock file exists, the store is writable, but the folder takes no journal."""
    folder = tmp_path / "stores"
    folder.mkdir()
    shutil.copy(made_store, folder / "mlflow.db")
    (folder / "mlflow.db.lock").touch()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with immutable(folder):
        proc = cv_stage(fresh, {"MLFLOW_TRACKING_URI": uri})
    assert_one_line_before_training(
        fresh, proc, f"MLflow store {uri} cannot be written (unable to open database file): "
        f"make {folder / 'mlflow.db'} and its folder writable (a read-only file or folder, "
        "mount or immutable attribute?)",
    )  # fmt: skip
    assert runs_in(folder / "mlflow.db") == 0


def test_an_artifact_folder_that_cannot_be_written(fresh, made_store):
    path, uri = store_of(fresh, made_store)
    artifacts = fresh.root / "mlartifacts"
    artifacts.mkdir()
    with immutable(artifacts):
        proc = cv_stage(fresh)
    assert_one_line_before_training(
        fresh, proc, f"MLflow store {uri} cannot keep artifacts: {artifacts} is not writable "
        "(Operation not permitted); make it writable",
    )  # fmt: skip
    assert runs_in(path) == 0


def test_a_store_another_connection_holds_locked(fresh, made_store):
    path, uri = store_of(fresh, made_store)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        proc = cv_stage(fresh)
        holder.execute("ROLLBACK")
    assert_one_line_before_training(
        fresh, proc, f"MLflow store {uri} is locked: another process has held a write lock on "
        f"it for over 1 s (see `fuser {path}`); end it or wait, then run the stage again "
        "(SONARLAB_STORE_TIMEOUT sets the wait)",
    )  # fmt: skip
    assert runs_in(path) == 0


def test_a_store_whose_lock_another_process_holds(fresh, made_store):
    path, uri = store_of(fresh, made_store)
    lock = Path(f"{path}.lock")
    with lock_held(lock, seconds=120):
        proc = cv_stage(fresh)
    assert_one_line_before_training(
        fresh, proc, f"MLflow store {uri} is locked: another process has held its lock {lock} "
        f"for over 1 s (see `fuser {lock}`); end it or wait, then run the stage again "
        "(SONARLAB_STORE_TIMEOUT sets the wait)",
    )  # fmt: skip
    assert runs_in(path) == 0


@contextlib.contextmanager
def not_mlflow(status: int, body: bytes, content_type: str):
    """A server on 127.0.0.1 that answers everything with ``status`` and ``body``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    with loopback_server(Handler) as url:
        yield url


@pytest.mark.parametrize(
    ("status", "body", "content_type", "says"),
    [
        (200, b"<html><body>OK</body></html>", "text/html",
         "HTTP 200, '<html><body>OK</body></html>'"),
        (200, b'{"status": "ok"}', "application/json", """HTTP 200, '{"status": "ok"}'"""),
        (404, b"<h1>Not Found</h1>", "text/html", "HTTP 404 to {uri}/health"),
        (500, b"Internal Server Error", "text/plain", "HTTP 500 to {uri}/health"),
    ],
)  # fmt: skip
def test_a_server_that_answers_but_is_not_mlflow(fresh, status, body, content_type, says):
    with not_mlflow(status, body, content_type) as uri:
        proc = cv_stage(fresh, {"MLFLOW_TRACKING_URI": uri})
    if status == 200:
        message = (f"MLflow tracking server {uri} answers, but not as MLflow does (GET "
                   f"/api/2.0/mlflow/experiments/get-by-name gave {says}); check the URI "
                   "(host, port and path) in MLFLOW_TRACKING_URI")  # fmt: skip
    else:
        message = (f"MLflow tracking server {uri} answers {says.format(uri=uri)}: it is not a "
                   "working MLflow server; check the URI in MLFLOW_TRACKING_URI and the "
                   "server's log")  # fmt: skip
    assert_one_line_before_training(fresh, proc, message)


def test_the_grid_stage_probes_the_store_before_training(fresh, made_store):
    path, uri = store_of(fresh, made_store)
    path.write_bytes(path.read_bytes()[:4096])
    proc = fresh.run(
        str(BIN / "python"), "-m", "sonarlab.stages.grid", "hidden_dropout", check=False
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if not TF_NOISE.match(line)]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].endswith(
        f" ERROR grid@hidden_dropout: MLflow store {uri} is damaged (database disk image is "
        "malformed); restore it from a backup, or move it away to start a new store"
    )
    assert not (fresh.root / "results" / "grid").exists()
