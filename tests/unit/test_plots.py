"""Every figure renders, including the edge cases a small params.yaml makes."""

from __future__ import annotations

import numpy as np

from sonarlab import plots


def is_png(path) -> bool:
    return path.read_bytes().startswith(b"\x89PNG")


def test_differences_without_any_variant_to_compare(tmp_path):
    plots.differences([], [], [], [], "nothing", tmp_path / "d.png")
    assert is_png(tmp_path / "d.png")


def test_overfitting_for_one_and_for_four_variants(tmp_path):
    keys = [f"{part}_loss_{stat}" for part in ("train", "test") for stat in ("mean", "std")]
    curve = dict.fromkeys(keys, np.linspace(1, 0, 5))
    for n in (1, 4):
        plots.overfitting({f"v{i}": curve for i in range(n)}, "t", tmp_path / f"o{n}.png")
        assert is_png(tmp_path / f"o{n}.png")


def test_sweep_with_an_empty_line(tmp_path):
    series = {"a": [(0.0, 0.8, 0.7, 0.9), (0.5, 0.75, 0.6, 0.9)], "b": []}
    plots.sweep(series, "t", tmp_path / "s.png")
    assert is_png(tmp_path / "s.png")
