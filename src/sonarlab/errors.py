"""Failures a stage reports in one line (``stages._cli``), beside bad parameters
(``config.ConfigError``), bad data (``data.DataError``) and files (``OSError``)."""


class StageError(RuntimeError):
    """Work failed in a way the message says in full (e.g. a grid's shard raised)."""
