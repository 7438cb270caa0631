# The two commands of the README: `make run` (the main job) and `make test` (the test suite).
# Each creates .venv and installs what is needed on first use; a GPU-less machine gets the
# CPU build of PyTorch, a machine with nvidia-smi gets PyPI's default (CUDA) build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_CPU_VERSION ?= 2.13.0
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
PIP := $(BIN)/python -m pip install --disable-pip-version-check

.PHONY: run test test-slow test-guard lint install
run: $(VENV)/.installed
	$(BIN)/forethought train -c keydoor_vector

test: $(VENV)/.installed lint
	$(BIN)/python -m pytest

test-slow: $(VENV)/.installed
	$(BIN)/python -m pytest -m slow

# the learning tests .ci/run runs after the suite (those that pass reliably on 2 cores), and the check that the
# compiled update (train.compile, on by default) computes what the eager one does
test-guard: $(VENV)/.installed
	$(BIN)/python -m pytest -m slow -k "compiled_update_keeps_the_maths" tests/test_dreamer.py
	$(BIN)/python -m pytest -m slow -k "key_door or cartpole or pendulum" tests/test_learning.py
	$(BIN)/python -m pytest -m slow tests/test_world_model_learning.py

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
ifneq ($(HAS_GPU),yes)
	$(PIP) --retries 0 --timeout 10 --extra-index-url https://download.pytorch.org/whl/cpu "torch==$(TORCH_CPU_VERSION)"
endif
	$(PIP) -e ".[dev,minigrid,crafter,tune]"
	touch $@
