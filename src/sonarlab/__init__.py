"""sonarlab: a reproducible study of dropout regularization on the UCI Sonar data."""

from sonarlab import interrupts

# Run as `python -m sonarlab...`: from this first import on, Ctrl-C or SIGTERM ends the
# command with one line (nothing exists yet to clean up), never an import's traceback.
# Imported as a library, the importer's handlers are left alone.
interrupts.guard_start()

import hashlib  # noqa: E402
from pathlib import Path  # noqa: E402

__version__ = "0.1.0"


def _source_digest() -> str:
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


# The source this process imported, taken when it imported the package: a long-lived
# process (a Dask worker) keeps running what it loaded even after the files change.
SOURCE_DIGEST = _source_digest()
