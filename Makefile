# Two commands do all the set-up on a fresh machine (Python 3.11 and make are all it needs):
#   make dev    - install into .venv, run `cityorder dev`: embedded broker, a worker, the demo day
#   make test   - install into .venv, lint, check the JSON Schemas, run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev demo test bench bench-runtime schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/cityorder dev

demo: $(STAMP)
	$(BIN)/cityorder demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m models.schema --check
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench.engine_bench

bench-runtime: $(STAMP)
	$(BIN)/python -m bench.runtime_bench

schemas: $(STAMP)
	$(BIN)/python -m models.schema

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
