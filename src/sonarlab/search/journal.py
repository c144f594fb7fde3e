"""The study of a search as an Optuna journal file, which Optuna's own tools open
(``JournalStorage(JournalFileBackend(path))``, ``optuna-dashboard``) to inspect the
search or continue it.

Optuna's journal stamps each line with a random writer id and each trial with wall-clock
times; here the same search writes the same bytes. Every line names one writer
(``WRITER``), and every trial starts and ends at the Unix epoch: when a search ran is a
fact about that run, kept in MLflow, not in its outputs.
"""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sonarlab.core import files

WRITER = "sonarlab"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _one_writer(backend: Any) -> Any:
    from optuna.storages.journal import BaseJournalBackend

    class OneWriter(BaseJournalBackend):
        """Lines written as ``WRITER``, read back as this process's own id (Optuna's
        replay needs to find its own lines)."""

        def __init__(self) -> None:
            self.own: str | None = None

        def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
            logs = backend.read_logs(log_number_from)
            return [{**x, "worker_id": self.own} if self.own else x for x in logs]

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            self.own = logs[0]["worker_id"]
            backend.append_logs([{**x, "worker_id": WRITER} for x in logs])

    return OneWriter()


def write_journal(target: Path, study_name: str, trials: Sequence[Any]) -> None:
    """Write ``trials`` (Optuna ``FrozenTrial``s, minimized) to a new journal at ``target``,
    atomically; their times are set to ``EPOCH``."""
    import copy

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    target.parent.mkdir(parents=True, exist_ok=True)
    # the journal's lock file lives beside it while it is written: in a folder of its own
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        path = Path(tmp) / target.name
        storage = JournalStorage(_one_writer(JournalFileBackend(str(path))))
        study = optuna.create_study(storage=storage, study_name=study_name, direction="minimize")
        for trial in trials:
            trial = copy.deepcopy(trial)
            trial.datetime_start = trial.datetime_complete = EPOCH
            study.add_trial(trial)
        with files.atomic_path(target) as out:
            out.write_bytes(path.read_bytes())


def read_journal(path: Path, study_name: str) -> Any:
    """The study a journal holds, through Optuna's own storage."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(
        study_name=study_name, storage=JournalStorage(JournalFileBackend(str(path)))
    )
