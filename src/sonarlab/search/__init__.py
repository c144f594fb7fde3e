"""Searches run: an Optuna study asked for blocks of trials that train together as a
grid's shards (``driver``), its journal written byte for byte the same (``journal``), and
Optuna's own figures of it (``figures``)."""
