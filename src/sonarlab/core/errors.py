"""Failures a stage reports in one line (``cli.command``), beside bad parameters
(``core.params.ConfigError``) and files (``OSError``, ``core.files.FormatError``)."""


class StageError(RuntimeError):
    """Work failed in a way the message says in full (e.g. a grid's shard raised)."""


class DataError(ValueError):
    """What a source gave is not the Sonar data set, or results that cannot be compared."""
