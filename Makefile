# The README's commands. `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# Stages run `python -m sonarlab...`: make that the environment's python.
export PATH := $(BIN):$(PATH)
# No usage telemetry from the tools (and no waiting on it where the network is closed).
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true

.DEFAULT_GOAL := help
.PHONY: help env pipeline test lint format push pull check-lock ui serve server bench bench-engines bench-grid bench-search agreement permutation

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

env: $(VENV)/.installed ## create the environment from the lock file

pipeline: env ## run the whole pipeline: dvc repro (SONAR_SOURCE=<copy> when offline)
	dvc repro

test: env ## run the tests (unit and integration, real DVC and MLflow)
	python -m pytest

lint: env ## ruff lint and format check
	ruff check src tests scripts benchmarks
	ruff format --check src tests scripts benchmarks

format: env ## apply ruff's fixes and formatting
	ruff check --fix src tests scripts benchmarks
	ruff format src tests scripts benchmarks

push: env ## share the outputs and the run-cache: dvc push to the default remote
	dvc push --run-cache

pull: env ## get the committed results without training: dvc pull from the remote
	dvc pull --run-cache

check-lock: env ## fail if dvc.lock is stale for the code or params (CI runs it)
	python scripts/check_lock.py

ui: env ## the MLflow UI for the repo-root store, on http://127.0.0.1:5000
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

serve: env ## serve the registered @champion model on http://127.0.0.1:5001 (offline)
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} mlflow models serve \
		-m "models:/sonar-dropout@champion" --env-manager local -h 127.0.0.1 -p 5001

server: env ## team MLflow server on PostgreSQL (SONARLAB_DATABASE_URI=postgresql://...)
	scripts/tracking-server

bench: env ## kernel GFLOP/s vs SGEMM, LSTM block, cv@baseline fused vs keras, 324-trial grid (~30 min)
	python -m benchmarks.engines kernel
	python -m benchmarks.grid stage big

bench-engines: env ## both CV engines' CV calls on the same work, per variant (about 12 min)
	python -m benchmarks.engines speed

bench-grid: env ## grids vs queued experiments, a 324-trial grid, cv@baseline fused vs keras (long)
	python -m benchmarks.grid all

bench-search: env ## search@tutorial vs a per-trial Keras Optuna study; halving vs none (~60 min)
	python -m benchmarks.search all

agreement: env ## fused vs keras mean CV accuracy over 5 seeds (about 20 min)
	python -m benchmarks.engines agreement

permutation: env ## best-of-grid, the rule and BBC-CV on 5 label permutations + true labels (about 15 min)
	python -m benchmarks.permutation
