"""Figures (matplotlib, Agg backend): learning curves, per-fold accuracy, paired
differences and the train vs held-out loss of every variant.

Each function returns its ``Figure`` (so that its axes, series and labels can be
checked); ``save`` writes one and releases it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sonarlab import files

DPI = 110


def save(fig: Figure, target: Path) -> None:
    """Write ``fig`` to ``target`` atomically (the format from its suffix) and close it."""
    try:
        with files.atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=DPI)
    finally:
        plt.close(fig)


def learning_curves(curves: Mapping[str, np.ndarray], title: str) -> Figure:
    """Mean (± std band across folds) train and held-out loss and accuracy per epoch."""
    epochs = np.arange(1, len(curves["train_loss_mean"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for part, label in (("train", "train (training mode)"), ("test", "held-out fold")):
            mean, std = curves[f"{part}_{metric}_mean"], curves[f"{part}_{metric}_std"]
            ax.plot(epochs, mean, label=label)
            ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return fig


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


def overfitting(curves: Mapping[str, Mapping[str, np.ndarray]], title: str) -> Figure:
    """One panel per variant, shared axes: mean (± std band across folds) loss per epoch
    on the training rows (training mode, as Keras reports it) and on the held-out fold."""
    names = list(curves)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.3 * rows), sharex=True, sharey=True,
        constrained_layout=True, squeeze=False,
    )  # fmt: skip
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


def grid(trials, axes: list[str], title: str) -> Figure:
    """A grid's trials (a ``trials.csv`` table). One axis: held-out accuracy and log loss
    against its value, with the 95% interval as a band. Two: a heat map of each. More:
    one panel per axis, each point the mean over the other axes' values (bars: their
    range)."""
    if len(axes) == 1:
        (axis,) = axes
        t = trials.sort_values(axis)
        fig, panels = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        for ax, metric, label, scale in (
            (panels[0], "accuracy", "held-out accuracy (%)", 100),
            (panels[1], "log_loss", "held-out log loss", 1),
        ):
            x = t[axis].to_numpy(float)
            ax.plot(x, scale * t[f"{metric}_mean"], "o-", label="mean over splits")
            ax.fill_between(
                x, scale * t[f"{metric}_ci_low"], scale * t[f"{metric}_ci_high"],
                alpha=0.25, label="95% corrected interval",
            )  # fmt: skip
            ax.set_xlabel(axis)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        panels[0].legend()
    elif len(axes) == 2:
        rows, cols = axes
        fig, panels = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
        for ax, metric, label, scale in (
            (panels[0], "accuracy_mean", "held-out accuracy (%)", 100),
            (panels[1], "log_loss_mean", "held-out log loss", 1),
        ):
            table = trials.pivot_table(index=rows, columns=cols, values=metric, aggfunc="mean")
            image = ax.imshow(scale * table.to_numpy(), cmap="viridis", aspect="auto")
            ax.set_xticks(range(table.shape[1]), [f"{v:g}" for v in table.columns])
            ax.set_yticks(range(table.shape[0]), [f"{v:g}" for v in table.index])
            ax.set_xlabel(cols)
            ax.set_ylabel(rows)
            for (i, j), v in np.ndenumerate(scale * table.to_numpy()):
                ax.text(j, i, f"{v:.2f}" if scale == 1 else f"{v:.1f}", ha="center", va="center",
                        color="white", fontsize=8)  # fmt: skip
            fig.colorbar(image, ax=ax, label=label)
    else:
        fig, panels = plt.subplots(
            1, len(axes), figsize=(3.6 * len(axes), 3.8), sharey=True, constrained_layout=True
        )
        for ax, axis in zip(panels, axes, strict=True):
            by = trials.groupby(axis, dropna=False)["accuracy_mean"]
            mean, low, high = (100 * by.agg(f).to_numpy() for f in ("mean", "min", "max"))
            x = np.arange(len(mean))
            ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="o-", capsize=4)
            ax.set_xticks(x, [f"{v:g}" for v in by.mean().index])
            ax.set_xlabel(axis)
            ax.grid(alpha=0.3)
        panels[0].set_ylabel("held-out accuracy (%), mean over the other axes")
    fig.suptitle(title)
    return fig
