"""The figures of a search, drawn by Optuna's own matplotlib plots from the study: the
optimization history (each trial's held-out Brier score and the best so far), the
parameters' importance (fANOVA, seeded by the search's seed) and one slice per parameter
(each trial's score against that parameter's value)."""

from __future__ import annotations

import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, ever
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

SIZE = (9, 4.5)


def _note(title: str, text: str) -> Figure:
    fig, ax = plt.subplots(figsize=SIZE)
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    return fig


def _figure(axes: Any) -> Figure:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.figure


def search_figures(study: Any, title: str, seed: int) -> dict[str, Figure]:
    """``history``, ``importance`` and ``slices`` of ``study`` (an ``optuna.Study``)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,), deepcopy=False)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "no complete trials": said already
    with warnings.catch_warnings():  # Optuna's matplotlib plots are "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # an empty history has no legend
        history = _figure(plots.plot_optimization_history(study, target_name="held-out Brier"))
        history.axes[0].set_title(f"{title}: optimization history")
        if len(complete) >= 2:
            evaluator = FanovaImportanceEvaluator(seed=seed)
            importance = _figure(plots.plot_param_importances(study, evaluator=evaluator))
            importance.axes[0].set_title("", loc="left")  # Optuna's own, where ours goes
            importance.axes[0].set_title(f"{title}: parameter importance (fANOVA)")
        else:
            importance = _note(title, "parameter importance needs two complete trials")
        if complete:
            slices = _figure(plots.plot_slice(study, target_name="held-out Brier"))
            slices.suptitle(f"{title}: held-out Brier score against each parameter")
            slices.set_size_inches(4 * len(complete[0].params), 4.5)
        else:
            slices = _note(title, "no trial completed")
    optuna.logging.set_verbosity(verbosity)
    history.set_size_inches(*SIZE)
    importance.set_size_inches(*SIZE)
    for fig in (history, importance):  # room for the parameters' dotted names
        fig.tight_layout()
    for ax in slices.axes:  # a log axis' minor labels run into each other
        if ax.get_xscale() == "log":
            ax.xaxis.set_minor_formatter(NullFormatter())
    return {"history": history, "importance": importance, "slices": slices}
