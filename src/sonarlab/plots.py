"""Figures (matplotlib, Agg backend): learning curves and per-fold accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def learning_curves(curves: Mapping[str, np.ndarray], title: str, path: Path) -> None:
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fold_accuracies(per_variant: Mapping[str, list[float]], title: str, path: Path) -> None:
    """Box plot with every fold's accuracy as a point, one column per variant."""
    names = list(per_variant)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4.5), constrained_layout=True)
    ax.boxplot([per_variant[n] for n in names], showmeans=True, widths=0.5)
    ax.set_xticks(range(1, len(names) + 1), names)
    rng = np.random.default_rng(0)  # jitter only, for legibility
    for i, name in enumerate(names, start=1):
        values = np.asarray(per_variant[name])
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.6, zorder=3)
    ax.set_ylabel("held-out accuracy per fold")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
