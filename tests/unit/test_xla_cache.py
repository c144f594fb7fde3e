"""XLA's persistent compilation cache (``core.xla_cache``): a second process loads the
programs the first one stored, and trains to the same bits; the cache stays bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sonarlab.core import xla_cache

# Trains three tiny members fused and saves every weight, curve and probability.
TRAIN = """
import logging
import sys
import numpy as np
from sonarlab.data.folds import Scaler
from sonarlab.design.variants import ModelConfig, OptimizerConfig, VariantConfig
from sonarlab.training.engines import fused
from sonarlab.training.members import Member

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 60)).astype(np.float32)
y = (rng.random(40) < 0.5).astype(np.float32)
v = VariantConfig(model=ModelConfig("mlp", hidden=(8,), hidden_dropout=0.2),
                  optimizer=OptimizerConfig(0.05, 0.9), epochs=3, batch_size=16)
s = Scaler(mean=np.zeros(60), std=np.ones(60))
rows = np.arange(40)
members = [Member(v, rows[i:], rows[:i], s, 10 + i) for i in (0, 5, 9)]
logging.basicConfig(level=logging.INFO)  # the engine's lines about the cache, on stderr
out = fused.train_stacked(members, X, y)
arrays = {f"{j}_{k}": a for j, o in enumerate(out)
          for k, a in [*enumerate(o.weights), ("c", o.curves), ("p", o.p_train)]}
np.savez(sys.argv[1], **{str(k): v for k, v in arrays.items()})
"""


def _run(tmp_path: Path, name: str, cache: Path, tf_flags: str = "") -> tuple[dict, str]:
    env = {**os.environ, xla_cache.ENV: str(cache)}
    env.pop("TF_XLA_FLAGS", None)
    if tf_flags:
        env["TF_XLA_FLAGS"] = tf_flags
    out = tmp_path / f"{name}.npz"
    proc = subprocess.run([sys.executable, "-c", TRAIN, str(out)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(out) as saved:
        return {k: saved[k] for k in saved.files}, proc.stderr


def test_a_second_process_loads_the_cached_program_and_gets_the_same_bits(tmp_path):
    cache = tmp_path / "xla"
    first, _ = _run(tmp_path, "first", cache)
    (folder,) = cache.iterdir()  # one folder: this TensorFlow, XLA_FLAGS and CPU
    stored = xla_cache.entries(folder)
    assert stored >= 1
    second, _ = _run(tmp_path, "second", cache)
    assert xla_cache.entries(folder) == stored  # loaded: nothing compiled anew
    assert first.keys() == second.keys()
    for k in first:
        assert first[k].tobytes() == second[k].tobytes(), k


def test_the_cache_folder_follows_the_setting(tmp_path):
    env = {xla_cache.ENV: str(tmp_path), "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}
    folder = xla_cache.cache_folder(env)
    assert folder.parent == tmp_path
    other = xla_cache.cache_folder({**env, "XLA_FLAGS": "--xla_cpu_max_isa=AVX512"})
    assert other != folder  # other code, other bits: never the same entries
    assert xla_cache.cache_folder({xla_cache.ENV: "off"}) is None
    home = xla_cache.cache_folder({"XDG_CACHE_HOME": str(tmp_path)})
    assert home.parent == tmp_path / "sonarlab" / "xla"


def test_configure_sets_the_flag_unless_given_or_off(tmp_path):
    env = {xla_cache.ENV: str(tmp_path)}
    folder = xla_cache.configure(env)
    assert folder.is_dir() and xla_cache.active_folder(env) == folder
    assert "--tf_xla_persistent_cache_device_types=CPU" in env["TF_XLA_FLAGS"]
    given = f"{xla_cache.FLAG}=/elsewhere"
    own = {xla_cache.ENV: str(tmp_path), "TF_XLA_FLAGS": given}
    assert xla_cache.configure(own) is None and own["TF_XLA_FLAGS"] == given
    off = {xla_cache.ENV: "0"}
    assert xla_cache.configure(off) is None and "TF_XLA_FLAGS" not in off


def _entry(folder: Path, name: str, size: int, used: float) -> Path:
    path = folder / f"{xla_cache.PREFIX}__{name}__XLA_CPU_JIT.pb"
    path.write_bytes(b"x" * size)
    os.utime(path, (used, used))
    return path


def test_prune_removes_the_least_recently_used_beyond_the_limit(tmp_path):
    folder = tmp_path / "key"
    folder.mkdir()
    now = 1_000_000_000.0
    old, mid, new = (_entry(folder, n, 100, now - age) for n, age in
                     (("old", 300), ("mid", 200), ("new", 100)))  # fmt: skip
    os.utime(mid, (now - 10, now - 200))  # read recently: used later than new
    other = folder / "notes.txt"
    other.write_text("not an entry")
    assert xla_cache.prune(folder, limit_bytes=200, now=now) == (1, 100)
    assert not old.exists() and mid.exists() and new.exists() and other.exists()
    assert xla_cache.prune(folder, limit_bytes=100, now=now) == (1, 100)
    assert mid.exists() and not new.exists()
    assert xla_cache.prune(folder, limit_bytes=100, now=now) == (0, 0)


def test_prune_removes_other_keys_folders_once_unused_for_long(tmp_path):
    now = 1_000_000_000.0
    day = 86400
    key = iter(f"{i:016x}" for i in range(100))
    here, stale, recent, foreign, empty, old_empty = (tmp_path / next(key) for _ in range(6))
    not_a_key = tmp_path / "notes"  # the parent may be a folder of the user's
    for f in (here, stale, recent, foreign, empty, old_empty, not_a_key):
        f.mkdir()
    _entry(here, "a", 10, now - 99 * day)  # the current key's: bounded by size only
    _entry(stale, "a", 10, now - 31 * day)
    _entry(stale, "b", 10, now - 40 * day)
    _entry(recent, "a", 10, now - 31 * day)
    _entry(recent, "b", 10, now - 2 * day)  # one entry used lately keeps the folder
    _entry(foreign, "a", 10, now - 99 * day)
    (foreign / "mine.txt").write_text("someone else's file")
    _entry(not_a_key, "a", 10, now - 99 * day)
    for f in (stale, recent, foreign, old_empty, not_a_key):
        os.utime(f, (now - 50 * day, now - 50 * day))
    os.utime(empty, (now - 1, now - 1))  # just made by a process that stores nothing yet
    assert xla_cache.prune(here, stale_days=30, now=now) == (2, 20)
    assert not stale.exists() and not old_empty.exists()
    for kept in (here, recent, foreign, empty, not_a_key):
        assert kept.is_dir(), kept
    assert [xla_cache.entries(f) for f in (here, recent, not_a_key)] == [1, 2, 1]


def test_a_cache_that_cannot_be_pruned_is_a_warning(tmp_path, caplog):
    from sonarlab.training.engines import fused

    with caplog.at_level("WARNING"):
        fused._prune_cache(tmp_path / "gone")  # e.g. removed by hand meanwhile
    assert "not pruned" in caplog.text


def test_a_process_that_stores_programs_prunes_the_cache(tmp_path):
    cache = tmp_path / "xla"
    gone = cache / "0123456789abcdef"  # another key's folder, unused for 40 days
    gone.mkdir(parents=True)
    long_ago = time.time() - 40 * 86400
    _entry(gone, "old", 10, long_ago)
    os.utime(gone, (long_ago, long_ago))
    _, log = _run(tmp_path, "first", cache)
    assert "compiled and stored" in log
    assert "removed 1 program(s), 0.0 MiB" in log
    assert [f.name for f in cache.iterdir()] == [xla_cache.cache_key(os.environ)]


def test_a_folder_given_in_tf_xla_flags_is_never_pruned(tmp_path):
    own = tmp_path / "own"
    old = own / "0123456789abcdef"  # looks like a key folder, but the folder is the user's
    old.mkdir(parents=True)
    long_ago = time.time() - 40 * 86400
    _entry(old, "old", 10, long_ago)
    os.utime(old, (long_ago, long_ago))
    _, log = _run(tmp_path, "first", tmp_path / "unused", f"{xla_cache.FLAG}={own / 'mine'}")
    assert "compiled and stored" in log and "removed" not in log
    assert xla_cache.entries(own / "mine") >= 1 and xla_cache.entries(old) == 1
