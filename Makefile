# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install lint bench clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .

# Compares fine-tuning, weight decay, Fisher EWC and experience replay on the embedded
# permuted-digits stream and writes runs/<timestamp>-permuted-digits-compare/ (tables, plots,
# one folder per method).
demo: install
	$(BIN)/seql compare --benchmark permuted-digits --methods none,weight-decay,fisher,replay

test: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

# The documentation site (mkdocs.yml, docs/): API reference from the docstrings, strict (a broken
# reference or a docstring warning fails), into site/.
docs: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: install
	for script in bench/[a-z]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
