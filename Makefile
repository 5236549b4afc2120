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

# The style guards (ruff, mypy; the layer checks are tests/test_architecture.py) run first.
test: setup lint
	@scripts/ensure-chromium || true
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/bench_inbox.py

bench-nlp: setup
	$(BIN)/python benchmarks/bench_nlp.py

clean:
	rm -rf $(VENV) var .pytest_cache

# The .po files are the translations' source of truth (web/README.md, "Translations"). Extract every
# marked string (web/babel.cfg) into messages.pot, merge it into each language's messages.po,
# compile the committed messages.mo; tests/test_translations.py checks all three are current.
.PHONY: translations
translations: setup
	$(BIN)/pybabel extract -F web/babel.cfg -o web/translations/messages.pot \
		--project=Otklik web
	$(BIN)/pybabel update -i web/translations/messages.pot -d web/translations --ignore-obsolete
	$(BIN)/pybabel compile -d web/translations --statistics
