"""The data and its splits: the UCI Sonar data (``uci``: fetch, verify, read), the
stratified folds with their in-fold standardization (``folds``) and every seed derived
from ``cv.seed`` (``seeds``)."""
