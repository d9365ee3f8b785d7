# Two commands do all the set-up on a fresh machine (Python 3.11 and make are all it needs):
#   make demo   - install into .venv, generate the demo city's day and replay it
#   make test   - install into .venv, lint, check the JSON Schemas, run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cityorder demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m models.schema --check
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench.engine_bench

schemas: $(STAMP)
	$(BIN)/python -m models.schema

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
