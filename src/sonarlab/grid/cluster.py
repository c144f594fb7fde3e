"""Where a grid's shards run: in this process, or on a Dask cluster.

Dask's own setting names the cluster: ``DASK_SCHEDULER_ADDRESS`` (Dask's config key
``scheduler-address``); unset, the shards run here. Results are identical either way,
bit for bit: a shard is a pure function's input (``grid.run_shard``) and a model's
numbers do not depend on where or beside what it trained. So the executor is not a
DVC parameter, and DVC's cache stays valid whichever ran a stage.

Before sending anything, the driver checks that every worker runs the code and the
libraries it runs itself (``code_fingerprint``): a worker with other code or another
TensorFlow would silently change results, so it is refused, by name. And before
that, the address is probed (``probe_scheduler``): connecting and Dask's handshake
within ``CONNECT_SECONDS`` in all, since distributed's own ``connect`` waits for the
handshake's answer without a limit (a server that accepts and says nothing hangs it for
ever). Then each step has its own ``CONNECT_SECONDS``: the ``Client``'s registration (a
scheduler that answers the probe and then hangs), and every worker's fingerprint (a
stopped worker, which the scheduler keeps listing for minutes, would hang ``Client.run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path

from sonarlab import __version__
from sonarlab.core.errors import StageError
from sonarlab.core.params import ConfigError
from sonarlab.core.paths import git_commit
from sonarlab.grid.shards import Shard, ShardResult, run_shard

log = logging.getLogger(__name__)

CONNECT_SECONDS = 10.0  # an unreachable scheduler fails the stage within this
WORKER_POLL = 0.5  # seconds between asks for the workers, while none has joined


def source_digest(package: Path | None = None) -> str:
    """A digest of every source file of the package (default: this one), by path and content."""
    package = package or Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


# The source this process imported, taken when it imported this module (the driver of a
# grid stage, or a Dask worker when it first runs a shard): a long-lived worker keeps
# running what it loaded even after the files change. Nothing else pays for it.
SOURCE_DIGEST = source_digest()


def scheduler_address() -> str | None:
    """The cluster Dask's configuration names (``DASK_SCHEDULER_ADDRESS``), or None."""
    import dask.config
    from distributed.comm import get_address_host_port

    address = dask.config.get("scheduler-address", default=None) or None
    if address is None:
        return None
    try:
        port = get_address_host_port(str(address))[1]
        problem = "" if 0 < port < 65536 else f"port {port} out of range"
    except ValueError as exc:
        problem = str(exc)
    if problem:
        raise ConfigError(
            f"DASK_SCHEDULER_ADDRESS: got {address!r} ({problem}); allowed: a scheduler's "
            "address, tcp://<host>:<port>, or unset to run the shards in this process"
        )
    return str(address)


def code_fingerprint() -> dict[str, str | None]:
    """What decides a shard's numbers in this process: the project's version, the git
    commit of its checkout, a digest of the source it imported (when it imported it),
    and the TensorFlow and Keras versions."""
    return {
        "sonarlab": __version__,
        # None when installed from a wheel: the source digest still says what it runs
        "commit": git_commit(Path(__file__).resolve().parent),
        "source": SOURCE_DIGEST,
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
    }


def probe_scheduler(address: str, seconds: float = CONNECT_SECONDS) -> None:
    """Raise ``OSError`` unless ``address`` takes a connection and answers Dask's
    handshake, both within ``seconds`` in all: one line that says which failed."""
    from distributed.comm import connect, get_address_host_port
    from distributed.security import Security

    host, port = get_address_host_port(address)
    end = time.monotonic() + seconds
    try:  # a plain TCP connection first: is anything there?
        socket.create_connection((host, port), timeout=seconds).close()
    except TimeoutError:
        raise OSError(
            f"Dask scheduler {address} is not reachable (no answer to a connection within "
            f"{seconds:g} s); start it, or unset DASK_SCHEDULER_ADDRESS to run the shards in "
            "this process"
        ) from None
    except OSError as exc:
        raise OSError(
            f"Dask scheduler {address} is not reachable ({exc.strerror or exc}); start it, or "
            "unset DASK_SCHEDULER_ADDRESS to run the shards in this process"
        ) from None
    left = max(end - time.monotonic(), 0.1)
    args = Security().get_connection_args("client")  # as Client makes them

    async def handshake() -> None:
        comm = await connect(address, timeout=left, **args)
        comm.abort()

    problem = None
    try:
        asyncio.run(asyncio.wait_for(handshake(), left))
    except TimeoutError:
        problem = f"did not answer as a Dask scheduler within {seconds:g} s"
    except OSError:  # distributed's "Timed out trying to connect": it closed each one
        problem = "closed it without answering as a Dask scheduler"
    except Exception as exc:  # its bytes are not Dask's protocol (a frame of 3 EiB...)
        problem = f"its answer is not Dask's protocol ({type(exc).__name__}: an HTTP server?)"
    if problem:
        raise StageError(
            f"DASK_SCHEDULER_ADDRESS {address} accepted a connection but {problem}; check the "
            "address (a scheduler listens on 8786 by default, its dashboard on 8787)"
        )


class InProcess:
    """The shards, one after another, in this process."""

    where = "in this process"
    workers = 1

    def run(
        self, shards: Sequence[Shard], done: Callable[[ShardResult], None]
    ) -> list[ShardResult]:
        results = []
        for shard in shards:
            try:
                results.append(run_shard(shard))
            except Exception as exc:
                raise StageError(shard_failure(shard, exc, self.where)) from exc
            done(results[-1])
        return results

    def close(self) -> None:
        pass


class DaskCluster:
    """The shards as tasks of a Dask cluster: ``Client.submit`` per shard. Dask reruns
    a shard whose worker died on another worker; its result is the same."""

    def __init__(self, address: str, timeout: float = CONNECT_SECONDS):
        from distributed import Client

        self.address = address
        probe_scheduler(address, timeout)
        try:  # Client's timeout bounds its connection, handshake and registration
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            why = f" ({exc})" if str(exc) else ""
            raise StageError(
                f"DASK_SCHEDULER_ADDRESS {address} answered Dask's handshake but did not take a "
                f"client within {timeout:g} s{why}; check the scheduler (its log, its load), or "
                "unset DASK_SCHEDULER_ADDRESS to run the shards in this process"
            ) from None
        try:
            self.workers = self._check_workers(timeout)
        except BaseException:
            self.client.close(timeout=timeout)
            raise
        self.where = f"on the Dask cluster at {address} ({self.workers} workers)"

    def _check_workers(self, timeout: float) -> int:
        """Every worker's ``code_fingerprint``, all within ``timeout`` seconds: a worker
        that does not answer (stopped, swapping) would hang ``Client.run`` for ever, and
        the scheduler lists it for minutes. ``callback_timeout`` is Dask's own bound of a
        blocking call (``Future.result(timeout)`` is made with it)."""
        end = time.monotonic() + timeout
        fingerprints: dict = {}
        for _ in range(int(timeout / WORKER_POLL) + 1):  # until a worker joins, or the end
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                fingerprints = self.client.run(code_fingerprint, callback_timeout=left)
            except TimeoutError:
                raise StageError(
                    f"Dask scheduler {self.address} has a worker that did not answer within "
                    f"{timeout:g} s (stopped, or overloaded?); restart or remove it, or unset "
                    "DASK_SCHEDULER_ADDRESS to run the shards in this process"
                ) from None
            if fingerprints:
                break
            time.sleep(min(WORKER_POLL, max(end - time.monotonic(), 0)))
        if not fingerprints:
            raise StageError(
                f"Dask scheduler {self.address} has no workers (none joined within {timeout:g} "
                "s); start some, or unset DASK_SCHEDULER_ADDRESS to run the shards in this process"
            )
        ours = code_fingerprint()
        for worker, theirs in sorted(fingerprints.items()):
            differ = [k for k in ours if theirs.get(k) != ours[k]]
            if differ:
                said = ", ".join(f"{k} {theirs.get(k)} (here {ours[k]})" for k in differ)
                raise StageError(
                    f"Dask worker {worker} runs other code or libraries: {said}; start the "
                    "workers from this checkout and environment"
                )
        return len(fingerprints)

    def run(
        self, shards: Sequence[Shard], done: Callable[[ShardResult], None]
    ) -> list[ShardResult]:
        from distributed import as_completed

        futures = {
            self.client.submit(run_shard, shard, key=f"sonarlab-shard-{shard.index}-{id(self)}",
                               pure=False): shard
            for shard in shards
        }  # fmt: skip
        results = []
        try:
            for future in as_completed(futures, loop=self.client.loop):
                try:
                    results.append(future.result())
                except Exception as exc:
                    raise StageError(shard_failure(futures[future], exc, self.where)) from exc
                done(results[-1])
        finally:  # Ctrl-C or a failed shard: nothing is left running on the cluster
            self.client.cancel(list(futures))
        return results

    def close(self) -> None:
        """Let go of the cluster (a search runs many times before it does)."""
        self.client.close()


def shard_failure(shard: Shard, exc: BaseException, where: str) -> str:
    trials = "; ".join(f"#{i} {label}" for i, label in zip(shard.trials, shard.labels, strict=True))
    return f"shard {shard.index} failed {where}: {type(exc).__name__}: {exc} (trials {trials})"


@contextlib.contextmanager
def executor() -> Iterator[InProcess | DaskCluster]:
    """Where shards run, for the length of the ``with``: the cluster
    ``DASK_SCHEDULER_ADDRESS`` names (connected and checked now), or this process."""
    address = scheduler_address()
    runner = DaskCluster(address) if address else InProcess()
    try:
        yield runner
    finally:
        runner.close()
