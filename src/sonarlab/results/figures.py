"""How every figure of the pipeline is written: matplotlib's Agg backend, a fixed DPI,
and no metadata that varies (a PNG carries no tool-version stamp), so that the same
numbers give the same bytes. The figures themselves live with what they show:
``training.figures``, ``grid.figures``, ``report.figures``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from sonarlab.core import files

DPI = 110
# matplotlib writes "Software: Matplotlib version3.x..." into every PNG by default
PNG_METADATA = {"Software": None}


def save_figure(fig: Figure, target: Path) -> None:
    """Write ``fig`` to ``target`` atomically (the format from its suffix) and close it."""
    try:
        with files.atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=DPI, format=target.suffix.lstrip("."), metadata=PNG_METADATA)
    finally:
        plt.close(fig)
