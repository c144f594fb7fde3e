"""The figure of a variant's training: its learning curves (``cv@<variant>``)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, ever
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


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
