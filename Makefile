# The project's commands. Each one sets up .venv first if needed (Python 3.11).
PYTHON ?= python3.11
BIN := .venv/bin
# Run history, schedules and the run queue live here (dagster_home/dagster.yaml is tracked).
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: setup run audit test lint ui

setup: .venv/installed

.venv/installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv .venv
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# A run is launched as the UI launches it (`bike-assets run`: `dagster job launch` through the
# run queue, then followed to its end), so it shows on its job's page and in the timeline.
run: setup  ## materialize every asset, with its checks, on $BIKE_RAW_DIR (default data/raw)
	$(BIN)/bike-assets run --job daily_refresh

audit: setup  ## run every asset check against the published tables
	$(BIN)/bike-assets run --job audit_job

test: setup  ## the test suite
	$(BIN)/pytest

lint: setup  ## ruff lint and format check, and the definitions load (dg check defs)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/dg check defs

# `dg dev` handles SIGTERM as it handles SIGINT, and a shell that starts it in the background
# makes it ignore SIGINT (so SIGTERM too): restore SIGINT's default, then become `dg dev`, so
# that Ctrl-C and SIGTERM both stop it with its webserver, daemon and code servers.
# Options go in DG_DEV_ARGS, e.g. `make ui DG_DEV_ARGS="--port 3001"`.
ui: setup  ## the Dagster UI on http://localhost:3000, with the daemon (schedule, run queue)
	exec $(BIN)/python -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); \
	os.execv(sys.argv[1], sys.argv[1:])' $(BIN)/dg dev $(DG_DEV_ARGS)
