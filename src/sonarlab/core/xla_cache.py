"""XLA's persistent compilation cache: where it lives and what keys it.

TensorFlow writes every program it compiles for ``tf.function(jit_compile=True)`` to
``--tf_xla_persistent_cache_directory`` (a ``TF_XLA_FLAGS`` flag, read when TensorFlow
starts XLA) and loads it from there, instead of compiling, in any later process that
builds the same program (same HLO, same argument shapes). A repeated stage, or another
stage whose programs have the same shapes, then compiles nothing.

TensorFlow's own key is the program alone: it does not hold the TensorFlow/XLA version
or ``XLA_FLAGS`` (``--xla_cpu_max_isa`` decides the code, and so bits). So the cache
lives in a folder named by a digest of those and of the CPU's model and features
(``cache_folder``): a program compiled under other settings is never loaded.

``SONARLAB_XLA_CACHE``: unset, ``$XDG_CACHE_HOME/sonarlab/xla`` (``~/.cache`` without
it), outside the repository so that no DVC output or dep is near it; a path, that
folder; ``off`` (or ``0``, empty), no cache. A ``--tf_xla_persistent_cache_directory``
of your own in ``TF_XLA_FLAGS`` wins. The cache changes no number (a loaded program
is the compiled one; tested bit for bit), only the time to the first step.

TensorFlow never removes an entry, and every change to a program's code or shapes adds
new ones, so ``prune`` bounds it: after a process stores programs, the folder keeps at
most ``LIMIT_BYTES`` (the least recently used go first), and the folders of other keys
(another TensorFlow, other flags, another CPU) go once unused for ``STALE_DAYS``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import time
from collections.abc import MutableMapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ENV = "SONARLAB_XLA_CACHE"
OFF = ("", "0", "off", "false", "no")
FLAG = "--tf_xla_persistent_cache_directory"
PREFIX = "xla_compile_cache"  # TensorFlow's name for each entry
KEY = re.compile(r"[0-9a-f]{16}")  # a key folder's name (``cache_key``)
LIMIT_BYTES = 1 << 30  # a whole pipeline's programs are about 31 MiB
STALE_DAYS = 30


def _cpu() -> str:
    """The CPU's model name and feature flags (Linux), or the platform's name."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    keep = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(keep)))


def cache_key(env: MutableMapping[str, str]) -> str:
    """What a compiled program depends on beyond its HLO: TensorFlow's version (XLA comes
    with it), ``XLA_FLAGS``, the CPU."""
    try:
        tf = version("tensorflow")
    except PackageNotFoundError:
        tf = "?"
    text = "\0".join([tf, env.get("XLA_FLAGS", ""), platform.machine(), _cpu()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_folder(env: MutableMapping[str, str] | None = None) -> Path | None:
    """The cache's folder for this process's settings, or None when it is off."""
    env = os.environ if env is None else env
    chosen = env.get(ENV)
    if chosen is not None and chosen.strip().lower() in OFF:
        return None
    if chosen:
        base = Path(chosen).expanduser()
    else:
        base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sonarlab" / "xla"
    return base / cache_key(env)


def configure(env: MutableMapping[str, str] | None = None) -> Path | None:
    """Point TensorFlow's persistent XLA cache at ``cache_folder`` (before TensorFlow
    starts); the folder, or None if the cache is off or ``TF_XLA_FLAGS`` names its own."""
    env = os.environ if env is None else env
    flags = env.get("TF_XLA_FLAGS", "")
    if FLAG in flags:
        return None
    folder = cache_folder(env)
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable cache is no cache: the programs compile as before
    env["TF_XLA_FLAGS"] = (
        f"{flags} {FLAG}={folder} --tf_xla_persistent_cache_device_types=CPU".strip()
    )
    return folder


def active_folder(env: MutableMapping[str, str] | None = None) -> Path | None:
    """The cache folder TensorFlow was pointed at (``TF_XLA_FLAGS``), or None."""
    env = os.environ if env is None else env
    for word in env.get("TF_XLA_FLAGS", "").split():
        if word.startswith(FLAG + "="):
            return Path(word.split("=", 1)[1])
    return None


def entries(folder: Path | None) -> int:
    """How many compiled programs the cache holds."""
    if folder is None or not folder.is_dir():
        return 0
    return len(_entry_paths(folder))


def _entry_paths(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(PREFIX)]


def _last_use(stat: os.stat_result) -> float:
    """When an entry was last written or read (reads move the access time, at least
    daily under Linux's default ``relatime``)."""
    return max(stat.st_atime, stat.st_mtime)


def _uses(paths: list[Path]) -> list[tuple[float, int, Path]]:
    """Each entry's last use, size and path (an entry removed meanwhile is left out)."""
    found = []
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed by another process
            continue
        found.append((_last_use(stat), stat.st_size, path))
    return found


def _remove(path: Path) -> bool:
    """Remove an entry; False if another process did first."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def prune(
    folder: Path,
    limit_bytes: int = LIMIT_BYTES,
    stale_days: float = STALE_DAYS,
    now: float | None = None,
) -> tuple[int, int]:
    """Bound the cache whose current key folder is ``folder`` (``cache_folder``'s, not a
    folder of the user's own): remove its least recently used entries until it holds at
    most ``limit_bytes``, and every sibling key folder (named as ``cache_key`` names
    them, holding only entries) none of whose entries was used in ``stale_days``.
    Returns the entries and bytes removed. Safe beside other processes: a removed entry
    is compiled again where it is needed, and one another process is reading stays
    readable until it is closed."""
    now = time.time() if now is None else now
    doomed = []
    here = sorted(_uses(_entry_paths(folder)))
    total = sum(size for _, size, _ in here)
    for _, size, path in here:  # least recently used first
        if total <= limit_bytes:
            break
        doomed.append((size, path))
        total -= size
    swept = []
    for sibling in folder.parent.iterdir():
        if sibling == folder or not KEY.fullmatch(sibling.name) or not sibling.is_dir():
            continue  # only other keys' folders (``cache_key``'s names) are ours to remove
        paths = list(sibling.iterdir())
        if any(not p.name.startswith(PREFIX) for p in paths):
            continue  # not only ours: left as it is
        theirs = _uses(paths)
        try:
            created = sibling.stat().st_mtime  # a new, still empty folder is in use too
        except FileNotFoundError:
            continue
        if max([created, *(used for used, _, _ in theirs)]) > now - stale_days * 86400:
            continue
        doomed += [(size, path) for _, size, path in theirs]
        swept.append(sibling)
    gone = [(size, path) for size, path in doomed if _remove(path)]
    for sibling in swept:
        with contextlib.suppress(OSError):  # a file that appeared meanwhile keeps it
            sibling.rmdir()
    return len(gone), sum(size for size, _ in gone)
