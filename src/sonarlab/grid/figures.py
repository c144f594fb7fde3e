"""The figure of a grid study: held-out scores against the axes (``grid@<name>``), with
the no-skill reference (``results.reference``) drawn on every panel."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, ever
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

REFERENCE_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1.2}
PANELS = (
    ("accuracy", "held-out accuracy (%)", 100),
    ("brier", "held-out Brier score (selection score)", 1),
    ("log_loss", "held-out log loss", 1),
)


def grid_trials(trials, axes: list[str], title: str, reference: Mapping[str, float]) -> Figure:
    """A grid's trials (a ``trials.csv`` table) and the no-skill reference's mean scores
    (``reference``: metric -> mean). One axis: held-out accuracy, Brier score and log loss
    against its value, with the 95% interval as a band and the reference as a dashed
    line. Two: a heat map of accuracy and Brier, the reference marked on each colour bar.
    More: one panel per axis, each point the mean accuracy over the other axes' values
    (bars: their range), the reference dashed."""
    if len(axes) == 1:
        (axis,) = axes
        t = trials.sort_values(axis)
        fig, panels = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
        for ax, (metric, label, scale) in zip(panels, PANELS, strict=True):
            x = t[axis].to_numpy(float)
            ax.plot(x, scale * t[f"{metric}_mean"], "o-", label="mean over splits")
            ax.fill_between(
                x, scale * t[f"{metric}_ci_low"], scale * t[f"{metric}_ci_high"],
                alpha=0.25, label="95% corrected interval",
            )  # fmt: skip
            ax.axhline(scale * reference[metric], label="no-skill reference", **REFERENCE_STYLE)
            ax.set_xlabel(axis)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        panels[0].legend()
    elif len(axes) == 2:
        rows, cols = axes
        fig, panels = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
        for ax, (metric, label, scale) in zip(panels, PANELS[:2], strict=True):
            values = f"{metric}_mean"
            table = trials.pivot_table(index=rows, columns=cols, values=values, aggfunc="mean")
            image = ax.imshow(scale * table.to_numpy(), cmap="viridis", aspect="auto")
            ax.set_xticks(range(table.shape[1]), [f"{v:g}" for v in table.columns])
            ax.set_yticks(range(table.shape[0]), [f"{v:g}" for v in table.index])
            ax.set_xlabel(cols)
            ax.set_ylabel(rows)
            for (i, j), v in np.ndenumerate(scale * table.to_numpy()):
                ax.text(j, i, f"{v:.2f}" if scale == 1 else f"{v:.1f}", ha="center", va="center",
                        color="white", fontsize=8)  # fmt: skip
            bar = fig.colorbar(image, ax=ax, label=f"{label}; dashed: no-skill")
            bar.ax.axhline(scale * reference[metric], **REFERENCE_STYLE)
    else:
        fig, panels = plt.subplots(
            1, len(axes), figsize=(3.6 * len(axes), 3.8), sharey=True, constrained_layout=True
        )
        for ax, axis in zip(panels, axes, strict=True):
            by = trials.groupby(axis, dropna=False)["accuracy_mean"]
            mean, low, high = (100 * by.agg(f).to_numpy() for f in ("mean", "min", "max"))
            x = np.arange(len(mean))
            ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="o-", capsize=4)
            ax.axhline(100 * reference["accuracy"], label="no-skill reference", **REFERENCE_STYLE)
            ax.set_xticks(x, [f"{v:g}" for v in by.mean().index])
            ax.set_xlabel(axis)
            ax.grid(alpha=0.3)
        panels[0].set_ylabel("held-out accuracy (%), mean over the other axes")
    fig.suptitle(title)
    return fig
