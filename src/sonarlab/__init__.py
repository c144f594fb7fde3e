"""sonarlab: a reproducible study of dropout regularization on the UCI Sonar data."""

import hashlib
from pathlib import Path

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
