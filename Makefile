# The README's two commands: `make run` (set up, start the local stack, run the demo) and `make test`
# (set up, run every check). Each creates .venv and installs what it needs from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# checkov (tests/infra/test_iac_checks.py) pins boto3 1.35 and packaging<24, below what the project needs,
# so it gets a venv of its own; the stamp names the version, so changing it here installs it again.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: run test bench lint typecheck wheel clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.local-installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,adapter]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.local-installed

$(CHECKOV_STAMP):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

run: $(VENV)/.local-installed
	$(BIN)/serverless-agents up --demo

test: $(VENV)/.dev-installed $(CHECKOV_STAMP) lint typecheck
	SA_CHECKOV=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(BIN)/python -m pytest -q

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
	rm -rf $(VENV) $(CHECKOV_VENV) .mypy_cache .ruff_cache .pytest_cache dist
