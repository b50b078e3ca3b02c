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

run: setup  ## materialize every asset, with its checks, on $BIKE_RAW_DIR (default data/raw)
	$(BIN)/dg launch --job daily_refresh

audit: setup  ## run every asset check against the published tables
	$(BIN)/dg launch --job audit_job

test: setup  ## the test suite
	$(BIN)/pytest

lint: setup  ## ruff lint and format check, and the definitions load (dg check defs)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/dg check defs

ui: setup  ## the Dagster UI on http://localhost:3000, with the daemon (schedule, run queue)
	exec $(BIN)/dg dev
