"""What a ``cv@<variant>`` run keeps of its out-of-fold predictions (``tables.PREDICTIONS``):
MLflow's own evaluation of them (``evaluate_out_of_fold``) and MC dropout against the
standard pass (``mc_dropout_metrics``), both logged to the active run.

MLflow's evaluator (``mlflow.models.evaluate``, the ``classifier`` evaluator, SHAP
explainability off) draws its ROC, precision-recall, calibration and lift curves only
from a model whose raw estimator has ``predict_proba``: a static data set's
``predictions`` column holds labels, and with it MLflow draws the confusion matrix
alone. So the pooled out-of-fold probabilities are handed to it as such a model,
``Precomputed``, which reads each row's probability from the row itself and never
trains. Everything it writes goes to the run: its temporary files are made in the
command's own temporary folder (``cli.command``) and removed, none in the project.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model
from mlflow.pyfunc import PyFuncModel, add_to_model

from sonarlab.results.predictions import has_mc, paired, split_scores

log = logging.getLogger(__name__)

MC_METRICS = ("accuracy", "log_loss", "brier", "roc_auc")
# MLflow's names get this prefix (``pooled_roc_auc``, ``pooled_roc_curve_plot.png``): they
# score every repeat's held-out rows at once, unlike ``roc_auc_mean``, a mean over splits
POOLED_PREFIX = "pooled_"
EVALUATION_DATASET = "uci-sonar-out-of-fold"
# labels as MLflow shows them (its confusion matrix, its curves' legends): the data's own
MINE, ROCK = "M", "R"


def mc_dropout_metrics(predictions: pd.DataFrame) -> dict[str, float]:
    """The run's MC-dropout metrics: ``mc_<metric>_mean``, the mean over splits of the
    MC-dropout mean's scores, and ``mc_delta_<metric>`` (``_ci_low``, ``_ci_high``, ``_p``),
    MC minus the standard pass, split by split, with the corrected paired t-test. Empty
    for a table without MC-dropout predictions (a variant without dropout)."""
    if not has_mc(predictions):
        return {}
    mc, standard = split_scores(predictions, "p_mc"), split_scores(predictions, "p")
    tests = paired(mc, standard, MC_METRICS)
    out = {f"mc_{m}_mean": float(mc[m].mean()) for m in MC_METRICS}
    for m, test in tests.items():
        out |= {f"mc_delta_{m}": test.mean, f"mc_delta_{m}_ci_low": test.low,
                f"mc_delta_{m}_ci_high": test.high, f"mc_delta_{m}_p": test.p}  # fmt: skip
    return out


def log_mc_dropout(predictions: pd.DataFrame, seconds: float | None) -> None:
    """``mc_dropout_metrics`` on the active run, with ``mc_dropout_seconds``, the time the
    passes took (a fact about this run, as ``seconds``); nothing without MC dropout."""
    metrics = mc_dropout_metrics(predictions)
    if metrics:
        mlflow.log_metrics({**metrics, "mc_dropout_seconds": float(seconds or 0.0)})


class Precomputed:
    """A stand-in estimator for MLflow's evaluator: the probability of a mine is the
    row's own ``p`` (columns of ``predict_proba`` in sorted label order, as scikit-learn's
    ``classes_``: M, R)."""

    classes_ = np.array([MINE, ROCK])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = X["p"].to_numpy(np.float64)
        return np.column_stack([p, 1.0 - p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.where(X["p"].to_numpy(np.float64) > 0.5, MINE, ROCK)  # as binary_metrics


def precomputed_model() -> PyFuncModel:
    """``Precomputed`` as the pyfunc model MLflow's classifier evaluator takes the raw
    estimator of (it does so for the ``mlflow.sklearn`` loader): never saved or logged."""
    meta = Model()
    add_to_model(meta, loader_module="mlflow.sklearn")
    return PyFuncModel(model_meta=meta, model_impl=Precomputed())


def evaluate_out_of_fold(predictions: pd.DataFrame, source: str) -> dict[str, float]:
    """Evaluate the standard pass's pooled out-of-fold predictions (every repeat's rows,
    column ``p``) with ``mlflow.models.evaluate`` into the active run: metrics
    ``pooled_*`` and the artifacts ``pooled_roc_curve_plot.png``,
    ``pooled_precision_recall_curve_plot.png``, ``pooled_calibration_curve_plot.png``,
    ``pooled_lift_curve_plot.png`` and ``pooled_confusion_matrix.png``; the table is the
    run's input ``EVALUATION_DATASET`` from ``source``; ``evaluation_seconds`` the time it
    took. The metrics logged; none if a probability is not finite (a diverged model),
    which is said in one line."""
    p = predictions["p"].to_numpy(np.float64)
    if not np.isfinite(p).all():
        log.warning("MLflow's evaluation skipped: %d held-out probabilities are not finite "
                    "(training diverged)", int((~np.isfinite(p)).sum()))  # fmt: skip
        return {}
    t0 = time.perf_counter()
    frame = pd.DataFrame({"p": p, "label": np.where(predictions["label"] == 1, MINE, ROCK)})
    with _quiet_evaluation(), warnings.catch_warnings():
        # MLflow 3.17 registers its local-file source class twice and warns that a path
        # "can be interpreted in multiple ways" (both the same class)
        warnings.filterwarnings("ignore", "The specified dataset source", UserWarning)
        # scikit-learn's log loss, given MLflow's label order (R, M), says it sorts them
        # (M, R): the order of ``Precomputed.predict_proba``'s columns
        warnings.filterwarnings("ignore", "Labels passed were", UserWarning)
        dataset = mlflow.data.from_pandas(
            frame, source=source, name=EVALUATION_DATASET, targets="label"
        )
        result = mlflow.models.evaluate(
            precomputed_model(),
            dataset,
            model_type="classifier",
            evaluators="classifier",  # not "default", which adds the SHAP evaluator
            evaluator_config={
                "log_model_explainability": False,
                "pos_label": MINE,
                "label_list": [ROCK, MINE],
                "metric_prefix": POOLED_PREFIX,
            },
        )
    mlflow.log_metric("evaluation_seconds", time.perf_counter() - t0)
    return dict(result.metrics)


class _DropExpected(logging.Filter):
    """The evaluator's INFO lines, and its warning that ``Precomputed`` has no ``score``
    (scikit-learn's own accuracy, which it already reports as ``accuracy_score``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        return not record.getMessage().startswith("Computing sklearn model score failed")


@contextlib.contextmanager
def _quiet_evaluation() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in (
        "mlflow.models.evaluation.base", "mlflow.models.evaluation.default_evaluator",
        "mlflow.models.evaluation.evaluators.classifier",
    )]  # fmt: skip
    keep = _DropExpected()
    for logger in loggers:
        logger.addFilter(keep)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(keep)
