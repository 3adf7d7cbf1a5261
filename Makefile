# The README's two commands: `make run` (set up, start the local stack, run the demo) and `make test`
# (set up, run every check). Each creates .venv and installs what it needs from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint typecheck wheel clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.local-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,adapter]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.local-installed

run: $(VENV)/.local-installed
	$(BIN)/serverless-agents up --demo

test: $(VENV)/.dev-installed lint typecheck
	$(BIN)/python -m pytest -q

# Run by hand, never in CI: the figures in docs/benchmarks.md come from here (about 10 minutes).
bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

# The wheel the adapter image installs, built the way the Dockerfile builds it (tests/infra/test_wheel.py
# checks that it installs and runs).
wheel: $(BIN)/python
	$(BIN)/pip wheel --no-deps --wheel-dir dist .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache dist
