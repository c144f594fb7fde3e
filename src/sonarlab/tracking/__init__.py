"""MLflow: the runs a stage logs (``runs``) and the stores it logs to (``stores``).

Side effects only: nothing here changes a byte of a DVC output, so no stage lists this
package in its deps (a change here re-runs no training; see the README on re-logging)."""
