# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-slow test-all test-deps test-backends backend-deps install lint bench clean docs gpu-bundle

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .

# Compares fine-tuning, weight decay, Fisher EWC and experience replay on the embedded
# permuted-digits stream and writes runs/<timestamp>-permuted-digits-compare/ (tables, plots,
# one folder per method). On JAX, the backend measured fastest on this 2-core machine (this
# comparison: 18.6 s against 31.1 s on TensorFlow and more on PyTorch; bench/backends.py's
# streams too); DEMO_BACKEND=tensorflow or torch runs it on another.
DEMO_BACKEND ?= jax

demo: install
	$(BIN)/python -m pip install -q -e ".[$(DEMO_BACKEND)]"
	@echo "make demo: Keras backend $(DEMO_BACKEND) (the fastest measured here; DEMO_BACKEND=... to choose)"
	$(BIN)/seql --backend $(DEMO_BACKEND) compare --benchmark permuted-digits --methods none,weight-decay,fisher,replay

# `make test`: lint and the fast suite (tests not marked `slow`), a few minutes on two cores.
# `make test-slow`: only the slow tests (honest runs, subprocesses); `make test-all`: everything.
# .ci/run runs `make test`, `make test-slow`, then `make test-backends`. These run on TensorFlow
# whatever KERAS_BACKEND says. PYTEST_WORKERS=0 runs in one process;
# PYTEST_ARGS passes more options (PYTEST_ARGS="--durations=30", PYTEST_ARGS="tests/test_cli.py").
PYTEST_WORKERS ?= 2
PYTEST := KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The docs extra too: a slow test builds the documentation site in strict mode; the jax and torch
# extras too: tests/test_backends.py starts runs on them from the TensorFlow suite.
test-deps: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev,docs,jax,torch]"

test: test-deps
	$(BIN)/ruff check src tests bench
	$(PYTEST) -m "not slow"

test-slow: test-deps
	$(PYTEST) -m slow

# `make test-backends`: the test modules marked `pytest.mark.all_backends` (the core suite: every
# method and estimator, resume, bad input, the CLI) under KERAS_BACKEND=jax and then torch, with
# the jax and torch extras installed (torch pinned to the CPU build this machine has on disk).
# tests/conftest.py collects only the marked modules on a backend other than TensorFlow.
BACKENDS_TESTED ?= jax torch

backend-deps: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev,jax,torch]"

test-backends: backend-deps
	for backend in $(BACKENDS_TESTED); do \
	  echo "== KERAS_BACKEND=$$backend"; \
	  KERAS_BACKEND=$$backend $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS) || exit 1; \
	done

test-all: test-deps
	$(BIN)/ruff check src tests bench
	$(PYTEST)

# The documentation site (mkdocs.yml, docs/): API reference from the docstrings, strict (a broken
# reference or a docstring warning fails), into site/.
# `make gpu-bundle`: what bench/gpu.sh needs on a GPU machine without TensorFlow or a package
# registry: Keras's wheel and the two wheels it needs that such a machine lacks (.whl/, for
# Python 3.12 on x86-64) and Fashion-MNIST (.data/fashion-mnist/). Both folders are git-ignored;
# carry them with the run.
GPU_WHEELS = keras==3.15.1 namex==0.1.0 optree==0.20.0
gpu-bundle: $(BIN)/python
	mkdir -p .whl .data/fashion-mnist
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	cp /usr/share/datasets/fashion-mnist/*.gz .data/fashion-mnist/

docs: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: install
	for script in bench/[a-z]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
