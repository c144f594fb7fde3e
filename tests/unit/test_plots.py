"""Every figure shows what it says: its axes, series and labels, checked on the Figure
before it is saved, including the edge cases a small params.yaml makes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from sonarlab.report import figures
from sonarlab.results.figures import save_figure
from sonarlab.results.metrics import CURVE_KEYS
from sonarlab.training.figures import learning_curves


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def curves(epochs=5):
    return pd.DataFrame(
        {f"{k}_{s}": np.linspace(1, 0, epochs) for k in CURVE_KEYS for s in ("mean", "std")}
    )


def test_learning_curves_show_train_and_held_out_loss_and_accuracy():
    c = curves()
    c["test_loss_mean"] = np.linspace(2, 1, 5)
    fig = learning_curves(c, "v: mean ± std over 30 folds")
    loss, acc = fig.axes
    assert (loss.get_ylabel(), acc.get_ylabel()) == ("loss", "accuracy")
    assert loss.get_xlabel() == acc.get_xlabel() == "epoch"
    assert [t.get_text() for t in loss.get_legend().get_texts()] == [
        "train (training mode)", "held-out fold"
    ]  # fmt: skip
    train, test = loss.get_lines()
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(test.get_ydata(), c["test_loss_mean"])
    assert fig.get_suptitle() == "v: mean ± std over 30 folds"


def test_fold_accuracies_draw_every_split_as_a_point():
    fig = figures.fold_accuracies({"a": [0.8, 0.9, 0.85], "b": [0.7, 0.75]}, "t")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    points = [c.get_offsets() for c in ax.collections]
    assert [len(p) for p in points] == [3, 2]
    np.testing.assert_allclose(points[1][:, 1], [0.7, 0.75])
    assert ax.get_ylabel() == "held-out accuracy per fold"


def test_differences_plot_each_interval_in_points_with_zero_marked():
    fig = figures.differences(["v1", "v2"], [0.02, -0.01], [-0.01, -0.05], [0.05, 0.03], "t")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["v1", "v2"]
    marker = next(ln for ln in ax.get_lines() if ln.get_marker() == "o")
    np.testing.assert_allclose(marker.get_xdata(), [2.0, -1.0])  # percentage points
    assert any(list(ln.get_xdata()) == [0, 0] for ln in ax.get_lines())  # the zero line


def test_differences_without_any_variant_to_compare(tmp_path):
    fig = figures.differences([], [], [], [], "nothing")
    assert fig.axes[0].texts[0].get_text() == "no variant besides the baseline"
    save_figure(fig, tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("n", [1, 4])
def test_overfitting_has_one_panel_per_variant_and_a_legend(n):
    fig = figures.overfitting({f"v{i}": curves() for i in range(n)}, "t")
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == [f"v{i}" for i in range(n)]
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert len(legends) == 1
    assert [t.get_text() for t in legends[0].get_texts()] == ["training rows", "held-out fold"]
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes if ax.get_title())
