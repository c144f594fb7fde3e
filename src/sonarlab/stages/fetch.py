"""Stage ``fetch``: get the UCI Sonar data, verify it, write ``data/raw/sonar.csv``.

Reads: params ``fetch`` (URLs, timeout, retries); env ``SONAR_SOURCE`` (a local
path or URL, tried first; relative paths are taken from the project root). Each
source is read within 1 MiB (``uci.SOURCE_MAX_BYTES``) and ``fetch.timeout_seconds``
an attempt; past either, it fails naming the source and the limit, and the next is tried.
Writes: ``data/raw/sonar.csv`` (atomically; canonical form: LF endings, 4 decimals).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from sonarlab.cli.command import main_without_arguments
from sonarlab.core import files
from sonarlab.core.params import FetchConfig, load_section, read_params
from sonarlab.core.paths import store_root, workspace_paths
from sonarlab.data import uci

log = logging.getLogger(__name__)

OFFLINE_HINT = (
    "with no network, set SONAR_SOURCE to a local copy of sonar.all-data "
    "(e.g. SONAR_SOURCE=../shared/data/sonar.csv) and run again"
)


def fetch_settings(params: Mapping[str, Any]) -> FetchConfig:
    """What ``fetch`` reads of params, validated: the ``fetch`` section."""
    return load_section(params, "fetch")


def fetch() -> None:
    paths = workspace_paths()
    cfg = fetch_settings(read_params(paths.params))
    env_source = os.environ.get("SONAR_SOURCE", "").strip()
    sources = [env_source, *cfg.urls] if env_source else list(cfg.urls)
    base = store_root(paths.root)

    def reader(source: str) -> bytes:
        return uci.read_source(source, base, cfg.timeout_seconds, cfg.retries)

    try:
        source, sonar = uci.fetch_first(sources, reader)
    except OSError as exc:
        raise OSError(f"could not get the Sonar data ({exc}); {OFFLINE_HINT}") from None
    files.write_text(paths.raw_data, uci.canonical_text(sonar))
    log.info(
        "fetch: %d rows from %s, fingerprint %s… verified -> %s",
        len(sonar.labels),
        source,
        uci.FINGERPRINT[:12],
        paths.raw_data.relative_to(paths.root),
    )


def main(argv: list[str] | None = None) -> int:
    return main_without_arguments("fetch", __doc__, fetch, argv)


if __name__ == "__main__":
    raise SystemExit(main())
