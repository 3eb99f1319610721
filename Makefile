# Two entry points for a fresh machine: `make demo` and `make test`. `make lint` and `make docs` are the other CI checks.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q -e '.[test,docs,dev]'
	touch $(DEV_STAMP)

.PHONY: install demo test test-slow lint docs
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/autounet demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Style and types (configuration in pyproject.toml). Run this again after merging branches.
lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Regenerate the generated pages (CLI reference, JSON Schemas), then build the site; warnings are errors.
docs: $(DEV_STAMP)
	$(BIN)/python -m autounet.cli._reference docs/cli.md
	$(BIN)/python -m autounet.schemas.export_json_schemas docs/schemas > /dev/null
	$(BIN)/mkdocs build --strict --quiet
