# Otklik: `make run` sets everything up and starts the service; `make test` runs every test.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config/demo.toml

.PHONY: run test lint bench bench-nlp setup browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned (==2.13.0) in pyproject.toml so pip takes the CPU wheel, never a CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/otklik --config $(CONFIG) run

browser:
	@scripts/ensure-chromium

test: setup
	@scripts/ensure-chromium || true
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/bench_inbox.py

bench-nlp: setup
	$(BIN)/python benchmarks/bench_nlp.py

clean:
	rm -rf $(VENV) var .pytest_cache
