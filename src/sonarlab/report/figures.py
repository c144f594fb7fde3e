"""The report's figures (matplotlib, Agg backend): per-fold accuracy, paired
differences, the train vs held-out loss of every variant, and reliability diagrams.

Each function returns its ``Figure`` (so that its axes, series and labels can be
checked); ``results.figures.save_figure`` writes one and releases it."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, ever
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def fold_accuracies(per_variant: Mapping[str, list[float]], title: str) -> Figure:
    """Box plot with every fold's accuracy as a point, one column per variant."""
    names = list(per_variant)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4.5), constrained_layout=True)
    # every point is drawn below, so the box draws no outliers of its own
    ax.boxplot([per_variant[n] for n in names], showmeans=True, showfliers=False, widths=0.5)
    ax.set_xticks(range(1, len(names) + 1), names)
    rng = np.random.default_rng(0)  # jitter only, for legibility
    for i, name in enumerate(names, start=1):
        values = np.asarray(per_variant[name])
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.6, zorder=3)
    ax.set_ylabel("held-out accuracy per fold")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return fig


def differences(
    names: list[str], means: list[float], lows: list[float], highs: list[float], title: str
) -> Figure:
    """Forest plot: each variant's mean paired difference with its interval, zero marked."""
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(names) + 1.6), constrained_layout=True)
    if not names:  # only the baseline: nothing to compare
        ax.text(0.5, 0.5, "no variant besides the baseline", ha="center", va="center")
        ax.set_axis_off()
        return fig
    pos = np.arange(len(names))[::-1]
    m, lo, hi = (100 * np.asarray(v) for v in (means, lows, highs))
    ax.errorbar(m, pos, xerr=[m - lo, hi - m], fmt="o", capsize=4)
    ax.axvline(0, color="grey", lw=1, ls="--")
    ax.set_yticks(pos, names)
    ax.set_ylim(pos.min() - 0.6, pos.max() + 0.6)
    ax.set_xlabel("difference in held-out accuracy (percentage points)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _panels(n: int, width: float, height: float) -> tuple[Figure, np.ndarray, int]:
    """A grid of panels for ``n`` variants, three a row, sharing both axes: the figure,
    the axes (2-D) and the number of columns."""
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows), sharex=True, sharey=True,
        constrained_layout=True, squeeze=False,
    )  # fmt: skip
    return fig, axes, cols


def overfitting(curves: Mapping[str, Mapping[str, np.ndarray]], title: str) -> Figure:
    """One panel per variant, shared axes: mean (± std band across folds) loss per epoch
    on the training rows (training mode, as Keras reports it) and on the held-out fold."""
    names = list(curves)
    fig, axes, cols = _panels(len(names), 4.2, 3.3)
    for ax, name in zip(axes.flat, names, strict=False):
        c = curves[name]
        epochs = np.arange(1, len(c["train_loss_mean"]) + 1)
        for part, label, color in (
            ("train", "training rows", "tab:blue"),
            ("test", "held-out fold", "tab:orange"),
        ):
            mean, std = c[f"{part}_loss_mean"], c[f"{part}_loss_std"]
            ax.plot(epochs, mean, color=color, label=label)
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    for i, ax in enumerate(axes.flat[: len(names)]):
        if i + cols >= len(names):  # nothing below it: it carries the epoch axis
            ax.set_xlabel("epoch")
            ax.tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("binary cross-entropy")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    for ax in axes.flat[len(names) :]:
        ax.set_axis_off()
    if len(names) < axes.size:  # the first empty panel holds the legend
        axes.flat[len(names)].legend(handles, labels, loc="center")
    else:
        axes.flat[0].legend(loc="upper left")
    fig.suptitle(title)
    return fig


def reliability_diagrams(
    bins: Mapping[str, Mapping[str, np.ndarray]],
    ece: Mapping[str, float],
    title: str,
    mc: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> Figure:
    """One panel per variant: observed share of mines against mean predicted probability
    in each quantile bin (``calibration.reliability``: columns ``p_mean``, ``y_mean``),
    the diagonal being perfect calibration; MC dropout's bins (``mc``) beside the
    standard pass's where there are any. The panel's title carries its ECE."""
    mc = mc or {}
    names = list(bins)
    fig, axes, _ = _panels(len(names), 3.8, 3.6)
    for ax, name in zip(axes.flat, names, strict=False):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
        table = bins[name]
        ax.plot(table["p_mean"], table["y_mean"], "o-", label="standard pass")
        if name in mc:
            ax.plot(mc[name]["p_mean"], mc[name]["y_mean"], "s-", alpha=0.8, label="MC dropout")
        ax.set_title(f"{name} (ECE {ece[name]:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    for ax in axes[-1, :]:
        ax.set_xlabel("mean predicted P(mine) in bin")
    for ax in axes[:, 0]:
        ax.set_ylabel("observed share of mines")
    for ax in axes.flat[len(names) :]:
        ax.set_axis_off()
    handles, labels = max(
        (a.get_legend_handles_labels() for a in axes.flat[: len(names)]), key=lambda h: len(h[0])
    )
    if len(names) < axes.size:
        axes.flat[len(names)].legend(handles, labels, loc="center")
    else:
        axes.flat[0].legend(handles, labels, loc="upper left")
    fig.suptitle(title)
    return fig
